"""Batch scoring (core/model/score.py) against LightGBM's own predict on rows encoded by a plain-Python reference.

For every task, with and without a fitted recipe, the scores written to Parquet must equal
``Booster.predict`` on the same rows encoded value by value per the run folder contract
(tests/test_runs.py: ``reference_matrix``). Datasets that do not fit the run are refused before any
file is written; small batches give the same result as one big one.
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import QuarryError
from core.features import recipe as R
from core.model import runs, score
from core.model.encoding import FeatureSpec
from tests.recipe_support import table as register
from tests.test_runs import CLASSES, COLORS, FEATURES, make_table, reference_matrix, save_trained, train_booster

TASKS = ("binary", "multiclass", "regression")
CATEGORICAL = {"color": COLORS[:3]}  # 'violet' is in the data but not a category; scoring adds unseen 'purple'
IMPUTE = R.Step("impute", {"columns": ["x1"], "strategy": "mean", "indicator": True})


def impute_reference(t: pa.Table, fill: float) -> pa.Table:
    """The impute step done in Python: missing x1 -> fill, plus the x1_was_missing flag."""
    x1 = t.column("x1").to_pylist()
    t = t.set_column(t.schema.get_field_index("x1"), "x1", pa.array([fill if v is None else v for v in x1],
                                                                    pa.float64()))
    return t.append_column("x1_was_missing", pa.array([v is None for v in x1]))


def make_case(settings, con, task: str, with_recipe: bool, serve: pa.Table | None = None,
              **extra) -> tuple[runs.Run, np.ndarray, pa.Table]:
    """Train a tiny model (through a fitted impute recipe, or on the raw columns), save it, and register
    a serving dataset 'serve'; (the loaded run, Booster.predict on the reference encoding of 'serve', serve)."""
    train = make_table(400, seed=0)
    serve = make_table(300, seed=1, colors=[*COLORS, "purple"]) if serve is None else serve
    register(con, "train", train)
    register(con, "serve", serve)
    if with_recipe:
        recipe = R.fit(con, R.Recipe(steps=(IMPUTE,)), "train")
        fill = recipe.steps[0].fitted["values"]["x1"]
        assert fill == pytest.approx(np.nanmean(np.array(train.column("x1").to_pylist(), dtype=float)), rel=1e-12)
        features, recipe_json = [*FEATURES, "x1_was_missing"], recipe.dumps()
        train_in, serve_in = impute_reference(train, fill), impute_reference(serve, fill)
    else:
        features, recipe_json, train_in, serve_in = FEATURES, None, train, serve
    booster = train_booster(train_in, task, features, CATEGORICAL)
    run_id, _ = save_trained(settings, task, train_in, features=features, categorical=CATEGORICAL,
                             recipe_json=recipe_json, booster=booster, **extra)
    expected = booster.predict(reference_matrix(serve_in, features, CATEGORICAL))
    return runs.load_run(settings, run_id), expected, serve


def check_predictions(task: str, got: pa.Table, expected: np.ndarray, threshold: float = 0.5) -> None:
    if task == "binary":
        assert got.column_names[-2:] == ["score", "prediction"]
        np.testing.assert_allclose(got.column("score").to_numpy(), expected, rtol=1e-12, atol=0)
        assert got.column("prediction").to_pylist() == (expected >= threshold).astype(int).tolist()
    elif task == "multiclass":
        assert got.column_names[-4:] == ["prob_a", "prob_b", "prob_c", "prediction"]
        for k, c in enumerate(CLASSES["multiclass"]):
            np.testing.assert_allclose(got.column(f"prob_{c}").to_numpy(), expected[:, k], rtol=1e-12, atol=0)
        assert got.column("prediction").to_pylist() == [CLASSES["multiclass"][i] for i in expected.argmax(axis=1)]
    else:
        assert got.column_names[-1:] == ["prediction"]
        np.testing.assert_allclose(got.column("prediction").to_numpy(), expected, rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------------------------
# Scores equal LightGBM's on the reference encoding


@pytest.mark.parametrize("with_recipe", [False, True], ids=["raw", "recipe"])
@pytest.mark.parametrize("task", TASKS)
def test_scores_equal_booster_predict_on_reference_encoded_rows(settings, con, tmp_path, task, with_recipe):
    run, expected, serve = make_case(settings, con, task, with_recipe)
    assert (run.recipe is not None) == with_recipe
    assert np.ptp(expected) > 0  # the model learned something: a wrong encoding would show
    out = tmp_path / "out" / "scores.parquet"
    out.parent.mkdir()
    result = score.score(settings, con, run, "serve", out, keep=("id",))
    assert (result.rows, result.out) == (300, out) and result.seconds > 0
    got = pq.read_table(out)
    assert got.column("id").to_pylist() == serve.column("id").to_pylist()
    check_predictions(task, got, expected)
    assert [p.name for p in out.parent.iterdir()] == ["scores.parquet"]  # no temporary file left
    assert pq.read_schema(out).metadata[b"quarry.run_id"] == run.run_id.encode()


def test_the_run_threshold_decides_binary_predictions(settings, con, tmp_path):
    run, expected, _ = make_case(settings, con, "binary", False, threshold=0.3)
    assert ((expected >= 0.3) != (expected >= 0.5)).any()
    score.score(settings, con, run, "serve", tmp_path / "s.parquet")
    check_predictions("binary", pq.read_table(tmp_path / "s.parquet"), expected, threshold=0.3)


def test_a_model_saved_with_all_iterations_is_scored_at_its_best_iteration(settings, con, tmp_path):
    train, serve = make_table(400, seed=0), make_table(200, seed=1)
    register(con, "serve", serve)
    booster = train_booster(train, "regression", FEATURES, CATEGORICAL, rounds=30)
    full = runs.save_run(settings, {**save_doc("regression"), "best_iteration": 10},
                         booster.model_to_string(num_iteration=-1), {}, {}, None)
    x = reference_matrix(serve, FEATURES, CATEGORICAL)
    assert not np.allclose(booster.predict(x, num_iteration=10), booster.predict(x))
    score.score(settings, con, runs.load_run(settings, full.name), "serve", tmp_path / "s.parquet")
    np.testing.assert_allclose(pq.read_table(tmp_path / "s.parquet").column("prediction").to_numpy(),
                               booster.predict(x, num_iteration=10), rtol=1e-12, atol=0)


def save_doc(task: str) -> dict:
    from tests.test_runs import run_json

    return run_json(task, FEATURES, CATEGORICAL)


def test_unseen_and_missing_categories_are_both_nan_codes(settings, con, tmp_path):
    base = make_table(60, seed=3)
    n = base.num_rows
    colors = ["purple"] * n + [None] * n + ["red"] * n
    serve = pa.concat_tables([base] * 3).set_column(base.schema.get_field_index("color"), "color", pa.array(colors))
    run, expected, _ = make_case(settings, con, "regression", False, serve=serve)
    score.score(settings, con, run, "serve", tmp_path / "s.parquet")
    pred = pq.read_table(tmp_path / "s.parquet").column("prediction").to_numpy()
    np.testing.assert_array_equal(pred[:n], pred[n:2 * n])  # unseen 'purple' scores like a missing colour
    assert not np.array_equal(pred[:n], pred[2 * n:])  # and not like 'red'
    np.testing.assert_allclose(pred, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("task", TASKS)
def test_small_batches_give_the_same_file_with_progress(settings, con, tmp_path, task):
    run, expected, _ = make_case(settings, con, task, True)
    score.score(settings, con, run, "serve", tmp_path / "one.parquet", keep=("id", "region"))
    calls = []
    result = score.score(settings, con, run, "serve", tmp_path / "many.parquet", keep=("id", "region"),
                         batch_size=7, progress=lambda done, total: calls.append((done, total)))
    one, many = pq.read_table(tmp_path / "one.parquet"), pq.read_table(tmp_path / "many.parquet")
    assert many.equals(one) and result.rows == 300
    check_predictions(task, many, expected)
    assert calls[0] == (0, 300) and calls[-1] == (300, 300)
    assert len(calls) >= 1 + 300 // 7
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert pq.ParquetFile(tmp_path / "many.parquet").metadata.num_rows == 300


def test_output_keeps_the_chosen_id_columns(settings, con, tmp_path):
    run, _, serve = make_case(settings, con, "multiclass", True)
    score.score(settings, con, run, "serve", tmp_path / "s.parquet", keep=["region", "id", "region"])
    got = pq.read_table(tmp_path / "s.parquet")
    assert got.column_names == ["region", "id", "prob_a", "prob_b", "prob_c", "prediction"]
    assert got.schema.field("id").type == pa.int64()
    assert got.column("region").to_pylist() == serve.column("region").to_pylist()
    score.score(settings, con, run, "serve", tmp_path / "bare.parquet")
    assert pq.read_table(tmp_path / "bare.parquet").column_names == ["prob_a", "prob_b", "prob_c", "prediction"]


def test_an_empty_dataset_gives_an_empty_file_with_the_columns(settings, con, tmp_path):
    run, _, _ = make_case(settings, con, "binary", True)
    register(con, "nothing", make_table(50, seed=2).slice(0, 0))
    result = score.score(settings, con, run, "nothing", tmp_path / "s.parquet", keep=("id",))
    got = pq.read_table(tmp_path / "s.parquet")
    assert result.rows == 0 and got.num_rows == 0 and got.column_names == ["id", "score", "prediction"]


# ----------------------------------------------------------------------------------------------
# Refused before any work


def _refused(settings, con, run, table: str, folder: Path, match: str, **kw) -> QuarryError:
    folder.mkdir(exist_ok=True)
    with pytest.raises(QuarryError, match=match) as err:
        score.check_inputs(con, run, table, keep=kw.get("keep", ()))
    with pytest.raises(QuarryError, match=match):
        score.score(settings, con, run, table, folder / "s.parquet", **kw)
    assert list(folder.iterdir()) == []  # nothing written, not even a temporary file
    return err.value


@pytest.mark.parametrize("with_recipe", [False, True], ids=["raw", "recipe"])
def test_a_missing_column_is_refused_naming_it(settings, con, tmp_path, with_recipe):
    run, _, serve = make_case(settings, con, "binary", with_recipe)
    register(con, "no_x2", serve.drop_columns(["x2"]))
    err = _refused(settings, con, run, "no_x2", tmp_path / "a", "lacks the column 'x2'")
    assert "a number" in err.message and "train" in err.hint
    register(con, "no_x1", serve.drop_columns(["x1"]))
    err = _refused(settings, con, run, "no_x1", tmp_path / "b", "'x1'")
    if with_recipe:  # the recipe's impute step needs it before the model does
        assert "recipe" in err.message and "impute" in err.message


@pytest.mark.parametrize(("column", "values", "found", "expected"), [
    ("x2", pa.array(["1", "2", "3"]), "VARCHAR", "a number, boolean, date or timestamp"),
    ("color", pa.array([1, 2, 3]), "BIGINT", "text (VARCHAR)"),
    ("ts", pa.array(["2024-01-01"] * 3), "VARCHAR", "a number, boolean, date or timestamp"),
])
def test_a_wrong_type_is_refused_naming_the_column_and_both_types(settings, con, tmp_path, column, values, found,
                                                                   expected):
    run, _, _ = make_case(settings, con, "regression", False)
    bad = make_table(3, seed=4)
    register(con, "bad", bad.set_column(bad.schema.get_field_index(column), column, values))
    err = _refused(settings, con, run, "bad", tmp_path / "out", f"column '{column}'")
    assert found in err.message and expected in err.message


def test_feature_kinds_in_run_json_make_the_type_check_exact(settings, con, tmp_path):
    kinds = ["numeric", "numeric", "categorical", "boolean", "temporal", "temporal"]
    run, _, serve = make_case(settings, con, "binary", False, feature_kinds=kinds)
    swapped = serve.set_column(serve.schema.get_field_index("x2"), "x2", serve.column("ts"))  # a time, not a number
    register(con, "swapped", swapped)
    err = _refused(settings, con, run, "swapped", tmp_path / "out", "column 'x2'")
    assert "TIMESTAMP" in err.message and "a number (a numeric feature in training)" in err.message
    flag_as_int = serve.set_column(serve.schema.get_field_index("flag"), "flag", serve.column("x2"))
    register(con, "flag_as_int", flag_as_int)
    _refused(settings, con, run, "flag_as_int", tmp_path / "out2", "'flag' .* is BIGINT.*a boolean")


def test_bad_keep_columns_and_outputs_are_refused(settings, con, tmp_path):
    run, _, _ = make_case(settings, con, "binary", False)
    _refused(settings, con, run, "serve", tmp_path / "a", "'nope' to keep", keep=("nope",))
    _refused(settings, con, run, "serve", tmp_path / "b", "name of a prediction column", keep=("score",))
    with pytest.raises(QuarryError, match="must end in .parquet"):
        score.score(settings, con, run, "serve", tmp_path / "s.csv")
    with pytest.raises(QuarryError, match="does not exist"):
        score.score(settings, con, run, "serve", tmp_path / "missing" / "s.parquet")
    with pytest.raises(QuarryError, match="does not exist"):
        score.check_inputs(con, run, "no_such_dataset")


def test_a_cancelled_scoring_leaves_no_file(settings, con, tmp_path):
    run, _, _ = make_case(settings, con, "binary", False)

    def cancel(done: int, total: int) -> None:
        if done > 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score.score(settings, con, run, "serve", tmp_path / "s.parquet", batch_size=20, progress=cancel)
    assert list(tmp_path.glob("*s.parquet*")) == []


# ----------------------------------------------------------------------------------------------
# The encoding of the contract, column by column


@pytest.mark.parametrize(("values", "categories", "want"), [
    (pa.array(["red", "purple", None, "blue"]), ["red", "green", "blue"], [0, np.nan, np.nan, 2]),
    (pa.array(["b", "a", None]).dictionary_encode(), ["a", "b"], [1, 0, np.nan]),
    (pa.array(["a", "b"]), [], [np.nan, np.nan]),
    (pa.array([3, 1, 7], pa.int32()), [1, 3], [1, 0, np.nan]),
    (pa.array([True, None, False]), None, [1, np.nan, 0]),
    (pa.array([1, None, 2**53 + 1], pa.int64()), None, [1, np.nan, float(2**53)]),
    (pa.array([Decimal("1.25"), None], pa.decimal128(10, 2)), None, [1.25, np.nan]),
    (pa.array([date(1970, 1, 2), None], pa.date32()), None, [86_400, np.nan]),
    (pa.array([datetime(1970, 1, 1, 0, 0, 1, 500_000)], pa.timestamp("us")), None, [1.5]),
    (pa.array([datetime(2024, 1, 1, tzinfo=UTC)], pa.timestamp("ms", tz="Europe/Paris")), None, [1704067200.0]),
    (pa.array([1_500_000_000], pa.timestamp("ns")), None, [1.5]),
])
def test_encode_column_follows_the_contract(values, categories, want):
    """The one encoder (core.model.encoding.FeatureSpec) on raw Arrow values, as the run folder contract says."""
    kind = "categorical" if categories is not None else _kind(values.type)
    spec = FeatureSpec(("v",), (kind,), {"v": categories} if categories is not None else {})
    np.testing.assert_array_equal(spec.encode(pa.table({"v": values})), np.array([want], dtype=float).T)


def _kind(t: pa.DataType) -> str:
    t = t.value_type if pa.types.is_dictionary(t) else t
    return "temporal" if pa.types.is_temporal(t) else "boolean" if pa.types.is_boolean(t) else "numeric"


def test_encode_features_matches_the_reference_encoder():
    t = make_table(500, seed=9, colors=[*COLORS, "purple"])
    kinds = tuple("categorical" if f in CATEGORICAL else _kind(t.schema.field(f).type) for f in FEATURES)
    np.testing.assert_array_equal(FeatureSpec(tuple(FEATURES), kinds, CATEGORICAL).encode(t),
                                  reference_matrix(t, FEATURES, CATEGORICAL))
    with pytest.raises(QuarryError, match="cannot be encoded"):
        FeatureSpec(("v",), ("numeric",)).encode(pa.table({"v": pa.array([[1]])}))

"""Training on tiny generated data: the three tasks beat the prior, splits, early stopping, cancelling,
the Sequence path against the in-memory one, categories, devices, parameters and recipes."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from core.data import catalog as cat
from core.errors import QuarryError
from core.features import recipe as R
from core.features.recipe import source_sql
from core.model import train as T
from core.model.splits import SplitConfig, split_sql
from tests.conftest import write_parquet

N = 3000
COLORS = ["red", "green", "blue", "grey"]
LEVELS = ["low", "mid", "high"]
FAST = {"num_boost_round": 200, "early_stopping_rounds": 20}


def make_table(n: int = N) -> pa.Table:
    """Targets of each task driven by x1, x2 and color; an ID, a time, a group and pure noise."""
    rng = np.random.default_rng(5)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(COLORS, size=n)
    z = x1 + 0.7 * x2 + np.where(color == "red", 1.5, 0.0) - np.where(color == "blue", 1.0, 0.0)
    x2_missing = x2.copy()
    x2_missing[::19] = np.nan
    start = datetime(2023, 1, 1)
    return pa.table({
        "id": pa.array(np.arange(n) * 7 + 3),
        "x1": pa.array(x1),
        "x 2": pa.array(x2_missing),  # a space in a feature name
        "color": pa.array([None if i % 31 == 0 else c for i, c in enumerate(color)]),
        "flag": pa.array(rng.random(n) < 0.3),
        "ts": pa.array([start + timedelta(hours=i) for i in range(n)], pa.timestamp("us")),
        "grp": pa.array(rng.integers(0, 120, n)),
        "y_bin": pa.array(z + rng.normal(size=n) > 0.3),
        "y_multi": pa.array([LEVELS[k] for k in np.digitize(z + 0.6 * rng.normal(size=n), [-0.6, 0.8])]),
        "y_reg": pa.array(3 * z + rng.normal(size=n)),
        "noise": pa.array(rng.normal(size=n)),
    })


TABLE = make_table()
FEATURES = ["x1", "x 2", "color", "flag"]


@pytest.fixture
def data(con, catalog, root) -> str:
    path = write_parquet(root / "train.parquet", TABLE)
    cat.register(con, catalog, str(path), name="t")
    return "t"


def run(con, settings, target: str, **kw) -> T.TrainResult:
    return T.train(con, T.TrainConfig("t", target, **{**FAST, **kw}), settings=settings)


@pytest.mark.parametrize(("target", "task", "better"), [
    ("y_bin", "binary", ("auc", "logloss")),
    ("y_multi", "multiclass", ("logloss", "accuracy")),
    ("y_reg", "regression", ("rmse", "r2")),
])
def test_each_task_is_detected_and_beats_the_prior(con, settings, data, target, task, better):
    result = run(con, settings, target)
    assert result.task == task
    assert result.excluded["id"].startswith("ID-like")
    assert result.excluded["ts"].startswith("a time")
    assert "id" not in result.features and target not in result.features and "x 2" in result.features
    assert set(result.features) >= set(FEATURES)
    test, prior, linear = result.metrics["test"], result.baselines["prior"], result.baselines["linear"]
    higher = {"auc", "accuracy", "r2"}
    for name in better:
        if name in higher:
            assert test[name] > prior[name] + 0.1, (name, test, prior)
        else:
            assert test[name] < prior[name] * 0.8, (name, test, prior)
    assert set(linear) == set(test) and set(result.metrics["valid"]) == set(test)
    assert result.rows["train"] + result.rows["valid"] + result.rows["test"] == N
    assert result.data_path == "memory"
    assert len(result.curve["train"]) == len(result.curve["valid"]) <= FAST["num_boost_round"]
    assert result.curve["metric"] == T.DEFAULT_METRIC[task]
    assert result.best_iteration >= 1 and result.booster.num_trees() >= result.best_iteration
    assert sorted(result.importance["feature"]) == sorted(result.features)
    doc = result.to_json()
    assert "booster" not in doc and doc["model_text"].startswith("tree")
    json.dumps(doc, allow_nan=False)
    if task != "regression":
        assert doc["classes"] == sorted(np.unique(TABLE.column(target).to_numpy(zero_copy_only=False)).tolist())


def test_categories_are_the_train_splits_in_frequency_order(con, settings, data):
    result = run(con, settings, "y_bin", features=["x1", "color"])
    query = split_sql(con, source_sql("t"), {}, SplitConfig(), "y_bin")
    expected = con.sql(f"SELECT color FROM ({query}) WHERE __split = 'train' AND color IS NOT NULL "
                       "GROUP BY color ORDER BY count(*) DESC, color").fetchall()
    assert result.categorical["color"] == [c for c, in expected]
    assert set(result.categorical["color"]) == set(COLORS)  # missing (None) is not a category


def test_task_override_and_refusals(con, settings, data):
    assert run(con, settings, "y_bin", task="multiclass").task == "multiclass"
    with pytest.raises(QuarryError) as err:
        run(con, settings, "y_multi", task="binary")
    assert err.value.message == "A binary target needs exactly 2 classes; 'y_multi' has 3."
    with pytest.raises(QuarryError) as err:
        run(con, settings, "color", task="regression")
    assert err.value.message == "Regression needs a numeric target; 'color' is VARCHAR."
    with pytest.raises(QuarryError, match="A stratified split needs a classification target"):
        run(con, settings, "y_reg", split=SplitConfig("stratified"))
    with pytest.raises(QuarryError, match="The target 'nope' is not a column"):
        run(con, settings, "nope")


@pytest.mark.parametrize("split", [
    SplitConfig("stratified", seed=1),
    SplitConfig("time", valid=0.2, test=0.2, column="ts"),
    SplitConfig("group", column="grp"),
])
def test_each_split_kind_trains(con, settings, data, split):
    result = run(con, settings, "y_bin", split=split, features=["x1", "x 2", "color", "grp"]
                 if split.kind != "group" else ["x1", "x 2", "color"])
    assert result.split == split.to_json()
    assert all(result.rows[p] > 0 for p in ("train", "valid", "test"))
    assert result.metrics["test"]["auc"] > 0.75


def test_features_of_every_kind_when_listed(con, settings, data):
    result = run(con, settings, "y_reg", features=["x1", "color", "flag", "ts", "id"], num_boost_round=20)
    assert result.features == ["x1", "color", "flag", "ts", "id"] and result.excluded == {}
    assert result.feature_kinds == ["numeric", "categorical", "boolean", "temporal", "numeric"]
    assert list(result.categorical) == ["color"]
    every = run(con, settings, "y_reg", features=["x1", "y_reg"], num_boost_round=5)  # e.g. 'Select all'
    assert every.features == ["x1"] and every.excluded == {"y_reg": "the target itself"}
    with pytest.raises(QuarryError, match="The only feature listed is the target 'y_reg'"):
        run(con, settings, "y_reg", features=["y_reg"])
    with pytest.raises(QuarryError, match="The feature 'nope' is not a column"):
        run(con, settings, "y_reg", features=["nope"])


def test_without_a_test_split_baselines_are_scored_on_valid(con, settings, data):
    result = run(con, settings, "y_bin", features=FEATURES, split=SplitConfig(valid=0.2, test=0.0))
    assert result.rows["test"] == 0 and result.metrics["test"] == {}
    assert result.baselines["prior"]["auc"] == 0.5 and set(result.baselines["linear"]) == {"auc", "logloss", "accuracy"}
    assert "There is no test split: the baselines are scored on the valid split." in result.notes


def test_group_column_is_not_a_default_feature(con, settings, data):
    result = run(con, settings, "y_reg", split=SplitConfig("group", column="grp"))
    assert "grp" not in result.features
    assert result.excluded["grp"] == "the group column of the split"


def test_early_stopping_stops_on_noise(con, settings, data):
    result = run(con, settings, "noise", features=["x1", "x 2", "color"], num_boost_round=1000,
                 early_stopping_rounds=10, params={"learning_rate": 0.2})
    trained = len(result.curve["valid"])
    assert trained < 1000
    assert result.best_iteration == trained - 10  # the best round, then 10 without improvement
    valid = result.curve["valid"]
    assert min(valid) == valid[result.best_iteration - 1]


def test_no_early_stopping_trains_every_round(con, settings, data):
    result = run(con, settings, "noise", features=["x1"], num_boost_round=15, early_stopping_rounds=0)
    assert len(result.curve["valid"]) == 15 and result.best_iteration == 15


def test_progress_and_cancel(con, settings, data):
    seen = []

    def progress(iteration, total, train_value, valid_value):
        seen.append((iteration, total, train_value, valid_value))

    with pytest.raises(T.Cancelled) as err:
        T.train(con, T.TrainConfig("t", "y_bin", num_boost_round=100), progress=progress,
                should_stop=lambda: len(seen) >= 3, settings=settings)
    assert [s[0] for s in seen] == [1, 2, 3] and all(s[1] == 100 for s in seen)
    assert all(isinstance(s[2], float) and isinstance(s[3], float) for s in seen)
    assert err.value.iteration == 3 and isinstance(err.value, QuarryError)
    assert err.value.message == "Training was cancelled after 3 boosting rounds."


def test_cancel_while_reading(con, settings, data):
    with pytest.raises(T.Cancelled) as err:
        T.train(con, T.TrainConfig("t", "y_bin"), should_stop=lambda: True, settings=settings)
    assert err.value.iteration == 0
    assert not list(settings.temp_dir.glob("train-*"))


def test_sequence_path_gives_the_same_model(con, settings, data, monkeypatch):
    monkeypatch.setattr(T, "BATCH_ROWS", 500)  # Sequence slices that straddle Parquet row groups
    kw = {"features": FEATURES, "params": {"num_threads": 1, "deterministic": True}, "num_boost_round": 60}
    memory = run(con, settings, "y_multi", **kw)
    sequence = run(con, settings, "y_multi", memory_budget_mb=0.01, **kw)
    assert (memory.data_path, sequence.data_path) == ("memory", "sequence")
    assert "memory budget" in sequence.notes[0]
    assert sequence.best_iteration == memory.best_iteration
    x = np.random.default_rng(0).normal(size=(200, len(FEATURES)))
    x[:, 2] = np.random.default_rng(1).integers(0, 4, 200)
    np.testing.assert_allclose(sequence.booster.predict(x), memory.booster.predict(x), rtol=0, atol=1e-12)
    assert sequence.metrics == memory.metrics
    assert set(sequence.baselines) == {"prior", "linear"}  # the linear sample comes from the Parquet file
    assert not list(settings.temp_dir.glob("train-*"))  # the Parquet files are gone


def test_parquet_sequence_reads_rows_and_slices(con, settings, tmp_path):
    spec = T.FeatureSpec(("a", "c"), ("numeric", "categorical"), {"c": ["x", "y"]})
    con.sql("SELECT range::DOUBLE AS a, ['x', 'y', 'z', NULL][range % 4 + 1] AS c FROM range(5000)").create("seq_src")
    path = settings.temp_dir / "seq.parquet"
    con.execute(f"COPY (SELECT {spec.select_sql()}, 0 AS __y FROM seq_src) TO '{path}' "
                "(FORMAT parquet, ROW_GROUP_SIZE 2048)")
    seq = T.ParquetSequence(path, spec, batch_size=700)
    assert len(seq) == 5000 and seq.file.metadata.num_row_groups > 1
    expected = np.column_stack([np.arange(5000.0), np.tile([0.0, 1.0, np.nan, np.nan], 1250)])
    np.testing.assert_array_equal(seq[2040:2060], expected[2040:2060])
    np.testing.assert_array_equal(seq[4999], expected[4999])
    np.testing.assert_array_equal(seq[[1, 2049, 4000]], expected[[1, 2049, 4000]])
    np.testing.assert_array_equal(seq[0:5000], expected)


def test_unseen_categories_in_test_are_missing(con, settings, catalog, root):
    late = [c if i < int(N * 0.7) or i % 2 else "purple" for i, c in enumerate(TABLE.column("color").to_pylist())]
    t = TABLE.set_column(3, "color", pa.array(late))
    cat.register(con, catalog, str(write_parquet(root / "late.parquet", t)), name="t")
    result = run(con, settings, "y_bin", features=["x1", "color"],
                 split=SplitConfig("time", valid=0.15, test=0.15, column="ts"))
    assert "purple" not in result.categorical["color"]
    assert result.metrics["test"]["auc"] > 0.6
    spec = result.feature_spec
    codes = spec.column(1, pa.array(["purple", None, result.categorical["color"][0]]))
    np.testing.assert_array_equal(codes, [np.nan, np.nan, 0.0])


def test_device_auto_is_cpu_with_a_reason(con, settings, data):
    assert T.choose_device("auto", 10_000) == ("cpu", "fewer than 1,000,000 training rows: CPU is faster")
    assert T.choose_device("cpu", 10**9) == ("cpu", "CPU was asked for")
    result = run(con, settings, "y_bin", features=["x1"])
    assert result.device == {"requested": "auto", "used": "cpu",
                             "reason": "fewer than 1,000,000 training rows: CPU is faster"}
    if T._probe("cuda") is None or T._probe("gpu") is None:
        pytest.skip("this machine can train on a GPU")
    assert T.choose_device("auto", 5_000_000) == (
        "cpu", "this LightGBM build has no CUDA support and no OpenCL device was found")


def test_cuda_asked_for_without_cuda_is_refused(con, settings, data):
    if T._probe("cuda") is None:
        pytest.skip("this machine trains with CUDA")
    with pytest.raises(QuarryError) as err:
        run(con, settings, "y_bin", device="cuda")
    assert err.value.message == "CUDA training is not available: this LightGBM build has no CUDA support."
    assert "scripts/build-lightgbm-cuda.sh" in err.value.hint


@pytest.mark.parametrize(("params", "message"), [
    ({"num_leaves": 1}, "The 'num_leaves' parameter must be an int in [2, 131072]. Got 1."),
    ({"num_leaf": 1.5}, "The 'num_leaves' parameter must be an int in [2, 131072]. Got 1.5."),
    ({"learning_rate": 0}, "The 'learning_rate' parameter must be a float > 0. Got 0."),
    ({"feature_fraction": 1.2}, "The 'feature_fraction' parameter must be a float in (0, 1]. Got 1.2."),
    ({"lambda_l2": True}, "The 'lambda_l2' parameter must be a float >= 0. Got True."),
    ({"extra_trees": "yes"}, "The 'extra_trees' parameter must be a bool. Got 'yes'."),
    ({"num_leafs": 31}, "Unknown LightGBM parameter 'num_leafs'."),
    ({"n_estimators": 10}, "The LightGBM parameter 'n_estimators' is set by Quarry."),
    ({"output_model": "/tmp/m.txt"}, "The LightGBM parameter 'output_model' cannot be set here (files, machines "
                                     "and devices are Quarry's)."),
    ({"objective": "multiclass"}, "The 'objective' parameter must be one of binary, cross_entropy, xentropy for a "
                                  "binary task. Got 'multiclass'."),
    ({"boosting": "nope"}, "LightGBM could not train: Unknown boosting type nope"),
])
def test_bad_params_are_refused(con, settings, data, params, message):
    with pytest.raises(QuarryError) as err:
        run(con, settings, "y_bin", features=["x1"], params=params)
    assert err.value.message == message
    assert err.value.hint


def test_unknown_param_hint_names_the_nearest():
    with pytest.raises(QuarryError) as err:
        T.check_params({"num_leafs": 31})
    assert err.value.hint.startswith("Did you mean 'num_leaves'")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_boost_round": 0}, "The 'num_boost_round' parameter must be an int >= 1. Got 0."),
    ({"early_stopping_rounds": -1}, "The 'early_stopping_rounds' parameter must be an int >= 0. Got -1."),
    ({"device": "tpu"}, "The device must be one of auto, cpu, gpu, cuda. Got 'tpu'."),
    ({"task": "ranking"}, "The task must be one of binary, multiclass, regression. Got 'ranking'."),
    ({"class_weight": "auto"}, "The class weight must be None or 'balanced'. Got 'auto'."),
    ({"memory_budget_mb": 0}, "The memory budget must be a number of MB > 0. Got 0."),
])
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(QuarryError) as err:
        T.TrainConfig("t", "y", **kwargs)
    assert err.value.message == message


def test_aliases_and_user_params_reach_lightgbm(con, settings, data):
    result = run(con, settings, "y_bin", features=["x1"], params={"eta": 0.2, "max_leaves": 7})
    assert result.params["learning_rate"] == 0.2 and result.params["num_leaves"] == 7
    assert "[num_leaves: 7]" in result.model_text and "[learning_rate: 0.2]" in result.model_text


def test_class_weight_balanced(con, settings, data):
    binary = run(con, settings, "y_bin", features=FEATURES, class_weight="balanced")
    assert binary.params["is_unbalance"] is True
    multi = run(con, settings, "y_multi", features=FEATURES, class_weight="balanced", num_boost_round=30)
    assert multi.metrics["test"]["macro_f1"] > multi.baselines["prior"]["macro_f1"]


def test_recipe_output_is_what_the_model_learns(con, settings, data):
    recipe = R.fit(con, R.Recipe(steps=(
        R.Step("scale", {"columns": ["x1"]}),
        R.Step("expression", {"name": "x_sum", "expression": 'x1 + coalesce("x 2", 0)'}),
        R.Step("drop", {"columns": ["x 2", "noise", "y_multi", "y_reg", "grp"]}),
    )), "t")
    result = run(con, settings, "y_bin", recipe=recipe)
    assert "x_sum" in result.features and "x 2" not in result.features and "noise" not in result.features
    assert result.metrics["test"]["auc"] > 0.8
    sequence = run(con, settings, "y_bin", recipe=recipe, memory_budget_mb=0.01)  # the recipe's parameters in COPY
    assert sequence.data_path == "sequence" and sequence.features == result.features
    assert any("learned their statistics on t (all rows)" in n for n in result.notes)  # said, as test may see it


def test_training_reads_no_pandas(con, settings, data, monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("a pandas conversion")

    monkeypatch.setattr(pd.DataFrame, "__init__", refuse)
    monkeypatch.setattr(pd.DataFrame, "_from_mgr", classmethod(refuse))  # how Arrow's to_pandas builds one
    with pytest.raises(AssertionError):
        pa.table({"a": [1]}).to_pandas()
    assert run(con, settings, "y_reg", features=FEATURES).task == "regression"


def test_model_text_loads_and_predicts_like_the_booster(con, settings, data):
    result = run(con, settings, "y_bin", features=FEATURES, num_boost_round=30)
    again = lgb.Booster(model_str=result.model_text)
    x = np.random.default_rng(2).normal(size=(50, len(FEATURES)))
    np.testing.assert_allclose(again.predict(x), result.booster.predict(x, num_iteration=result.best_iteration))


# ----------------------------------------------------------------------------------------------
# Cross-validation

CV_FAST = {"num_boost_round": 40, "early_stopping_rounds": 10, "cv_folds": 3}


def fold_rows(con, target: str, split: SplitConfig, folds: int = 3, seed: int = 42) -> list[tuple]:
    """(id, split, fold) of every row fold_sql assigns, straight from DuckDB."""
    query = split_sql(con, source_sql("t"), {}, split, target)
    sql = T.fold_sql(query, split, target, folds, seed)
    return con.sql(f"SELECT id, __split, __fold FROM ({sql}) ORDER BY id").fetchall()


@pytest.mark.parametrize(("target", "names"), [
    ("y_bin", {"auc", "logloss", "accuracy"}),
    ("y_multi", {"logloss", "accuracy", "macro_f1"}),
    ("y_reg", {"rmse", "mae", "r2"}),
])
def test_cv_gives_a_metric_dict_per_fold_and_their_mean_and_std(con, settings, data, target, names):
    result = run(con, settings, target, features=FEATURES, **CV_FAST)
    cv = result.cv
    assert cv["folds"] == 3 and cv["rounds"] == result.best_iteration
    assert len(cv["per_fold"]) == 3 and all(set(m) == names for m in cv["per_fold"])
    for name in names:
        values = np.array([m[name] for m in cv["per_fold"]])
        assert cv["mean"][name] == pytest.approx(np.mean(values), abs=1e-12)
        assert cv["std"][name] == pytest.approx(np.std(values), abs=1e-12)
        assert cv["std"][name] > 0  # three different models on three different folds
    assert sum(cv["rows"]) == result.rows["train"] + result.rows["valid"]
    better = {"y_bin": ("auc", 0.8), "y_multi": ("accuracy", 0.55), "y_reg": ("r2", 0.7)}[target]
    assert min(m[better[0]] for m in cv["per_fold"]) > better[1]  # real models, scored on real rows
    doc = result.to_json()
    assert doc["cv"] == cv and "cv_s" in result.timings
    json.dumps(doc, allow_nan=False)


def test_no_cv_by_default(con, settings, data):
    result = run(con, settings, "y_bin", features=["x1"], num_boost_round=10)
    assert result.cv is None and result.to_json()["cv"] is None and "cv_s" not in result.timings


@pytest.mark.parametrize("split", [
    SplitConfig(),
    SplitConfig("stratified", seed=3),
    SplitConfig("group", column="grp"),
    SplitConfig("time", column="ts"),
])
def test_folds_partition_the_train_and_valid_rows(con, settings, data, split):
    assigned = fold_rows(con, "y_bin", split)
    query = split_sql(con, source_sql("t"), {}, split, "y_bin")
    learn = con.sql(f"SELECT id FROM ({query}) WHERE __split IN ('train', 'valid')").fetchall()
    test = {i for i, in con.sql(f"SELECT id FROM ({query}) WHERE __split = 'test'").fetchall()}
    held = [{i for i, _, f in assigned if f == k} for k in range(3)]
    assert {s for _, s, _ in assigned} == {"train", "valid"}
    assert all(held) and sum(len(h) for h in held) == len(assigned)  # disjoint, none empty
    assert set().union(*held) == {i for i, in learn} and len(assigned) == len(learn)  # exactly train + valid
    assert not set().union(*held) & test
    assert fold_rows(con, "y_bin", split) == assigned  # seeded: the same again
    assert fold_rows(con, "y_bin", split, seed=7) != assigned
    if split.kind == "group":
        folds_of = {}
        for i, grp in con.sql(f"SELECT id, grp FROM ({query})").fetchall():
            folds_of.setdefault(grp, set()).update(f for j, _, f in assigned if j == i)
        assert all(len(f) <= 1 for f in folds_of.values())  # a group is in one fold
    if split.kind == "stratified":
        y = dict(con.sql("SELECT id, y_bin FROM t").fetchall())
        for cls in (True, False):
            sizes = [sum(1 for i in h if y[i] is cls) for h in held]
            assert max(sizes) - min(sizes) <= 1


def test_cv_folds_are_the_ones_fold_sql_gives(con, settings, data):
    """A fold's metrics against a plain reference: LightGBM on fold_sql's rows, fetched separately."""
    kw = {"features": ["x1", "x 2", "flag"], "params": {"num_threads": 1, "deterministic": True,
                                                        "bagging_fraction": 1.0, "feature_fraction": 1.0}}
    result = run(con, settings, "y_reg", **kw, **CV_FAST)
    assigned = fold_rows(con, "y_reg", SplitConfig())
    assert result.cv["rows"] == [sum(1 for *_, f in assigned if f == k) for k in range(3)]
    query = split_sql(con, source_sql("t"), {}, SplitConfig(), "y_reg")
    table = con.sql(f"SELECT x1, \"x 2\", flag::DOUBLE, y_reg, __fold "
                    f"FROM ({T.fold_sql(query, SplitConfig(), 'y_reg', 3, 42)})").fetchnumpy()
    x = np.column_stack([table["x1"], table["x 2"], table["CAST(flag AS DOUBLE)"]])
    y, fold = table["y_reg"], table["__fold"]
    params = {k: v for k, v in result.params.items() if k != "device_type"}
    for k in range(3):
        model = lgb.train(params, lgb.Dataset(x[fold != k], label=y[fold != k]),
                          num_boost_round=result.cv["rounds"])
        expected = T.metrics("regression", y[fold == k], model.predict(x[fold == k]))
        for name, value in expected.items():
            assert result.cv["per_fold"][k][name] == pytest.approx(value, rel=1e-6)


def test_cv_never_uses_the_test_rows(con, settings, catalog, root):
    """Scrambling the test split's features and targets leaves the cross-validation as it was."""
    split = SplitConfig("group", column="grp")
    kw = {"features": ["x1", "x 2", "color"], "split": split, "params": {"num_threads": 1, "deterministic": True}}
    cat.register(con, catalog, str(write_parquet(root / "a.parquet", TABLE)), name="t")
    query = split_sql(con, source_sql("t"), {}, split, "y_bin")
    test_ids = {i for i, in con.sql(f"SELECT id FROM ({query}) WHERE __split = 'test'").fetchall()}
    before = run(con, settings, "y_bin", **kw, **CV_FAST)
    rng = np.random.default_rng(9)
    in_test = np.isin(TABLE.column("id").to_numpy(), list(test_ids))
    scrambled = TABLE
    for name, values in (("x1", rng.normal(size=N) * 100), ("y_bin", rng.random(N) < 0.5)):
        col = TABLE.column(name).to_numpy(zero_copy_only=False)
        scrambled = scrambled.set_column(scrambled.schema.get_field_index(name), name,
                                         pa.array(np.where(in_test, values, col)))
    cat.register(con, catalog, str(write_parquet(root / "b.parquet", scrambled)), name="t", replace=True)
    after = run(con, settings, "y_bin", **kw, **CV_FAST)
    assert after.rows == before.rows and after.metrics["test"] != before.metrics["test"]  # the test rows changed
    assert after.cv == before.cv


@pytest.mark.parametrize("folds", [1, 21, -1, True, 2.5, "3"])
def test_bad_cv_folds_are_refused(folds):
    with pytest.raises(QuarryError) as err:
        T.TrainConfig("t", "y", cv_folds=folds)
    assert err.value.message == f"The 'cv_folds' parameter must be 0 (off) or an int in [2, 20]. Got {folds!r}."
    assert err.value.hint == "Give the number of folds, e.g. 5, or 0 for none."


def test_cv_over_the_memory_budget_is_refused_before_reading(con, settings, data):
    with pytest.raises(QuarryError) as err:
        T.train(con, T.TrainConfig("t", "y_bin", features=FEATURES, memory_budget_mb=0.01, cv_folds=3),
                should_stop=lambda: pytest.fail("the data was read"), settings=settings)
    query = split_sql(con, source_sql("t"), {}, SplitConfig(), "y_bin")
    learn = con.sql(f"SELECT count(*) FROM ({query}) WHERE __split <> 'test'").fetchall()[0][0]
    assert err.value.message == (f"Cross-validation needs the train and valid rows in memory: {learn:,} rows x 4 "
                                 f"features take {learn * 4 * 8 / 2**20:.1f} MB, over the 0.01 MB memory budget.")
    assert err.value.hint.startswith("Raise memory_budget_mb to 1 or more, or set cv_folds to 0")


def test_a_fold_without_rows_is_refused(con, settings, catalog, root):
    tiny = pa.table({"x": np.arange(10.0), "y": [True, False] * 5})
    cat.register(con, catalog, str(write_parquet(root / "tiny.parquet", tiny)), name="tiny")
    split = SplitConfig("stratified", valid=0.2, test=0.2)  # 4 train + valid rows per class: folds 0-3
    with pytest.raises(QuarryError) as err:
        T.train(con, T.TrainConfig("tiny", "y", split=split, num_boost_round=5, cv_folds=20), settings=settings)
    assert err.value.message == "Fold 5 of 20 has no rows: there are too few rows for 20 folds."
    assert err.value.hint == "Use fewer folds."


@pytest.mark.parametrize(("stop_after", "message"), [
    (0, "Cross-validation was cancelled in fold 1 of 3."),  # before the first fold
    (5, "Cross-validation was cancelled in fold 1 of 3."),  # inside its boosting
    (25, "Cross-validation was cancelled in fold 2 of 3."),  # 1 + 20 rounds + 1: before the second
])
def test_cancel_during_cv(con, settings, data, stop_after, message):
    seen, asked = [], []

    def should_stop() -> bool:
        if len(seen) < 20:  # the main model: 20 rounds, no early stopping
            return False
        asked.append(1)
        return len(asked) > stop_after

    with pytest.raises(T.Cancelled) as err:
        T.train(con, T.TrainConfig("t", "y_bin", features=FEATURES, num_boost_round=20, early_stopping_rounds=0,
                                   cv_folds=3),
                progress=lambda *a: seen.append(a), should_stop=should_stop, settings=settings)
    assert err.value.message == message and err.value.iteration == 20
    assert len(seen) == 20  # the folds report no progress
    assert len(asked) == stop_after + 1

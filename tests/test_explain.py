"""core.explain, core.effects, core.local, core.lineage and core.explain_charts on real trained runs
(tests/eval_support): SHAP against the raw score and the shap package, the stratified sample and its cache, PDP
against brute force, rows found against numpy."""
from __future__ import annotations

import math
import os
import warnings
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.data import catalog as cat
from core.data import engine
from core.data.demo.transactions import FRAUD_DRIVERS, FRAUD_TARGET, write_transactions
from core.errors import QuarryError
from core.evaluate import holdout
from core.explain import charts as C
from core.explain import effects as D
from core.explain import lineage
from core.explain import local as L
from core.explain import shap as E
from core.features import recipe as R
from core.features import store as recipe_store
from core.model import job as train_job
from core.model import runs
from core.model.encoding import FeatureSpec, num_iteration
from tests.eval_support import DRIVERS, make_run, scored

TASKS = ("binary", "multiclass", "regression")


def _setup(settings, root, con, task: str, n: int = 300, **kw):
    run = make_run(settings, root, task, **kw)
    sc = scored(settings, con, run)
    return run, sc, E.shap_sample(settings, con, run, sc, n)


def _raw(run, x: np.ndarray) -> np.ndarray:
    return np.asarray(run.booster.predict(x, raw_score=True, num_iteration=num_iteration(run)))


# ----------------------------------------------------------------------------------------------
# SHAP values


@pytest.mark.parametrize("task", TASKS)
def test_shap_adds_up_to_the_raw_score_and_the_sample_is_encoded_as_scored(settings, root, con, task):
    run, sc, s = _setup(settings, root, con, task)
    assert s.n == 300 and s.x.shape == (300, 5) and s.rows.num_rows == 300 and not s.cached
    assert s.values.shape == ((300, 3, 5) if task == "multiclass" else (300, 5))
    assert s.base.shape == ((3,) if task == "multiclass" else ())
    raw = _raw(run, s.x)
    if task == "multiclass":
        raw = raw.reshape(300, 3)
        for k in range(3):  # per class
            np.testing.assert_allclose(s.class_values(k).sum(axis=1) + s.base[k], raw[:, k], atol=1e-9)
        probs = np.column_stack([s.rows.column(f"__p{k}").to_numpy() for k in range(3)])
        np.testing.assert_allclose(run.booster.predict(s.x).reshape(300, 3), probs, atol=1e-12)
    else:
        np.testing.assert_allclose(s.values.sum(axis=1) + s.base, raw, atol=1e-9)
        col = "__score" if task == "binary" else "__pred"
        np.testing.assert_allclose(run.booster.predict(s.x), s.rows.column(col).to_numpy(), atol=1e-12)
    values, base = E.contributions(run, s.x[:0])
    assert values.shape[0] == 0 and base.shape == s.base.shape


@pytest.mark.parametrize("task", TASKS)
def test_shap_equals_the_shap_package(settings, root, con, task):
    run, _, s = _setup(settings, root, con, task, n=200, rows=800, rounds=8)
    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(run.booster)
        theirs = explainer.shap_values(s.x)
    theirs = np.stack(theirs, axis=1) if isinstance(theirs, list) else np.asarray(theirs)
    if task == "multiclass":
        theirs = theirs if theirs.shape == (200, 3, 5) else np.transpose(theirs, (0, 2, 1))  # (n, F, K) -> (n, K, F)
    assert theirs.shape == s.values.shape
    np.testing.assert_allclose(s.values, theirs, atol=1e-6)
    np.testing.assert_allclose(np.reshape(explainer.expected_value, s.base.shape), s.base, atol=1e-6)


@pytest.mark.parametrize("task", TASKS)
def test_drivers_rank_above_noise_and_region(settings, root, con, task):
    _, _, s = _setup(settings, root, con, task, n=500)
    ranked = E.global_importance(s)
    assert {f for f, _ in ranked[:3]} == DRIVERS
    assert [v for _, v in ranked] == sorted((v for _, v in ranked), reverse=True)
    if task == "multiclass":
        per_class = [dict(E.global_importance(s, k)) for k in range(3)]
        summed = dict(ranked)
        for f in s.features:
            assert summed[f] == pytest.approx(sum(p[f] for p in per_class))


def test_estimate_is_quick_and_scales_with_rows(settings, root, con):
    run = make_run(settings, root, "multiclass")
    sc = scored(settings, con, run)
    small = E.estimate_seconds(run, sc, 1_000)
    assert 0 < small < 5
    assert E.estimate_seconds(run, sc, 100_000) == pytest.approx(small * 100, rel=1e-12)  # one measurement
    assert E.estimate_seconds(run, sc, 0) == 0


# ----------------------------------------------------------------------------------------------
# The stratified sample and its cache


def _largest_remainder(counts: dict, n: int) -> dict:
    total = sum(counts.values())
    exact = {k: n * c / total for k, c in counts.items()}
    out = {k: math.floor(v) for k, v in exact.items()}
    for k in sorted(counts, key=lambda k: (-(exact[k] - out[k]), k))[:n - sum(out.values())]:
        out[k] += 1
    return out


@pytest.mark.parametrize("task", ("binary", "multiclass"))
def test_sample_has_the_class_proportions_of_the_test_split_and_is_deterministic(settings, root, con, task):
    run, sc, s = _setup(settings, root, con, task, n=250)
    labels = pq.read_table(sc.path, columns=["__label"]).column(0).to_numpy().astype(int)
    want = _largest_remainder(dict(zip(*np.unique(labels, return_counts=True), strict=True)), 250)
    got = dict(zip(*np.unique(s.rows.column("__label").to_numpy().astype(int), return_counts=True), strict=True))
    assert got == {k: v for k, v in want.items() if v}
    rows = s.rows.column("__row").to_numpy()
    assert len(set(rows)) == 250 and list(rows) == sorted(rows)
    again = E.shap_sample(settings, con, run, sc, 250, refresh=True)
    assert not again.cached and np.array_equal(again.rows.column("__row").to_numpy(), rows)
    other = E.shap_sample(settings, con, run, sc, 250, seed=1)
    assert not np.array_equal(other.rows.column("__row").to_numpy(), rows)
    # the hash bound that spares the window sort never changes which rows are drawn
    cur = con.cursor()
    quick, total, full = E._sample_sql(cur, sc, holdout.feature_spec(run), 250, 0)
    assert total == 250
    assert cur.sql(quick).to_arrow_table().column("__row").to_pylist() == cur.sql(full).to_arrow_table().column(
        "__row").to_pylist() == list(rows)
    cur.close()
    everything = E.shap_sample(settings, con, run, sc, E.MAX_ROWS)
    assert everything.n == sc.rows == everything.test_rows


def test_regression_sample_takes_each_tenth_of_the_target_in_proportion(settings, root, con):
    _, sc, s = _setup(settings, root, con, "regression", n=200)
    labels = pq.read_table(sc.path, columns=["__label"]).column(0).to_numpy()
    edges = np.quantile(labels, [k / 10 for k in range(1, 10)])
    bins = np.searchsorted(edges, labels, side="right")
    want = _largest_remainder(dict(zip(*np.unique(bins, return_counts=True), strict=True)), 200)
    got_bins = np.searchsorted(edges, s.rows.column("__label").to_numpy(), side="right")
    assert dict(zip(*np.unique(got_bins, return_counts=True), strict=True)) == want


def test_cache_hit_refresh_cancel_and_invalidation(settings, root, con):
    run = make_run(settings, root, "binary")
    sc = scored(settings, con, run)
    calls = []
    assert not E.is_cached(settings, run, sc, 300)
    first = E.shap_sample(settings, con, run, sc, 300, progress=lambda d, n: calls.append((d, n)))
    assert E.is_cached(settings, run, sc, 300) and not E.is_cached(settings, run, sc, 300, seed=1)
    assert E.is_cached(settings, run, sc, 300 + sc.rows) is (sc.rows <= 300)  # more than the split: the whole split
    assert not first.cached and calls[0] == (0, 300) and calls[-1] == (300, 300)
    cache = root / "workspace" / "evaluations" / run.run_id / "shap-300-0.parquet"
    assert cache.exists()
    hit = E.shap_sample(settings, con, run, sc, 300)
    assert hit.cached and hit.seconds == first.seconds
    assert np.array_equal(hit.values, first.values) and np.array_equal(hit.x, first.x)
    assert hit.base == first.base and hit.rows.to_pylist() == first.rows.to_pylist()
    assert not E.shap_sample(settings, con, run, sc, 300, refresh=True).cached
    assert E.shap_sample(settings, con, run, sc, 300).cached
    st = sc.path.stat()
    os.utime(sc.path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # the scored file is made again
    assert not E.is_cached(settings, run, sc, 300)
    assert not E.shap_sample(settings, con, run, sc, 300).cached
    with pytest.raises(QuarryError, match="cancelled"):
        E.shap_sample(settings, con, run, sc, 100, should_stop=lambda: True)
    assert not cache.with_name("shap-100-0.parquet").exists()
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


# ----------------------------------------------------------------------------------------------
# Dependence and partial dependence


def test_dependence_gives_values_shap_and_an_interaction(settings, root, con):
    run, _, s = _setup(settings, root, con, "multiclass")
    d = D.dependence(s, "x1", class_index=2)
    assert d["feature"] == "x1" and not d["categorical"] and d["class"] == run.classes[2]
    np.testing.assert_array_equal(d["x"], s.x[:, 0])
    np.testing.assert_array_equal(d["shap"], s.values[:, 2, 0])
    assert d["color_feature"] in set(s.features) - {"x1"} and len(d["color"]) == s.n
    c = D.dependence(s, "channel", interaction="x2")
    assert c["categorical"] and set(c["x"]) <= {"web", "shop", "phone"} and c["color_feature"] == "x2"
    assert c["x"] == s.rows.column("channel").to_pylist()
    none = D.dependence(s, "x2", interaction=None)
    assert none["color"] is None and none["color_feature"] is None


def test_auto_interaction_finds_the_feature_that_spreads_shap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2_000, 4))
    x[rng.uniform(size=2_000) < 0.1, 1] = np.nan
    values = np.column_stack([x[:, 0] * x[:, 3], x[:, 1] * 0, x[:, 2] * 0.1, x[:, 3]])
    s = E.ShapSample(run_id="r", task="regression", features=["a", "b", "c", "d"], classes=None,
                     rows=pa.table({"__row": np.arange(2_000)}), x=x, values=values, base=np.asarray(0.0),
                     test_rows=2_000, seconds=0.0, cached=False, kinds=["numeric"] * 4)
    assert D.dependence(s, "a")["color_feature"] == "d"


@pytest.mark.parametrize("task, feature, k", [("binary", "x1", None), ("binary", "channel", None),
                                              ("multiclass", "x2", 2), ("regression", "channel", None)])
def test_partial_dependence_equals_a_brute_force_loop(settings, root, con, task, feature, k):
    run, _, s = _setup(settings, root, con, task, n=200)
    p = D.partial_dependence(run, s, feature, grid=8, ice_rows=5, pdp_rows=5_000, class_index=k)
    j = run.features.index(feature)
    if feature == "channel":
        assert p["categorical"] and set(p["grid"]) == {"web", "shop", "phone"}
        codes = [run.categorical["channel"].index(g) for g in p["grid"]]
    else:
        assert len(p["grid"]) == 8 and p["grid"] == sorted(p["grid"])
        codes = p["grid"]
    assert p["scale"] == ("value" if task == "regression" else "probability") and len(p["labels"]) == len(codes)
    curves = []
    for code in codes:
        x = s.x.copy()
        x[:, j] = code
        out = run.booster.predict(x)
        curves.append(out[:, k] if k is not None else out)
    curves = np.column_stack(curves)  # rows × grid
    np.testing.assert_allclose(p["pdp"], curves.mean(axis=0), atol=1e-12)
    assert len(p["ice"]) == 5 and all(len(c) == len(codes) for c in p["ice"])
    where = {r: i for i, r in enumerate(s.rows.column("__row").to_pylist())}
    for row, curve in zip(p["ice_rows"], p["ice"], strict=True):
        np.testing.assert_allclose(curve, curves[where[row]], atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Single rows and what-if


@pytest.mark.parametrize("task", TASKS)
def test_what_if_on_a_rows_own_values_reproduces_explain_row(settings, root, con, task):
    run = make_run(settings, root, task)
    sc = scored(settings, con, run)
    table = pq.read_table(sc.path)
    for row in (0, 17):
        e = L.explain_row(con, run, sc, row)
        rec = table.filter(pa.compute.equal(table.column("__row"), row)).to_pylist()[0]
        assert e.row == row and e.values == {f: rec[f] for f in run.features}
        assert e.raw == pytest.approx(e.base + sum(v for _, v in e.contributions))
        if task == "binary":
            assert e.prediction == pytest.approx(rec["__score"]) and e.label == rec["y"]
            assert e.raw == pytest.approx(math.log(rec["__score"] / (1 - rec["__score"])))
            assert e.predicted == run.classes[int(rec["__score"] >= run.threshold)]
        elif task == "multiclass":
            assert e.class_index == rec["__pred"] and e.predicted == run.classes[rec["__pred"]]
            assert e.prediction == pytest.approx(rec[f"__p{rec['__pred']}"]) and e.label == rec["y"]
        else:
            assert e.prediction == pytest.approx(rec["__pred"]) and e.raw == pytest.approx(rec["__pred"])
        w = L.what_if(run, {**e.values, "id": 123, "y": "ignored"})
        assert w.row is None and w.values == e.values
        assert [f for f, _ in w.contributions] == run.features
        np.testing.assert_allclose([v for _, v in w.contributions], [v for _, v in e.contributions], atol=1e-12)
        assert (w.raw, w.prediction, w.predicted, w.class_index) == pytest.approx(
            (e.raw, e.prediction, e.predicted, e.class_index))
    if task == "multiclass":
        e = L.explain_row(con, run, sc, 3, class_index=1)
        assert e.class_index == 1 and e.explained == run.classes[1]
        changed = L.what_if(run, {**e.values, "x1": e.values["x1"] + 3}, class_index=1)
        assert changed.prediction != pytest.approx(e.prediction)


def test_row_encoding_equals_the_feature_spec(con):
    cur = con.cursor()
    cur.sql("""CREATE TABLE enc AS SELECT * FROM (VALUES
        (1, 2.5, true, 'a', TIMESTAMP '2024-01-01 10:00:00.123456', DATE '2024-02-29',
         TIMESTAMPTZ '2024-01-01 00:00:00+02'),
        (NULL, 'NaN'::DOUBLE, false, 'zz', NULL, DATE '1969-12-31', NULL),
        (-7, NULL, NULL, NULL, TIMESTAMP '1999-12-31 23:59:59', NULL, TIMESTAMPTZ '2030-06-01 12:00:00+00'),
        (0, 1e20, true, 'b', TIMESTAMP '2024-03-14 00:00:00', DATE '2024-03-14', TIMESTAMPTZ '2024-03-14 00:00:00-05')
        ) AS t(n, d, flag, cat, ts, dt, tz)""")
    names = ("n", "d", "flag", "cat", "ts", "dt", "tz")
    kinds = ("numeric", "numeric", "boolean", "categorical", "temporal", "temporal", "temporal")
    categories = {"cat": ["b", "a", "c"]}
    spec = FeatureSpec(names, kinds, categories)
    theirs = spec.matrix(cur.sql(f"SELECT {spec.select_sql()} FROM enc").to_arrow_table())
    records = cur.sql("SELECT * FROM enc").to_arrow_table().to_pylist()
    cur.close()
    ours = np.vstack([L.encode_row(spec, r) for r in records])
    np.testing.assert_array_equal(ours, theirs)
    shown = np.vstack([L.encode_row(spec, {k: L._display(v) for k, v in r.items()})
                       for r in records])  # as explain_row shows them: ISO text for times
    np.testing.assert_array_equal(shown, theirs)
    as_text = L.encode_row(FeatureSpec(("flag", "n", "ts"), ("boolean", "numeric", "temporal")),
                           {"flag": "true", "n": "4.5", "ts": datetime(2024, 1, 1)})
    np.testing.assert_array_equal(as_text, [[1.0, 4.5, 1704067200.0]])  # a naive time is UTC, as in DuckDB
    assert L.encode_row(FeatureSpec(("d",), ("temporal",)), {"d": date(1970, 1, 2)})[0, 0] == 86400.0


# ----------------------------------------------------------------------------------------------
# Finding rows


def _first(key: np.ndarray, rows: np.ndarray, mask: np.ndarray, limit: int = 10) -> list[int]:
    order = np.lexsort((rows[mask], key[mask]))
    return rows[mask][order][:limit].tolist()


@pytest.mark.parametrize("task", TASKS)
def test_find_rows_matches_numpy(settings, root, con, task):
    run = make_run(settings, root, task)
    sc = scored(settings, con, run)
    t = pq.read_table(sc.path)
    rows, label = t.column("__row").to_numpy(), t.column("__label").to_numpy()
    every = np.ones(len(rows), bool)
    if task == "binary":
        score = t.column("__score").to_numpy()
        for threshold in (None, 0.3):
            th = run.threshold if threshold is None else threshold
            wrong = (score >= th) != (label == 1)
            assert L.find_rows(con, sc, "confident_wrong", threshold=threshold) == _first(
                -np.abs(score - label), rows, wrong)
            assert L.find_rows(con, sc, "near_threshold", threshold=threshold, limit=7) == _first(
                np.abs(score - th), rows, every, 7)
    elif task == "multiclass":
        p = np.column_stack([t.column(f"__p{k}").to_numpy() for k in range(3)])
        pred = t.column("__pred").to_numpy()
        assert L.find_rows(con, sc, "confident_wrong") == _first(-p.max(axis=1), rows, pred != label)
        top2 = -np.sort(-p, axis=1)
        assert L.find_rows(con, sc, "near_threshold") == _first(top2[:, 0] - top2[:, 1], rows, every)
    else:
        pred = t.column("__pred").to_numpy()
        assert L.find_rows(con, sc, "confident_wrong", limit=3) == _first(-np.abs(pred - label), rows, every, 3)
        with pytest.raises(QuarryError, match="classifier"):
            L.find_rows(con, sc, "near_threshold")
    ids = t.column("id").to_numpy()
    assert L.find_rows(con, sc, "id", column="id", value=int(ids[5])) == [int(rows[5])]
    assert L.find_rows(con, sc, "id", column="id", value=str(ids[9])) == [int(rows[9])]
    assert L.find_rows(con, sc, "id", column="channel", value="web", limit=1000) == rows[
        np.array(t.column("channel").to_pylist()) == "web"].tolist()
    assert L.find_rows(con, sc, "number", value=4) == [4]


def test_bad_inputs_say_what_is_wrong(settings, root, con):
    run, sc, s = _setup(settings, root, con, "regression", n=50)
    with pytest.raises(QuarryError, match="not a feature") as exc:
        D.dependence(s, "nope")
    assert "x1" in exc.value.hint
    with pytest.raises(QuarryError, match="not a feature"):
        D.partial_dependence(run, s, "y")
    with pytest.raises(QuarryError, match="not a feature"):
        D.dependence(s, "x1", interaction="nope")
    for n in (0, -1, E.MAX_ROWS + 1, 2.5, True):
        with pytest.raises(QuarryError, match="whole number"):
            E.shap_sample(settings, con, run, sc, n)
    with pytest.raises(QuarryError, match="No test row has id = 999999"):
        L.find_rows(con, sc, "id", column="id", value=999_999)
    with pytest.raises(QuarryError, match="not a valid BIGINT"):
        L.find_rows(con, sc, "id", column="id", value="abc")
    with pytest.raises(QuarryError, match="not a column"):
        L.find_rows(con, sc, "id", column="nope", value=1)
    with pytest.raises(QuarryError, match="classifier"):
        L.find_rows(con, sc, "near_threshold")
    with pytest.raises(QuarryError, match="Rows can be found by"):
        L.find_rows(con, sc, "best")
    for bad in (sc.rows, -1, "x", 1.5):
        with pytest.raises(QuarryError, match="test row number"):
            L.find_rows(con, sc, "number", value=bad)
        with pytest.raises(QuarryError, match="test row number"):
            L.explain_row(con, run, sc, bad)
    with pytest.raises(QuarryError, match="x1: 'many' is not a number"):
        L.what_if(run, {"x1": "many"})
    with pytest.raises(QuarryError, match="class index"):
        E.global_importance(make_sample_multiclass(), 5)


def make_sample_multiclass() -> E.ShapSample:
    return E.ShapSample(run_id="r", task="multiclass", features=["a"], classes=["p", "q"], rows=pa.table({"a": [1.0]}),
                        x=np.ones((1, 1)), values=np.ones((1, 2, 1)), base=np.zeros(2), test_rows=1, seconds=0.0,
                        cached=False)


def test_recipe_links_name_the_step_that_made_or_changed_a_feature(settings, root, con):
    recipe = R.Recipe(steps=(
        R.Step("transform", {"columns": ["x2"], "function": "log1p"}),
        R.Step("expression", {"name": "x1_sq", "expression": "x1 * x1"}),
        R.Step("filter", {"column": "x1", "op": "is not missing"}),
    ))
    recipe_store.save(settings, recipe, "explain_steps")
    run = make_run(settings, root, "regression", recipe="explain_steps")
    assert {"x1_sq", "x2"} <= set(run.features)
    plain = lineage.recipe_links(run)
    assert plain["x2"].startswith("step 1 (transform)") and plain["x1_sq"].startswith("step 2 (expression)")
    assert "x1" not in plain and "channel" not in plain
    cat.sync_views(con, cat.Catalog(settings).list())  # the dataset, as pages have it
    compiled = lineage.recipe_links(run, con)
    assert compiled["x2"].startswith("step 1 (transform): sign(x)·ln(1 + |x|) for x2")
    assert compiled["x1_sq"] == "step 2 (expression): x1_sq = x1 * x1"
    assert set(compiled) == {"x2", "x1_sq"}
    assert lineage.recipe_links(make_run(settings, root, "binary")) == {}


# ----------------------------------------------------------------------------------------------
# Charts


def _points(fig) -> int:
    return sum(len(t.x) for t in fig.data if t.type == "scattergl")


def test_charts_build_with_bounded_points_and_labelled_axes(settings, root, con):
    run, sc, s = _setup(settings, root, con, "multiclass", n=1_200)
    imp = C.importance_figure(E.global_importance(s), top=3)
    assert len(imp.data[0].y) == 3 and imp.layout.xaxis.title.text.startswith("mean |SHAP")
    bee = C.beeswarm_figure(s, class_index=1, top=4, max_points=500)
    assert all(t.type == "scattergl" for t in bee.data) and _points(bee) == 4 * 500
    assert "SHAP value (log-odds)" in bee.layout.xaxis.title.text and len(bee.layout.yaxis.ticktext) == 4
    assert bee.layout.yaxis.ticktext[-1] == E.global_importance(s, 1)[0][0]  # the most important on top
    bar = next(t for t in bee.data if t.marker.colorbar.title.text)
    assert bar.marker.colorbar.title.text == "feature value" and list(bar.marker.colorbar.ticktext) == ["low", "high"]
    big = {"feature": "f", "x": np.linspace(0, 1, 20_000), "shap": np.linspace(-1, 1, 20_000),
           "color": ["a", "b", None, "c"] * 5_000, "color_feature": "g", "color_categorical": True,
           "categorical": False, "units": "log-odds", "class": "p"}
    dep = C.dependence_figure(big)
    assert _points(dep) == 5_000 and dep.layout.xaxis.title.text == "f"
    assert dep.layout.yaxis.title.text == "SHAP value of f (log-odds)"
    for d in (D.dependence(s, "x1"), D.dependence(s, "channel"), D.dependence(s, "x2", interaction="channel"),
              D.dependence(s, "x2", interaction=None)):
        fig = C.dependence_figure(d)
        assert _points(fig) == s.n and fig.layout.xaxis.title.text == d["feature"]
        fig.to_json()
    p = D.partial_dependence(run, s, "x1", grid=10, ice_rows=20, class_index=2)
    pdp = C.pdp_figure(p)
    assert pdp.layout.yaxis.title.text == f"P(y = {run.classes[2]})" and pdp.layout.xaxis.title.text == "x1"
    assert sum(v is None for v in pdp.data[0].x) == 20 and list(pdp.data[1].y) == p["pdp"]
    C.pdp_figure(D.partial_dependence(run, s, "channel")).to_json()
    e = L.explain_row(con, run, sc, 0)
    fall = C.waterfall_figure(e, max_features=2)
    wf = fall.data[0]
    assert list(wf.measure) == ["absolute", "relative", "relative", "relative", "total"]
    assert wf.y[3] == "3 other features" and sum(wf.x[:4]) == pytest.approx(e.raw) and wf.x[4] == pytest.approx(e.raw)
    assert f"P(y = {e.explained}) = " in fall.layout.title.text and fall.layout.xaxis.title.text
    after = L.what_if(run, {**e.values, "x1": 3.0}, class_index=e.class_index)
    wi = C.what_if_figure(e, after)
    assert [t.name for t in wi.data] == ["after", "before"] and "● x1" in wi.data[0].y
    assert "→" in wi.layout.title.text and wi.layout.xaxis.title.text
    reg_run, reg_sc, _ = _setup(settings, root, con, "regression", n=50, name="reg")
    assert C.waterfall_figure(L.explain_row(con, reg_run, reg_sc, 1)).layout.title.text.startswith(
        "Test row 1: predicted y = ")


def test_top_shap_features_on_transactions_are_the_fraud_drivers(settings, root, con):
    """The demo's fraud label is generated from four columns only: SHAP must rank exactly those four first."""
    path = root / "transactions.parquet"
    write_transactions(path, rows=300_000)
    c = engine.connect(settings)
    cat.register(c, cat.Catalog(settings), str(path), name="transactions")
    c.close()
    run_id = train_job.run({"dataset": "transactions", "target": FRAUD_TARGET, "num_boost_round": 60,
                            "early_stopping_rounds": 0, "device": "cpu",
                            "params": {"learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 100}})["run_id"]
    run = runs.load_run(settings, run_id)
    s = scored(settings, con, run)
    sample = E.shap_sample(settings, con, run, s, 5_000)
    top = [f for f, _ in E.global_importance(sample)][:len(FRAUD_DRIVERS)]
    assert set(top) == set(FRAUD_DRIVERS), top

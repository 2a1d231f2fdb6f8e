"""Model evaluation (core/evaluate/: metrics, thresholds, slices) against scikit-learn and numpy on the
scored test split read into memory.

Real runs of every task are trained once for the module (tests/eval_support.py); their scored test
splits are small, so each number computed out of core in DuckDB is checked against the in-memory
reference to 1e-9 relative. Hand-made scored files cover ties, a single class, missing values,
many distinct scores and the sampled median. Charts (core/evaluate/charts.py) are built from the results.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from datetime import date, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sklearn.metrics as skm
from scipy.stats import norm

from core.data import engine
from core.errors import QuarryError
from core.evaluate import charts as C
from core.evaluate import holdout
from core.evaluate import metrics as E
from core.evaluate import slices as S
from core.evaluate import thresholds as T
from tests.conftest import quarry_env, write_parquet
from tests.eval_support import make_run, scored

TASKS = ("binary", "multiclass", "regression")
Z = norm.ppf(0.975)
REL = 1e-9


def close(a, b, rel: float = REL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == pytest.approx(b, rel=rel, abs=1e-12)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One workspace for the module: a trained, scored run per task and a connection."""
    root = tmp_path_factory.mktemp("evaluate") / "data"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        settings = quarry_env(mp, root)
        con = engine.connect(settings)
        runs = {task: make_run(settings, root, task) for task in TASKS}
        splits = {task: scored(settings, con, run) for task, run in runs.items()}
        yield SimpleNamespace(settings=settings, root=root, con=con, runs=runs, scored=splits)
        con.close()


def frame(s: holdout.Scored) -> pd.DataFrame:
    return pq.read_table(s.path).to_pandas()


def handmade(env, name: str, table: pa.Table, *, task: str = "binary", classes=(0, 1),
             threshold: float = 0.5) -> holdout.Scored:
    """A scored test split written by hand (run id = name), with the columns a real one has."""
    path = write_parquet(env.root / f"{name}.parquet", table)
    columns = {n: t for n, t, *_ in env.con.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
               if not n.startswith("__")}
    return holdout.Scored(path=path, run_id=name, task=task, classes=list(classes), threshold=threshold,
                          rows=table.num_rows, features=[], columns=columns, target="y", dataset=name,
                          changed_since_training=False)


def binary_table(n: int, *, decimals: int | None = None, seed: int = 3, only: int | None = None) -> pa.Table:
    """Labels, scores (rounded to `decimals` for ties) and columns to slice on: text with many values and
    missing ones, a float with NULL and NaN, a boolean, a date, a small integer and an awkward name."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.4).astype(float) if only is None else np.full(n, float(only))
    s = np.clip(0.35 * y + rng.uniform(size=n) * 0.65, 0, 1)
    if decimals is not None:
        s = np.round(s, decimals)
    segment = [None if i % 23 == 0 else f"s{int(rng.integers(0, 30)):02d}" for i in range(n)]
    amount = [None if i % 31 == 0 else (math.nan if i % 37 == 0 else float(v)) for i, v in
              enumerate(rng.normal(100, 30, size=n))]
    return pa.table({"segment": segment, "amount": pa.array(amount, pa.float64()),
                     "flag": (rng.uniform(size=n) < 0.3).tolist(),
                     "day": [date(2024, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365, size=n)],
                     "small_int": rng.integers(0, 3, size=n).astype(np.int64),
                     'quo"te col': rng.choice(["a", "b"], size=n).tolist(),
                     "__row": np.arange(n, dtype=np.int64), "__label": y, "__score": s})


@pytest.fixture(scope="module")
def ties(env) -> holdout.Scored:
    return handmade(env, "ties", binary_table(1500, decimals=1))


@pytest.fixture(scope="module")
def many(env) -> holdout.Scored:
    return handmade(env, "many", binary_table(6000))


# ----------------------------------------------------------------------------------------------
# Binary


def binary_reference(s: holdout.Scored) -> dict:
    df = frame(s)
    y, p = df["__label"].to_numpy(), df["__score"].to_numpy()
    hit = p >= s.threshold
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    return {"auc": skm.roc_auc_score(y, p), "average_precision": skm.average_precision_score(y, p),
            "logloss": skm.log_loss(y, y_proba=pc, labels=[0, 1]), "brier": skm.brier_score_loss(y, p),
            "accuracy": skm.accuracy_score(y, hit), "precision": skm.precision_score(y, hit),
            "recall": skm.recall_score(y, hit), "f1": skm.f1_score(y, hit), "positives": int(y.sum()),
            "base_rate": y.mean(), "rows": len(y), "threshold": s.threshold}


@pytest.mark.parametrize("which", ["run", "ties", "many"])
def test_binary_metrics_equal_sklearn(env, ties, many, which):
    s = {"run": env.scored["binary"], "ties": ties, "many": many}[which]
    ev = E.evaluate(env.settings, env.con, s)
    expected = binary_reference(s)
    assert set(expected) <= set(ev.metrics)
    for name, value in expected.items():
        assert close(ev.metrics[name], value), name
    assert ev.rows == s.rows and ev.task == "binary" and ev.sample_note is None
    if which == "ties":
        assert len(np.unique(frame(s)["__score"])) <= 11  # many ties: the 0.5-per-tie rule matters


@pytest.mark.parametrize("which", ["run", "ties", "many"])
def test_curve_points_lie_on_the_exact_curve(env, ties, many, which):
    s = {"run": env.scored["binary"], "ties": ties, "many": many}[which]
    ev = E.evaluate(env.settings, env.con, s)
    df = frame(s)
    y, p = df["__label"].to_numpy(), df["__score"].to_numpy()
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    prec, rec, pr_thr = skm.precision_recall_curve(y, p, drop_intermediate=False)
    pts = ev.curves["points"]
    n = len(pts["threshold"])
    assert all(len(v) == n for v in pts.values())
    distinct = len(np.unique(p))
    assert n == distinct if distinct <= 300 else 300 < n <= 1_000
    # both ends: the highest score, and the lowest (everything flagged)
    assert pts["threshold"][0] == p.max() and pts["threshold"][-1] == p.min()
    assert (pts["tpr"][-1], pts["fpr"][-1], pts["fraction"][-1]) == (1.0, 1.0, 1.0)
    assert pts["threshold"] == sorted(pts["threshold"], reverse=True)
    roc = {t: (f, r) for t, f, r in zip(thr[1:], fpr[1:], tpr[1:], strict=True)}
    pr = {t: (a, b) for t, a, b in zip(pr_thr, prec[:-1], rec[:-1], strict=True)}
    for i, t in enumerate(pts["threshold"]):
        assert close(pts["fpr"][i], roc[t][0]) and close(pts["tpr"][i], roc[t][1])
        assert close(pts["precision"][i], pr[t][0]) and close(pts["recall"][i], pr[t][1])
        flagged = p >= t
        assert pts["tp"][i] == int((flagged & (y == 1)).sum()) and pts["fp"][i] == int((flagged & (y == 0)).sum())
        assert close(pts["fraction"][i], flagged.mean())


@pytest.mark.parametrize("which", ["run", "ties"])
def test_calibration_gain_and_score_histograms(env, ties, which):
    s = {"run": env.scored["binary"], "ties": ties}[which]
    ev = E.evaluate(env.settings, env.con, s)
    df = frame(s)
    y, p = df["__label"].to_numpy(), df["__score"].to_numpy()
    n, pos = len(y), y.sum()
    # calibration: equal-count bins by rank, tied scores kept together
    before = np.searchsorted(np.sort(p), p, side="left")
    b = np.minimum(before * 10 // n, 9)
    cal = ev.curves["calibration"]
    used = sorted(set(b))
    assert len(cal["count"]) == len(used) and sum(cal["count"]) == n
    for k, bin_ in enumerate(used):
        m = b == bin_
        assert cal["count"][k] == m.sum()
        assert close(cal["mean_pred"][k], p[m].mean()) and close(cal["observed"][k], y[m].mean())
        lo, hi = wilson(y[m].sum(), m.sum())
        assert close(cal["lo"][k], lo) and close(cal["hi"][k], hi)
        assert cal["lo"][k] <= cal["observed"][k] <= cal["hi"][k]
    if which == "run":
        assert len(used) == 10
    # gain: positives among the top f of rows by score; a cut inside tied scores takes them pro rata
    gain = ev.curves["gain"]
    assert gain["fraction"] == [i / 100 for i in range(1, 101)]
    u = np.unique(p)[::-1]
    cnt = np.array([(p == v).sum() for v in u])
    upos = np.array([y[p == v].sum() for v in u])
    cum, cpos = np.cumsum(cnt), np.cumsum(upos)
    for i, f in enumerate(gain["fraction"]):
        cut = (i + 1) * n / 100
        j = int(np.searchsorted(cum, cut - 1e-9))
        expected = (cpos[j] - upos[j] + upos[j] * (cut - (cum[j] - cnt[j])) / cnt[j]) / pos
        assert close(gain["gain"][i], expected, 1e-9) and close(gain["lift"][i], expected / f, 1e-9)
    if which == "run":  # no ties among the top: gain is the plain share of positives in the top rows
        order = np.argsort(-p, kind="stable")
        top = order[: n // 10] if (n // 10) * 10 == n else None
        if top is not None:
            assert close(gain["gain"][9], y[top].sum() / pos)
    assert close(gain["gain"][-1], 1.0)
    assert all(a <= b + 1e-12 for a, b in zip(gain["gain"], gain["gain"][1:], strict=False))
    # score histograms per class
    sc = ev.curves["scores"]
    assert sc["edges"] == [i / 50 for i in range(51)]
    bins = np.clip(np.floor(p * 50), 0, 49).astype(int)
    labels = [str(c) for c in s.classes]
    for code, label in enumerate(labels):
        assert sc["counts"][label] == np.bincount(bins[y == code], minlength=50).tolist()
    conf = ev.curves["confusion"]
    assert conf["labels"] == labels
    assert conf["matrix"] == skm.confusion_matrix(y, p >= s.threshold, labels=[0, 1]).tolist()


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    denom = 1 + Z**2 / n
    center = (p + Z**2 / (2 * n)) / denom
    half = Z / denom * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return max(0.0, center - half), min(1.0, center + half)


def test_single_class_gives_no_auc(env):
    s = handmade(env, "one_class", binary_table(400, only=0))
    ev = E.evaluate(env.settings, env.con, s)
    assert ev.metrics["auc"] is None and ev.metrics["average_precision"] is None
    assert ev.metrics["positives"] == 0 and ev.metrics["recall"] is None and ev.metrics["base_rate"] == 0
    df = frame(s)
    assert close(ev.metrics["brier"], skm.brier_score_loss(df["__label"], df["__score"]))
    assert all(g is None for g in ev.curves["gain"]["gain"])
    assert all(v is None for v in ev.curves["points"]["tpr"])
    got = T.suggest_thresholds(env.settings, env.con, s, target_recall=0.5)
    assert got["max_f1"]["threshold"] is None and got["recall"]["threshold"] is None
    assert got["min_cost"]["fp"] == 0 or got["min_cost"]["threshold"] == df["__score"].max()
    fig = C.roc_figure(ev)
    assert not fig.data and "both classes" in fig.layout.annotations[0].text
    assert S.slices(env.con, s, "segment", metric="auc").overall["value"] is None


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.73, 1.0, 1.5])
def test_at_threshold_counts_every_row(env, threshold):
    s = env.scored["binary"]
    df = frame(s)
    y, p = df["__label"].to_numpy(), df["__score"].to_numpy()
    hit = p >= threshold
    got = T.at_threshold(env.con, s, threshold)
    tp, fp = int((hit & (y == 1)).sum()), int((hit & (y == 0)).sum())
    tn, fn = int((~hit & (y == 0)).sum()), int((~hit & (y == 1)).sum())
    assert (got["tp"], got["fp"], got["tn"], got["fn"], got["threshold"]) == (tp, fp, tn, fn, threshold)
    assert close(got["accuracy"], skm.accuracy_score(y, hit))
    assert close(got["recall"], skm.recall_score(y, hit)) and close(got["fpr"], fp / (fp + tn))
    assert close(got["specificity"], tn / (tn + fp)) and close(got["selection_rate"], hit.mean())
    if hit.any():
        assert close(got["precision"], skm.precision_score(y, hit)) and close(got["f1"], skm.f1_score(y, hit))
    else:
        assert got["precision"] is None and got["f1"] == 0.0


def brute_force_thresholds(y: np.ndarray, p: np.ndarray, cost_fp: float, cost_fn: float, target_precision: float,
                           target_recall: float) -> dict:
    """Every distinct score tried; ties go to the higher threshold."""
    pos = int(y.sum())
    best: dict = {}
    for t in sorted(np.unique(p), reverse=True):
        hit = p >= t
        tp, fp = int((hit & (y == 1)).sum()), int((hit & (y == 0)).sum())
        fn = pos - tp
        f1 = 2 * tp / (2 * tp + fp + fn)
        cost = cost_fp * fp + cost_fn * fn
        if "max_f1" not in best or f1 > best["max_f1"][1]:
            best["max_f1"] = (t, f1)
        if "min_cost" not in best or cost < best["min_cost"][1]:
            best["min_cost"] = (t, cost)
        if tp / (tp + fp) >= target_precision:
            best["precision"] = (t, None)  # the lowest qualifying threshold wins: keep overwriting
        if tp / pos >= target_recall and "recall" not in best:
            best["recall"] = (t, None)
    return {k: v[0] for k, v in best.items()}


@pytest.mark.parametrize("which", ["run", "ties"])
@pytest.mark.parametrize("costs", [(1.0, 1.0), (1.0, 5.0), (3.0, 0.5)])
def test_suggested_thresholds_equal_brute_force(env, ties, which, costs):
    s = {"run": env.scored["binary"], "ties": ties}[which]
    df = frame(s)
    y, p = df["__label"].to_numpy(), df["__score"].to_numpy()
    got = T.suggest_thresholds(env.settings, env.con, s, cost_fp=costs[0], cost_fn=costs[1], target_precision=0.7,
                               target_recall=0.9)
    expected = brute_force_thresholds(y, p, *costs, 0.7, 0.9)
    assert set(got) == {"max_f1", "min_cost", "precision", "recall"}
    for name, t in expected.items():
        assert got[name]["threshold"] == t, name
        at = T.at_threshold(env.con, s, t)
        assert {k: got[name][k] for k in at} == at
        assert got[name]["why"].endswith(".") and len(got[name]["why"]) > 20
    assert got["min_cost"]["cost"] == costs[0] * got["min_cost"]["fp"] + costs[1] * got["min_cost"]["fn"]


def test_unreachable_precision_says_why(env):
    """The highest score is a tie of a positive and a negative: no threshold has precision 1."""
    table = pa.table({"__row": np.arange(6), "__label": [0.0, 1.0, 1.0, 0.0, 1.0, 0.0],
                      "__score": [0.9, 0.9, 0.7, 0.6, 0.4, 0.2]})
    s = handmade(env, "unreachable", table)
    got = T.suggest_thresholds(env.settings, env.con, s, target_precision=1.0, target_recall=1.0)
    assert got["precision"] == {"threshold": None, "why": "No threshold reaches a precision of 1.000; the highest is "
                                                          "0.667 (threshold 0.7)."}
    assert got["recall"]["threshold"] == 0.4 and got["recall"]["recall"] == 1.0
    assert E.evaluate(env.settings, env.con, s).metrics["auc"] == skm.roc_auc_score(table["__label"], table["__score"])
    plain = T.suggest_thresholds(env.settings, env.con, s)
    assert set(plain) == {"max_f1", "min_cost"}


# ----------------------------------------------------------------------------------------------
# Multiclass and regression


def test_multiclass_metrics_equal_sklearn(env):
    s = env.scored["multiclass"]
    ev = E.evaluate(env.settings, env.con, s)
    df = frame(s)
    k = len(s.classes)
    y = df["__label"].to_numpy().astype(int)
    probs = df[[f"__p{i}" for i in range(k)]].to_numpy()
    pred = df["__pred"].to_numpy()
    assert (pred == probs.argmax(axis=1)).all()
    pc = np.clip(probs, 1e-15, 1 - 1e-15)
    m = ev.metrics
    assert close(m["logloss"], skm.log_loss(y, y_proba=pc / pc.sum(axis=1, keepdims=True), labels=list(range(k))))
    assert close(m["accuracy"], skm.accuracy_score(y, pred)) and m["rows"] == len(y)
    for avg in ("macro", "micro", "weighted"):
        prec, rec, f1, _ = skm.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        assert close(m[f"{avg}_precision"], prec) and close(m[f"{avg}_recall"], rec) and close(m[f"{avg}_f1"], f1)
    labels = [str(c) for c in s.classes]
    assert ev.curves["confusion"] == {"labels": labels,
                                      "matrix": skm.confusion_matrix(y, pred, labels=list(range(k))).tolist()}
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    for i, row in enumerate(ev.curves["per_class"]):
        assert row["class"] == labels[i] and row["support"] == sup[i]
        assert close(row["precision"], prec[i]) and close(row["recall"], rec[i]) and close(row["f1"], f1[i])
        assert close(row["auc"], skm.roc_auc_score(y == i, probs[:, i]))
    own = probs[np.arange(len(y)), y]
    bins = np.clip(np.floor(own * 50), 0, 49).astype(int)
    for i, label in enumerate(labels):
        assert ev.curves["scores"]["counts"][label] == np.bincount(bins[y == i], minlength=50).tolist()


def test_multiclass_ties_and_absent_class(env):
    """Rounded probabilities (ties in the one-vs-rest AUC) and a class that never occurs nor is predicted."""
    rng = np.random.default_rng(5)
    n = 900
    y = rng.integers(0, 3, size=n)
    raw = rng.dirichlet([1, 1, 1, 0.05], size=n)
    raw[np.arange(n), y] += 0.6
    raw[:, 3] = 0.0
    probs = np.round(raw / raw.sum(axis=1, keepdims=True), 1)
    pred = probs[:, :3].argmax(axis=1)
    table = pa.table({"g": rng.choice(["a", "b"], size=n).tolist(), "__row": np.arange(n), "__label": y.astype(float),
                      **{f"__p{i}": probs[:, i] for i in range(4)}, "__pred": pa.array(pred, pa.int32())})
    s = handmade(env, "multi_ties", table, task="multiclass", classes=["x", "y", "z", "never"])
    ev = E.evaluate(env.settings, env.con, s)
    for avg in ("macro", "micro", "weighted"):
        prec, rec, f1, _ = skm.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        assert close(ev.metrics[f"{avg}_precision"], prec) and close(ev.metrics[f"{avg}_f1"], f1)
    per = ev.curves["per_class"]
    for i in range(3):
        assert close(per[i]["auc"], skm.roc_auc_score(y == i, probs[:, i]))
    assert per[3]["auc"] is None and per[3]["support"] == 0
    pc = np.clip(probs, 1e-15, 1 - 1e-15)
    assert close(ev.metrics["logloss"], skm.log_loss(y, y_proba=pc / pc.sum(axis=1, keepdims=True),
                                                     labels=[0, 1, 2, 3]))


def test_regression_metrics_equal_sklearn(env):
    s = env.scored["regression"]
    ev = E.evaluate(env.settings, env.con, s)
    df = frame(s)
    y, p = df["__label"].to_numpy(), df["__pred"].to_numpy()
    m = ev.metrics
    assert close(m["rmse"], math.sqrt(skm.mean_squared_error(y, p))) and close(m["mae"], skm.mean_absolute_error(y, p))
    assert close(m["r2"], skm.r2_score(y, p)) and close(m["median_ae"], skm.median_absolute_error(y, p))
    nz = y != 0
    assert close(m["mape"], skm.mean_absolute_percentage_error(y[nz], p[nz])) and m["mape_rows"] == nz.sum()
    assert close(m["mean_actual"], y.mean()) and close(m["mean_pred"], p.mean()) and m["rows"] == len(y)
    assert ev.sample_note is None
    e = y - p
    lo = min(np.percentile(y, 0.5), np.percentile(p, 0.5))
    hi = max(np.percentile(y, 99.5), np.percentile(p, 99.5))
    d = ev.curves["density"]
    assert close(d["x_edges"][0], lo) and close(d["x_edges"][-1], hi) and d["x_edges"] == d["y_edges"]
    assert len(d["x_edges"]) == 61 and len(d["counts"]) == 60 and all(len(r) == 60 for r in d["counts"])
    check_hist2d(d, y, p)
    r = ev.curves["residuals"]
    assert close(r["edges"][0], np.percentile(e, 0.5)) and close(r["edges"][-1], np.percentile(e, 99.5))
    lo_e, hi_e = r["edges"][0], r["edges"][-1]
    inside = (e >= lo_e) & (e <= hi_e)
    bins = np.minimum(np.floor((e[inside] - lo_e) / (hi_e - lo_e) * 50), 49).astype(int)
    assert r["counts"] == np.bincount(bins, minlength=50).tolist()
    assert (r["below"], r["above"]) == ((e < lo_e).sum(), (e > hi_e).sum()) and r["below"] + r["above"] > 0
    rvp = ev.curves["residual_vs_pred"]
    assert close(rvp["x_edges"][0], np.percentile(p, 0.5)) and close(rvp["y_edges"][-1], np.percentile(e, 99.5))
    check_hist2d(rvp, p, e)


def check_hist2d(h: dict, x: np.ndarray, y: np.ndarray) -> None:
    xe, ye = h["x_edges"], h["y_edges"]
    inside = (x >= xe[0]) & (x <= xe[-1]) & (y >= ye[0]) & (y <= ye[-1])
    ix = np.minimum(np.floor((x[inside] - xe[0]) / (xe[-1] - xe[0]) * 60), 59).astype(int)
    iy = np.minimum(np.floor((y[inside] - ye[0]) / (ye[-1] - ye[0]) * 60), 59).astype(int)
    expected = np.zeros((60, 60), dtype=int)
    np.add.at(expected, (iy, ix), 1)
    assert h["counts"] == expected.tolist() and h["outside"] == (~inside).sum() > 0


def test_regression_median_on_a_sample_says_so(env, monkeypatch):
    s = env.scored["regression"]
    copy = env.root / "sampled.parquet"
    shutil.copy(s.path, copy)
    s = dataclasses.replace(s, path=copy, run_id="sampled")
    monkeypatch.setattr(E, "EXACT_ROWS", 200)
    ev = E.evaluate(env.settings, env.con, s)
    assert ev.sample_note and "200" in ev.sample_note and f"{s.rows:,}" in ev.sample_note
    df = frame(s)
    y, p = df["__label"].to_numpy(), df["__pred"].to_numpy()
    assert close(ev.metrics["rmse"], math.sqrt(skm.mean_squared_error(y, p)))  # the rest is still exact
    assert 0.5 * skm.median_absolute_error(y, p) < ev.metrics["median_ae"] < 2 * skm.median_absolute_error(y, p)
    assert E.evaluate(env.settings, env.con, s).sample_note == ev.sample_note  # cached with its note


# ----------------------------------------------------------------------------------------------
# Cache


def test_cache_hit_refresh_and_invalidation(env):
    s = handmade(env, "cached", binary_table(500))
    folder = holdout.folder(env.settings, "cached")
    first = E.evaluate(env.settings, env.con, s)
    out, curve = folder / "evaluation.json", folder / "curve.parquet"
    stamp = (out.stat().st_mtime_ns, curve.stat().st_mtime_ns)
    again = E.evaluate(env.settings, env.con, s)
    assert again == first and (out.stat().st_mtime_ns, curve.stat().st_mtime_ns) == stamp
    assert json.loads(out.read_text())["evaluation"] == first.to_json()
    assert pq.read_table(curve).column_names == ["threshold", "pos", "neg", "tp", "fp"]
    os.utime(out, ns=(1, 1))  # so any rewrite shows in the time stamp
    E.evaluate(env.settings, env.con, s, refresh=True)
    assert out.stat().st_mtime_ns != 1
    # a rewritten scored file (new labels) is seen; so is a changed threshold
    write_parquet(s.path, binary_table(500, seed=9))
    changed = E.evaluate(env.settings, env.con, s)
    assert changed.metrics != first.metrics and close(changed.metrics["auc"], binary_reference(s)["auc"])
    moved = E.evaluate(env.settings, env.con, dataclasses.replace(s, threshold=0.3))
    assert moved.metrics["threshold"] == 0.3 and close(moved.metrics["recall"], binary_reference(
        dataclasses.replace(s, threshold=0.3))["recall"])
    # a lost curve table is made again, by evaluate and by suggest_thresholds
    curve.unlink()
    T.suggest_thresholds(env.settings, env.con, s)
    assert curve.exists()
    with pytest.raises(QuarryError, match="missing"):
        E.evaluate(env.settings, env.con, dataclasses.replace(s, path=env.root / "nowhere.parquet"))


def test_evaluation_json_round_trip(env):
    for task in TASKS:
        ev = E.evaluate(env.settings, env.con, env.scored[task])
        doc = json.loads(json.dumps(ev.to_json()))
        assert E.Evaluation.from_json(doc) == ev
        assert set(doc) == {"run_id", "task", "rows", "metrics", "curves", "sample_note"}


# ----------------------------------------------------------------------------------------------
# Slices and fairness


def hanley_mcneil(a: float, npos: int, nneg: int) -> tuple[float, float]:
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (npos - 1) * (q1 - a * a) + (nneg - 1) * (q2 - a * a)) / (npos * nneg))
    return max(0.0, a - Z * se), min(1.0, a + Z * se)


def binary_slice_reference(y: np.ndarray, p: np.ndarray, t: float, metric: str) -> tuple:
    hit = p >= t
    if metric == "auc":
        if len(set(y)) < 2:
            return None, None, None
        a = skm.roc_auc_score(y, p)
        return (a, *hanley_mcneil(a, int(y.sum()), int((1 - y).sum())))
    k, n = {"accuracy": ((hit == (y == 1)).sum(), len(y)), "precision": ((hit & (y == 1)).sum(), hit.sum()),
            "recall": ((hit & (y == 1)).sum(), (y == 1).sum()), "positive_rate": (hit.sum(), len(y))}[metric]
    return (k / n, *wilson(k, n)) if n else (None, None, None)


def check_rows(table: S.SliceTable, groups: dict, reference) -> None:
    """Each row against `reference(rows of the group)`; overall against all rows; counts add up."""
    assert {r["group"] for r in table.rows} == set(groups)
    for r in table.rows:
        value, lo, hi = reference(groups[r["group"]])
        assert r["count"] == len(groups[r["group"]])
        assert close(r["value"], value) and close(r["lo"], lo) and close(r["hi"], hi), r
        assert r["delta"] is None or close(r["delta"], r["value"] - table.overall["value"])
    assert table.overall["count"] == sum(len(g) for g in groups.values())


def by_group(df: pd.DataFrame, labels: np.ndarray) -> dict:
    return {g: df[labels == g] for g in np.unique(labels)}


def category_labels(values: pd.Series, max_groups: int) -> np.ndarray:
    """The expected group of each row: the most frequent values (ties by text), '(other)', '(missing)'."""
    text = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values.tolist()]
    counts = pd.Series([v for v in text if v is not None]).value_counts()
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_groups]
    keep = {k for k, _ in top}
    return np.array([S.MISSING if v is None else (v if v in keep else S.OTHER) for v in text], dtype=object)


def bin_labels(env, s: holdout.Scored, column: str, bins: int = 10) -> tuple[np.ndarray, S.Grouping]:
    g = S.grouping(env.con, s, column, bins=bins)
    assert g.kind == "bins" and g.edges[0] == min(v for v in frame(s)[column] if v == v and v is not None)
    values = frame(s)[column]
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(S.MISSING)
        else:
            out.append(g.labels[sum(1 for e in g.edges[1:] if v >= e)])
    return np.array(out, dtype=object), g


@pytest.mark.parametrize("metric", ["auc", "accuracy", "precision", "recall", "positive_rate"])
def test_binary_slices_equal_numpy(env, ties, metric):
    df = frame(ties)
    labels = category_labels(df["segment"], 12)
    table = S.slices(env.con, ties, "segment", metric=metric, max_groups=12)
    assert table.metric == metric and table.column == "segment" and table.threshold == 0.5
    groups = by_group(df, labels)
    assert S.OTHER in groups and S.MISSING in groups

    def reference(g: pd.DataFrame):
        return binary_slice_reference(g["__label"].to_numpy(), g["__score"].to_numpy(), 0.5, metric)

    check_rows(table, groups, reference)
    overall = reference(df)
    assert close(table.overall["value"], overall[0]) and close(table.overall["lo"], overall[1])
    values = [r["value"] for r in table.rows if r["value"] is not None]
    if metric == "positive_rate":  # no better direction: furthest from overall first
        deltas = [abs(r["delta"]) for r in table.rows]
        assert deltas == sorted(deltas, reverse=True) and "no better direction" in table.note
    else:
        assert table.higher_is_better and values == sorted(values)


def test_numeric_and_temporal_bins(env, ties):
    df = frame(ties)
    for column in ("amount", "day"):
        labels, g = bin_labels(env, ties, column)
        counts = pd.Series(labels).value_counts()
        assert len(g.edges) == 10 and set(g.labels) == set(counts.index)
        assert g.labels[-1] == S.MISSING and counts[S.MISSING] == (df["amount"].isna().sum() if column == "amount"
                                                                    else 0) or column == "day"
        # equal-count bins: each within a few rows of a tenth of the non-missing rows
        sizes = [counts[label] for label in g.labels if label != S.MISSING]
        assert max(sizes) - min(sizes) <= 0.02 * len(df) + 3
        table = S.slices(env.con, ties, column, metric="accuracy")
        check_rows(table, by_group(df, labels), lambda d: binary_slice_reference(
            d["__label"].to_numpy(), d["__score"].to_numpy(), 0.5, "accuracy"))
    assert S.grouping(env.con, ties, "day").labels[0].startswith("[2024-01-0")
    # a numeric column with few values, a boolean, a name that needs quoting: one group per value
    assert S.grouping(env.con, ties, "small_int").labels == ["0", "1", "2"]
    assert S.grouping(env.con, ties, "flag").labels == ["false", "true"]
    table = S.slices(env.con, ties, 'quo"te col', metric="recall", threshold=0.4)
    check_rows(table, by_group(df, df['quo"te col'].to_numpy()), lambda d: binary_slice_reference(
        d["__label"].to_numpy(), d["__score"].to_numpy(), 0.4, "recall"))


@pytest.mark.parametrize("metric", ["rmse", "mae", "mean_residual"])
def test_regression_slices_equal_numpy(env, metric):
    s = env.scored["regression"]
    df = frame(s)
    labels, _ = bin_labels(env, s, "x1", bins=5)

    def reference(g: pd.DataFrame):
        e = (g["__label"] - g["__pred"]).to_numpy()
        n = len(e)
        if metric == "rmse":
            sq = e**2
            half = Z * sq.std(ddof=1) / math.sqrt(n)
            return math.sqrt(sq.mean()), math.sqrt(max(sq.mean() - half, 0)), math.sqrt(sq.mean() + half)
        v = np.abs(e) if metric == "mae" else e
        half = Z * v.std(ddof=1) / math.sqrt(n)
        return v.mean(), v.mean() - half, v.mean() + half

    table = S.slices(env.con, s, "x1", metric=metric, bins=5)
    check_rows(table, by_group(df, labels), reference)
    assert close(table.overall["value"], reference(df)[0])
    assert table.higher_is_better is False and len(table.rows) == 5


def test_multiclass_slices_equal_sklearn(env):
    s = env.scored["multiclass"]
    df = frame(s)
    groups = by_group(df, df["region"].to_numpy())
    for metric in S.slice_metrics("multiclass"):
        def reference(g: pd.DataFrame, metric=metric):
            y, pred = g["__label"].to_numpy().astype(int), g["__pred"].to_numpy()
            if metric == "accuracy":
                k = int((y == pred).sum())
                return (k / len(y), *wilson(k, len(y)))
            present = sorted(set(y))
            recalls = skm.recall_score(y, pred, labels=present, average=None, zero_division=0)
            counts = np.array([(y == c).sum() for c in present])
            value = recalls.mean()
            half = Z * math.sqrt((recalls * (1 - recalls) / counts).sum()) / len(present)
            return value, max(0.0, value - half), min(1.0, value + half)

        check_rows(S.slices(env.con, s, "region", metric=metric), groups, reference)


def test_fairness_binary_equals_numpy(env):
    s = handmade(env, "fair", binary_table(700, decimals=2))  # about 22 rows per segment: small groups
    df = frame(s)
    f = S.fairness(env.con, s, "segment", threshold=0.55, max_groups=25)
    assert f["column"] == "segment" and f["threshold"] == 0.55
    labels = category_labels(df["segment"], 25)
    groups = by_group(df, labels)
    assert [g["group"] for g in f["groups"]][-2:] == [S.OTHER, S.MISSING]
    rows = {g["group"]: g for g in f["groups"]}
    assert set(rows) == set(groups)
    for name, g in groups.items():
        y, hit = g["__label"].to_numpy() == 1, g["__score"].to_numpy() >= 0.55
        r = rows[name]
        assert r["count"] == len(g) and close(r["selection_rate"], hit.mean())
        assert close(r["tpr"], (hit & y).sum() / y.sum()) and close(r["fpr"], (hit & ~y).sum() / (~y).sum())
        assert close(r["precision"], (hit & y).sum() / hit.sum() if hit.any() else None)
        assert close(r["accuracy"], (hit == y).mean())
    sr = [r["selection_rate"] for r in f["groups"]]
    tpr = [r["tpr"] for r in f["groups"]]
    fpr = [r["fpr"] for r in f["groups"]]
    acc = [r["accuracy"] for r in f["groups"]]
    summary = f["summary"]
    assert close(summary["demographic_parity_difference"], max(sr) - min(sr))
    assert close(summary["demographic_parity_ratio"], min(sr) / max(sr))
    assert close(summary["equal_opportunity_difference"], max(tpr) - min(tpr))
    assert close(summary["equalized_odds_difference"], max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
    assert close(summary["accuracy_ratio"], min(acc) / max(acc))
    small = [n for n, g in groups.items() if len(g) < 30]
    assert small and any(all(n in note for n in small) for note in f["notes"])
    hit = df["__score"] >= 0.55
    assert close(f["overall"]["selection_rate"], hit.mean()) and f["overall"]["count"] == len(df)


def test_fairness_regression_and_multiclass(env):
    s = env.scored["regression"]
    df = frame(s)
    f = S.fairness(env.con, s, "channel")
    mae = {g: (d["__label"] - d["__pred"]).abs().mean() for g, d in df.groupby("channel")}
    rows = {g["group"]: g for g in f["groups"]}
    for g, d in df.groupby("channel"):
        assert close(rows[g]["mae"], mae[g]) and close(rows[g]["mean_pred"], d["__pred"].mean())
        assert close(rows[g]["mean_actual"], d["__label"].mean()) and rows[g]["count"] == len(d)
    assert close(f["summary"]["mae_ratio"], min(mae.values()) / max(mae.values()))
    assert close(f["summary"]["mae_difference"], max(mae.values()) - min(mae.values()))
    m = env.scored["multiclass"]
    df = frame(m)
    f = S.fairness(env.con, m, "channel")
    acc = {g: (d["__label"] == d["__pred"]).mean() for g, d in df.groupby("channel")}
    assert {g["group"]: g["accuracy"] for g in f["groups"]} == pytest.approx(acc, rel=REL)
    assert close(f["summary"]["accuracy_ratio"], min(acc.values()) / max(acc.values()))
    assert f["threshold"] is None and not f["notes"]


# ----------------------------------------------------------------------------------------------
# Errors


def test_errors_name_the_choices(env, ties):
    b, r, m = env.scored["binary"], env.scored["regression"], env.scored["multiclass"]
    with pytest.raises(QuarryError) as exc:
        S.slices(env.con, b, "nope")
    assert "'nope'" in exc.value.message and "region" in exc.value.hint
    with pytest.raises(QuarryError) as exc:
        S.slices(env.con, b, "region", metric="rmse")
    assert "auc, accuracy, precision, recall, positive_rate" in exc.value.hint
    with pytest.raises(QuarryError, match="unknown task|Unknown task"):
        S.slice_metrics("ranking")
    for call in (lambda: T.at_threshold(env.con, r, 0.5), lambda: T.suggest_thresholds(env.settings, env.con, m)):
        with pytest.raises(QuarryError, match="binary runs only"):
            call()
    with pytest.raises(QuarryError, match="finite number"):
        T.at_threshold(env.con, b, float("nan"))
    with pytest.raises(QuarryError, match="between 0 and 1"):
        T.suggest_thresholds(env.settings, env.con, b, target_precision=1.5)
    with pytest.raises(QuarryError, match="not both 0"):
        T.suggest_thresholds(env.settings, env.con, b, cost_fp=0, cost_fn=0)
    with pytest.raises(QuarryError, match="bins must be"):
        S.slices(env.con, b, "x1", bins=1)
    with pytest.raises(QuarryError, match="Unknown fairness measure"):
        C.fairness_figure(S.fairness(env.con, b, "region"), "rmse")
    with pytest.raises(QuarryError, match="gain, split"):
        C.importance_figure(E.model_report(env.runs["binary"]), kind="cover")
    assert S.slice_metrics("regression")[0] == "rmse" and S.slice_metrics("binary")[0] == "auc"
    bad = pa.table({"__row": [0, 1], "__label": [0.0, 2.0], "__score": [0.1, 0.9]})
    with pytest.raises(QuarryError, match="1 rows without a usable label"):
        E.evaluate(env.settings, env.con, handmade(env, "bad_label", bad))


# ----------------------------------------------------------------------------------------------
# Training report and charts


def test_model_report(env):
    for task, run in env.runs.items():
        rep = E.model_report(run)
        assert rep["task"] == task and rep["baselines_split"] == "test"
        assert [b["model"] for b in rep["baselines"]] == ["model", "prior", "linear"]
        assert rep["baselines"][0] == {"model": "model", **run.info["metrics"]["test"]}
        assert rep["baselines"][1] == {"model": "prior", **run.info["baselines"]["prior"]}
        assert rep["curve"]["train"] == run.curve["train"] and rep["curve"]["metric"] == run.curve["metric"]
        assert rep["curve"]["best_iteration"] == run.best_iteration
        assert rep["importance"]["feature"] == run.importance["feature"] and rep["cv"] is None
        json.dumps(rep)


def trace_points(trace) -> int:
    if trace.type == "heatmap":
        return sum(len(row) for row in trace.z)
    return max((len(v) for v in (trace.x, trace.y) if v is not None), default=0)


def check_figure(fig, *, empty: bool = False) -> None:
    fig.to_json()
    assert fig.layout.title.text
    if empty:
        assert not fig.data and fig.layout.annotations
        return
    assert fig.data
    for trace in fig.data:
        limit = 60 * 60 if trace.type == "heatmap" else C.MAX_POINTS
        assert trace_points(trace) <= limit
        assert trace.hoverinfo == "skip" or trace.hovertemplate
    axes = [fig.layout[k] for k in fig.layout if k.startswith("xaxis") or k.startswith("yaxis")]
    assert axes and all(a.title.text for a in axes if a.visible is not False)


CLASSIFICATION = ("score_distribution_figure",)
BY_TASK = {"binary": ("roc_figure", "pr_figure", "calibration_figure", "gain_figure", "lift_figure"),
           "multiclass": ("per_class_figure",),
           "regression": ("density_figure", "residuals_figure", "residual_vs_pred_figure")}


@pytest.mark.parametrize("task", TASKS)
def test_charts_build_labelled_and_bounded(env, many, task):
    ev = E.evaluate(env.settings, env.con, env.scored[task])
    mine = BY_TASK[task] + (CLASSIFICATION if task != "regression" else ())
    for name in {n for names in BY_TASK.values() for n in names} | set(CLASSIFICATION):
        check_figure(getattr(C, name)(ev), empty=name not in mine)
    if task != "regression":
        conf = ev.curves["confusion"]
        for normalize in (False, True):
            fig = C.confusion_figure(conf["labels"], conf["matrix"], normalize=normalize)
            check_figure(fig)
            assert fig.data[0].text[0][0].startswith(f"{conf['matrix'][0][0]:,}")
    s = env.scored[task]
    check_figure(C.slices_figure(S.slices(env.con, s, "region")))
    f = S.fairness(env.con, s, "x1")
    for measure in [k for k in f["groups"][0] if k not in ("group", "count")]:  # as the Evaluate page offers them
        check_figure(C.fairness_figure(f, measure))
    rep = E.model_report(env.runs[task])
    check_figure(C.learning_curve_figure(rep))
    check_figure(C.importance_figure(rep, "split"))
    check_figure(C.baselines_figure(rep))
    if task == "binary":
        roc = C.roc_figure(ev, threshold=0.3)
        marker = roc.data[-1]
        pts = ev.curves["points"]
        i = min(range(len(pts["threshold"])), key=lambda k: abs(pts["threshold"][k] - 0.3))
        assert (marker.x[0], marker.y[0]) == (pts["fpr"][i], pts["tpr"][i])
        assert f"{ev.metrics['auc']:.3f}" in roc.layout.title.text
        assert f"{ev.metrics['average_precision']:.3f}" in C.pr_figure(ev).layout.title.text
        big = E.evaluate(env.settings, env.con, many)
        check_figure(C.roc_figure(big))
        check_figure(C.pr_figure(big))

"""Benchmark: evaluation over a 10M-row test split out of core, SHAP throughput vs shap.TreeExplainer, and the
time each Explain page interaction takes on a 10,000-row sample.

A run is trained once on synthetic transactions (a 91 % test split, so ~10M test rows from 11M), then each
part runs in a process of its own (its own peak RSS):
- evaluate: core.holdout (the test split drawn again, scored batch by batch into Parquet) + core.evaluate
  (every metric and curve in DuckDB) + a threshold and suggestions (core.thresholds), slices and fairness
  (core.slices); once more from scratch under a 1 GB DuckDB memory limit. The peer "sklearn": the same
  file's scores and labels read into NumPy and the usual sklearn.metrics calls (roc_auc, average_precision,
  log_loss, brier, precision_recall_curve, calibration_curve).
- shap: core.explain.contributions (LightGBM pred_contrib) vs shap.TreeExplainer(booster).shap_values on
  the same 10,000 rows of the same model, rows/s, with the explainer built in the timing (a one-off user's
  cost) and beforehand (for LightGBM models shap calls the same pred_contrib: parity is the ceiling); and
  core.explain.shap_sample end to end (stratified sample from the 10M-row file + SHAP).
- interactions: every Explain page call on the 10,000-row sample (global importance, beeswarm, dependence
  with automatic colouring, partial dependence + ICE, a row's waterfall, what-if, row finders).

    python bench/explain_bench.py [--rows 11000000] [--repeat 3]

Human-readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    TRANSACTIONS_FEATURES,
    TRANSACTIONS_TARGET,
    arguments,
    machine,
    peak_rss_mib,
    run_all,
    timed,
    transactions_file,
    workspace_env,
)

TARGET, FEATURES = TRANSACTIONS_TARGET, TRANSACTIONS_FEATURES
SPLIT = {"kind": "random", "valid": 0.01, "test": 0.91, "seed": 42}
ROUNDS = 100
SAMPLE = 10_000


def _open():
    from core.data import catalog as cat
    from core.data import engine
    from core.model import runs
    from core.settings import load_settings

    settings = load_settings()
    con = engine.connect(settings)
    cat.sync_views(con, cat.Catalog(settings).list())
    found = runs.list_runs(settings)
    return settings, con, (runs.load_run(settings, found[0].run_id) if found else None)


def worker_train(path: str, repeat: int) -> dict:
    from core.data import catalog as cat
    from core.data import engine
    from core.model import job as train_job
    from core.settings import load_settings

    settings = load_settings()
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), path, name="bench", replace=True)
    con.close()
    t0 = time.perf_counter()
    out = train_job.run({"dataset": "bench", "target": TARGET, "task": "binary", "features": FEATURES,
                         "split": SPLIT, "num_boost_round": ROUNDS, "early_stopping_rounds": 0, "device": "cpu",
                         "params": {"num_leaves": 63, "learning_rate": 0.1}})
    return {"s": time.perf_counter() - t0, "run_id": out["run_id"], "test_auc": out["metrics"]["test"].get("auc")}


def _evaluate(repeat: int, refresh: bool) -> dict:
    from core.evaluate import holdout, slices, thresholds
    from core.evaluate import metrics as evaluate

    settings, con, run = _open()
    t0 = time.perf_counter()
    scored = holdout.scored_test(settings, con, run, refresh=refresh)
    t1 = time.perf_counter()
    econ = evaluate.connect(settings)  # as the page and the CLI: memory capped (core.evaluate.MEMORY_CAP)
    ev = evaluate.evaluate(settings, econ, scored, refresh=refresh)
    t2 = time.perf_counter()
    thresholds.at_threshold(econ, scored, 0.1)
    thresholds.suggest_thresholds(settings, econ, scored, cost_fp=1, cost_fn=20, target_precision=0.5)
    t3 = time.perf_counter()
    slices.slices(econ, scored, "merchant_category")
    t4 = time.perf_counter()
    slices.fairness(econ, scored, "card_type")
    t5 = time.perf_counter()
    metrics_first, metrics_median = timed(lambda: evaluate.evaluate(settings, econ, scored, refresh=True), repeat)
    return {"rows": scored.rows, "score_s": t1 - t0, "evaluate_s": t2 - t1, "thresholds_s": t3 - t2,
            "slices_s": t4 - t3, "fairness_s": t5 - t4, "total_s": t5 - t0, "metrics_s": metrics_median,
            "auc": ev.metrics.get("auc"), "memory_limit": settings.memory_limit, "peak_rss_mib": peak_rss_mib()}


def worker_evaluate(path: str, repeat: int) -> dict:
    return _evaluate(repeat, refresh=False)


def worker_evaluate_1gb(path: str, repeat: int) -> dict:
    """The same, everything again (the test split scored too) with DuckDB limited to 1 GB."""
    os.environ["QUARRY_MEMORY_LIMIT"] = "1GB"
    return _evaluate(1, refresh=True)


def worker_sklearn(path: str, repeat: int) -> dict:
    import numpy as np
    import pyarrow.parquet as pq
    import sklearn.calibration as skc
    import sklearn.metrics as skm

    from core.evaluate import holdout

    settings, con, run = _open()
    scored = holdout.scored_test(settings, con, run)  # cached by the evaluate worker

    def metrics() -> float:
        t = pq.read_table(scored.path, columns=["__score", "__label"])
        p, y = t.column("__score").to_numpy(), t.column("__label").to_numpy()
        auc = skm.roc_auc_score(y, p)
        skm.average_precision_score(y, p)
        skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15))
        skm.brier_score_loss(y, p)
        skm.precision_recall_curve(y, p)
        skc.calibration_curve(y, p, n_bins=10, strategy="quantile")
        return auc

    first, median = timed(metrics, repeat)
    return {"metrics_s": median, "auc": metrics(), "peak_rss_mib": peak_rss_mib()}


def worker_shap(path: str, repeat: int) -> dict:
    import shap

    from core.evaluate import holdout
    from core.explain import shap as explain

    settings, con, run = _open()
    scored = holdout.scored_test(settings, con, run)
    t0 = time.perf_counter()
    sample = explain.shap_sample(settings, con, run, scored, SAMPLE, refresh=True)
    end_to_end = time.perf_counter() - t0
    x = sample.x
    booster = run.booster
    explainer = shap.TreeExplainer(booster)
    calls = {"quarry": lambda: explain.contributions(run, x),
             "shap_values": lambda: explainer.shap_values(x),  # the explainer built beforehand
             "shap_total": lambda: shap.TreeExplainer(booster).shap_values(x)}  # as a one-off user runs it
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):  # interleaved, so a slow spell of the machine hits every system alike
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {"rows": len(x), "seconds": med, "rows_per_s": {k: len(x) / v for k, v in med.items()},
            "sample_end_to_end_s": end_to_end, "peak_rss_mib": peak_rss_mib()}


def worker_interactions(path: str, repeat: int) -> dict:
    from core.evaluate import holdout
    from core.explain import charts as explain_charts
    from core.explain import effects
    from core.explain import shap as explain
    from core.explain.local import explain_row, find_rows, what_if

    settings, con, run = _open()
    scored = holdout.scored_test(settings, con, run)
    sample = explain.shap_sample(settings, con, run, scored, SAMPLE)  # cached by the shap worker
    top = explain.global_importance(sample)[0][0]
    categorical = next(f for f in run.features if f in run.categorical)
    row = find_rows(con, scored, "confident_wrong", threshold=scored.threshold, limit=1)[0]
    local = explain_row(con, run, scored, row)
    changed = {**local.values, top: local.values.get(top)}
    calls = {
        "load_cached_sample": lambda: explain.shap_sample(settings, con, run, scored, SAMPLE),
        "global_importance": lambda: explain.global_importance(sample),
        "beeswarm_figure": lambda: explain_charts.beeswarm_figure(sample),
        "dependence_auto": lambda: explain_charts.dependence_figure(effects.dependence(sample, top)),
        "dependence_categorical": lambda: explain_charts.dependence_figure(effects.dependence(sample, categorical)),
        "partial_dependence": lambda: explain_charts.pdp_figure(effects.partial_dependence(run, sample, top)),
        "find_confident_wrong": lambda: find_rows(con, scored, "confident_wrong", threshold=0.5),
        "find_near_threshold": lambda: find_rows(con, scored, "near_threshold", threshold=0.5),
        "explain_row": lambda: explain_charts.waterfall_figure(explain_row(con, run, scored, row)),
        "what_if": lambda: explain_charts.waterfall_figure(what_if(run, changed)),
    }
    out = {name: timed(fn, repeat)[1] for name, fn in calls.items()}
    return {"seconds": out, "slowest": max(out, key=out.get), "slowest_s": max(out.values()),
            "peak_rss_mib": peak_rss_mib()}


WORKERS = {"train": worker_train, "evaluate": worker_evaluate, "evaluate_1gb": worker_evaluate_1gb,
           "sklearn": worker_sklearn, "shap": worker_shap, "interactions": worker_interactions}


def main() -> None:
    args = arguments(__doc__, WORKERS, rows=11_000_000, repeat=3)
    if args is None:
        return
    path = transactions_file(args.rows)
    with workspace_env() as env:
        results = run_all(__file__, WORKERS, path, args.repeat, env)
    ev, sk, sh, it = (results[k] for k in ("evaluate", "sklearn", "shap", "interactions"))
    figures = {"machine": machine(), "rows": args.rows, "results": results}
    print(f"{args.rows:,} rows; {machine()}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<13} error: {r['error']}")
    if "error" not in ev:
        print(f"evaluate: {ev['rows']:,} test rows scored in {ev['score_s']:.1f} s, every metric and curve in "
              f"{ev['evaluate_s']:.2f} s (again: {ev['metrics_s']:.2f} s), threshold + suggestions "
              f"{ev['thresholds_s']:.2f} s, slices (AUC per merchant category) {ev['slices_s']:.2f} s, fairness "
              f"{ev['fairness_s']:.2f} s; peak RSS {ev['peak_rss_mib']:.0f} MiB (DuckDB limit {ev['memory_limit']}, "
              "evaluation queries capped at 1GB)")
        capped = results.get("evaluate_1gb", {})
        if "error" not in capped:
            print(f"  the same from scratch under a 1 GB DuckDB limit: {capped['total_s']:.1f} s, peak RSS "
                  f"{capped['peak_rss_mib']:.0f} MiB")
        if "error" not in sk:
            figures["metrics_over_sklearn"] = ev["metrics_s"] / sk["metrics_s"]
            print(f"  metrics: Quarry (DuckDB, out of core) {ev['metrics_s']:.2f} s vs sklearn in memory "
                  f"{sk['metrics_s']:.2f} s = {figures['metrics_over_sklearn']:.2f}x at {ev['peak_rss_mib']:.0f} vs "
                  f"{sk['peak_rss_mib']:.0f} MiB peak RSS (AUC {ev['auc']:.6f} vs {sk['auc']:.6f})")
    if "error" not in sh:
        rps = sh["rows_per_s"]
        figures["shap_speedup"] = rps["quarry"] / rps["shap_total"]
        figures["shap_speedup_values_only"] = rps["quarry"] / rps["shap_values"]
        print(f"SHAP on {sh['rows']:,} rows (median of interleaved runs): Quarry (pred_contrib) {rps['quarry']:,.0f} "
              f"rows/s vs shap.TreeExplainer {rps['shap_total']:,.0f} rows/s built and run = "
              f"{figures['shap_speedup']:.2f}x ({rps['shap_values']:,.0f} rows/s with the explainer built beforehand"
              f" = {figures['shap_speedup_values_only']:.2f}x; for LightGBM it calls the same pred_contrib); "
              f"stratified sample + SHAP end to end {sh['sample_end_to_end_s']:.2f} s")
    if "error" not in it:
        print("Explain page interactions on a 10,000-row sample (median seconds):")
        for name, s in it["seconds"].items():
            print(f"  {name:<24}{s:7.3f}")
        print(f"  slowest: {it['slowest']} {it['slowest_s']:.3f} s (target < 1 s)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

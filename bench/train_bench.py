"""Benchmark: Quarry's training vs a plain PyArrow + lightgbm.train script, same parameters, same run;
a Sequence-based run over a memory budget; scoring throughput vs Booster.predict on NumPy.

Each system runs in a process of its own, so each peak RSS is its own.
- quarry: core.train.train on the registered Parquet file (split 70/15/15 in DuckDB, Arrow batches into
  a float64 matrix, LightGBM with the valid set evaluated each round, test metrics, prior and linear
  baselines) — wall time from the call to the trained result, reading Parquet included.
- plain: pyarrow.parquet.read_table, the same features as NumPy (text columns as dictionary codes), a
  70/15/15 random split in NumPy, lightgbm.train with the same parameters and the valid set.
- quarry_sequence: the same training with a 256 MB memory budget: the train split goes to Parquet and
  LightGBM builds its Dataset from a lightgbm.Sequence over it.
- scoring: core.score over every row to Parquet vs Booster.predict on the rows already in NumPy.

    python bench/train_bench.py [--rows 10000000] [--repeat 1]

Human-readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
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
    transactions_file,
    workspace_env,
)

TARGET, FEATURES = TRANSACTIONS_TARGET, TRANSACTIONS_FEATURES
ROUNDS = 100
PARAMS = {"learning_rate": 0.1, "num_leaves": 63, "min_data_in_leaf": 50, "feature_fraction": 0.9,
          "bagging_fraction": 0.8, "bagging_freq": 1}


def _quarry(path: str, budget_mb: float) -> dict:
    from core.data import catalog as cat
    from core.data import engine
    from core.model.splits import SplitConfig
    from core.model.train import TrainConfig, train
    from core.settings import load_settings

    settings = load_settings()
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), path, name="bench", replace=True)
    config = TrainConfig(dataset="bench", target=TARGET, task="binary", features=FEATURES, params=PARAMS,
                         split=SplitConfig(kind="random", valid=0.15, test=0.15), num_boost_round=ROUNDS,
                         early_stopping_rounds=0, device="cpu", memory_budget_mb=budget_mb)
    t0 = time.perf_counter()
    result = train(con, config, settings=settings)
    seconds = time.perf_counter() - t0
    return {"s": seconds, "peak_rss_mib": peak_rss_mib(), "data_path": result.data_path, "rows": result.rows,
            "timings": result.timings, "test_auc": result.metrics.get("test", {}).get("auc")}


def worker_quarry(path: str, repeat: int) -> dict:
    return _quarry(path, budget_mb=8192)


def worker_quarry_sequence(path: str, repeat: int) -> dict:
    return _quarry(path, budget_mb=256)


def worker_plain(path: str, repeat: int) -> dict:
    import lightgbm as lgb
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    table = pq.read_table(path, columns=[*FEATURES, TARGET])
    cols = []
    for name in FEATURES:
        col = table.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.dictionary_encode(col).combine_chunks().indices
        cols.append(col.to_numpy(zero_copy_only=False).astype(np.float64))
    x = np.column_stack(cols)
    y = table.column(TARGET).to_numpy(zero_copy_only=False).astype(np.float64)
    del table, cols
    u = np.random.default_rng(42).random(len(y))
    train, valid = u < 0.70, (u >= 0.70) & (u < 0.85)
    categorical = [i for i, n in enumerate(FEATURES) if n in ("card_type", "merchant_category", "channel", "country")]
    params = {"objective": "binary", "metric": "binary_logloss", "seed": 42, "verbosity": -1,
              "num_threads": os.cpu_count(), **PARAMS}
    dtrain = lgb.Dataset(x[train], y[train], categorical_feature=categorical, free_raw_data=True)
    dvalid = lgb.Dataset(x[valid], y[valid], reference=dtrain)
    booster = lgb.train(params, dtrain, num_boost_round=ROUNDS, valid_sets=[dvalid])
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    booster.predict(x)
    predict_s = time.perf_counter() - t1
    return {"s": seconds, "peak_rss_mib": peak_rss_mib(), "predict_rows_per_s": len(y) / predict_s,
            "predict_s": predict_s}


def worker_scoring(path: str, repeat: int) -> dict:
    from core.data import catalog as cat
    from core.data import engine
    from core.model import job as train_job
    from core.model import runs, score
    from core.settings import load_settings

    settings = load_settings()
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), path, name="bench", replace=True)
    out = train_job.run({"dataset": "bench", "target": TARGET, "task": "binary", "features": FEATURES,
                         "params": PARAMS, "num_boost_round": ROUNDS, "early_stopping_rounds": 0, "device": "cpu"})
    run = runs.load_run(settings, out["run_id"])
    target = Path(tempfile.mkdtemp()) / "scored.parquet"
    res = score.score(settings, con, run, "bench", target, keep=["transaction_id"])
    return {"s": res.seconds, "rows": res.rows, "rows_per_s": res.rows / res.seconds, "peak_rss_mib": peak_rss_mib()}


WORKERS = {"quarry": worker_quarry, "plain": worker_plain, "quarry_sequence": worker_quarry_sequence,
           "scoring": worker_scoring}


def main() -> None:
    args = arguments(__doc__, WORKERS, rows=10_000_000, repeat=1)
    if args is None:
        return
    path = transactions_file(args.rows)
    with workspace_env() as env:
        results = run_all(__file__, WORKERS, path, args.repeat, env)
    q, p = results["quarry"].get("s"), results["plain"].get("s")
    figures = {"date": time.strftime("%Y-%m-%d"),
               "machine": machine(),
               "rows": args.rows, "rounds": ROUNDS, "results": results,
               "quarry_over_plain": q / p if q and p else None,
               "scoring_over_predict": (results["scoring"].get("rows_per_s", 0)
                                        / results["plain"].get("predict_rows_per_s", 1)) if "s" in results["scoring"]
               else None}
    print(f"{args.rows:,} rows, {ROUNDS} rounds (seconds; peak RSS)")
    for name, r in results.items():
        print(f"{name:<17}" + (f"{r['s']:8.2f} s  peak RSS {r['peak_rss_mib']:6.0f} MiB" if "s" in r else r["error"]))
    if figures["quarry_over_plain"]:
        print(f"quarry / plain script: {figures['quarry_over_plain']:.2f}x")
    if figures["scoring_over_predict"]:
        print(f"scoring throughput / in-memory predict: {figures['scoring_over_predict']:.2f}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

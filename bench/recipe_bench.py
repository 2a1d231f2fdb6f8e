"""Benchmark: applying a 10-step feature recipe to the synthetic transactions and writing Parquet,
against DuckDB copying the same raw dataset to Parquet, same run.

Each system runs in a process of its own, so each peak RSS is its own. Quarry's worker does what the
Features page's "Write and register" does: the fitted recipe, compiled to one query, written by
DuckDB to the workspace. The recipe is fitted once beforehand (fitting is aggregate queries, timed
apart). The copy is `COPY (SELECT * FROM file) TO out (FORMAT parquet, COMPRESSION zstd)`.

    python bench/recipe_bench.py [--rows 20000000] [--repeat 2]

Human-readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    arguments,
    machine,
    peak_rss_mib,
    run_all,
    timed,
    transactions_file,
    workspace_env,
)

# Ten steps touching every family that runs row by row: fitted statistics, encodings, dates, arithmetic.
STEPS = [
    {"kind": "impute", "params": {"columns": ["amount", "distance_from_home_km"], "strategy": "median"}},
    {"kind": "clip", "params": {"columns": ["amount"], "method": "quantile", "lower_quantile": 0.01,
                                         "upper_quantile": 0.99}},
    {"kind": "transform", "params": {"columns": ["distance_from_home_km"], "function": "log1p"}},
    {"kind": "scale", "params": {"columns": ["device_score", "customer_age"], "method": "standard"}},
    {"kind": "one_hot", "params": {"columns": ["merchant_category"], "k": 10}},
    {"kind": "frequency", "params": {"columns": ["merchant_id"]}},
    {"kind": "group_rare", "params": {"columns": ["country"], "min_share": 0.01}},
    {"kind": "date_parts", "params": {"columns": ["ts"], "parts": ["month", "weekday", "hour", "is_weekend"]}},
    {"kind": "arithmetic", "params": {"left": "amount", "op": "ratio", "right": "velocity_24h"}},
    {"kind": "bin", "params": {"columns": ["account_age_days"], "method": "quantile", "bins": 10}},
]


def worker_copy(path: str, repeat: int) -> dict:
    import duckdb

    con = duckdb.connect()
    out = Path(tempfile.mkdtemp()) / "copy.parquet"
    first, med = timed(lambda: con.execute(f"COPY (SELECT * FROM read_parquet('{path}')) TO '{out}' "
                                             "(FORMAT parquet, COMPRESSION zstd)"), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib(), "out_gib": out.stat().st_size / 2**30}


def worker_quarry(path: str, repeat: int) -> dict:
    from core.data import catalog as cat
    from core.data import engine
    from core.features import materialize
    from core.features import recipe as R
    from core.settings import load_settings

    settings = load_settings()
    con = engine.connect(settings)
    catalog = cat.Catalog(settings)
    cat.register(con, catalog, path, name="bench", replace=True)
    recipe = R.from_json({"format": R.FORMAT, "version": R.VERSION, "steps": STEPS})
    t0 = time.perf_counter()
    fitted = R.fit(con, recipe, "bench")
    fit_s = time.perf_counter() - t0
    out = settings.workspace / "bench_features.parquet"
    rows = []
    first, med = timed(lambda: rows.append(materialize.apply_to_file(settings, catalog, fitted, "bench", out)),
                         repeat)
    columns = len(R.compile_recipe(con, fitted, R.source_sql("bench")).columns)
    return {"first_s": first, "s": med, "fit_s": fit_s, "rows": rows[-1], "columns": columns,
            "peak_rss_mib": peak_rss_mib(), "out_gib": out.stat().st_size / 2**30,
            "memory_limit": settings.memory_limit}


WORKERS = {"duckdb_copy": worker_copy, "quarry_recipe": worker_quarry}


def main() -> None:
    args = arguments(__doc__, WORKERS, rows=20_000_000, repeat=2)
    if args is None:
        return
    path = transactions_file(args.rows)
    with workspace_env() as env:
        results = run_all(__file__, WORKERS, path, args.repeat, env)
    copy, ours = results["duckdb_copy"].get("s"), results["quarry_recipe"].get("s")
    figures = {"date": time.strftime("%Y-%m-%d"),
               "machine": machine(),
               "rows": args.rows, "steps": len(STEPS), "results": results,
               "recipe_over_copy": ours / copy if ours and copy else None}
    print(f"{args.rows:,} rows, a {len(STEPS)}-step recipe (median seconds)")
    for name, r in results.items():
        print(f"{name:<16}" + (f"{r['s']:8.2f} s  peak RSS {r['peak_rss_mib']:6.0f} MiB" if "s" in r else r["error"]))
    if figures["recipe_over_copy"]:
        print(f"recipe / raw copy: {figures['recipe_over_copy']:.2f}x "
              f"(fitting, apart: {results['quarry_recipe']['fit_s']:.1f} s)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

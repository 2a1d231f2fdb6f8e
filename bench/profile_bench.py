"""Benchmark: Quarry's profile vs a raw DuckDB scan, DuckDB SUMMARIZE and Polars describe(), same run.

Each system runs in a process of its own, so each peak RSS is its own. The raw scan is one
aggregate query touching every column once (max of each); it is the floor any profile pays.
Quarry's profile is also run with a 1 GB DuckDB memory limit, on data whose decompressed size
is larger than that, to show it completes out of core.

    python bench/profile_bench.py [--rows 20000000] [--repeat 2]

Human-readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import arguments, peak_rss_mib, run_worker, transactions_file  # noqa: E402


def _best(fn, repeat: int) -> tuple[float, float]:
    """(first run, median of all runs) in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times)


def worker_raw(path: str, repeat: int) -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
    cols = [r[0] for r in con.execute("DESCRIBE t").fetchall()]
    sql = "SELECT " + ", ".join(f'max("{c}")' for c in cols) + " FROM t"
    first, med = _best(lambda: con.execute(sql).fetchall(), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib()}


def worker_summarize(path: str, repeat: int) -> dict:
    import duckdb

    con = duckdb.connect()
    first, med = _best(lambda: con.execute(f"SUMMARIZE SELECT * FROM read_parquet('{path}')").fetchall(), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib()}


def worker_polars(path: str, repeat: int) -> dict:
    import polars as pl

    first, med = _best(lambda: pl.scan_parquet(path).describe(), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib(), "version": pl.__version__}


def worker_quarry(path: str, repeat: int) -> dict:
    from core import catalog as cat
    from core import engine, profile
    from core.settings import load_settings

    settings = load_settings()
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), path, name="bench", replace=True)
    first, med = _best(lambda: profile.profile_table(con, "bench"), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib(), "memory_limit": settings.memory_limit}


WORKERS = {"raw_scan": worker_raw, "quarry": worker_quarry, "duckdb_summarize": worker_summarize,
           "polars_describe": worker_polars}


def main() -> None:
    args = arguments(__doc__, WORKERS, rows=20_000_000, repeat=2)
    if args is None:
        return

    path = transactions_file(args.rows)
    with tempfile.TemporaryDirectory() as ws:
        env = {**os.environ, "QUARRY_WORKSPACE": ws}
        results = {name: run_worker(__file__, name, str(path), args.repeat, env) for name in WORKERS}
        capped_env = {**env, "QUARRY_MEMORY_LIMIT": "1GB"}
        results["quarry_1gb"] = run_worker(__file__, "quarry", str(path), 1, capped_env)
    raw = results["raw_scan"].get("s")
    figures = {"date": time.strftime("%Y-%m-%d"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "rows": args.rows, "file_gib": round(path.stat().st_size / 2**30, 3), "results": results,
               "ratio_vs_raw_scan": {k: (v.get("s") / raw if raw and v.get("s") else None)
                                     for k, v in results.items()}}
    print(f"{args.rows:,} rows, {figures['file_gib']} GiB Parquet (median seconds; ratio to the raw scan)")
    for name, r in results.items():
        ratio = figures["ratio_vs_raw_scan"][name]
        shown = f"{r['s']:8.2f} s  {ratio:5.2f}x  peak RSS {r['peak_rss_mib']:6.0f} MiB" if "s" in r else r["error"]
        print(f"{name:<18}{shown}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

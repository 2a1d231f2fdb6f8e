"""Benchmark: Quarry's profile vs a raw DuckDB scan, DuckDB SUMMARIZE, Polars describe() and ydata-profiling.

Each system runs in a process of its own, so each peak RSS is its own. The raw scan is one
aggregate query touching every column once (max of each); it is the floor any profile pays.
Quarry's profile is also run with a 512 MB DuckDB memory limit, on data whose decompressed size
is larger than that, to show it completes out of core. ydata-profiling (minimal mode, in a
virtualenv of its own: bench/ydata_peer.py) runs on the first 1M rows, as does Quarry for that row.

    python bench/profile_bench.py [--rows 20000000] [--repeat 2] [--no-ydata]

Human-readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    arguments,
    machine,
    peak_rss_mib,
    run_all,
    run_worker,
    timed,
    transactions_file,
    workspace_env,
)


def worker_raw(path: str, repeat: int) -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
    cols = [r[0] for r in con.execute("DESCRIBE t").fetchall()]
    sql = "SELECT " + ", ".join(f'max("{c}")' for c in cols) + " FROM t"
    first, med = timed(lambda: con.execute(sql).fetchall(), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib()}


def worker_summarize(path: str, repeat: int) -> dict:
    import duckdb

    con = duckdb.connect()
    first, med = timed(lambda: con.execute(f"SUMMARIZE SELECT * FROM read_parquet('{path}')").fetchall(), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib()}


def worker_polars(path: str, repeat: int) -> dict:
    import polars as pl

    first, med = timed(lambda: pl.scan_parquet(path).describe(), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib(), "version": pl.__version__}


def worker_quarry(path: str, repeat: int) -> dict:
    from core import catalog as cat
    from core import engine, profile
    from core.settings import load_settings

    settings = load_settings()
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), path, name="bench", replace=True)
    first, med = timed(lambda: profile.profile_table(con, "bench"), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib(), "memory_limit": settings.memory_limit}


WORKERS = {"raw_scan": worker_raw, "quarry": worker_quarry, "duckdb_summarize": worker_summarize,
           "polars_describe": worker_polars}
YDATA_ROWS = 1_000_000
CAP = "512MB"  # below the 20M-row file's decompressed size (0.89 GiB): the profile must spill or stream


def _slice(path: Path, rows: int) -> Path:
    """The first `rows` rows of the bench file as a file of their own (what ydata-profiling reads)."""
    import duckdb

    out = path.with_name(f"{path.stem}_first_{rows}.parquet")
    if not out.exists():
        duckdb.sql(f"COPY (SELECT * FROM read_parquet('{path}') LIMIT {rows}) TO '{out}' (FORMAT parquet)")
    return out


def _decompressed_gib(path: Path) -> float:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)) / 2**30


def main() -> None:
    ydata = "--no-ydata" not in sys.argv
    if not ydata:
        sys.argv.remove("--no-ydata")
    args = arguments(__doc__, WORKERS, rows=20_000_000, repeat=2)
    if args is None:
        return

    path = transactions_file(args.rows)
    with workspace_env() as env:
        results = run_all(__file__, WORKERS, path, args.repeat, env)
        capped_env = {**env, "QUARRY_MEMORY_LIMIT": CAP}
        results["quarry_capped"] = run_worker(__file__, "quarry", str(path), 1, capped_env)
        if ydata:
            from bench.ydata_peer import measure

            first = _slice(path, YDATA_ROWS)
            results["quarry_1m"] = run_worker(__file__, "quarry", str(first), args.repeat, env)
            peer = measure(first, YDATA_ROWS)
            results["ydata_minimal_1m"] = ({"s": peer["seconds"], "peak_rss_mib": peer["peak_rss_mib"], **peer}
                                           if "seconds" in peer else {"error": peer.get("skipped", str(peer))})
    raw = results["raw_scan"].get("s")
    figures = {"date": time.strftime("%Y-%m-%d"),
               "machine": machine(),
               "rows": args.rows, "file_gib": round(path.stat().st_size / 2**30, 3),
               "decompressed_gib": round(_decompressed_gib(path), 3), "results": results,
               "ratio_vs_raw_scan": {k: (v.get("s") / raw if raw and v.get("s") else None)
                                     for k, v in results.items()}}
    if results.get("ydata_minimal_1m", {}).get("s") and results.get("quarry_1m", {}).get("s"):
        figures["first_1m_rows_ydata_over_quarry"] = results["ydata_minimal_1m"]["s"] / results["quarry_1m"]["s"]
    print(f"{args.rows:,} rows, {figures['file_gib']} GiB Parquet, {figures['decompressed_gib']} GiB decompressed "
          "(median seconds; ratio to the raw scan of all rows)")
    for name, r in results.items():
        ratio = figures["ratio_vs_raw_scan"][name]
        shown = f"{r['s']:8.2f} s  {ratio:5.2f}x  peak RSS {r['peak_rss_mib']:6.0f} MiB" if "s" in r else r["error"]
        print(f"{name:<18}{shown}")
    if "first_1m_rows_ydata_over_quarry" in figures:
        print(f"first 1M rows: ydata-profiling minimal takes {figures['first_1m_rows_ydata_over_quarry']:.1f}x "
              "Quarry's profile")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Benchmark: Quarry's profile vs a raw DuckDB scan, DuckDB SUMMARIZE, Polars describe() and ydata-profiling.

Each system runs in a process of its own, so each peak RSS is its own. The raw scan is one
aggregate query touching every column once (max of each); it is the floor any profile pays.
Quarry's profile is also run with a 512 MB DuckDB memory limit, on data whose decompressed size
is larger than that, to show it completes out of core. ydata-profiling (minimal mode, in a
virtualenv of its own: bench/ydata_peer.py) runs on the first 1M rows, as does Quarry for that row.
Last, Quarry profiles 10M rows of 4 random doubles (every value distinct: the profile's hardest
case, against a raw scan that sums each column).

    python bench/profile_bench.py [--rows 20000000] [--repeat 2] [--no-ydata] [--no-floats]

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


def _raw_scan(path: str, repeat: int, aggregate: str) -> dict:
    """One query applying `aggregate` to every column of the file."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
    cols = [r[0] for r in con.execute("DESCRIBE t").fetchall()]
    sql = "SELECT " + ", ".join(f'{aggregate}("{c}")' for c in cols) + " FROM t"
    first, med = timed(lambda: con.execute(sql).fetchall(), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib()}


def worker_raw(path: str, repeat: int) -> dict:
    return _raw_scan(path, repeat, "max")


def worker_raw_sum(path: str, repeat: int) -> dict:
    """The raw scan for an all-numeric file: sum() of every column (max() would come from Parquet metadata)."""
    return _raw_scan(path, repeat, "sum")


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
    from core.data import catalog as cat
    from core.data import engine
    from core.profile import scan as profile
    from core.settings import load_settings

    settings = load_settings()
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), path, name="bench", replace=True)
    first, med = timed(lambda: profile.profile_table(con, "bench"), repeat)
    return {"first_s": first, "s": med, "peak_rss_mib": peak_rss_mib(), "memory_limit": settings.memory_limit}


MAIN = {"raw_scan": worker_raw, "quarry": worker_quarry, "duckdb_summarize": worker_summarize,
        "polars_describe": worker_polars}
WORKERS = {**MAIN, "raw_sum": worker_raw_sum}
FLOAT_ROWS = 10_000_000
YDATA_ROWS = 1_000_000
CAP = "512MB"  # below the 20M-row file's decompressed size (0.89 GiB): the profile must spill or stream


def _slice(path: Path, rows: int) -> Path:
    """The first `rows` rows of the bench file as a file of their own (what ydata-profiling reads)."""
    import duckdb

    out = path.with_name(f"{path.stem}_first_{rows}.parquet")
    if not out.exists():
        duckdb.sql(f"COPY (SELECT * FROM read_parquet('{path}') LIMIT {rows}) TO '{out}' (FORMAT parquet)")
    return out


def _floats_file() -> Path:
    """data/bench/floats_10000000.parquet: 4 columns of random doubles (uniform, log-uniform, centred, shifted)."""
    import duckdb

    out = REPO / "data" / "bench" / f"floats_{FLOAT_ROWS}.parquet"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        con.execute("SELECT setseed(0.42)")
        con.execute(f"COPY (SELECT random() * 1000 AS a, exp(random() * 10) AS b, random() - 0.5 AS c, "
                    f"random() * 100 - 20 AS d FROM range({FLOAT_ROWS})) TO '{out}' (FORMAT parquet)")
    return out


def _decompressed_gib(path: Path) -> float:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)) / 2**30


def main() -> None:
    ydata, floats = "--no-ydata" not in sys.argv, "--no-floats" not in sys.argv
    sys.argv = [a for a in sys.argv if a not in ("--no-ydata", "--no-floats")]
    args = arguments(__doc__, WORKERS, rows=20_000_000, repeat=2)
    if args is None:
        return

    path = transactions_file(args.rows)
    with workspace_env() as env:
        results = run_all(__file__, MAIN, path, args.repeat, env)
        capped_env = {**env, "QUARRY_MEMORY_LIMIT": CAP}
        results["quarry_capped"] = run_worker(__file__, "quarry", str(path), 1, capped_env)
        if ydata:
            from bench.ydata_peer import measure

            first = _slice(path, YDATA_ROWS)
            results["quarry_1m"] = run_worker(__file__, "quarry", str(first), args.repeat, env)
            peer = measure(first, YDATA_ROWS)
            results["ydata_minimal_1m"] = ({"s": peer["seconds"], "peak_rss_mib": peer["peak_rss_mib"], **peer}
                                           if "seconds" in peer else {"error": peer.get("skipped", str(peer))})
        if floats:
            many = _floats_file()
            results["floats_raw_sum"] = run_worker(__file__, "raw_sum", str(many), args.repeat, env)
            results["floats_quarry"] = run_worker(__file__, "quarry", str(many), args.repeat, env)
    raw = results["raw_scan"].get("s")
    figures = {"date": time.strftime("%Y-%m-%d"),
               "machine": machine(),
               "rows": args.rows, "file_gib": round(path.stat().st_size / 2**30, 3),
               "decompressed_gib": round(_decompressed_gib(path), 3), "results": results,
               "ratio_vs_raw_scan": {k: (v.get("s") / raw if raw and v.get("s") and not k.startswith("floats_")
                                         else None) for k, v in results.items()}}
    if results.get("floats_quarry", {}).get("s") and results.get("floats_raw_sum", {}).get("s"):
        figures["floats_quarry_over_raw_sum"] = results["floats_quarry"]["s"] / results["floats_raw_sum"]["s"]
    if results.get("ydata_minimal_1m", {}).get("s") and results.get("quarry_1m", {}).get("s"):
        figures["first_1m_rows_ydata_over_quarry"] = results["ydata_minimal_1m"]["s"] / results["quarry_1m"]["s"]
    print(f"{args.rows:,} rows, {figures['file_gib']} GiB Parquet, {figures['decompressed_gib']} GiB decompressed "
          "(median seconds; ratio to the raw scan of all rows)")
    for name, r in results.items():
        ratio = figures["ratio_vs_raw_scan"][name]
        times = f"{ratio:5.2f}x" if ratio is not None else "     "
        shown = f"{r['s']:8.2f} s  {times}  peak RSS {r['peak_rss_mib']:6.0f} MiB" if "s" in r else r["error"]
        print(f"{name:<18}{shown}")
    if "first_1m_rows_ydata_over_quarry" in figures:
        print(f"first 1M rows: ydata-profiling minimal takes {figures['first_1m_rows_ydata_over_quarry']:.1f}x "
              "Quarry's profile")
    if "floats_quarry_over_raw_sum" in figures:
        print(f"{FLOAT_ROWS:,} rows x 4 random doubles: Quarry's profile takes "
              f"{figures['floats_quarry_over_raw_sum']:.1f}x a raw scan summing each column (floats_* lines)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Benchmark: open a 100M-row dataset and fetch pages, Quarry vs raw DuckDB vs Polars, same run.

Each system runs in a process of its own, so each one's peak RSS is its own. Quarry's worker
does what the Data page does (register, schema + row count + first page, then sorted and
filtered pages) through core/, with the app's settings. The peers run the same questions
directly: DuckDB on a plain connection, Polars with lazy scans.

    python bench/open_bench.py [--rows 100000000] [--repeat 3]

Human-readable lines first; the last line is one JSON object with every figure.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import arguments, machine, peak_rss_mib, run_all, transactions_file, workspace_env  # noqa: E402

# The questions, as the Data page asks them.
SORT = ("amount", True)
WHERE = "merchant_category = 'jewelry' AND amount > 500"
DEEP_OFFSET = 10_000_000
PAGE = 50


def _timed(fn, repeat: int) -> tuple[float, float, object]:
    """(first run seconds, median of the rest, last result)."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    rest = times[1:] or times
    return times[0], statistics.median(rest), result


def worker_quarry(path: str, repeat: int) -> dict:
    from core.data import catalog as cat
    from core.data import engine
    from core.settings import load_settings

    settings = load_settings()
    out: dict = {"memory_limit": settings.memory_limit, "threads": settings.threads}
    con = engine.connect(settings)
    catalog = cat.Catalog(settings)
    t0 = time.perf_counter()
    dataset = cat.register(con, catalog, path, name="bench", replace=True)
    out["register_s"] = time.perf_counter() - t0

    # As the Data page does: the row count comes with the schema, and a filter's count is taken
    # once per filter (it does not change with the sort or the page).
    def open_dataset():
        info = cat.describe(con, dataset, settings)
        page = engine.preview(con, "bench", limit=PAGE, total=info.rows)
        return info.rows, page.table.num_rows

    out["open_first_s"], out["open_s"], (rows, _) = _timed(open_dataset, repeat)
    out["rows"] = rows
    sort_col, desc = SORT
    filtered_rows = engine.count_rows_where(con, "bench", WHERE)
    for name, kwargs in {
        "sorted": {"order_by": sort_col, "descending": desc, "total": rows},
        "filtered": {"where": WHERE},  # a new filter: counted, then its first page
        "filtered_sorted": {"where": WHERE, "order_by": sort_col, "descending": desc, "total": filtered_rows},
        "filtered_sorted_new_filter": {"where": WHERE, "order_by": sort_col, "descending": desc},
        "deep": {"offset": DEEP_OFFSET, "total": rows},
    }.items():
        first, med, page = _timed(lambda kw=kwargs: engine.preview(con, "bench", limit=PAGE, **kw), repeat)
        out[f"{name}_first_s"], out[f"{name}_s"] = first, med
        out[f"{name}_total_rows"] = page.total_rows
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def worker_duckdb(path: str, repeat: int) -> dict:
    import duckdb

    con = duckdb.connect()
    src = f"read_parquet('{path}')"
    sort_col, desc = SORT
    order = f"ORDER BY {sort_col} {'DESC' if desc else 'ASC'} NULLS LAST"
    queries = {
        "open": lambda: (con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall(),
                         con.execute(f"SELECT count(*) FROM {src}").fetchall(),
                         con.sql(f"SELECT * FROM {src} LIMIT {PAGE}").to_arrow_table()),
        "sorted": lambda: con.sql(f"SELECT * FROM {src} {order} LIMIT {PAGE}").to_arrow_table(),
        "filtered": lambda: (con.execute(f"SELECT count(*) FROM {src} WHERE {WHERE}").fetchall(),
                             con.sql(f"SELECT * FROM {src} WHERE {WHERE} LIMIT {PAGE}").to_arrow_table()),
        "filtered_sorted": lambda: con.sql(f"SELECT * FROM {src} WHERE {WHERE} {order} LIMIT {PAGE}").to_arrow_table(),
        "filtered_sorted_new_filter": lambda: (
            con.execute(f"SELECT count(*) FROM {src} WHERE {WHERE}").fetchall(),
            con.sql(f"SELECT * FROM {src} WHERE {WHERE} {order} LIMIT {PAGE}").to_arrow_table()),
        "deep": lambda: con.sql(f"SELECT * FROM {src} LIMIT {PAGE} OFFSET {DEEP_OFFSET}").to_arrow_table(),
    }
    out: dict = {}
    for name, fn in queries.items():
        out[f"{name}_first_s"], out[f"{name}_s"], _ = _timed(fn, repeat)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def worker_polars(path: str, repeat: int) -> dict:
    import polars as pl

    lf = pl.scan_parquet(path)
    sort_col, desc = SORT
    cond = (pl.col("merchant_category") == "jewelry") & (pl.col("amount") > 500)
    queries = {
        "open": lambda: (lf.collect_schema(), lf.select(pl.len()).collect(), lf.head(PAGE).collect()),
        "sorted": lambda: lf.sort(sort_col, descending=desc, nulls_last=True).head(PAGE).collect(),
        "filtered": lambda: (lf.filter(cond).select(pl.len()).collect(), lf.filter(cond).head(PAGE).collect()),
        "filtered_sorted": lambda: lf.filter(cond).sort(sort_col, descending=desc, nulls_last=True)
        .head(PAGE).collect(),
        "filtered_sorted_new_filter": lambda: (lf.filter(cond).select(pl.len()).collect(),
                                               lf.filter(cond).sort(sort_col, descending=desc, nulls_last=True)
                                               .head(PAGE).collect()),
        "deep": lambda: lf.slice(DEEP_OFFSET, PAGE).collect(),
    }
    out: dict = {"version": pl.__version__}
    for name, fn in queries.items():
        out[f"{name}_first_s"], out[f"{name}_s"], _ = _timed(fn, repeat)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


WORKERS = {"quarry": worker_quarry, "duckdb": worker_duckdb, "polars": worker_polars}


def main() -> None:
    args = arguments(__doc__, WORKERS, rows=100_000_000, repeat=3)
    if args is None:
        return

    path = transactions_file(args.rows)
    with workspace_env() as env:
        results = run_all(__file__, WORKERS, path, args.repeat, env)
    q, d, p = results["quarry"], results["duckdb"], results["polars"]
    figures = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "rows": args.rows, "file_gib": round(path.stat().st_size / 2**30, 3), "repeat": args.repeat,
        "quarry": q, "duckdb": d, "polars": p, "ratios": {},
    }
    print(f"{args.rows:,} rows, {figures['file_gib']} GiB Parquet; seconds (median of warm runs)")
    print(f"{'step':<28}{'quarry':>10}{'duckdb':>10}{'polars':>10}{'q/duckdb':>10}{'q/polars':>10}")
    for step in ("open", "sorted", "filtered", "filtered_sorted", "filtered_sorted_new_filter", "deep"):
        key = f"{step}_s"
        qv, dv, pv = q.get(key), d.get(key), p.get(key)
        r_d = qv / dv if qv and dv else None
        r_p = qv / pv if qv and pv else None
        figures["ratios"][step] = {"vs_duckdb": r_d, "vs_polars": r_p}
        fmt = lambda v: f"{v:10.3f}" if isinstance(v, float) else f"{'-':>10}"  # noqa: E731
        print(f"{step:<28}{fmt(qv)}{fmt(dv)}{fmt(pv)}{fmt(r_d)}{fmt(r_p)}")
    print(f"peak RSS MiB: quarry {q.get('peak_rss_mib', 0):.0f}, duckdb {d.get('peak_rss_mib', 0):.0f}, "
          f"polars {p.get('peak_rss_mib', 0):.0f}")
    targets = {"open_under_1s": q.get("open_s", 99) < 1, "sorted_under_1s": q.get("sorted_s", 99) < 1,
               "filtered_under_1s": q.get("filtered_s", 99) < 1,
               "filtered_sorted_under_1s": q.get("filtered_sorted_s", 99) < 1,
               "rss_under_1gib": q.get("peak_rss_mib", 1e9) < 1024}
    figures["targets"] = targets
    print("targets: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in targets.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

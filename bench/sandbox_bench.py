"""User SQL in its confined process vs the same query on an in-process DuckDB connection (same run, same data).

Prints per-query medians for a small query (the cost of the process boundary) and for a full scan of the
demo flights (the cost on real work), and the confined run's spill to disk under a small memory limit. JSON last.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import catalog as cat  # noqa: E402
from core.data import (
    engine,
    sandbox,  # noqa: E402
)
from core.settings import load_settings  # noqa: E402

QUERIES = {
    "tiny": "SELECT 42 AS answer",
    "page": "SELECT * FROM flights LIMIT 50",
    "group": "SELECT origin, dest, count(*) AS n, avg(arr_delay) AS d FROM flights GROUP BY ALL ORDER BY n DESC",
    "sort": "SELECT * FROM flights ORDER BY tailnum, time_hour",
}


def _median(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    settings = load_settings()
    con = engine.connect(settings)
    catalog = cat.Catalog(settings)
    cat.sync_views(con, catalog.list())
    if "flights" not in catalog.names():
        sys.exit("run `python -m core demo` first")
    out = {}
    sandbox.run_query(catalog, "SELECT 1")  # the fork server starts once per process
    for name, sql in QUERIES.items():
        inproc = _median(lambda q=sql: (con.sql(q).limit(50).to_arrow_table(), con.sql(q).aggregate("count(*)")
                                        .fetchall()))
        boxed = _median(lambda q=sql: sandbox.run_query(catalog, q, limit=50))
        out[name] = {"in_process_s": round(inproc, 4), "sandboxed_s": round(boxed, 4),
                     "overhead_s": round(boxed - inproc, 4)}
        print(f"{name:6s} in-process {inproc * 1000:8.1f} ms  sandboxed {boxed * 1000:8.1f} ms  "
              f"overhead {1000 * (boxed - inproc):7.1f} ms")
    # Spilling: a sort bigger than a 200 MB limit still completes in the confined process.
    os.environ["QUARRY_SQL_MEMORY_LIMIT"] = "200MB"
    small = cat.Catalog(load_settings())
    t = time.perf_counter()
    page = sandbox.run_query(small, "SELECT * FROM flights ORDER BY tailnum, time_hour DESC", offset=300_000, limit=5)
    out["spill_sort_200MB_s"] = round(time.perf_counter() - t, 3)
    print(f"sort of {page.total_rows:,} rows under a 200 MB limit (spills): {out['spill_sort_200MB_s']:.2f} s")
    print(json.dumps(out))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()

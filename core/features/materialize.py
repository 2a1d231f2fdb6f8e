"""Apply a fitted recipe to a whole dataset and write the result as Parquet, out of core, with progress.

DuckDB runs the recipe's one query and writes the file itself (``COPY ... TO``, in parallel,
spilling when needed) on a connection of its own that reports its progress, so a page can show
a bar while the work runs in DuckDB's threads. The file appears only when complete (a temporary
name, then a rename); a dataset is registered only after that.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import duckdb

from core.atomic import atomic_path
from core.data import engine
from core.data.catalog import Catalog, Dataset, new_dataset_path, register_written, sync_views
from core.data.engine import quote_literal
from core.errors import QuarryError
from core.features import recipe as R
from core.settings import Settings


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(r.resolve()) for r in roots)


def apply_to_file(settings: Settings, catalog: Catalog, recipe: R.Recipe, dataset: str, out: Path, *,
                  progress: Callable[[float], None] | None = None) -> int:
    """Write `recipe` applied to every row of `dataset` to the Parquet file `out`; the rows written.

    Parameters
    ----------
    out
        Any writable path ending in .parquet. Under the data roots or the workspace DuckDB writes it
        directly; elsewhere (a CLI ``--out``) batches are streamed to it from Python.
    progress
        Called with the share done (0 to 1) a few times a second while DuckDB works.
    """
    out = Path(out).expanduser().resolve()
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise QuarryError(f"The output file must end in .parquet. Got {out.name}.", "Name it e.g. features.parquet.")
    if not out.parent.is_dir():
        raise QuarryError(f"The folder {out.parent} does not exist.", "Create it first or pick another path.")
    con = engine.connect(settings, progress=True)
    try:
        sync_views(con, catalog.list())
        compiled = R.compile_recipe(con, recipe, R.source_sql(dataset))
        try:
            with atomic_path(out) as tmp:
                if _inside(out, settings.readable_roots):
                    rows = _copy(con, compiled, tmp, progress)
                else:
                    total = engine.count_rows(con.table(engine.quote_ident(dataset))) if progress else 0
                    rows = _stream(con, compiled, tmp, progress, total)
        except duckdb.Error as exc:
            raise engine.translate(exc, "Applying the recipe") from None
    finally:
        con.close()
    if progress:
        progress(1.0)
    return rows


def _copy(con: duckdb.DuckDBPyConnection, compiled: R.Compiled, tmp: Path,
          progress: Callable[[float], None] | None) -> int:
    """DuckDB writes the file in a thread of its own; this thread reports its progress meanwhile
    (so `progress` runs in the caller's thread: a Streamlit page can draw from it)."""
    result: dict = {}

    def work() -> None:
        try:
            con.execute(f"COPY ({compiled.sql}) TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)",
                        compiled.params)
            result["rows"] = int(con.fetchall()[0][0])
        except BaseException as exc:  # handed to the caller below
            result["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.25)
            share = con.query_progress()
            if progress and share >= 0:
                progress(min(share / 100, 0.99))
    except BaseException:
        con.interrupt()  # the caller was stopped (a cancel): stop DuckDB too
        worker.join()
        raise
    if "error" in result:
        raise result["error"]
    return result["rows"]


def _stream(con: duckdb.DuckDBPyConnection, compiled: R.Compiled, tmp: Path,
            progress: Callable[[float], None] | None, total: int) -> int:
    """Stream Arrow batches to a file outside DuckDB's allowed folders (progress: rows out of the input's)."""
    import pyarrow.parquet as pq

    reader = con.sql(compiled.sql, params=compiled.params).to_arrow_reader(batch_size=1 << 17)
    rows = 0
    with pq.ParquetWriter(tmp, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
            if progress and total:
                progress(min(rows / total, 0.99))
    return rows


def save_as_dataset(settings: Settings, con: duckdb.DuckDBPyConnection, catalog: Catalog, recipe: R.Recipe,
                    dataset: str, name: str, *, progress: Callable[[float], None] | None = None) -> Dataset:
    """Apply the recipe to `dataset`, write the result to the workspace and register it as `name`."""
    final = new_dataset_path(catalog, name)
    apply_to_file(settings, catalog, recipe, dataset, final, progress=progress)
    return register_written(con, catalog, final, name)

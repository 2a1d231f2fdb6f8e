"""User SQL: one SELECT over registered datasets, checked before it runs and stopped at a time limit.

Two layers. DuckDB itself is locked down (see core.engine.connect): no files outside the data
roots, no extensions, no configuration changes. On top, a statement-type check refuses anything
but a single SELECT, so each refusal gets a message that says why, before anything runs.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.catalog import Catalog, Dataset, new_dataset_path, register_written
from core.engine import Page, check_page_args, count_rows, translate, with_time_limit
from core.errors import QueryError, QueryRefused
from core.settings import Settings

ST = duckdb.StatementType
# Why each kind is refused, in the user's words.
REFUSALS: dict[object, str] = {
    ST.INSERT: "writes data", ST.UPDATE: "writes data", ST.DELETE: "writes data", ST.MERGE_INTO: "writes data",
    ST.CREATE: "creates objects", ST.CREATE_FUNC: "creates objects", ST.DROP: "drops objects",
    ST.ALTER: "changes objects", ST.COPY: "copies data to or from files", ST.EXPORT: "exports the database",
    ST.COPY_DATABASE: "copies the database", ST.ATTACH: "attaches another database", ST.DETACH: "detaches a database",
    ST.LOAD: "loads an extension", ST.EXTENSION: "installs an extension", ST.SET: "changes settings",
    ST.VARIABLE_SET: "changes settings", ST.PRAGMA: "runs a PRAGMA", ST.CALL: "calls a procedure",
    ST.TRANSACTION: "controls transactions", ST.VACUUM: "vacuums", ST.PREPARE: "prepares statements",
    ST.EXECUTE: "executes prepared statements", ST.ANALYZE: "analyzes tables",
}


def example_query(table: str) -> str:
    """The query the SQL page starts with (dataset names are plain identifiers, see catalog.NAME_RE)."""
    return f"SELECT *\nFROM {table}\nLIMIT 1000"


def check_select(sql: str) -> str:
    """Return the single SELECT statement in `sql`, or raise a message saying why it is refused."""
    if not sql.strip():
        raise QueryError("There is no SQL to run.", "Write a SELECT query, e.g. SELECT * FROM flights LIMIT 10.")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise translate(exc, "The query") from None
    if not statements:
        raise QueryError("There is no SQL to run (only comments).", "Write a SELECT query.")
    if len(statements) > 1:
        raise QueryRefused(f"Only one statement can run at a time; this text has {len(statements)}.",
                           "Remove the extra statements (check for a ';' in the middle).")
    kind = statements[0].type
    if kind != ST.SELECT:
        why = REFUSALS.get(kind, "is not a query")
        keyword = statements[0].query.split(None, 1)[0].upper()
        raise QueryRefused(f"{keyword} statements are not allowed here: this one {why}.",
                           "The SQL page only reads data: write a SELECT. To keep a result, use "
                           "'Save as dataset'.")
    return sql.strip().rstrip(";")


@dataclass(frozen=True)
class QueryPage(Page):
    """A page of a user query's result."""

    sql: str = ""


def run_query(con: duckdb.DuckDBPyConnection, sql: str, settings: Settings, *, offset: int = 0,
              limit: int = 50) -> QueryPage:
    """Run a user SELECT under the sandbox and time limit; return one page and the total row count.

    Parameters
    ----------
    sql
        One SELECT; registered datasets are its tables.
    offset, limit
        The page of the result to return (0-based offset, at most 1,000 rows).
    """
    query = check_select(sql)
    check_page_args(offset, limit)
    started = time.perf_counter()

    def run(cur: duckdb.DuckDBPyConnection) -> tuple[pa.Table, int]:
        page = cur.sql(query).limit(limit, offset).to_arrow_table()
        return page, count_rows(cur.sql(without_order_by(cur, query)))

    table, total = with_time_limit(con, settings.sql_time_limit_s, "The query", run)
    return QueryPage(table, total, offset, limit, time.perf_counter() - started, query)


def without_order_by(cur: duckdb.DuckDBPyConnection, query: str) -> str:
    """The query without its outermost ORDER BY, for counting its rows.

    The row count does not depend on the order (a LIMIT/OFFSET is kept), and DuckDB would
    otherwise sort the whole result just to count it. The edit is made on DuckDB's own parse
    tree (json_serialize_sql), never on the text; anything unexpected keeps the query as it is.
    """
    try:
        tree = json.loads(cur.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
        node = tree["statements"][0]["node"]
        kept = [m for m in node["modifiers"] if m["type"] != "ORDER_MODIFIER"]
        if tree.get("error") or len(kept) == len(node["modifiers"]):
            return query
        node["modifiers"] = kept
        return cur.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
    except (duckdb.Error, KeyError, IndexError, TypeError, ValueError):
        return query


def _reader(cur: duckdb.DuckDBPyConnection, query: str, batch_rows: int = 100_000) -> pa.RecordBatchReader:
    return cur.sql(query).to_arrow_reader(batch_rows)


def export_query(con: duckdb.DuckDBPyConnection, sql: str, settings: Settings, fmt: str) -> tuple[bytes, int]:
    """The result as CSV or Parquet bytes for a download, refused past QUARRY_DOWNLOAD_MAX_ROWS rows."""
    query = check_select(sql)
    if fmt not in ("csv", "parquet"):
        raise QueryError(f"Downloads are CSV or Parquet. Got {fmt!r}.", "Pick csv or parquet.")
    cap = settings.download_max_rows

    def run(cur: duckdb.DuckDBPyConnection) -> pa.Table:
        return cur.sql(query).limit(cap + 1).to_arrow_table()

    table = with_time_limit(con, settings.sql_time_limit_s, "The query", run)
    if table.num_rows > cap:
        raise QueryError(f"The result has more than {cap:,} rows, too many to download from the browser.",
                         "Save it as a dataset, or use the CLI: python -m core sql \"...\" --out result.parquet "
                         "(the limit is QUARRY_DOWNLOAD_MAX_ROWS).")
    buf = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, buf)
    else:
        pq.write_table(table, buf, compression="zstd")
    return buf.getvalue(), table.num_rows


def write_query(con: duckdb.DuckDBPyConnection, sql: str, settings: Settings, out: Path) -> int:
    """Stream a query's result to a Parquet file anywhere the user can write (CLI ``--out``).

    Batches are streamed from DuckDB to the file, so a result larger than memory is fine. The
    file appears only when complete (temporary file, then rename).
    """
    query = check_select(sql)
    out = Path(out).expanduser().resolve()
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise QueryError(f"The output file must end in .parquet. Got {out.name}.", "Name it e.g. result.parquet.")
    if not out.parent.is_dir():
        raise QueryError(f"The folder {out.parent} does not exist.", "Create it first or pick another output path.")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}-", suffix=".tmp")
    os.close(fd)

    def run(cur: duckdb.DuckDBPyConnection) -> int:
        reader = _reader(cur, query)
        rows = 0
        with pq.ParquetWriter(tmp, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows

    try:
        rows = with_time_limit(con, settings.sql_time_limit_s, "The query", run)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return rows


def save_as_dataset(con: duckdb.DuckDBPyConnection, catalog: Catalog, sql: str, name: str) -> Dataset:
    """Materialise a query's result to Parquet in the workspace and register it as a dataset.

    DuckDB writes the file itself (in parallel, spilling if needed) to a temporary name in the
    workspace; it is renamed into place and registered only when complete.
    """
    query = check_select(sql)
    final = new_dataset_path(catalog, name, QueryError)
    settings = catalog.settings
    tmp = settings.datasets_dir / f".{name}.parquet.tmp"
    try:
        with_time_limit(con, settings.sql_time_limit_s, "The query",
                        lambda cur: cur.sql(query).write_parquet(str(tmp), compression="zstd"))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return register_written(con, catalog, final, name)

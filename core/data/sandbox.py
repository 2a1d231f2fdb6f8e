"""User SQL: one SELECT over registered datasets, checked on its parse tree and run where it cannot harm.

Two layers. The text is checked before anything runs: one statement, a SELECT (the statement type),
and then every node of DuckDB's parse tree (core.sqlcheck: no COPY or other write in any CTE or
subquery, no file-reading or SQL-running table functions, no settings or side-effecting functions),
so each refusal gets a message that says why. Then it runs in a process of its own
(core.sqlworker) that cannot write files, is killed at the time limit and at a memory cap, and
reads only the registered datasets. Quarry's own writes (saving a result as a dataset, the CLI's
``--out``) are made here, by this process, from the Arrow batches the child streams back.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core import atomic
from core.data import sqlcheck, sqlworker
from core.data.catalog import Catalog, Dataset, new_dataset_path, register_written
from core.data.engine import Page, check_page_args, translate
from core.errors import QueryError, QueryRefused

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


def check_select(sql: str, tables: set[str] | frozenset[str] = frozenset()) -> str:
    """Return the single SELECT statement in `sql` over the datasets `tables`, or raise a message saying why it is
    refused."""
    return _check(sql, tables)[0]


def _check(sql: str, tables: set[str] | frozenset[str]) -> tuple[str, dict]:
    """check_select's statement and its parse tree (parsed once: the tables it reads come from the same tree)."""
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
    query = sql.strip().rstrip(";")
    return query, sqlcheck.check_query(query, tables)


def _datasets(catalog: Catalog, extra: tuple[Dataset, ...] = ()) -> dict[str, Dataset]:
    """The datasets user SQL may name (the catalog, read once, and `extra` ones, e.g. a path the CLI was given)."""
    return {d.name: d for d in (*catalog.list(), *extra)}


def _box(catalog: Catalog, datasets: dict[str, Dataset]) -> sqlworker.Box:
    return sqlworker.Box.of(catalog.settings, tuple((d.name, d.scan_sql()) for d in datasets.values()))


@dataclass(frozen=True)
class _Checked:
    """A user SELECT checked against the catalog: its text, the datasets it reads, the sandbox to run it in."""

    query: str
    tables: list[str]
    box: sqlworker.Box


def _checked(catalog: Catalog, sql: str) -> _Checked:
    datasets = _datasets(catalog)
    query, tree = _check(sql, set(datasets))
    return _Checked(query, sorted(sqlcheck.tables(tree)), _box(catalog, datasets))


def box(catalog: Catalog, extra: tuple[Dataset, ...] = ()) -> sqlworker.Box:
    """The sandbox a user query of this catalog runs in: its datasets' scans (and `extra` ones, e.g. a path
    the CLI was given), the settings' limits."""
    return _box(catalog, _datasets(catalog, extra))


@dataclass(frozen=True)
class QueryPage(Page):
    """A page of a user query's result."""

    sql: str = ""


def run_query(catalog: Catalog, sql: str, *, offset: int = 0, limit: int = 50) -> QueryPage:
    """Run a user SELECT in the sandbox under its limits; return one page and the total row count.

    Parameters
    ----------
    sql
        One SELECT; registered datasets are its tables.
    offset, limit
        The page of the result to return (0-based offset, at most 1,000 rows).
    """
    checked = _checked(catalog, sql)
    check_page_args(offset, limit)
    started = time.perf_counter()
    table, header = sqlworker.table(checked.box, "page", {"sql": checked.query, "offset": offset, "limit": limit,
                                                          "tables": checked.tables})
    return QueryPage(table, int(header["total"]), offset, limit, time.perf_counter() - started, checked.query)


def export_query(catalog: Catalog, sql: str, fmt: str) -> tuple[bytes, int]:
    """The result as CSV or Parquet bytes for a download, refused past QUARRY_DOWNLOAD_MAX_ROWS rows."""
    checked = _checked(catalog, sql)
    if fmt not in ("csv", "parquet"):
        raise QueryError(f"Downloads are CSV or Parquet. Got {fmt!r}.", "Pick csv or parquet.")
    cap = catalog.settings.download_max_rows
    table, _ = sqlworker.table(checked.box, "rows", {"sql": checked.query, "cap": cap, "tables": checked.tables})
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


def _stream_to_parquet(checked: _Checked, out: Path) -> int:
    """Stream a checked query's result from the sandbox into a Parquet file that appears only when complete."""
    rows = 0
    args = {"sql": checked.query, "tables": checked.tables}
    with sqlworker.call(checked.box, "rows", args) as answer, atomic.atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, answer.reader.schema, compression="zstd") as writer:
            for batch in answer.reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def write_query(catalog: Catalog, sql: str, out: Path) -> int:
    """Stream a query's result to a Parquet file anywhere the user can write (CLI ``--out``).

    Batches are streamed from the sandbox to the file, so a result larger than memory is fine. The
    file appears only when complete (temporary file, then rename).
    """
    checked = _checked(catalog, sql)
    out = Path(out).expanduser().resolve()
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise QueryError(f"The output file must end in .parquet. Got {out.name}.", "Name it e.g. result.parquet.")
    if not out.parent.is_dir():
        raise QueryError(f"The folder {out.parent} does not exist.", "Create it first or pick another output path.")
    return _stream_to_parquet(checked, out)


def save_as_dataset(con: duckdb.DuckDBPyConnection, catalog: Catalog, sql: str, name: str) -> Dataset:
    """Materialise a query's result to Parquet in the workspace and register it as a dataset.

    The sandbox streams the rows; this process writes them to a temporary name in the workspace,
    renamed into place and registered only when complete.
    """
    checked = _checked(catalog, sql)
    final = new_dataset_path(catalog, name, QueryError)
    _stream_to_parquet(checked, final)
    return register_written(con, catalog, final, name)


def preview(catalog: Catalog, table: str, *, columns: tuple[str, ...] | list[str] | None = None, where: str = "",
            order_by: str | None = None, descending: bool = False, offset: int = 0, limit: int = 50,
            total: int | None = None, extra: tuple[Dataset, ...] = ()) -> Page:
    """A page of a dataset's rows with a user's filter, sort and projection, run in the sandbox.

    Parameters
    ----------
    table
        A registered dataset (a view name).
    where
        A boolean SQL expression over the dataset's columns (checked like a query, see core.sqlcheck).
    total
        The number of rows matching ``where`` when the caller already knows it; counted otherwise.
    """
    check_page_args(offset, limit)
    datasets = _datasets(catalog, extra)
    where = sqlcheck.check_filter(where, set(datasets)) if (where or "").strip() else ""
    started = time.perf_counter()
    args = {"table": table, "columns": list(columns or ()), "where": where, "order_by": order_by,
            "descending": descending, "offset": offset, "limit": limit, "total": total,
            "what": "The filter" if where else "The preview"}
    rows, header = sqlworker.table(_box(catalog, datasets), "preview", args, args["what"])
    return Page(rows, int(header["total"]), offset, limit, time.perf_counter() - started)


def count_rows_where(catalog: Catalog, table: str, where: str = "") -> int:
    """Rows of a dataset matching a user's filter (all rows when it is empty), counted in the sandbox."""
    datasets = _datasets(catalog)
    where = sqlcheck.check_filter(where, set(datasets)) if (where or "").strip() else ""
    what = "The filter" if where else "Counting rows"
    args = {"table": table, "where": where, "what": what}
    return int(sqlworker.value(_box(catalog, datasets), "count", args, what)["value"])


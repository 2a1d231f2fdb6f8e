"""User SQL checked on DuckDB's own parse tree, never by a pattern over the text.

DuckDB parses the text (``json_serialize_sql``) and this module walks every node of the tree:
every CTE, subquery, set operation, lateral join and function argument. Three rules:

- **Queries only.** Any query node other than SELECT, set operation or CTE is refused — a
  ``COPY ... TO`` inside a CTE parses as a ``COPY_QUERY_NODE`` under a SELECT statement (DuckDB
  reports the statement as a SELECT), so the statement type alone does not tell.
- **Table functions from an allow-list** (``TABLE_FUNCTIONS``): generators such as ``range`` and
  ``unnest``. Functions that read files (``read_parquet``, ``read_text``, ``glob``), run SQL text
  (``query``, ``query_table``, ``json_execute_serialized_sql``) or show the database's state
  (``duckdb_settings``) are refused: user SQL reads the registered datasets, by name.
- **Scalar, aggregate and window functions** must be DuckDB built-ins, minus those that read
  settings or variables or have side effects (``DENIED_FUNCTIONS``). Recipe expressions are
  stricter (``check_expression``): only deterministic scalar functions, no subquery, no ``*``.

A text DuckDB cannot serialise is refused (fail closed). The process that runs the query adds
the second layer (core.sqlworker): it cannot write a file, whatever the text.
"""
from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable, Iterator

import duckdb

from core.errors import QueryError, QueryRefused

# Query nodes a read-only query is made of; anything else (COPY_QUERY_NODE, INSERT/UPDATE nodes a future
# DuckDB may allow in CTEs) is refused.
QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
# Table functions that generate rows from their arguments and touch nothing else.
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "repeat", "repeat_row", "json_each",
                             "json_tree"})
# Built-in scalar functions user SQL may not call: settings and variables (current_setting shows the temp
# directory), sequences and logging (side effects), the session's random seed.
DENIED_FUNCTIONS = frozenset({"current_setting", "getvariable", "write_log", "nextval", "currval", "setval",
                              "setseed", "current_query"})
# Expression node classes a recipe expression may contain.
EXPRESSION_CLASSES = frozenset({"FUNCTION", "COLUMN_REF", "CONSTANT", "CAST", "COMPARISON", "CONJUNCTION",
                                "OPERATOR", "CASE", "BETWEEN", "LAMBDA", "LAMBDA_REF", "COLLATE", "TYPE"})
# Functions the parser knows that duckdb_functions() does not list.
PARSER_FUNCTIONS = frozenset({"unnest", "unlist"})
_FILE_FUNCTIONS = ("read_", "parquet_", "glob", "sniff_csv")
# Catalog functions that show the database's insides (pg_get_viewdef gives a view's definition, its file path too).
_DENIED_PREFIXES = ("pg_", "has_")
_ALLOWED_PG = frozenset({"pg_typeof"})
MAX_SQL_CHARS = 100_000  # parsing happens in Quarry's own process: a bounded text keeps it cheap


@functools.cache
def _catalog() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(every built-in non-table function, deterministic scalar functions, file-reading table functions)."""
    cur = _parser()
    try:
        rows = cur.execute("SELECT function_name, function_type, stability, has_side_effects "
                           "FROM duckdb_functions()").fetchall()
    finally:
        cur.close()
    known = frozenset(n.lower() for n, kind, _, _ in rows if kind in ("scalar", "aggregate", "macro", "window"))
    pure = frozenset(n.lower() for n, kind, stability, side in rows
                     if kind in ("scalar", "macro") and stability == "CONSISTENT" and not side)
    tables = frozenset(n.lower() for n, kind, _, _ in rows if kind in ("table", "table_macro"))
    return (known | PARSER_FUNCTIONS) - DENIED_FUNCTIONS, pure - DENIED_FUNCTIONS, tables


_PARSER: list[duckdb.DuckDBPyConnection] = []
_PARSER_LOCK = threading.Lock()


def _parser() -> duckdb.DuckDBPyConnection:
    """A cursor on this process's one empty DuckDB used only to parse (opening a database costs ~60 ms)."""
    with _PARSER_LOCK:
        if not _PARSER:
            _PARSER.append(duckdb.connect(":memory:", config={"threads": 1, "enable_external_access": False}))
        return _PARSER[0].cursor()


def parse(sql: str) -> dict:
    """DuckDB's parse tree of a SELECT (json_serialize_sql); QueryError when it does not parse."""
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused(f"The query is {len(sql):,} characters long; at most {MAX_SQL_CHARS:,} are taken.",
                           "Shorten it: select the columns you need by name, or use COLUMNS(...).")
    cur = _parser()
    try:
        doc = json.loads(cur.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except duckdb.Error as exc:
        raise QueryError(f"The query is not valid SQL: {str(exc).splitlines()[0]}",
                         "Fix the syntax near the place the message names.") from None
    finally:
        cur.close()
    if doc.get("error"):
        message = doc.get("error_message") or "DuckDB could not read it"
        if doc.get("error_type") == "parser":
            raise QueryError(f"The query is not valid SQL: {message}",
                             "Fix the syntax near the place the message names.")
        if "Only SELECT" in message:  # PIVOT/UNPIVOT and other statements DuckDB rewrites into several
            message = "this form (e.g. PIVOT) is not a plain SELECT"
        raise QueryRefused(f"The query cannot be checked, so it does not run: {message}.",
                           "Write a plain SELECT over the registered datasets (a PIVOT can be written with "
                           "GROUP BY and FILTER).")
    return doc


def nodes(tree: object) -> Iterator[dict]:
    """Every JSON object in the tree, depth first (the tree is acyclic, serialised by DuckDB)."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _refuse_node(node: dict) -> None:
    """Refuse a query node that is not a read-only query."""
    kind = node.get("type")
    if isinstance(kind, str) and kind.endswith("_NODE") and kind not in QUERY_NODES:
        what = "copies data to a file" if kind == "COPY_QUERY_NODE" else f"is not a query ({kind})"
        raise QueryRefused(f"Part of this query {what}; only reading is allowed here (this is checked in every "
                           "CTE and subquery).", "Write a SELECT. To keep a result, use 'Save as dataset'.")


def _function_name(node: dict) -> str:
    return str(node.get("function_name") or "").lower()


def _denied(name: str) -> bool:
    return name in DENIED_FUNCTIONS or (name.startswith(_DENIED_PREFIXES) and name not in _ALLOWED_PG)


def _check_table(node: dict, readable: set[str]) -> None:
    """A table a query names must be a registered dataset or one of its own CTEs: not a file path written as a
    table ('/data/x.csv'), not the database's catalog (pg_settings, information_schema), not another schema."""
    name = str(node.get("table_name") or "")
    schema, catalog = str(node.get("schema_name") or ""), str(node.get("catalog_name") or "")
    if name.lower() not in readable or schema.lower() not in ("", "main") or catalog.lower() not in ("", "memory"):
        shown = ".".join(p for p in (catalog, schema, name) if p)
        raise QueryRefused(f"{shown!r} is not a dataset: queries read the registered datasets, by name.",
                           "Register a file on the Data page, then query it by its dataset name.")


def check_query_tree(tree: dict, tables: set[str] | frozenset[str] = frozenset()) -> None:
    """Walk a parsed SELECT: refuse writes, file access, SQL-running and state-reading functions anywhere, and
    tables other than `tables` (the registered datasets) and the query's own CTEs."""
    known, _, table_functions = _catalog()
    readable = {t.lower() for t in tables} | {str(item.get("key") or "").lower() for node in nodes(tree)
                                              for item in (node.get("cte_map") or {}).get("map") or ()}
    inside_table_functions = {id(n.get("function")) for n in nodes(tree) if n.get("type") == "TABLE_FUNCTION"}
    for node in nodes(tree):
        _refuse_node(node)
        if node.get("type") == "BASE_TABLE":
            _check_table(node, readable)
        elif node.get("type") == "SHOW_REF" and (node.get("show_type") not in ("DESCRIBE", "SUMMARY")
                                                 or node.get("table_name")):
            raise QueryRefused("SHOW reads the server's settings; it is not allowed here.",
                               "DESCRIBE or SUMMARIZE a dataset instead, e.g. SUMMARIZE flights.")
        if id(node) in inside_table_functions:
            continue  # checked as the table function it is, below
        if node.get("type") == "TABLE_FUNCTION":
            name = _function_name(node.get("function") or {})
            if name not in TABLE_FUNCTIONS or _denied(name):
                if name.startswith(_FILE_FUNCTIONS) or name in ("read_text", "read_blob"):
                    raise QueryRefused(f"{name}() reads files directly, which is not allowed here.",
                                       "Register the file on the Data page, then query it by its dataset name.")
                what = "is not a table function" if name not in table_functions else "is not allowed here"
                raise QueryRefused(f"{name}() {what}: queries read the registered datasets only.",
                                   "Query a dataset by name; generators such as range() and unnest() are allowed.")
        elif node.get("class") in ("FUNCTION", "WINDOW", "AGGREGATE") and "function_name" in node:
            name = _function_name(node)
            if _denied(name):
                raise QueryRefused(f"{name}() reads the server's settings or changes state; it is not allowed "
                                   "here.", "Remove it from the query.")
            if node.get("class") == "FUNCTION" and not node.get("is_operator") and name not in known:
                raise QueryRefused(f"{name}() is not a built-in function.", "Use DuckDB's built-in functions.")


def tables(tree: object) -> set[str]:
    """Names of the tables (registered datasets, CTEs) a parsed query reads."""
    return {str(n.get("table_name")) for n in nodes(tree) if n.get("type") == "BASE_TABLE"}


def check_query(sql: str, tables: set[str] | frozenset[str] = frozenset()) -> dict:
    """Parse and check one user SELECT over the datasets `tables` (see the module docstring); its tree."""
    tree = parse(sql)
    if len(tree.get("statements") or ()) != 1:
        raise QueryRefused("Only one statement can run at a time.", "Remove the extra statements.")
    check_query_tree(tree, tables)
    return tree


def check_filter(expr: str, tables: set[str] | frozenset[str] = frozenset()) -> str:
    """A row filter typed by a user (the Data page's WHERE): one boolean expression, checked like a query over
    the datasets `tables`."""
    text = (expr or "").strip()
    try:
        tree = check_query(f"SELECT 1 FROM _t WHERE ({text})", {*tables, "_t"})
    except QueryError as exc:
        message = exc.message.replace("The query ", "", 1).replace("this query", "the filter")
        raise type(exc)("The filter " + message[0].lower() + message[1:] if not message.startswith("The filter")
                        else message, exc.hint) from None
    node = tree["statements"][0]["node"]
    if (node.get("type") != "SELECT_NODE" or node.get("modifiers") or node.get("group_expressions")
            or node.get("having") or len(node.get("select_list") or ()) != 1
            or (node.get("from_table") or {}).get("table_name") != "_t"):
        raise QueryRefused("The filter must be a single condition, e.g. dep_delay > 60 AND origin = 'JFK'.",
                           "Remove everything after the condition.")
    return text


def check_expression(expr: str, what: str, error: type[QueryError] = QueryError) -> dict:
    """A recipe expression: one row-level expression of deterministic built-in scalar functions.

    No subqueries, no ``*``/``COLUMNS(*)``, no aggregates or window functions, no function that reads
    files, settings or state. Returns the expression's tree; raises `error` saying what was refused.
    """
    text = (expr or "").strip()
    if not text:
        raise error(f"{what}: the expression is empty.", "Write an SQL expression, e.g. amount / 100.")
    try:
        tree = parse(f"SELECT ({text}) FROM _t")
    except QueryError as exc:
        raise error(f"{what}: the expression does not parse: {exc.message.replace('The query is not valid SQL: ', '')}",
                    "Check the SQL syntax; names with spaces need \"double quotes\".") from None
    statements = tree.get("statements") or ()
    node = statements[0]["node"] if len(statements) == 1 else {}
    if (node.get("type") != "SELECT_NODE" or len(node.get("select_list") or ()) != 1 or node.get("modifiers")
            or node.get("where_clause") or node.get("group_expressions") or node.get("cte_map", {}).get("map")
            or (node.get("from_table") or {}).get("table_name") != "_t"):
        raise error(f"{what}: this is not a single expression.", "Write one expression, e.g. a / b.")
    _, pure, _ = _catalog()
    for item in nodes(node["select_list"]):
        cls = item.get("class")
        if cls == "SUBQUERY":
            raise error(f"{what}: subqueries are not allowed in an expression.",
                        "Use the step's columns only; join data with a group-aggregate step.")
        if cls in ("STAR", "COLUMNS"):
            raise error(f"{what}: '*' and COLUMNS(...) stand for many columns; an expression makes one value.",
                        "Name the columns the expression uses.")
        if cls in ("WINDOW", "AGGREGATE"):
            raise error(f"{what}: aggregate and window functions are not allowed in a row expression.",
                        "Use a group-aggregate, lag or rolling step for values over several rows.")
        if cls == "FUNCTION":
            name = _function_name(item)
            if not item.get("is_operator") and name not in pure:
                raise error(f"{what}: the function {name}() is not allowed in an expression.",
                            "Use deterministic built-in functions (no files, settings, randomness or aggregates).")
        elif cls is not None and cls not in EXPRESSION_CLASSES:
            raise error(f"{what}: this kind of expression ({cls.lower()}) is not allowed.",
                        "Use columns, constants, operators and built-in functions.")
    return tree


def referenced_columns(tree: object) -> Iterable[str]:
    """Column names an expression refers to (the last part of each column reference)."""
    for item in nodes(tree):
        if item.get("class") == "COLUMN_REF" and item.get("column_names"):
            yield item["column_names"][-1]

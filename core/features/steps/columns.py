"""Steps that select, rename, cast, filter, deduplicate and derive columns. None of them is fitted."""
from __future__ import annotations

from core.data.engine import quote_ident as q
from core.features.recipe import Context, Kind, Param, kind

CAST_TYPES = ("DOUBLE", "BIGINT", "INTEGER", "VARCHAR", "BOOLEAN", "DATE", "TIMESTAMP")
OPS = {"add": "+", "subtract": "-", "multiply": "*", "ratio": "/"}


def rest(ctx: Context, *, without: set[str] = frozenset(), replaced: dict[str, str] | None = None) -> str:
    """The input's columns in order, minus `without`, with `replaced` {name: expression} swapped in."""
    replaced = replaced or {}
    parts = [f"{replaced[n]} AS {q(n)}" if n in replaced else q(n) for n in ctx.names if n not in without]
    return ", ".join(parts) if parts else ""


def _names(cols: list[str]) -> str:
    return ", ".join(cols[:6]) + (f" and {len(cols) - 6} more" if len(cols) > 6 else "")


def _select(ctx: Context) -> tuple[str, str]:
    cols = ctx.params["columns"]
    return f"SELECT {', '.join(q(c) for c in cols)} FROM {ctx.source}", f"keep only {_names(cols)}"


def _drop(ctx: Context) -> tuple[str, str]:
    cols = ctx.params["columns"]
    if set(cols) >= set(ctx.names):
        raise ctx.fail("it would drop every column.", "Keep at least one column.")
    return f"SELECT {rest(ctx, without=set(cols))} FROM {ctx.source}", f"drop {_names(cols)}"


def _rename(ctx: Context) -> tuple[str, str]:
    old, new = ctx.params["column"], ctx.params["to"].strip()
    if new != old and new in ctx.names:
        raise ctx.fail(f"a column named {new!r} already exists.", "Pick another name.")
    parts = [f"{q(n)} AS {q(new)}" if n == old else q(n) for n in ctx.names]
    return f"SELECT {', '.join(parts)} FROM {ctx.source}", f"rename {old} to {new}"


def _cast(ctx: Context) -> tuple[str, str]:
    cols, to = ctx.params["columns"], ctx.params["to"]
    fn = "TRY_CAST" if ctx.params["lenient"] else "CAST"
    sql = f"SELECT {rest(ctx, replaced={c: f'{fn}({q(c)} AS {to})' for c in cols})} FROM {ctx.source}"
    how = " (values that do not convert become missing)" if ctx.params["lenient"] else ""
    return sql, f"cast {_names(cols)} to {to}{how}"


def _filter(ctx: Context) -> tuple[str, str]:
    p = ctx.params
    if p["expression"]:
        return f"SELECT * FROM {ctx.source} WHERE ({p['expression']})", f"keep rows where {p['expression']}"
    if not p["column"] or not p["op"]:
        raise ctx.fail("needs either an SQL condition or a column, an operator and a value.", "Fill in the form.")
    col, op = q(p["column"]), p["op"]
    if op in ("is missing", "is not missing"):  # NaN is missing too, as for imputation
        missing = f"({col} IS NULL OR isnan({col}))" if ctx.column(p["column"]).kind == "float" else f"{col} IS NULL"
        cond = f"NOT {missing}" if op == "is not missing" else missing
        return f"SELECT * FROM {ctx.source} WHERE {cond}", f"keep rows where {p['column']} {op}"
    value = ctx.bind(p["value"])
    cond = {"contains": f"contains({col}::VARCHAR, {value}::VARCHAR)"}.get(op, f"{col} {op} {value}")
    return f"SELECT * FROM {ctx.source} WHERE {cond}", f"keep rows where {p['column']} {op} {p['value']!r}"


def _dedupe(ctx: Context) -> tuple[str, str]:
    cols = ctx.params["columns"] or ctx.names
    if cols == ctx.names:
        return f"SELECT DISTINCT * FROM {ctx.source}", "remove duplicate rows"
    keys = ", ".join(q(c) for c in cols)
    return (f"SELECT * FROM {ctx.source} QUALIFY row_number() OVER (PARTITION BY {keys}) = 1",
            f"keep one row per {_names(cols)}")


def _new_name(ctx: Context, name: str) -> str:
    name = name.strip()
    if name in ctx.names:
        raise ctx.fail(f"a column named {name!r} already exists.", "Pick a new name, or drop the old column first.")
    return name


def _expression(ctx: Context) -> tuple[str, str]:
    name, expr = _new_name(ctx, ctx.params["name"]), ctx.params["expression"]
    return f"SELECT *, ({expr}) AS {q(name)} FROM {ctx.source}", f"{name} = {expr}"


def _arithmetic(ctx: Context) -> tuple[str, str]:
    a, b, op = ctx.params["left"], ctx.params["right"], ctx.params["op"]
    name = _new_name(ctx, ctx.params["name"] or f"{a}_{op}_{b}")
    if op == "ratio":  # no division by zero: a ratio with a zero denominator is missing
        expr = f"{q(a)}::DOUBLE / nullif({q(b)}::DOUBLE, 0)"
    else:
        expr = f"{q(a)} {OPS[op]} {q(b)}"
    return f"SELECT *, {expr} AS {q(name)} FROM {ctx.source}", f"{name} = {a} {OPS[op]} {b}"


NUMBERS = ("integer", "float", "decimal")
kind(Kind("select", "Keep columns", "columns", (Param("columns", "columns", "Columns to keep"),), _select))
kind(Kind("drop", "Drop columns", "columns", (Param("columns", "columns", "Columns to drop"),), _drop))
kind(Kind("rename", "Rename a column", "columns",
          (Param("column", "column", "Column"), Param("to", "text", "New name")), _rename))
kind(Kind("cast", "Change type", "columns",
          (Param("columns", "columns", "Columns"), Param("to", "choice", "New type", choices=CAST_TYPES),
           Param("lenient", "bool", "Values that do not convert become missing", default=False)), _cast))
kind(Kind("filter", "Filter rows", "rows",
          (Param("column", "column", "Column", required=False),
           Param("op", "choice", "Condition", required=False,
                 choices=("=", "!=", "<", "<=", ">", ">=", "contains", "is missing", "is not missing")),
           Param("value", "value", "Value", required=False),
           Param("expression", "expression", "Or an SQL condition", required=False,
                 help="e.g. amount > 100 AND country = 'US'")), _filter))
kind(Kind("deduplicate", "Remove duplicate rows", "rows",
          (Param("columns", "columns", "Rows are duplicates when these columns match (all when empty)",
                 default=[], required=False),), _dedupe))
kind(Kind("expression", "New column from an SQL expression", "derive",
          (Param("name", "text", "New column"), Param("expression", "expression", "SQL expression",
                                                     help="e.g. amount / 100 or upper(country)")), _expression))
kind(Kind("arithmetic", "Combine two columns", "derive",
          (Param("left", "column", "First column", kinds=NUMBERS), Param("op", "choice", "Operation",
                                                                         choices=tuple(OPS)),
           Param("right", "column", "Second column", kinds=NUMBERS),
           Param("name", "text", "New column (blank: a name is made up)", default="", required=False)), _arithmetic))

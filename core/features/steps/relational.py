"""Steps that look at other rows: an aggregate per group, the value N rows earlier, a rolling aggregate of earlier rows.

None of them is fitted: each is a window over **the rows the recipe is applied to** (after the steps before
it). At training that is the training rows; at scoring it is the rows being scored, so a group aggregate
over a one-row scoring batch is that row's own value, and a lag needs the earlier rows of the same key in
the batch. Score whole histories, or keep such features in the data itself, when that matters.

Row order: a window step may change the order of the rows (SQL never promises one); values stay with their rows.

Missing values: a missing (NULL or NaN) value is left out of aggregates, as SQL and pandas do. In a group
aggregate, rows whose key is missing form one group of their own (like GROUP BY). In lag and rolling, a row
whose key or time is missing gets a missing result: it belongs to no known sequence, and since missing times
sort last it never counts as an earlier row for a row that has a time.

Ties: rows of one key with the same time are ordered arbitrarily (the result may differ between runs) unless
a tie-breaker column is given; the order is then (time, tie-breaker), deterministic when that pair is unique
per key.
"""
from __future__ import annotations

from core.data.engine import quote_ident as q
from core.features.recipe import Context, Kind, Param, kind

NUMBERS = ("integer", "float", "decimal")
ORDERABLE = ("temporal", *NUMBERS)
AGGS = {"mean": "avg", "sum": "sum", "count": "count", "min": "min", "max": "max", "std": "stddev_samp"}
ROLLING_AGGS = ("mean", "sum", "min", "max", "count")
NEEDS_NUMBERS = ("mean", "sum", "std")
AGG_WORDS = {"mean": "mean", "sum": "sum", "count": "number of non-missing values", "min": "smallest value",
             "max": "largest value", "std": "standard deviation"}
MAX_ROWS = 1_000_000


def _added(ctx: Context, name: str) -> str:
    if name in ctx.names:
        raise ctx.fail(f"it would add the column {name!r}, which already exists.",
                       "Drop or rename the existing column first.")
    return name


def _aggregate(ctx: Context, agg: str, value: str, window: str) -> str:
    """`agg` of the column `value` over `window` (an OVER clause) in SQL; NaN counts as missing."""
    col = ctx.column(value)
    if agg in NEEDS_NUMBERS and col.kind not in (*NUMBERS, "boolean"):
        raise ctx.fail(f"the {agg} needs a numeric column; {value!r} is {col.type}.",
                       "Use count, min or max for it, or cast it to a number first.")
    expr = q(value)
    if col.kind == "float":
        expr = f"CASE WHEN isnan({expr}) THEN NULL ELSE {expr} END"
    elif col.kind == "boolean" and agg in NEEDS_NUMBERS:
        expr = f"{expr}::INTEGER"
    call = f"{AGGS[agg]}({expr}) {window}"
    return f"({call})::DOUBLE" if agg in NEEDS_NUMBERS else call  # a sum of BIGINT would be HUGEINT


def _missing(ctx: Context, names: list[str]) -> str:
    """SQL true when any of the columns is missing (NULL, or NaN for floats)."""
    parts = [f"{q(n)} IS NULL" + (f" OR isnan({q(n)})" if ctx.column(n).kind == "float" else "") for n in names]
    return " OR ".join(parts)


def _window(ctx: Context, frame: str = "") -> str:
    """OVER (PARTITION BY keys ORDER BY time, tie-breaker), missing times last."""
    p = ctx.params
    keys = p["keys"]
    order = [p["time"], *([p["tie_breaker"]] if p["tie_breaker"] else [])]
    if len(set(order) | set(keys)) < len(order) + len(keys):
        raise ctx.fail("the time, tie-breaker and key columns must all be different.", "Pick other columns.")
    partition = f"PARTITION BY {', '.join(q(k) for k in keys)} " if keys else ""
    return f"OVER ({partition}ORDER BY {', '.join(f'{q(c)} ASC NULLS LAST' for c in order)}{frame})"


def _sequence_text(ctx: Context) -> str:
    p = ctx.params
    per = f" of the same {', '.join(p['keys'])}" if p["keys"] else ""
    tie = f", then {p['tie_breaker']}" if p["tie_breaker"] else " (ties in any order)"
    return f"rows{per} ordered by {p['time']}{tie}"


def _group_aggregate(ctx: Context) -> tuple[str, str]:
    agg, value, keys = ctx.params["agg"], ctx.params["value"], ctx.params["keys"]
    if value in keys:
        raise ctx.fail(f"{value!r} is both the value and a key.", "Pick another value column.")
    name = _added(ctx, f"{agg}_{value}_per_{'_'.join(keys)}")
    expr = _aggregate(ctx, agg, value, f"OVER (PARTITION BY {', '.join(q(k) for k in keys)})")
    return (f"SELECT *, {expr} AS {q(name)} FROM {ctx.source}",
            f"{name} = {AGG_WORDS[agg]} of {value} over the rows with the same {', '.join(keys)} "
            f"(among the rows being transformed)")


def _lag(ctx: Context) -> tuple[str, str]:
    col, n = ctx.params["column"], ctx.params["n"]
    name = _added(ctx, f"{col}_lag{n}")
    missing = _missing(ctx, [*ctx.params["keys"], ctx.params["time"]])
    # n is a checked int written into the SQL: it is the step's shape (and its column's name), not data.
    expr = f"CASE WHEN {missing} THEN NULL ELSE lag({q(col)}, {int(n)}) {_window(ctx)} END"
    return (f"SELECT *, {expr} AS {q(name)} FROM {ctx.source}",
            f"{name} = {col} {n} row{'s' if n > 1 else ''} earlier among the {_sequence_text(ctx)}")


def _rolling(ctx: Context) -> tuple[str, str]:
    col, n, agg = ctx.params["column"], ctx.params["n"], ctx.params["agg"]
    name = _added(ctx, f"{col}_rolling_{agg}{n}")
    missing = _missing(ctx, [*ctx.params["keys"], ctx.params["time"]])
    # The frame ends one row before the current one: the feature never sees the row's own value or a later one.
    window = _window(ctx, f" ROWS BETWEEN {int(n)} PRECEDING AND 1 PRECEDING")
    expr = f"CASE WHEN {missing} THEN NULL ELSE {_aggregate(ctx, agg, col, window)} END"
    return (f"SELECT *, {expr} AS {q(name)} FROM {ctx.source}",
            f"{name} = {AGG_WORDS[agg]} of {col} over the {n} previous {_sequence_text(ctx)}, "
            f"not counting the row itself")


def _sequence_params(*, keys_required: bool = False) -> tuple[Param, ...]:
    return (Param("keys", "columns", "Per (key columns; none: all rows form one sequence)", default=[],
                  required=keys_required),
            Param("time", "column", "Ordered by (time column)", kinds=ORDERABLE),
            Param("tie_breaker", "column", "Then by (breaks ties in time; optional)", required=False,
                  help="Without one, rows of a key with the same time are in no fixed order."))


kind(Kind("group_aggregate", "Aggregate per group", "relational",
          (Param("value", "column", "Value column"),
           Param("agg", "choice", "Aggregate", default="mean", choices=tuple(AGGS)),
           Param("keys", "columns", "Per (key columns)")),
          _group_aggregate,
          help="Adds <agg>_<value>_per_<keys> to every row: the aggregate over all rows with the same keys, "
               "computed over the rows the recipe is applied to (the training rows at training, the scored "
               "rows at scoring). Missing keys form one group; missing values are left out; count counts "
               "non-missing values."))
kind(Kind("lag", "Earlier value (lag)", "relational",
          (Param("column", "column", "Column"),
           Param("n", "int", "Rows back (N)", default=1, minimum=1, maximum=MAX_ROWS),
           *_sequence_params()),
          _lag,
          help="Adds <column>_lag<N>: the value N rows earlier of the same key, in time order; missing for the "
               "first N rows of a key and for rows whose key or time is missing."))
kind(Kind("rolling", "Rolling aggregate of earlier rows", "relational",
          (Param("column", "column", "Column"),
           Param("agg", "choice", "Aggregate", default="mean", choices=ROLLING_AGGS),
           Param("n", "int", "Previous rows (N)", default=3, minimum=1, maximum=MAX_ROWS),
           *_sequence_params()),
          _rolling,
          help="Adds <column>_rolling_<agg><N>: the aggregate over up to N previous rows of the same key in time "
               "order, never the row itself or a later one. Missing for a key's first row (count: 0) and for "
               "rows whose key or time is missing."))

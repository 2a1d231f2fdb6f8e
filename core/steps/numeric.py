"""Numeric steps: imputation, clipping, transforms, scaling, binning. Statistics are fitted on training rows."""
from __future__ import annotations

from core.engine import quote_ident as q
from core.recipe import Context, Kind, Param, fit_rows, kind
from core.steps.columns import rest

NUMBERS = ("integer", "float", "decimal")


def _fit_impute(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    how, cols = ctx.params["strategy"], ctx.params["columns"]
    if how == "constant":
        return {"values": {c: ctx.params["value"] for c in cols}}
    wrong = [c for c in cols if how in ("mean", "median") and ctx.column(c).kind not in NUMBERS]
    if wrong:
        raise ctx.fail(f"the {how} needs numeric columns; {wrong[0]!r} is {ctx.column(wrong[0]).type}.",
                       "Use mode or a constant for it, or cast it to a number first.")
    agg = {"mean": "avg({})", "median": "quantile_cont({}, 0.5)", "mode": "mode({})"}[how]

    def value(c: str) -> str:  # NaN is missing too: avg() would otherwise return NaN
        return f"CASE WHEN isnan({q(c)}) THEN NULL ELSE {q(c)} END" if ctx.column(c).kind == "float" else q(c)

    got = fit_rows(con, input_sql, bound, ", ".join(f"{agg.format(value(c))} AS {q(c)}" for c in cols))
    return {"values": {c: (float(v) if isinstance(v, float) or how != "mode" else v) for c, v in got.items()}}


def _impute(ctx: Context) -> tuple[str, str]:
    values, cols = ctx.fitted["values"], ctx.params["columns"]
    replaced, extra = {}, []
    for c in cols:
        col = ctx.column(c)
        missing = f"({q(c)} IS NULL OR isnan({q(c)}))" if col.kind == "float" else f"{q(c)} IS NULL"
        replaced[c] = f"CASE WHEN {missing} THEN {ctx.bind(values[c])}::{col.type} ELSE {q(c)} END"
        if ctx.params["indicator"]:
            extra.append(f"{missing} AS {q(c + '_was_missing')}")
    select = ", ".join([rest(ctx, replaced=replaced), *extra])
    return f"SELECT {select} FROM {ctx.source}", _impute_text(ctx, values)


def _impute_text(ctx: Context, values: dict) -> str:
    how = ctx.params["strategy"]
    fills = ", ".join(f"{c} → {values[c]!r}" for c in ctx.params["columns"][:6])
    source = "" if how == "constant" else f" (the {how} of the training rows)"
    flag = "; add <column>_was_missing flags" if ctx.params["indicator"] else ""
    return f"fill missing values: {fills}{source}{flag}"


kind(Kind("impute", "Fill missing values", "numeric",
          (Param("columns", "columns", "Columns"),
           Param("strategy", "choice", "Fill with", default="median", choices=("mean", "median", "mode", "constant")),
           Param("value", "value", "Constant (for 'constant')", required=False),
           Param("indicator", "bool", "Add a missing-indicator column per column", default=False)),
          _impute, _fit_impute,
          help="mean/median need numeric columns; mode and constant work for any type. NaN counts as missing."))

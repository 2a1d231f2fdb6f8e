"""Numeric steps: imputation, clipping, transforms, scaling, binning. Statistics are fitted on training rows.

The fitted kinds (``impute``, ``clip``, ``scale``, ``bin``) compute their statistics with one aggregate
query over the training input and keep them, JSON-able, in the step's ``fitted``; their compile
functions use only those values and the step's parameters, so a recipe applied to new data transforms
it exactly as it transformed the training rows (no train/serve skew). ``transform`` is stateless.

Statistics are over finite values: NULL, NaN and ±Inf are left out of every mean, standard deviation,
quantile, minimum and maximum. Missing stays missing: NULL stays NULL; NaN stays NaN in clip, transform
and scale, becomes NULL in bin (a bin number is an integer) and is filled like NULL by impute.

Values outside what was fitted, at apply time:

- clip: that is what it is for; anything below / above the fitted bounds, -Inf / +Inf included,
  becomes the bound.
- scale: linear, so it extrapolates: a value beyond the training range gets a large standard score,
  or a min–max value outside [0, 1]; ±Inf stay ±Inf. Clip first to bound them.
- bin: the bins are fixed at fitting; a value below the first edge goes to bin 0 and a value above
  the last edge to the last bin (-Inf and +Inf likewise).

Degenerate training columns: no finite values means no clip bounds (values pass through) and a single
bin (0); no spread (std or max − min of 0) makes scale output 0 for every finite value.

clip, transform and scale output DOUBLE; bin outputs INTEGER bin numbers 0..n−1; impute keeps the type.
Fitted clip / scale / bin steps remember the settings they were fitted with: changing the method,
quantiles, bounds, bin count or columns afterwards makes compile ask for a refit instead of silently
applying stale statistics.
"""
from __future__ import annotations

from core.data.engine import quote_ident as q
from core.features.recipe import Context, Kind, Param, fit_rows, kind
from core.features.steps.columns import rest

NUMBERS = ("integer", "float", "decimal")
MANY = 6  # columns listed by name in a description before "and N more"


# ----------------------------------------------------------------------------------------------
# Shared helpers


def _double(c: str) -> str:
    return f"{q(c)}::DOUBLE"


def _finite(ctx: Context, c: str) -> str:
    """The column as DOUBLE with NaN and ±Inf as NULL: what every fitted statistic is computed over."""
    x = _double(c)
    return f"CASE WHEN isfinite({x}) THEN {x} END" if ctx.column(c).kind == "float" else x


def _missing(ctx: Context, c: str) -> str:
    """SQL condition: the value is missing (NULL, or NaN for floating-point columns)."""
    return f"({q(c)} IS NULL OR isnan({q(c)}))" if ctx.column(c).kind == "float" else f"{q(c)} IS NULL"


def _num(v: float | None) -> str:
    return "none" if v is None else f"{v:.6g}"


def _float(v: object) -> float | None:
    return None if v is None else float(v)


def _each(ctx: Context, text, sep: str = "; ") -> str:
    """`text(column)` for the first few columns, joined, then 'and N more'."""
    cols = ctx.params["columns"]
    out = sep.join(text(c) for c in cols[:MANY])
    return out + (f"{sep}and {len(cols) - MANY} more" if len(cols) > MANY else "")


def _minus(c: str, v: float) -> str:
    """'c − v' for a description, written 'c + 3' rather than 'c − -3'."""
    return f"{c} + {_num(-v)}" if v < 0 else f"{c} − {_num(v)}"


def _fitted(ctx: Context, **settings: object) -> dict:
    """The fitted per-column values, once checked to be from fitting with the step's current settings."""
    f = ctx.fitted
    changed = [k for k, v in settings.items() if f.get(k) != v]
    unfitted = [c for c in ctx.params["columns"] if c not in f.get("columns", {})]
    if changed or unfitted:
        what = f"{', '.join(changed)} changed" if changed else f"column {unfitted[0]!r} was added"
        raise ctx.fail(f"its fitted values are out of date ({what} since it was fitted).",
                       "Fit the recipe again on the training data.")
    return f["columns"]


# ----------------------------------------------------------------------------------------------
# impute


def _jsonable(v: object) -> object:
    """A fitted value as JSON can keep it; others (decimals, dates) as text, cast back to the column type."""
    return v if v is None or isinstance(v, bool | int | float | str) else str(v)


def _fit_impute(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    how, cols = ctx.params["strategy"], ctx.params["columns"]
    if how == "constant":
        if ctx.params["value"] is None:
            raise ctx.fail("the 'constant' strategy needs a Constant.", "Set Constant, or pick another strategy.")
        return {"values": {c: ctx.params["value"] for c in cols}}
    wrong = [c for c in cols if how in ("mean", "median") and ctx.column(c).kind not in NUMBERS]
    if wrong:
        raise ctx.fail(f"the {how} needs numeric columns; {wrong[0]!r} is {ctx.column(wrong[0]).type}.",
                       "Use mode or a constant for it, or cast it to a number first.")

    def agg(c: str) -> str:
        if how == "mode":  # NaN is missing too, so it is never the most common value
            return f"mode(CASE WHEN isnan({q(c)}) THEN NULL ELSE {q(c)} END)" if ctx.column(c).kind == "float" \
                else f"mode({q(c)})"
        # over finite values: avg() would otherwise return NaN or ±Inf and fill with that
        return f"{'avg' if how == 'mean' else 'median'}({_finite(ctx, c)})"

    got = fit_rows(con, input_sql, bound, ", ".join(f"{agg(c)} AS c{i}" for i, c in enumerate(cols)))
    values = [_float(v) if how != "mode" else _jsonable(v) for v in got.values()]
    return {"values": dict(zip(cols, values, strict=True))}


def _impute(ctx: Context) -> tuple[str, str]:
    values, cols = ctx.fitted["values"], ctx.params["columns"]
    replaced, extra = {}, []
    for c in cols:
        col = ctx.column(c)
        replaced[c] = f"CASE WHEN {_missing(ctx, c)} THEN {ctx.bind(values[c])}::{col.type} ELSE {q(c)} END"
        if ctx.params["indicator"]:
            extra.append(f"{_missing(ctx, c)} AS {q(c + '_was_missing')}")
    select = ", ".join([rest(ctx, replaced=replaced), *extra])
    return f"SELECT {select} FROM {ctx.source}", _impute_text(ctx, values)


def _impute_text(ctx: Context, values: dict) -> str:
    how = ctx.params["strategy"]
    fills = ", ".join(f"{c} → {values[c]!r}" for c in ctx.params["columns"][:MANY])
    source = "" if how == "constant" else f" (the {how} of the training rows)"
    flag = "; add <column>_was_missing flags" if ctx.params["indicator"] else ""
    return f"fill missing values: {fills}{source}{flag}"


# ----------------------------------------------------------------------------------------------
# clip


def _clip_settings(ctx: Context) -> dict:
    """The settings the bounds depend on, checked: lower below upper, at least one bound."""
    p = ctx.params
    lo, hi = (p["lower_quantile"], p["upper_quantile"]) if p["method"] == "quantile" else (p["lower"], p["upper"])
    if p["method"] == "fixed" and lo is None and hi is None:
        raise ctx.fail("the 'fixed' method needs a Lower bound, an Upper bound or both.", "Fill in a bound.")
    if lo is not None and hi is not None and lo > hi:
        raise ctx.fail(f"the lower {'quantile' if p['method'] == 'quantile' else 'bound'} ({lo}) is above the "
                       f"upper one ({hi}).", "Swap them.")
    return {"method": p["method"], "range": [lo, hi]}


def _fit_clip(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    settings = _clip_settings(ctx)
    cols = ctx.params["columns"]
    if settings["method"] == "fixed":
        lo, hi = settings["range"]
        return {**settings, "columns": {c: {"lower": lo, "upper": hi} for c in cols}}
    qs = ctx.bind(settings["range"])
    got = fit_rows(con, input_sql, bound,
                   ", ".join(f"quantile_cont({_finite(ctx, c)}, {qs}) AS c{i}" for i, c in enumerate(cols)))
    bounds = {c: (v or [None, None]) for c, v in zip(cols, got.values(), strict=True)}
    return {**settings, "columns": {c: {"lower": _float(lo), "upper": _float(hi)} for c, (lo, hi) in bounds.items()}}


def _clip(ctx: Context) -> tuple[str, str]:
    fitted = _fitted(ctx, **_clip_settings(ctx))
    replaced = {}
    for c in ctx.params["columns"]:
        x, b = _double(c), fitted[c]
        # NaN compares above every number in DuckDB: keep it out of the upper bound's way
        cases = [f"WHEN isnan({x}) THEN {x}"] if ctx.column(c).kind == "float" else []
        for side, op in (("lower", "<"), ("upper", ">")):
            if b[side] is not None:
                bound = ctx.bind(b[side])
                cases.append(f"WHEN {x} {op} {bound} THEN {bound}")
        replaced[c] = f"CASE {' '.join(cases)} ELSE {x} END" if cases else x

    def span(b: dict) -> str:  # a missing bound leaves that side open
        lo, hi = b["lower"], b["upper"]
        return f"[{'−∞' if lo is None else _num(lo)}, {'∞' if hi is None else _num(hi)}]"

    text = _each(ctx, lambda c: f"{c} to {span(fitted[c])}")
    lo, hi = ctx.params["lower_quantile"], ctx.params["upper_quantile"]
    source = (f" (the {lo:.4g} and {hi:.4g} quantiles of the training rows)"
              if ctx.params["method"] == "quantile" else "")
    return f"SELECT {rest(ctx, replaced=replaced)} FROM {ctx.source}", f"clip {text}{source}"


# ----------------------------------------------------------------------------------------------
# transform (stateless)


def _transform(ctx: Context) -> tuple[str, str]:
    how, p = ctx.params["function"], ctx.params["exponent"]
    if how == "power" and not p > 0:
        raise ctx.fail(f"Exponent must be greater than 0. Got {p}.", "Use e.g. 0.5 for a square root, 2 for a square.")
    replaced = {}
    for c in ctx.params["columns"]:
        x = _double(c)  # sign(NaN) is 0 and 0 * NaN is NaN, so NaN stays NaN; ±Inf stay ±Inf
        rhs = f"ln(1 + abs({x}))" if how == "log1p" else f"pow(abs({x}), {ctx.bind(p)})"
        replaced[c] = f"sign({x}) * {rhs}"
    formula = "sign(x)·ln(1 + |x|)" if how == "log1p" else f"sign(x)·|x|^{p:g}"
    return f"SELECT {rest(ctx, replaced=replaced)} FROM {ctx.source}", f"{formula} for {_each(ctx, str, ', ')}"


# ----------------------------------------------------------------------------------------------
# scale


def _fit_scale(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    how, cols = ctx.params["method"], ctx.params["columns"]
    stats = ("mean", "std") if how == "standard" else ("min", "max")
    aggs = {"mean": "avg", "std": "stddev_pop", "min": "min", "max": "max"}
    got = fit_rows(con, input_sql, bound, ", ".join(f"{aggs[s]}({_finite(ctx, c)}) AS {s}{i}"
                                                    for i, c in enumerate(cols) for s in stats))
    return {"method": how, "columns": {c: {s: _float(got[f"{s}{i}"]) for s in stats} for i, c in enumerate(cols)}}


def _scale(ctx: Context) -> tuple[str, str]:
    how = ctx.params["method"]
    fitted = _fitted(ctx, method=how)
    replaced, parts = {}, []
    for c in ctx.params["columns"]:
        x, f = _double(c), fitted[c]
        if how == "standard":
            flat = f["std"] is None or f["std"] == 0
            if not flat:
                formula = f"({x} - {ctx.bind(f['mean'])}) / {ctx.bind(f['std'])}"
                parts.append(f"({_minus(c, f['mean'])}) / {_num(f['std'])}")
        else:
            flat = f["min"] is None or f["max"] == f["min"]
            if not flat:
                lo, hi = ctx.bind(f["min"]), ctx.bind(f["max"])
                formula = f"({x} - {lo}) / ({hi} - {lo})"
                parts.append(f"({_minus(c, f['min'])}) / {_num(f['max'] - f['min'])}")
        if flat:  # no spread in the training rows: every finite value becomes 0
            formula = "0.0"
            parts.append(f"{c} → 0 (no spread in the training rows)")
        keep = f"{x} IS NULL OR NOT isfinite({x})" if ctx.column(c).kind == "float" else f"{x} IS NULL"
        replaced[c] = f"CASE WHEN {keep} THEN {x} ELSE {formula} END"
    more = len(parts) - MANY
    stats = "mean and standard deviation" if how == "standard" else "min and max"
    what = "standardise" if how == "standard" else "rescale to [0, 1]"
    return (f"SELECT {rest(ctx, replaced=replaced)} FROM {ctx.source}",
            f"{what} with the training rows' {stats}: {'; '.join(parts[:MANY])}"
            + (f"; and {more} more" if more > 0 else ""))


# ----------------------------------------------------------------------------------------------
# bin


def _fit_bin(con, ctx: Context, input_sql: str, bound: dict) -> dict:
    how, n, cols = ctx.params["method"], ctx.params["bins"], ctx.params["columns"]
    if how == "quantile":
        qs = ctx.bind([i / n for i in range(n + 1)])
        got = fit_rows(con, input_sql, bound,
                       ", ".join(f"quantile_cont({_finite(ctx, c)}, {qs}) AS c{i}" for i, c in enumerate(cols)))
        raw = {c: [float(e) for e in v] if v else [] for c, v in zip(cols, got.values(), strict=True)}
    else:
        got = fit_rows(con, input_sql, bound, ", ".join(f"min({_finite(ctx, c)}) AS lo{i}, max({_finite(ctx, c)}) "
                                                        f"AS hi{i}" for i, c in enumerate(cols)))
        raw = {}
        for i, c in enumerate(cols):
            lo, hi = _float(got[f"lo{i}"]), _float(got[f"hi{i}"])
            raw[c] = [] if lo is None else [lo + k * (hi - lo) / n for k in range(n)] + [hi]
    # quantile edges coincide where many rows share a value: such bins would always be empty
    edges = {c: [e for k, e in enumerate(v) if k == 0 or e > v[k - 1]] for c, v in raw.items()}
    return {"method": how, "bins": n, "columns": {c: {"edges": e} for c, e in edges.items()}}


def _bin_name(ctx: Context, c: str) -> str:
    if ctx.params["replace"]:
        return c
    name = f"{c}_bin"
    if name in ctx.names:
        raise ctx.fail(f"a column named {name!r} already exists.", "Drop or rename it, or tick Replace the column.")
    return name


def _bin(ctx: Context) -> tuple[str, str]:
    fitted = _fitted(ctx, method=ctx.params["method"], bins=ctx.params["bins"])
    exprs = {}
    for c in ctx.params["columns"]:
        inner = fitted[c]["edges"][1:-1]  # bin k holds [edge k, edge k+1); the ends are open to unseen extremes
        cases = [f"WHEN {q(c)} < {ctx.bind(e)} THEN {k}" for k, e in enumerate(inner)]
        exprs[_bin_name(ctx, c)] = f"CASE WHEN {_missing(ctx, c)} THEN NULL {' '.join(cases)} ELSE {len(inner)} END"
    if ctx.params["replace"]:
        select = rest(ctx, replaced={n: f"{e}::INTEGER" for n, e in exprs.items()})
    else:
        select = ", ".join(["*", *(f"{e}::INTEGER AS {q(n)}" for n, e in exprs.items())])

    def text(c: str) -> str:
        e = fitted[c]["edges"]
        where = f" at {', '.join(_num(x) for x in e[1:-1])}" if len(e) > 2 else ""
        return f"{c} into {max(len(e) - 1, 1)} bin(s){where} (training range {_num(e[0] if e else None)} to " \
               f"{_num(e[-1] if e else None)})"

    how = "equal-width" if ctx.params["method"] == "width" else "quantile"
    target = "in place" if ctx.params["replace"] else "as <column>_bin"
    return (f"SELECT {select} FROM {ctx.source}",
            f"{how} bin numbers {target}: {_each(ctx, text)}; values beyond the training range go to the "
            f"first or last bin")


# ----------------------------------------------------------------------------------------------
# Registry

COLUMNS = Param("columns", "columns", "Columns", kinds=NUMBERS)

kind(Kind("impute", "Fill missing values", "numeric",
          (Param("columns", "columns", "Columns"),
           Param("strategy", "choice", "Fill with", default="median", choices=("mean", "median", "mode", "constant")),
           Param("value", "value", "Constant (for 'constant')", required=False),
           Param("indicator", "bool", "Add a missing-indicator column per column", default=False)),
          _impute, _fit_impute,
          help="mean/median need numeric columns and use finite values only; mode and constant work for any "
               "type. NaN counts as missing."))

kind(Kind("clip", "Clip outliers", "numeric",
          (COLUMNS,
           Param("method", "choice", "Bounds from", default="quantile", choices=("quantile", "fixed"),
                 help="quantile: bounds fitted on the training rows; fixed: the values you give."),
           Param("lower_quantile", "float", "Lower quantile (for 'quantile')", default=0.01, minimum=0.0, maximum=1.0),
           Param("upper_quantile", "float", "Upper quantile (for 'quantile')", default=0.99, minimum=0.0, maximum=1.0),
           Param("lower", "float", "Lower bound (for 'fixed')", required=False),
           Param("upper", "float", "Upper bound (for 'fixed')", required=False)),
          _clip, _fit_clip,
          help="Values below the lower bound become the lower bound, above the upper the upper (±Inf too). "
               "Missing stays missing. The result is DOUBLE."))

kind(Kind("transform", "Log or power transform", "numeric",
          (COLUMNS,
           Param("function", "choice", "Function", default="log1p", choices=("log1p", "power"),
                 help="log1p: sign(x)·ln(1 + |x|); power: sign(x)·|x|^exponent. Both keep the sign, "
                      "so negative values work."),
           Param("exponent", "float", "Exponent (for 'power'; 0.5 is a square root)", default=0.5)),
          _transform,
          help="Tames long tails. Nothing is fitted. Missing stays missing. The result is DOUBLE."))

kind(Kind("scale", "Scale", "numeric",
          (COLUMNS,
           Param("method", "choice", "Method", default="standard", choices=("standard", "minmax"),
                 help="standard: (x − mean) / standard deviation; minmax: (x − min) / (max − min), "
                      "all fitted on the training rows.")),
          _scale, _fit_scale,
          help="Statistics over the training rows' finite values. A column with no spread becomes 0. "
               "New values beyond the training range extrapolate (minmax can leave [0, 1])."))

kind(Kind("bin", "Bin into ranges", "numeric",
          (COLUMNS,
           Param("method", "choice", "Bin edges", default="quantile", choices=("quantile", "width"),
                 help="quantile: about as many training rows per bin; width: equal-width bins between the "
                      "training min and max."),
           Param("bins", "int", "Number of bins", default=10, minimum=2, maximum=100),
           Param("replace", "bool", "Replace the column (instead of adding <column>_bin)", default=False)),
          _bin, _fit_bin,
          help="Bin numbers 0..n−1. Values beyond the training range go to the first or last bin; missing "
               "stays missing. Quantile bins that coincide are merged, so there can be fewer bins."))


"""Data-quality alerts, each with a plain sentence and the figures behind it.

Most alerts are read off a Profile alone (`profile_alerts`, no query). Two need the data: exact
counts of far outliers (`outlier_alerts`) and the values of a CSV's text columns that parse as
numbers or dates (`mixed_type_alerts`). The target checks (`target_alerts`) read the target's
class counts from the profile and the strength of each feature's relation to it from the caller.

One column gets at most one alert of a kind, and the strongest finding hides the ones it
implies: a constant column gets only "constant", an ID-like column is not also "high
cardinality", an almost-constant column is not also "zeros", a mostly-zero column is not also
"skewed", and an empty dataset gets only "empty".
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import duckdb

from core.data.engine import quote_ident, translate
from core.errors import QuarryError
from core.fmt import jsonable, significant
from core.profile.scan import ColumnProfile, Profile

WARNING, INFO = "warning", "info"

# A value that fills this share of a column's non-missing values leaves too little variation to learn from.
ALMOST_CONSTANT_SHARE = 0.99
# Missing shares: half missing or more usually means the column should be dropped or modelled as
# "missing or not"; a fifth is common enough that imputation choices start to matter.
MISSING_WARNING_SHARE = 0.50
MISSING_INFO_SHARE = 0.20
# Text columns with more distinct values than this share of rows, or than this count, are too many
# categories to one-hot encode.
HIGH_CARDINALITY_SHARE = 0.50
HIGH_CARDINALITY_COUNT = 1_000
# Distinct values in at least this share of rows look like an identifier; below this many rows a
# small sample is unique by chance.
ID_SHARE = 0.99
ID_MIN_ROWS = 50
# The same for HyperLogLog distinct counts (profile.exact False): they run a few percent low (DuckDB
# counts 978 in a 1,000-row ID column, 4,872 in 5,000), so 99 % would miss real IDs.
ID_SHARE_APPROX = 0.95
# Skewness is the quantile skewness (p95 + p5 - 2·p50) / (p95 - p5), in [-1, 1]: robust to the
# outliers that swamp the moment skewness, and computed from the profile's quantiles alone. 0.8 is
# strong: a lognormal with sigma 1 scores 0.68, sigma 2 scores 0.93; an exponential 0.56.
SKEW_LIMIT = 0.8
# Columns with this few distinct values are levels, not a distribution (a 0/1 flag scores 1.0).
SKEW_MIN_DISTINCT = 10
# Zeros in at least this share of values: a zero-inflated column (or zero standing for "missing").
ZEROS_SHARE = 0.50
# Tukey's far fences: values beyond p25 - 3·IQR or p75 + 3·IQR are extreme outliers (1.5 gives
# the inner fences, which flag 0.7 % of a normal sample; 3 flags about 2 in a million).
FENCE_IQR = 3.0
# Columns per aggregate query, as in core.profile: bounded aggregate state, and Parquet reads only
# the batch's columns.
BATCH_COLUMNS = 32
# Text columns of a CSV where at least this share of non-empty values parse as numbers (or dates)
# but not all do: DuckDB typed the column as text because of the rest. There is no upper bound
# below 100 %: one 'N/A' in a million numbers is exactly what turns a number column into text.
MIXED_MIN_SHARE = 0.01
MIXED_EXAMPLES = 3
# Rows of non-parsing values read to pick the examples from: the example query stays bounded.
MIXED_EXAMPLE_SCAN = 1_000
# A class below this share of the target's labelled rows makes the target imbalanced.
IMBALANCE_SHARE = 0.10
# Leakage: a feature that separates or predicts the target this well is almost surely computed from it.
LEAKAGE_AUC = 0.99  # max(AUC, 1 - AUC)
LEAKAGE_CORRELATION = 0.99  # |Pearson/Spearman r| for a numeric target, or eta (correlation ratio)
LEAKAGE_NORMALIZED_MI = 0.95  # mutual information / the target's entropy (both in nats)
LEAKAGE_METRICS = ("auc", "correlation", "pearson", "eta", "mutual_info")  # core.target names Pearson's r "pearson"

NUMERIC = ("integer", "float", "decimal")


@dataclass(frozen=True)
class Alert:
    """One finding: its kind, the column (None for the whole dataset), a sentence, and the figures."""

    kind: str
    column: str | None
    severity: str  # 'warning' | 'info'
    message: str
    evidence: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        return jsonable(asdict(self))


# ----------------------------------------------------------------------------------------------
# Text


def _pct(share: float) -> str:
    """0.372 -> '37.2%', 0.37 -> '37%'; never rounds a non-zero share to 0 % or a partial one to 100 %."""
    p = 100.0 * share
    if 0 < p < 0.1:
        return "<0.1%"
    if 99.9 < p < 100:
        return ">99.9%"
    return f"{p:.1f}".removesuffix(".0") + "%"


def _num(value: object) -> str:
    """Numbers for a sentence: thousands separators, 4 significant digits, no exponent for everyday sizes."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return significant(value)


def _value(value: object) -> str:
    """A data value quoted for a sentence, cut short when long (whole numbers as stored: 2013, not 2,013)."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, int) else _num(value)
    text = text if len(text) <= 30 else text[:29] + "…"
    return f"'{text}'" if isinstance(value, str) else text


# ----------------------------------------------------------------------------------------------
# From the profile alone: one small check per kind


def _quantile(c: ColumnProfile, key: str) -> float | None:
    return (c.quantiles or {}).get(key)


def _single_value(c: ColumnProfile) -> str:
    if c.top:
        return _value(c.top[0][0])
    if c.min is not None and c.min == c.max:
        return _value(c.min)
    return "NaN" if c.nan and c.nan == c.count else "one value"


def _constant(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    if c.count == 0:
        return Alert("constant", c.name, WARNING, f"{c.name} is empty: all {p.rows:,} values are missing.",
                     {"rows": p.rows, "missing": c.missing, "distinct": 0})
    # Approximate distinct counts can say 1 for two close values; numbers must also agree on min = max.
    if c.distinct is None or c.distinct > 1 or (c.kind in NUMERIC and c.min != c.max):
        return None
    rest = f", apart from {c.missing:,} missing" if c.missing else ""
    return Alert("constant", c.name, WARNING,
                 f"{c.name} is constant: all {c.count:,} of its values are {_single_value(c)}{rest}; "
                 "it cannot help a model.",
                 {"rows": p.rows, "count": c.count, "missing": c.missing, "distinct": c.distinct,
                  "value": c.top[0][0] if c.top else c.min})


def _almost_constant(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    # Top values are what the profile counts exactly; float columns have none, so they are not checked.
    if not c.top or not c.count:
        return None
    value, n = c.top[0]
    share = n / c.count
    if share < ALMOST_CONSTANT_SHARE:
        return None
    return Alert("almost_constant", c.name, INFO,
                 f"{c.name} is almost constant: {n:,} of its {c.count:,} values ({_pct(share)}) are {_value(value)}.",
                 {"value": value, "value_count": n, "count": c.count, "share": share,
                  "threshold": ALMOST_CONSTANT_SHARE})


def _missing(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    share = c.missing / p.rows
    if share < MISSING_INFO_SHARE:
        return None
    severity = WARNING if share >= MISSING_WARNING_SHARE else INFO
    # DuckDB reads an empty CSV field as missing, so in a CSV "missing" also means "left empty".
    what = "missing or empty" if fmt == "csv" else "missing"
    return Alert("missing", c.name, severity,
                 f"{c.name} is {_pct(share)} {what} ({c.missing:,} of {p.rows:,} rows).",
                 {"missing": c.missing, "rows": p.rows, "share": share,
                  "threshold": MISSING_WARNING_SHARE if severity == WARNING else MISSING_INFO_SHARE})


def _is_id_like(p: Profile, c: ColumnProfile) -> bool:
    return (c.kind in ("integer", "string") and p.rows >= ID_MIN_ROWS and c.distinct is not None
            and c.distinct >= (ID_SHARE if p.exact else ID_SHARE_APPROX) * p.rows)


def _id_like(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    if not _is_id_like(p, c):
        return None
    if not p.exact:
        unique, counted, verdict = "unique or almost unique", f"about {c.distinct:,}", "likely an ID"
    elif c.distinct == p.rows:
        unique, counted, verdict = "unique", f"{c.distinct:,}", "an ID"
    else:
        unique, counted, verdict = "almost unique", f"{c.distinct:,}", "likely an ID"
    return Alert("id_like", c.name, WARNING,
                 f"{c.name} is {unique} per row ({counted} distinct in {p.rows:,} rows): {verdict}, not a feature.",
                 {"distinct": c.distinct, "rows": p.rows, "share": c.distinct / p.rows, "distinct_exact": p.exact,
                  "threshold": ID_SHARE if p.exact else ID_SHARE_APPROX})


def _high_cardinality(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    if c.kind != "string" or c.distinct is None or _is_id_like(p, c):
        return None
    share = c.distinct / p.rows
    if share <= HIGH_CARDINALITY_SHARE and c.distinct <= HIGH_CARDINALITY_COUNT:
        return None
    about = "" if p.exact else "about "
    return Alert("high_cardinality", c.name, INFO,
                 f"{c.name} has {about}{c.distinct:,} distinct values in {p.rows:,} rows ({_pct(share)}): "
                 "too many categories to one-hot encode; group rare values or use a target or hash encoding.",
                 {"distinct": c.distinct, "rows": p.rows, "share": share, "distinct_exact": p.exact,
                  "threshold_share": HIGH_CARDINALITY_SHARE, "threshold_count": HIGH_CARDINALITY_COUNT})


def quantile_skewness(c: ColumnProfile) -> float | None:
    """(p95 + p5 - 2·p50) / (p95 - p5), or None when the quantiles are missing or p95 = p5."""
    p5, p50, p95 = (_quantile(c, k) for k in ("p5", "p50", "p95"))
    if p5 is None or p50 is None or p95 is None or p95 <= p5:
        return None
    return (p95 + p5 - 2 * p50) / (p95 - p5)


def _skewed(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    # A column that is mostly zeros is skewed because of them; the zeros alert says it better.
    if c.kind not in NUMERIC or (c.distinct is not None and c.distinct < SKEW_MIN_DISTINCT) or _zeros(p, c, fmt):
        return None
    skew = quantile_skewness(c)
    if skew is None or abs(skew) <= SKEW_LIMIT:
        return None
    p5, p50, p95 = (_quantile(c, k) for k in ("p5", "p50", "p95"))
    side = "right" if skew > 0 else "left"
    hint = "; a log transform may help" if skew > 0 and c.min is not None and c.min >= 0 else ""
    return Alert("skewed", c.name, INFO,
                 f"{c.name} is strongly {side}-skewed (quantile skewness {skew:+.2f}: p5 {_num(p5)}, "
                 f"median {_num(p50)}, p95 {_num(p95)}){hint}.",
                 {"skewness": skew, "p5": p5, "p50": p50, "p95": p95, "mean": c.mean, "threshold": SKEW_LIMIT})


def _zeros(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    if not c.zeros or not c.count or _almost_constant(p, c, fmt):
        return None
    share = c.zeros / c.count
    if share < ZEROS_SHARE:
        return None
    return Alert("zeros", c.name, INFO, f"{c.name} is {_pct(share)} zeros ({c.zeros:,} of {c.count:,} values).",
                 {"zeros": c.zeros, "count": c.count, "share": share, "threshold": ZEROS_SHARE})


def _non_finite(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    nan, pinf, ninf = c.nan or 0, c.pos_inf or 0, c.neg_inf or 0
    if c.kind != "float" or not nan + pinf + ninf:
        return None
    parts = [f"{n:,} {label}" for n, label in ((nan, "NaN"), (pinf, "+Inf"), (ninf, "-Inf")) if n]
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return Alert("non_finite", c.name, WARNING,
                 f"{c.name} holds {listed} among its {c.count:,} values: the statistics here leave them out, "
                 "and most models reject them.",
                 {"nan": nan, "pos_inf": pinf, "neg_inf": ninf, "count": c.count,
                  "share": (nan + pinf + ninf) / c.count})


def far_fences(c: ColumnProfile) -> tuple[float, float] | None:
    """Tukey's far fences (p25 - 3·IQR, p75 + 3·IQR), or None without quartiles or with IQR 0.

    With IQR 0 (half the values equal) every other value would be an "outlier", which says nothing.
    """
    p25, p75 = _quantile(c, "p25"), _quantile(c, "p75")
    if p25 is None or p75 is None or p75 <= p25:
        return None
    iqr = p75 - p25
    return p25 - FENCE_IQR * iqr, p75 + FENCE_IQR * iqr


def _beyond_fences(c: ColumnProfile) -> tuple[float, float] | None:
    """The far fences of a numeric column whose min or max lies beyond them, else None."""
    fences = far_fences(c) if c.kind in NUMERIC else None
    if fences is None or c.min is None or c.max is None:
        return None
    lo, hi = fences
    return fences if float(c.min) < lo or float(c.max) > hi else None


def _fence_evidence(c: ColumnProfile, lo: float, hi: float) -> dict:
    p25, p75 = _quantile(c, "p25"), _quantile(c, "p75")
    return {"min": c.min, "max": c.max, "p25": p25, "p75": p75, "iqr": p75 - p25, "lower_fence": lo,
            "upper_fence": hi}


def _outliers(p: Profile, c: ColumnProfile, fmt: str | None) -> Alert | None:
    fences = _beyond_fences(c)
    if fences is None:
        return None
    lo, hi = fences
    sides = [text for beyond, text in ((float(c.max) > hi, f"the max {_num(c.max)} lies above {_num(hi)}"),
                                       (float(c.min) < lo, f"the min {_num(c.min)} lies below {_num(lo)}")) if beyond]
    h = c.histogram
    # The histogram counts values outside its p1/p99 bounds apart: a bound on how many are extreme.
    tails = {"histogram_low": h.edges[0], "histogram_high": h.edges[-1], "below_histogram": h.below,
             "above_histogram": h.above} if h else {}
    return Alert("outliers", c.name, INFO,
                 f"{c.name} has extreme values: {' and '.join(sides)}, Tukey's far fences "
                 f"({FENCE_IQR:g} × IQR beyond the quartiles).",
                 {**_fence_evidence(c, lo, hi), **tails, "exact_count": False})


# Checks in the order their alerts are listed; `profile_alerts` runs the first alone for constant columns.
COLUMN_CHECKS: tuple[Callable[[Profile, ColumnProfile, str | None], Alert | None], ...] = (
    _constant, _missing, _id_like, _high_cardinality, _almost_constant, _non_finite, _zeros, _skewed, _outliers,
)


def profile_alerts(profile: Profile, *, fmt: str | None = None) -> tuple[Alert, ...]:
    """Alerts read off a profile, without a query.

    Parameters
    ----------
    profile
        The dataset's profile. Distinct counts may be approximate (``profile.exact`` False): messages
        then say "about".
    fmt
        The dataset's file format (``'csv'`` or ``'parquet'``); in a CSV an empty field reads as missing,
        and the missing-value message says so.
    """
    if profile.rows == 0:
        return (Alert("empty", None, WARNING, f"{profile.table} has no rows.", {"rows": 0}),)
    out: list[Alert] = []
    if profile.duplicate_rows > 0:
        share = profile.duplicate_rows / profile.rows
        out.append(Alert("duplicates", None, WARNING,
                         f"{profile.table} has {profile.duplicate_rows:,} duplicate rows ({_pct(share)} of "
                         f"{profile.rows:,}): rows identical to an earlier one.",
                         {"duplicate_rows": profile.duplicate_rows, "rows": profile.rows, "share": share,
                          "exact": profile.exact}))
    for c in profile.columns:
        constant = _constant(profile, c, fmt)
        if constant:
            out.append(constant)
            continue
        out += [a for check in COLUMN_CHECKS[1:] if (a := check(profile, c, fmt))]
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# From the data: exact outlier counts, mixed types in CSV text columns


def _batches(items: list, size: int = BATCH_COLUMNS) -> list[list]:
    return [items[b:b + size] for b in range(0, len(items), size)]


def _aggregate(cur: duckdb.DuckDBPyConnection, table: str, exprs: list[tuple[str, str]],
               params: list | None = None) -> dict:
    """One aggregate query over the whole table; {alias: value}."""
    sql = "SELECT " + ", ".join(f"{e} AS {a}" for a, e in exprs) + f" FROM {quote_ident(table)}"
    rel = cur.execute(sql, params or [])
    return dict(zip([d[0] for d in rel.description], rel.fetchall()[0], strict=True))


def outlier_alerts(con: duckdb.DuckDBPyConnection, table: str, profile: Profile) -> tuple[Alert, ...]:
    """Exact counts of values beyond Tukey's far fences, for numeric columns whose extremes pass them.

    Fences come from the profile's quartiles (approximate when ``profile.exact`` is False; the count
    against those fences is exact). Columns whose min and max lie within the fences have no
    outliers and are not queried; the rest are counted in one aggregate query per
    ``BATCH_COLUMNS`` columns, with the fences as bound parameters. NaN and ±Inf are left out
    (the ``non_finite`` alert reports them).

    Parameters
    ----------
    table
        The registered dataset (a view name) the profile describes.
    """
    todo = [(c, fences) for c in profile.columns if (fences := _beyond_fences(c))]
    if not todo or profile.rows == 0:
        return ()
    counts: dict = {}
    cur = con.cursor()
    try:
        for batch in _batches(list(enumerate(todo))):
            exprs, params = [], []
            for i, (c, (lo, hi)) in batch:
                x = f"{quote_ident(c.name)}::DOUBLE"
                params += [lo, hi]
                # isfinite first: NaN compares greater than every number in DuckDB.
                exprs += [(f"c{i}_low", f"count_if(isfinite({x}) AND {x} < ${len(params) - 1}::DOUBLE)"),
                          (f"c{i}_high", f"count_if(isfinite({x}) AND {x} > ${len(params)}::DOUBLE)")]
            counts.update(_aggregate(cur, table, exprs, params))
    except duckdb.Error as exc:
        raise translate(exc, f"Counting outliers in {table!r}") from None
    finally:
        cur.close()
    out = []
    for i, (c, (lo, hi)) in enumerate(todo):
        low, high = int(counts[f"c{i}_low"]), int(counts[f"c{i}_high"])
        if not low + high:
            continue
        share = (low + high) / c.count
        out.append(Alert("outliers", c.name, INFO,
                         f"{c.name} has {low + high:,} values ({_pct(share)}) beyond Tukey's far fences "
                         f"({low:,} below {_num(lo)}, {high:,} above {_num(hi)}).",
                         {**_fence_evidence(c, lo, hi), "below": low, "above": high, "outliers": low + high,
                          "count": c.count, "share": share, "exact_count": True,
                          "quantiles_exact": profile.exact}))
    return tuple(out)


def _examples(cur: duckdb.DuckDBPyConnection, table: str, column: str) -> list[str]:
    """Up to MIXED_EXAMPLES of the most common non-empty values that parse as neither a number nor a time.

    Bounded: it reads the first MIXED_EXAMPLE_SCAN such values, not the whole column.
    """
    q = quote_ident(column)
    sql = (f"SELECT v FROM (SELECT {q} AS v FROM {quote_ident(table)} WHERE trim({q}) <> '' "
           f"AND TRY_CAST({q} AS DOUBLE) IS NULL AND TRY_CAST({q} AS TIMESTAMP) IS NULL "
           f"LIMIT {MIXED_EXAMPLE_SCAN}) GROUP BY v ORDER BY count(*) DESC, v LIMIT {MIXED_EXAMPLES}")
    return [r[0] for r in cur.execute(sql).fetchall()]


def _mixed_message(name: str, kinds: dict[str, int], examples: list[str]) -> str:
    """'x has mixed types: 37% of values are numbers, the rest text (e.g. 'N/A', '12a').'"""
    total = sum(kinds.values())
    parsed = [(n / total, kind) for kind, n in kinds.items() if kind != "text" and n]
    if kinds["text"]:
        rest = f"the rest text (e.g. {', '.join(_value(e) for e in examples)})"
    else:  # numbers and dates only: name the second as the rest
        parsed, rest = parsed[:1], f"the rest {parsed[1][1]}"
    (share, kind), more = parsed[0], "".join(f" and {_pct(s)} {k}" for s, k in parsed[1:])
    return f"{name} has mixed types: {_pct(share)} of values are {kind}{more}, {rest}."


def mixed_type_alerts(con: duckdb.DuckDBPyConnection, table: str, profile: Profile,
                      fmt: str | None) -> tuple[Alert, ...]:
    """Text columns of a CSV whose values are partly numbers or dates: DuckDB typed them as text.

    Each non-empty value is a number (``TRY_CAST(x AS DOUBLE)`` succeeds), else a date or
    timestamp (``TRY_CAST(x AS TIMESTAMP)``), else text. A column is mixed when numbers or dates
    are at least ``MIXED_MIN_SHARE`` of its non-empty values but not all of them are one kind.
    The shares come from one aggregate query per ``BATCH_COLUMNS`` columns; the examples of
    text values from a bounded query per mixed column. Parquet keeps its types: only ``fmt ==
    'csv'`` is checked.
    """
    cols = [c for c in profile.columns if c.kind == "string" and c.count]
    if fmt != "csv" or not cols or profile.rows == 0:
        return ()
    out = []
    cur = con.cursor()
    try:
        shares: dict = {}
        for batch in _batches(list(enumerate(cols))):
            exprs = []
            for i, c in batch:
                q = quote_ident(c.name)
                filled, number = f"trim({q}) <> ''", f"TRY_CAST({q} AS DOUBLE) IS NOT NULL"
                exprs += [(f"c{i}_filled", f"count_if({filled})"),
                          (f"c{i}_num", f"count_if({filled} AND {number})"),
                          (f"c{i}_date", f"count_if({filled} AND NOT {number} AND TRY_CAST({q} AS TIMESTAMP) "
                                         "IS NOT NULL)")]
            shares.update(_aggregate(cur, table, exprs))
        for i, c in enumerate(cols):
            filled, num, dates = (int(shares[f"c{i}_{k}"]) for k in ("filled", "num", "date"))
            text = filled - num - dates
            kinds = {"numbers": num, "dates": dates, "text": text}
            if not filled or max(num, dates) < MIXED_MIN_SHARE * filled or max(kinds.values()) == filled:
                continue
            examples = _examples(cur, table, c.name) if text else []
            out.append(Alert("mixed_types", c.name, WARNING, _mixed_message(c.name, kinds, examples),
                             {"non_empty": filled, "numbers": num, "dates": dates, "text": text,
                              "number_share": num / filled, "date_share": dates / filled,
                              "text_examples": examples, "threshold": MIXED_MIN_SHARE}))
    except duckdb.Error as exc:
        raise translate(exc, f"Checking value types in {table!r}") from None
    finally:
        cur.close()
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# The target: imbalance and leakage


def class_shares(c: ColumnProfile) -> dict[object, float] | None:
    """{class: share of labelled rows} when the profile's top values cover every class, else None."""
    if not c.top or c.other or not c.count or len(c.top) < 2:
        return None
    return {value: n / c.count for value, n in c.top}


def _entropy(shares: Iterable[float]) -> float:
    """Shannon entropy in nats."""
    return -sum(s * math.log(s) for s in shares if s > 0)


def _leakage(target: str, r: object, entropy: float | None) -> Alert | None:
    feature, metric, score = r.feature, r.metric, r.score
    if metric not in LEAKAGE_METRICS:
        raise QuarryError(f"No leakage rule for the metric {metric!r} of {feature!r}.",
                          f"Relations must be measured by one of: {', '.join(LEAKAGE_METRICS)}.")
    if feature == target or score is None or not math.isfinite(score):
        return None
    evidence: dict = {"feature": feature, "metric": metric, "score": score}
    if metric == "auc":
        strength, threshold, label = score, LEAKAGE_AUC, f"AUC {score:.3f}"
    elif metric in ("correlation", "pearson", "eta"):
        strength, threshold = abs(score), LEAKAGE_CORRELATION
        signed = getattr(r, "raw", None) if metric == "pearson" else score
        label = f"eta {score:.3f}" if metric == "eta" else f"correlation {signed if signed is not None else score:+.3f}"
    else:
        if not entropy:
            return None  # cannot normalise: no target entropy given or computable
        strength, threshold = score / entropy, LEAKAGE_NORMALIZED_MI
        label = f"mutual information {_pct(strength)} of the target's entropy"
        evidence.update(target_entropy=entropy, normalized=strength)
    if strength < threshold:
        return None
    return Alert("leakage", feature, WARNING,
                 f"{feature} predicts the target {target} almost perfectly ({label}): probably target leakage, "
                 "information not known when predicting.",
                 {**evidence, "target": target, "threshold": threshold})


def target_alerts(profile: Profile, target: str, relations: Iterable[object] | None = None, *,
                  target_entropy: float | None = None) -> tuple[Alert, ...]:
    """Imbalanced classes of the target, and features that predict it suspiciously well.

    Parameters
    ----------
    target
        The target column. It is a classification target here when the profile's top values list
        every class (at most ``core.profile.TOP_K`` of them); the smallest class under
        ``IMBALANCE_SHARE`` of labelled rows is a warning.
    relations
        Objects with ``feature``, ``metric`` (``'auc'``, ``'mutual_info'``, ``'correlation'`` or
        ``'eta'``) and ``score`` (AUC already folded to max(AUC, 1 - AUC)). Mutual information,
        in nats, is normalised by the target's entropy.
    target_entropy
        The target's entropy in nats; when None it is computed from the class shares, and mutual
        information is not judged for a target without them (a regression target).
    """
    try:
        c = profile.column(target)
    except StopIteration:
        raise QuarryError(f"The target {target!r} is not a column of {profile.table}.",
                          "Pick the target among the dataset's columns.") from None
    out = []
    shares = class_shares(c)
    if shares:
        smallest, share = min(shares.items(), key=lambda kv: (kv[1], str(kv[0])))
        if share < IMBALANCE_SHARE:
            listed = ", ".join(f"{_value(v)} {_pct(s)}" for v, s in shares.items())
            out.append(Alert("imbalanced", target, WARNING,
                             f"The target {target} is imbalanced: its smallest class, {_value(smallest)}, is "
                             f"{_pct(share)} of {c.count:,} labelled rows ({listed}).",
                             {"class_shares": {str(v): s for v, s in shares.items()},
                              "class_counts": {str(v): n for v, n in c.top}, "smallest_class": smallest,
                              "smallest_share": share, "labelled": c.count, "threshold": IMBALANCE_SHARE}))
    entropy = target_entropy if target_entropy is not None else (_entropy(shares.values()) if shares else None)
    out += [a for r in relations or () if (a := _leakage(target, r, entropy))]
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# Everything


def sort_alerts(alerts: Iterable[Alert]) -> tuple[Alert, ...]:
    """Warnings first; within a severity, dataset-level alerts, then by column and kind."""
    return tuple(sorted(alerts, key=lambda a: (a.severity != WARNING, a.column is not None, a.column or "", a.kind)))


def all_alerts(profile: Profile, con: duckdb.DuckDBPyConnection | None = None, *, fmt: str | None = None,
               target: str | None = None, relations: Iterable[object] | None = None,
               target_entropy: float | None = None) -> tuple[Alert, ...]:
    """Every alert that applies, warnings first, then by column.

    Parameters
    ----------
    con
        When given, outliers are counted exactly over the data (replacing the profile's estimate)
        and, for a CSV (``fmt='csv'``), text columns are checked for mixed types. The dataset is
        ``profile.table``.
    target, relations, target_entropy
        As for `target_alerts`; target checks run when ``target`` is given.
    """
    alerts = list(profile_alerts(profile, fmt=fmt))
    if con is not None:
        alerts = [a for a in alerts if a.kind != "outliers"]
        alerts += outlier_alerts(con, profile.table, profile)
        alerts += mixed_type_alerts(con, profile.table, profile, fmt)
    if target is not None:
        alerts += target_alerts(profile, target, relations, target_entropy=target_entropy)
    return sort_alerts(alerts)

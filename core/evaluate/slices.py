"""A metric per group of a column's values (slices) and fairness measures across the groups, over a run's scored
test split (core.holdout), computed in DuckDB as core.evaluate does.

A Grouping turns a column into a SQL expression giving each test row its group: the most frequent values
(the rest pooled as "(other)"), or equal-count bins of a numeric or temporal column. Only one row per group
reaches Python. Intervals are 95 % (core.stats); a ratio whose denominator is 0 is None.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import duckdb

from core.data.engine import quote_ident, quote_literal, translate
from core.data.types import NUMERIC, column_kind
from core.errors import QuarryError
from core.evaluate.holdout import Scored
from core.evaluate.metrics import EXACT_ROWS, auc_parts_sql, fetch, finite_number, quantiles
from core.evaluate.stats import Z, auc_from_parts, finite, hanley_mcneil, mean_ci, ratio, wilson
from core.fmt import jsonable

SMALL_GROUP = 30  # slices and fairness say when a group has fewer rows than this
MISSING = "(missing)"
OTHER = "(other)"

SLICE_METRICS = {
    "binary": ["auc", "accuracy", "precision", "recall", "positive_rate"],
    "multiclass": ["accuracy", "macro_recall"],
    "regression": ["rmse", "mae", "mean_residual"],
}
# None: no better direction -- the groups furthest from the overall value come first.
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "precision": True, "recall": True, "positive_rate": None,
                    "macro_recall": True, "rmse": False, "mae": False, "mean_residual": None}


# ----------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class SliceTable:
    """One metric per group of a column's values, with 95 % intervals, the worst group first.

    ``rows``: ``{"group", "count", "value", "lo", "hi", "delta"}`` (delta = value - overall value).
    """

    column: str
    metric: str
    higher_is_better: bool
    overall: dict  # {"count", "value", "lo", "hi"}
    rows: list[dict]
    note: str | None = None
    threshold: float | None = None  # binary: the decision threshold the rates are taken at

    def to_json(self) -> dict:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class Grouping:
    """How the test rows are grouped by one column: a SQL expression giving each row's group label.

    ``kind`` is "category" (the most frequent values, then "(other)") or "bins" (equal-count bins of
    a numeric or temporal column: bin i holds edges[i] <= value < edges[i + 1], the last bin also its
    upper edge, the column's maximum). Missing values (NULL, NaN) are the group "(missing)".
    ``labels`` are the groups in display order (those with rows; "(other)" and "(missing)" last).
    """

    column: str
    kind: str
    sql: str
    params: dict
    labels: list[str]
    edges: list | None = None


# ----------------------------------------------------------------------------------------------
# Grouping


def slice_metrics(task: str) -> list[str]:
    """The metrics `slices` computes for a task; the first is the default."""
    if task not in SLICE_METRICS:
        raise QuarryError(f"Unknown task {task!r}.", f"Pick one of: {', '.join(SLICE_METRICS)}.")
    return list(SLICE_METRICS[task])


def _check_column(scored: Scored, column: str) -> str:
    if column not in scored.columns:
        names = list(scored.columns)
        shown = ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
        raise QuarryError(f"The test rows have no column {column!r}.", f"Pick one of: {shown}.")
    return scored.columns[column]


def _format_edge(value, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if hasattr(value, "isoformat"):
        text = value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
        return text.removesuffix(" 00:00:00")
    return str(value)


def _bin_labels(edges: list, top) -> list[str]:
    """'[a, b)' per bin, '[a, max]' for the last; digits added until the labels differ."""
    for digits in range(4, 18):
        text = [_format_edge(e, digits) for e in [*edges, top]]
        labels = [f"[{text[i]}, {text[i + 1]})" for i in range(len(edges) - 1)] + [f"[{text[-2]}, {text[-1]}]"]
        if len(set(labels)) == len(labels):
            break
    return labels


def grouping(con: duckdb.DuckDBPyConnection, scored: Scored, column: str, *, max_groups: int = 20,
             bins: int = 10) -> Grouping:
    """How `slices` and `fairness` group the test rows by `column` (see Grouping).

    Text, boolean and other columns, and numeric ones with at most `bins` distinct values: the
    `max_groups` most frequent values, the rest pooled as "(other)". Numeric and temporal columns:
    `bins` bins of about equal row counts (exact quantiles up to EXACT_ROWS rows, t-digest above).
    """
    duck_type = _check_column(scored, column)
    if not 1 <= int(max_groups) <= 1000:
        raise QuarryError(f"max_groups must be between 1 and 1000. Got {max_groups}.", "Show fewer groups.")
    if not 2 <= int(bins) <= 100:
        raise QuarryError(f"bins must be between 2 and 100. Got {bins}.", "Pick a number of bins from 2 to 100.")
    kind = column_kind(duck_type)
    q = quote_ident(column)
    missing = f"({q} IS NULL OR isnan({q}))" if kind == "float" else f"{q} IS NULL"
    cur = con.cursor()
    try:
        if kind in (*NUMERIC, "temporal"):
            usable = f"NOT {missing}" + (f" AND isfinite({q})" if kind == "float" else "")
            qf = quantiles(scored.rows <= EXACT_ROWS).replace("quantile_cont", "quantile_disc")
            probs = "[" + ", ".join(repr(i / bins) for i in range(1, bins)) + "]"
            distinct, low, high, cuts, has_missing = fetch(
                cur, f"SELECT approx_count_distinct({q}) FILTER (WHERE NOT {missing}), min({q}) FILTER (WHERE NOT "
                     f"{missing}), max({q}) FILTER (WHERE NOT {missing}), {qf}({q}, {probs}) FILTER (WHERE {usable}), "
                     f"count(*) FILTER (WHERE {missing}) > 0 FROM {scored.table}")[0]
            if distinct and distinct > bins:
                edges = [low, *sorted({e for e in cuts or [] if e is not None and low < e <= high})]
                labels = _bin_labels(edges, high)
                params = {f"g_e{i}": e for i, e in enumerate(edges) if i} | {f"g_l{i}": s for i, s in enumerate(labels)}
                whens = " ".join(f"WHEN {q} < $g_e{i} THEN $g_l{i - 1}" for i in range(1, len(edges)))
                sql = (f"CASE WHEN {missing} THEN {quote_literal(MISSING)} {whens} "
                       f"ELSE $g_l{len(labels) - 1} END")
                return Grouping(column, "bins", sql, params, labels + ([MISSING] if has_missing else []), edges)
        key = f"CAST({q} AS VARCHAR)"
        found = fetch(cur, f"SELECT {key} AS key, count(*) FROM {scored.table} WHERE NOT {missing} GROUP BY key "
                            f"ORDER BY count(*) DESC, key LIMIT $k", {"k": int(max_groups)})
        top = [k for k, _ in found]
        if top and kind in (*NUMERIC, "temporal", "boolean"):  # values in their own order, not by count
            top = [k for (k,) in fetch(cur, f"SELECT {key} AS key FROM {scored.table} "
                                             f"WHERE list_contains($top, {key}) GROUP BY key ORDER BY min({q})",
                                        {"top": top})]
        params = {"g_top": top} if top else {}
        chosen = f"list_contains($g_top, {key})" if top else "false"
        has_missing, has_other = fetch(cur, f"SELECT count(*) FILTER (WHERE {missing}) > 0, count(*) FILTER "
                                             f"(WHERE NOT {missing} AND NOT {chosen}) > 0 FROM {scored.table}",
                                        params)[0]
        sql = (f"CASE WHEN {missing} THEN {quote_literal(MISSING)} WHEN {chosen} THEN {key} "
               f"ELSE {quote_literal(OTHER)} END")
        labels = top + ([OTHER] if has_other else []) + ([MISSING] if has_missing else [])
        return Grouping(column, "category", sql, params, labels)
    except duckdb.Error as exc:
        raise translate(exc, f"Grouping the test rows by {column!r}") from None
    finally:
        cur.close()


# ----------------------------------------------------------------------------------------------
# Slices


def _binary_group_stats(cur: duckdb.DuckDBPyConnection, scored: Scored, g: Grouping, t: float,
                        with_auc: bool) -> tuple[dict, dict]:
    """Per group and overall: n, positives, predicted positives, tp, correct (and auc parts)."""
    found = fetch(cur, f"""
        SELECT g, grouping(g), count(*), count(*) FILTER (WHERE y), count(*) FILTER (WHERE hit),
               count(*) FILTER (WHERE y AND hit), count(*) FILTER (WHERE y = hit)
        FROM (SELECT {g.sql} AS g, __label = 1 AS y, __score >= $t AS hit FROM {scored.table})
        GROUP BY GROUPING SETS ((g), ())""", {**g.params, "t": t})
    groups, overall = {}, {}
    for name, is_all, n, pos, pp, tp, correct in found:
        stats = {"n": int(n), "pos": int(pos), "pp": int(pp), "tp": int(tp), "correct": int(correct)}
        if is_all:
            overall = stats
        else:
            groups[name] = stats
    if with_auc:
        src = f"(SELECT {g.sql} AS __g, __score, __label FROM {scored.table})"
        for name, _, _, pairs in fetch(cur, auc_parts_sql(src, "__g", "__score", "__label = 1"), g.params):
            groups[name]["pairs"] = int(pairs)
        for _, _, _, pairs in fetch(cur, auc_parts_sql(scored.table, "0", "__score", "__label = 1")):
            overall["pairs"] = int(pairs)
    return groups, overall


def _multiclass_group_stats(cur: duckdb.DuckDBPyConnection, scored: Scored, g: Grouping) -> tuple[dict, dict]:
    """Per group and overall: {class code: (rows, correct)}."""
    found = fetch(cur, f"""
        SELECT g, grouping(g), k, count(*), count(*) FILTER (WHERE __pred = k)
        FROM (SELECT {g.sql} AS g, CAST(__label AS INTEGER) AS k, __pred FROM {scored.table})
        GROUP BY GROUPING SETS ((g, k), (k))""", g.params)
    groups: dict[str, dict] = {}
    overall: dict[int, tuple[int, int]] = {}
    for name, is_all, k, n, correct in found:
        (overall if is_all else groups.setdefault(name, {}))[int(k)] = (int(n), int(correct))
    return groups, overall


def _regression_group_stats(cur: duckdb.DuckDBPyConnection, scored: Scored, g: Grouping) -> tuple[dict, dict]:
    found = fetch(cur, f"""
        SELECT g, grouping(g), count(*), avg(e), stddev_samp(e), avg(abs(e)), stddev_samp(abs(e)), avg(e * e),
               stddev_samp(e * e), avg(p), avg(y)
        FROM (SELECT {g.sql} AS g, __label - __pred AS e, __pred AS p, __label AS y FROM {scored.table})
        GROUP BY GROUPING SETS ((g), ())""", g.params)
    groups, overall = {}, {}
    keys = ("n", "mean_e", "sd_e", "mae", "sd_abs", "mse", "sd_sq", "mean_pred", "mean_actual")
    for name, is_all, *values in found:
        stats = dict(zip(keys, values, strict=True))
        stats["n"] = int(stats["n"])
        if is_all:
            overall = stats
        else:
            groups[name] = stats
    return groups, overall


def _macro_recall(per_class: dict) -> tuple[float | None, float | None, float | None]:
    """Mean recall over the classes present, with a normal interval (independent per-class binomials)."""
    present = [(n, c) for n, c in per_class.values() if n]
    if not present:
        return None, None, None
    value = sum(c / n for n, c in present) / len(present)
    var = sum((c / n) * (1 - c / n) / n for n, c in present) / len(present) ** 2
    half = Z * math.sqrt(var)
    return value, max(0.0, value - half), min(1.0, value + half)


def _slice_value(metric: str, s: dict) -> tuple[float | None, float | None, float | None]:
    """(value, lo, hi) of a metric from a group's statistics."""
    if metric in ("accuracy", "precision", "recall", "positive_rate") and "pp" in s:
        k, n = {"accuracy": (s["correct"], s["n"]), "precision": (s["tp"], s["pp"]), "recall": (s["tp"], s["pos"]),
                "positive_rate": (s["pp"], s["n"])}[metric]
        return (ratio(k, n), *wilson(k, n))
    if metric == "auc":
        neg = s["n"] - s["pos"]
        auc = auc_from_parts(s["pos"], neg, s.get("pairs", 0))
        return (auc, *hanley_mcneil(auc, s["pos"], neg))
    if metric == "accuracy":  # multiclass: {class: (rows, correct)}
        n, c = sum(v[0] for v in s.values()), sum(v[1] for v in s.values())
        return (ratio(c, n), *wilson(c, n))
    if metric == "macro_recall":
        return _macro_recall(s)
    if metric == "mae":
        return (finite(s["mae"]), *mean_ci(finite(s["mae"]), finite(s["sd_abs"]), s["n"]))
    if metric == "mean_residual":
        return (finite(s["mean_e"]), *mean_ci(finite(s["mean_e"]), finite(s["sd_e"]), s["n"]))
    if metric == "rmse":
        mse = finite(s["mse"])
        lo, hi = mean_ci(mse, finite(s["sd_sq"]), s["n"])
        return (None if mse is None else math.sqrt(mse), None if lo is None else math.sqrt(max(lo, 0.0)),
                None if hi is None else math.sqrt(hi))
    raise AssertionError(metric)


def _group_stats(cur: duckdb.DuckDBPyConnection, scored: Scored, g: Grouping, t: float,
                 metric: str | None) -> tuple[dict, dict]:
    if scored.task == "binary":
        return _binary_group_stats(cur, scored, g, t, with_auc=metric in (None, "auc"))
    if scored.task == "multiclass":
        return _multiclass_group_stats(cur, scored, g)
    return _regression_group_stats(cur, scored, g)


def _count(s: dict) -> int:
    return s["n"] if "n" in s else sum(v[0] for v in s.values())


def slices(con: duckdb.DuckDBPyConnection, scored: Scored, column: str, *, metric: str | None = None,
           threshold: float | None = None, max_groups: int = 20, bins: int = 10) -> SliceTable:
    """A metric per group of `column`'s values (see :func:`grouping`), the worst group first.

    Parameters
    ----------
    metric
        One of :func:`slice_metrics` (the first when None). Binary rates are at `threshold` (the
        run's when None); ``positive_rate`` is the share of rows predicted positive.

    Intervals (95 %): Wilson for rates, Hanley-McNeil for AUC, a normal interval of the mean squared
    error (square-rooted) for rmse, mean +- 1.96 sd / sqrt(n) for mae and mean_residual, and for
    macro_recall a normal interval from the per-class binomial variances. A group whose metric is
    undefined (no positives for recall, one class for AUC) has value None and comes last.
    """
    choices = slice_metrics(scored.task)
    metric = metric or choices[0]
    if metric not in choices:
        raise QuarryError(f"Unknown slice metric {metric!r} for a {scored.task} run.",
                          f"Pick one of: {', '.join(choices)}.")
    t = float(scored.threshold) if threshold is None else finite_number(threshold, "threshold")
    g = grouping(con, scored, column, max_groups=max_groups, bins=bins)
    cur = con.cursor()
    try:
        groups, overall_stats = _group_stats(cur, scored, g, t, metric)
    except duckdb.Error as exc:
        raise translate(exc, f"Computing {metric} per group of {column!r}") from None
    finally:
        cur.close()
    value, lo, hi = _slice_value(metric, overall_stats)
    overall = {"count": _count(overall_stats), "value": value, "lo": lo, "hi": hi}
    rows = []
    for name in g.labels:
        if name not in groups:
            continue
        v, a, b = _slice_value(metric, groups[name])
        rows.append({"group": name, "count": _count(groups[name]), "value": v, "lo": a, "hi": b,
                     "delta": None if v is None or value is None else v - value})
    better = HIGHER_IS_BETTER[metric]

    def badness(r: dict) -> tuple:
        if r["value"] is None:
            return (1, 0.0)
        if better is None:
            return (0, -abs(r["delta"] or 0.0))
        return (0, r["value"] if better else -r["value"])

    rows.sort(key=badness)
    notes = []
    if better is None:
        notes.append(f"{metric} has no better direction: the groups furthest from the overall value come first.")
    small = [r["group"] for r in rows if r["count"] < SMALL_GROUP]
    if small:
        notes.append(f"{len(small)} group{'s' if len(small) > 1 else ''} with fewer than {SMALL_GROUP} rows "
                     f"({', '.join(small[:5])}{', ...' if len(small) > 5 else ''}): wide intervals.")
    if OTHER in groups:
        notes.append(f"{OTHER} pools the values outside the {len(g.labels) - 1 - (MISSING in groups)} most frequent.")
    return SliceTable(column=column, metric=metric, higher_is_better=bool(better), overall=overall, rows=rows,
                      note=" ".join(notes) or None, threshold=t if scored.task == "binary" else None)


# ----------------------------------------------------------------------------------------------
# Fairness


def _fair_row(task: str, s: dict) -> dict:
    if task == "binary":
        neg = s["n"] - s["pos"]
        return {"count": s["n"], "selection_rate": ratio(s["pp"], s["n"]), "tpr": ratio(s["tp"], s["pos"]),
                "fpr": ratio(s["pp"] - s["tp"], neg), "precision": ratio(s["tp"], s["pp"]),
                "accuracy": ratio(s["correct"], s["n"]), "positives": s["pos"]}
    if task == "multiclass":
        return {"count": _count(s), "accuracy": _slice_value("accuracy", s)[0],
                "macro_recall": _macro_recall(s)[0]}
    return {"count": s["n"], "mean_pred": finite(s["mean_pred"]), "mean_actual": finite(s["mean_actual"]),
            "mae": finite(s["mae"])}


def _spread(values: list) -> tuple[float | None, float | None]:
    """(max - min, min / max) of the defined values."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return max(vals) - min(vals), ratio(min(vals), max(vals))


def fairness(con: duckdb.DuckDBPyConnection, scored: Scored, column: str, *, threshold: float | None = None,
             max_groups: int = 20, bins: int = 10) -> dict:
    """How the model treats the groups of `column` (grouped as by :func:`slices`).

    Returns
    -------
    dict
        ``{"column", "threshold", "groups": [{"group", "count", ...}], "overall": {...}, "summary": {...},
        "notes": [...]}``. Per group: binary selection_rate (share predicted positive), tpr, fpr,
        precision, accuracy, positives; multiclass accuracy, macro_recall; regression mean_pred,
        mean_actual, mae. Summary: binary demographic_parity_difference / _ratio (max - min and
        min / max selection_rate), equal_opportunity_difference (max - min tpr),
        equalized_odds_difference (the larger of the tpr and fpr differences), accuracy_difference,
        accuracy_ratio; multiclass accuracy_difference / _ratio, macro_recall_difference / _ratio;
        regression mae_difference / mae_ratio (min / max), mean_pred_difference,
        mean_actual_difference. Every group counts, "(missing)" and "(other)" included.
    """
    t = float(scored.threshold) if threshold is None else finite_number(threshold, "threshold")
    g = grouping(con, scored, column, max_groups=max_groups, bins=bins)
    cur = con.cursor()
    try:
        groups, overall = _group_stats(cur, scored, g, t, "fairness")
    except duckdb.Error as exc:
        raise translate(exc, f"Computing fairness measures per group of {column!r}") from None
    finally:
        cur.close()
    task = scored.task
    rows = [{"group": name, **_fair_row(task, groups[name])} for name in g.labels if name in groups]
    summary: dict = {}
    if task == "binary":
        summary["demographic_parity_difference"], summary["demographic_parity_ratio"] = _spread(
            [r["selection_rate"] for r in rows])
        summary["equal_opportunity_difference"] = _spread([r["tpr"] for r in rows])[0]
        fpr_diff = _spread([r["fpr"] for r in rows])[0]
        both = [d for d in (summary["equal_opportunity_difference"], fpr_diff) if d is not None]
        summary["equalized_odds_difference"] = max(both) if both else None
        summary["accuracy_difference"], summary["accuracy_ratio"] = _spread([r["accuracy"] for r in rows])
    elif task == "multiclass":
        summary["accuracy_difference"], summary["accuracy_ratio"] = _spread([r["accuracy"] for r in rows])
        summary["macro_recall_difference"], summary["macro_recall_ratio"] = _spread([r["macro_recall"] for r in rows])
    else:
        summary["mae_difference"], summary["mae_ratio"] = _spread([r["mae"] for r in rows])
        summary["mean_pred_difference"] = _spread([r["mean_pred"] for r in rows])[0]
        summary["mean_actual_difference"] = _spread([r["mean_actual"] for r in rows])[0]
    notes = []
    small = [f"{r['group']} ({r['count']:,} rows)" for r in rows if r["count"] < SMALL_GROUP]
    if small:
        notes.append(f"Fewer than {SMALL_GROUP} rows, so their rates are noisy and can drive the differences: "
                     f"{', '.join(small)}.")
    if task == "binary":
        none = [r["group"] for r in rows if not r["positives"]]
        if none:
            notes.append(f"No positive rows, so no true positive rate: {', '.join(none)}.")
    if OTHER in groups:
        notes.append(f"{OTHER} pools the values outside the most frequent {max_groups}.")
    return {"column": column, "threshold": t if task == "binary" else None, "groups": rows,
            "overall": _fair_row(task, overall), "summary": summary, "notes": notes}

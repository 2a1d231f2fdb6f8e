"""Model evaluation over a run's scored test split (core.holdout), computed in DuckDB out of core.

Every number comes from SQL aggregates over ``scored.parquet``; only bounded results reach Python
(at most about a thousand curve points, 60 x 60 histogram cells, one row per slice group).

Binary runs first write ``curve.parquet`` beside the scored file: one row per distinct score, highest
first, with the rows at that score (``pos``, ``neg``) and the rows scored at or above it (``tp``,
``fp``). That table is the exact ROC and precision-recall curve (ties included), and AUC, average
precision, log loss, Brier score, calibration, gain and the score histograms are all sums over it,
so the scored file is read once. ``evaluation.json`` keeps the result; both stay valid while the
scored file (its path, size, modification time and scored.json) and the run's threshold are unchanged.

Conventions shared by every function: a ratio whose denominator is 0 is None; a classification label
is ``str(class value)``; confidence intervals are 95 %.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from core import holdout
from core.atomic import atomic_path, write_text
from core.engine import quote_ident, quote_literal, translate
from core.errors import QuarryError
from core.fmt import jsonable
from core.holdout import Scored
from core.profile import NUMERIC, column_kind
from core.runs import Run
from core.settings import Settings

FORMAT = "quarry.evaluation"
VERSION = 1
TASKS = ("binary", "multiclass", "regression")
EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] for log loss
Z = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
CURVE_BUCKETS = 330  # ROC/PR points: a new point whenever TPR, FPR or the share flagged crosses a 1/330 step
CALIBRATION_BINS = 10
GAIN_POINTS = 100
SCORE_BINS = 50
DENSITY_BINS = 60
RESIDUAL_BINS = 50
TAIL = 0.005  # histograms of values span their 0.5th to 99.5th percentile; the rest is counted apart
# Exact medians and quantiles hold their column in memory: above this many rows they are taken on a
# seeded sample (medians) or approximated with t-digest (histogram bounds, slice bin edges).
EXACT_ROWS = 5_000_000
SAMPLE_SEED = 42
SMALL_GROUP = 30  # slices and fairness say when a group has fewer rows than this
MISSING = "(missing)"
OTHER = "(other)"


# ----------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Evaluation:
    """How well a run does on its test split: headline metrics and the data of its charts.

    ``metrics`` maps a metric name to a float (None where undefined); ``curves`` holds the chart data
    of the task as JSON-able lists (see :func:`evaluate`).
    """

    run_id: str
    task: str
    rows: int
    metrics: dict
    curves: dict
    sample_note: str | None = None  # set when any part was computed on a sample

    def to_json(self) -> dict:
        return jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> Evaluation:
        return cls(run_id=data["run_id"], task=data["task"], rows=int(data["rows"]), metrics=dict(data["metrics"]),
                   curves=dict(data["curves"]), sample_note=data.get("sample_note"))


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
# Small helpers


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _f(value) -> float | None:
    """A finite float, or None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def wilson(k: int, n: int, z: float = Z) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion k / n; (None, None) when n is 0."""
    if not n:
        return None, None
    p = k / n
    d = 1 + z * z / n
    center = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    # exact at the ends (the interval of 0 / n starts at 0, of n / n ends at 1), which rounding can miss
    return (0.0 if k == 0 else max(0.0, center - half)), (1.0 if k == n else min(1.0, center + half))


def hanley_mcneil(auc: float | None, positives: int, negatives: int,
                  z: float = Z) -> tuple[float | None, float | None]:
    """Hanley & McNeil's (1982) normal interval of an AUC, clipped to [0, 1]."""
    if auc is None or not positives or not negatives:
        return None, None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives)
    se = math.sqrt(max(var, 0.0))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def _mean_ci(mean: float | None, sd: float | None, n: int) -> tuple[float | None, float | None]:
    if mean is None or sd is None or n < 2:
        return None, None
    half = Z * sd / math.sqrt(n)
    return mean - half, mean + half


def _rates(tp: int, fp: int, tn: int, fn: int) -> dict:
    """The confusion counts at one threshold and the rates made from them (None where 0 / 0)."""
    n = tp + fp + tn + fn
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "precision": _div(tp, tp + fp), "recall": _div(tp, tp + fn),
            "f1": _div(2 * tp, 2 * tp + fp + fn), "accuracy": _div(tp + tn, n), "specificity": _div(tn, tn + fp),
            "fpr": _div(fp, fp + tn), "selection_rate": _div(tp + fp, n)}


def _labels(scored: Scored) -> list[str]:
    return [str(c) for c in scored.classes or []]


def _fetch(cur: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[tuple]:
    return cur.sql(sql, params=params or None).fetchall()


def _require_task(scored: Scored, *tasks: str) -> None:
    if scored.task not in tasks:
        raise QuarryError(f"This works on {' or '.join(tasks)} runs only; run {scored.run_id!r} is {scored.task}.",
                          "Pick a run of that task.")


def _finite_number(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out):
        raise QuarryError(f"The {name} must be a finite number. Got {value!r}.", f"Enter a number for the {name}.")
    return out


def _check_rows(cur: duckdb.DuckDBPyConnection, scored: Scored) -> int:
    """The scored file's rows, after checking that every row has a usable label and prediction."""
    if scored.task == "binary":
        bad = "__label IS NULL OR __label NOT IN (0, 1) OR __score IS NULL OR NOT isfinite(__score)"
    elif scored.task == "multiclass":
        k = len(scored.classes or [])
        probs = " OR ".join(f"__p{i} IS NULL OR NOT isfinite(__p{i})" for i in range(k))
        bad = (f"__label IS NULL OR __label NOT IN ({', '.join(str(i) for i in range(k))}) "
               f"OR __pred IS NULL OR __pred < 0 OR __pred >= {k} OR {probs}")
    else:
        bad = "__label IS NULL OR NOT isfinite(__label) OR __pred IS NULL OR NOT isfinite(__pred)"
    rows, wrong = _fetch(cur, f"SELECT count(*), count(*) FILTER (WHERE {bad}) FROM {scored.table}")[0]
    if wrong:
        raise QuarryError(f"The scored test split of run {scored.run_id!r} ({scored.path}) has {wrong:,} rows "
                          "without a usable label or prediction.",
                          "Evaluate again with a fresh scored test split, or train the run again.")
    return int(rows)


# ----------------------------------------------------------------------------------------------
# Cache


def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _source_key(scored: Scored) -> dict:
    """What the evaluation depends on: the scored file, its scored.json, the run's threshold and classes."""
    try:
        key = _file_key(scored.path)
    except OSError:
        raise QuarryError(f"The scored test split of run {scored.run_id!r} is missing ({scored.path}).",
                          "Open the evaluation again: the test split is scored anew.") from None
    try:
        meta = scored.path.with_name("scored.json").read_text(encoding="utf-8")
    except OSError:
        meta = None
    return {**key, "scored_json": meta, "task": scored.task, "threshold": scored.threshold,
            "classes": jsonable(scored.classes), "rows": scored.rows}


def _cached(path: Path, key: dict, curve: Path) -> Evaluation | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if (doc.get("format"), doc.get("version"), doc.get("key")) != (FORMAT, VERSION, key):
            return None
        if doc.get("curve") is not None and doc["curve"] != _file_key(curve):
            return None
        return Evaluation.from_json(doc["evaluation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def curve_path(settings: Settings, run_id: str) -> Path:
    """A binary run's exact curve table (see the module docstring)."""
    return holdout.folder(settings, run_id) / "curve.parquet"


# ----------------------------------------------------------------------------------------------
# Evaluate


def evaluate(settings: Settings, con: duckdb.DuckDBPyConnection, scored: Scored, *,
             refresh: bool = False) -> Evaluation:
    """Evaluate a run on its scored test split, from the cache when the split is unchanged.

    Parameters
    ----------
    scored
        The run's scored test split (core.holdout.scored_test).
    refresh
        Compute again even when the cache is valid.

    Returns
    -------
    Evaluation
        binary: metrics auc, average_precision, logloss, brier, accuracy, precision, recall, f1 (at
        ``threshold``), threshold, positives, base_rate, rows; curves ``points`` (ROC/PR points sampled
        from the exact curve, both ends included: threshold, tpr, fpr, precision, recall, fraction, tp,
        fp), ``calibration`` (10 equal-count score bins: mean_pred, observed, count, lo, hi),
        ``gain`` (fraction, gain, lift), ``scores`` (edges, counts per class) and ``confusion`` at the
        threshold. multiclass: logloss, accuracy, macro/micro/weighted precision, recall and f1;
        curves ``confusion``, ``per_class``, ``scores``. regression: rmse, mae, r2, median_ae, mape,
        mape_rows, mean_actual, mean_pred; curves ``density``, ``residuals``, ``residual_vs_pred``.
    """
    _require_task(scored, *TASKS)
    out = holdout.folder(settings, scored.run_id)
    path, curve = out / "evaluation.json", out / "curve.parquet"
    key = _source_key(scored)
    if not refresh:
        cached = _cached(path, key, curve)
        if cached is not None:
            return cached
    cur = con.cursor()
    note = None
    try:
        rows = _check_rows(cur, scored)
        if not rows:
            raise QuarryError(f"The scored test split of run {scored.run_id!r} has no rows.",
                              "Train with a test fraction above 0.")
        if scored.task == "binary":
            metrics, curves = _binary(cur, scored, curve, rows)
        elif scored.task == "multiclass":
            metrics, curves = _multiclass(cur, scored, rows)
        else:
            metrics, curves, note = _regression(cur, scored, rows)
    except duckdb.Error as exc:
        raise translate(exc, f"Evaluating run {scored.run_id!r}") from None
    finally:
        cur.close()
    ev = Evaluation(run_id=scored.run_id, task=scored.task, rows=rows, metrics=metrics, curves=curves,
                    sample_note=note)
    doc = {"format": FORMAT, "version": VERSION, "key": key,
           "curve": _file_key(curve) if scored.task == "binary" else None, "evaluation": ev.to_json()}
    write_text(path, json.dumps(doc))
    return Evaluation.from_json(doc["evaluation"])  # the same values as a cache hit gives (NaN -> None)


# -- binary


def _curve_sql(scored: Scored) -> str:
    return (f"WITH g AS (SELECT __score AS threshold, count(*) FILTER (WHERE __label = 1) AS pos, "
            f"count(*) FILTER (WHERE __label = 0) AS neg FROM {scored.table} GROUP BY __score) "
            "SELECT threshold, pos, neg, CAST(sum(pos) OVER w AS BIGINT) AS tp, CAST(sum(neg) OVER w AS BIGINT) AS fp "
            "FROM g WINDOW w AS (ORDER BY threshold DESC ROWS UNBOUNDED PRECEDING) ORDER BY threshold DESC")


def _write_curve(cur: duckdb.DuckDBPyConnection, scored: Scored, curve: Path) -> None:
    with atomic_path(curve) as tmp:
        cur.execute(f"COPY ({_curve_sql(scored)}) TO {quote_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")


def _clip(x: str) -> str:
    return f"greatest(least({x}, {1 - EPS!r}), {EPS!r})"


def _binary(cur: duckdb.DuckDBPyConnection, scored: Scored, curve: Path, rows: int) -> tuple[dict, dict]:
    _write_curve(cur, scored, curve)
    c = f"read_parquet({quote_literal(str(curve))})"
    t = float(scored.threshold)
    p = _clip("threshold")
    pos, neg, pairs, ap, logloss, brier, tp, fp = _fetch(cur, f"""
        SELECT CAST(sum(pos) AS BIGINT), CAST(sum(neg) AS BIGINT), sum(CAST(neg AS HUGEINT) * (2 * tp - pos)),
               sum(pos * (tp / (tp + fp))), sum(-pos * ln({p}) - neg * ln(1 - {p})),
               sum(pos * (1 - threshold) ^ 2 + neg * threshold ^ 2),
               coalesce(sum(pos) FILTER (WHERE threshold >= $t), 0),
               coalesce(sum(neg) FILTER (WHERE threshold >= $t), 0)
        FROM {c}""", {"t": t})[0]
    tp, fp = int(tp), int(fp)
    both = pos > 0 and neg > 0
    at = _rates(tp, fp, neg - fp, pos - tp)
    metrics = {"auc": int(pairs) / (2 * pos * neg) if both else None,
               "average_precision": ap / pos if both else None,
               "logloss": logloss / rows, "brier": brier / rows,
               "accuracy": at["accuracy"], "precision": at["precision"], "recall": at["recall"], "f1": at["f1"],
               "threshold": t, "positives": pos, "base_rate": pos / rows, "rows": rows}
    labels = _labels(scored) or ["0", "1"]
    curves = {"points": _points(cur, c, pos, neg, rows),
              "calibration": _calibration(cur, c, rows),
              "gain": _gain(cur, c, pos, rows),
              "scores": _score_hist_from_curve(cur, c, labels),
              "confusion": {"labels": labels, "matrix": [[at["tn"], at["fp"]], [at["fn"], at["tp"]]],
                            "threshold": t}}
    return metrics, curves


def _points(cur: duckdb.DuckDBPyConnection, c: str, pos: int, neg: int, rows: int) -> dict:
    """Points of the exact curve: the first and last, and one wherever TPR, FPR or the share flagged
    crosses a 1/CURVE_BUCKETS step (at most about 3 x CURVE_BUCKETS points)."""
    m = CURVE_BUCKETS
    found = _fetch(cur, f"""
        WITH k AS (SELECT threshold, tp, fp, row_number() OVER (ORDER BY threshold DESC) AS k,
                          floor(tp * {m} / $p) AS bt, floor(fp * {m} / $n) AS bf, floor((tp + fp) * {m} / $r) AS br
                   FROM {c}),
             l AS (SELECT *, lag(bt) OVER o AS lt, lag(bf) OVER o AS lf, lag(br) OVER o AS lr, count(*) OVER () AS last
                   FROM k WINDOW o AS (ORDER BY k))
        SELECT threshold, tp, fp FROM l WHERE k = 1 OR k = last OR bt <> lt OR bf <> lf OR br <> lr ORDER BY k""",
                   {"p": max(pos, 1), "n": max(neg, 1), "r": max(rows, 1)})
    out = {"threshold": [], "tpr": [], "fpr": [], "precision": [], "recall": [], "fraction": [], "tp": [], "fp": []}
    for threshold, tp, fp in found:
        out["threshold"].append(float(threshold))
        out["tpr"].append(_div(tp, pos))
        out["fpr"].append(_div(fp, neg))
        out["precision"].append(_div(tp, tp + fp))
        out["recall"].append(_div(tp, pos))
        out["fraction"].append(_div(tp + fp, rows))
        out["tp"].append(int(tp))
        out["fp"].append(int(fp))
    return out


def _calibration(cur: duckdb.DuckDBPyConnection, c: str, rows: int) -> dict:
    """CALIBRATION_BINS bins of about equal row counts by score (tied scores stay in one bin)."""
    found = _fetch(cur, f"""
        WITH a AS (SELECT threshold, pos, neg, coalesce(sum(pos + neg) OVER (ORDER BY threshold
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before FROM {c})
        SELECT least(floor(before * {CALIBRATION_BINS} / $r), {CALIBRATION_BINS - 1}) AS bin,
               sum((pos + neg) * threshold) / sum(pos + neg), CAST(sum(pos) AS BIGINT), CAST(sum(pos + neg) AS BIGINT)
        FROM a GROUP BY bin ORDER BY bin""", {"r": rows})
    out = {"mean_pred": [], "observed": [], "count": [], "lo": [], "hi": []}
    for _, mean_pred, positives, count in found:
        lo, hi = wilson(positives, count)
        out["mean_pred"].append(float(mean_pred))
        out["observed"].append(positives / count)
        out["count"].append(int(count))
        out["lo"].append(lo)
        out["hi"].append(hi)
    return out


def _gain(cur: duckdb.DuckDBPyConnection, c: str, pos: int, rows: int) -> dict:
    """Share of positives among the top fraction of rows by score, for fractions 0.01 .. 1.00.

    Where the cut falls inside a group of tied scores it takes that group's positives pro rata (the
    expected value when tied rows are in random order)."""
    found = _fetch(cur, f"""
        WITH a AS (SELECT tp, pos, pos + neg AS cnt, tp + fp AS cum FROM {c}),
             f AS (SELECT i, i * $r / {GAIN_POINTS} AS cut FROM range(1, {GAIN_POINTS + 1}) t(i))
        SELECT i, tp - pos + pos * (cut - (cum - cnt)) / cnt FROM f ASOF JOIN a ON a.cum >= f.cut ORDER BY i""",
                   {"r": float(rows)})
    fraction = [i / GAIN_POINTS for i in range(1, GAIN_POINTS + 1)]
    captured = {int(i): float(v) for i, v in found}
    gain = [_div(captured.get(i, pos), pos) for i in range(1, GAIN_POINTS + 1)]
    lift = [None if g is None else g / f for g, f in zip(gain, fraction, strict=True)]
    return {"fraction": fraction, "gain": gain, "lift": lift}


def _bin_sql(x: str, bins: int) -> str:
    """The bin of a probability x among `bins` equal bins of [0, 1] (1.0 in the last)."""
    return f"CAST(greatest(least(floor({x} * {bins}), {bins - 1}), 0) AS INTEGER)"


def _edges01(bins: int) -> list[float]:
    return [i / bins for i in range(bins + 1)]


def _score_hist_from_curve(cur: duckdb.DuckDBPyConnection, c: str, labels: list[str]) -> dict:
    found = _fetch(cur, f"SELECT {_bin_sql('threshold', SCORE_BINS)} AS b, CAST(sum(neg) AS BIGINT), "
                        f"CAST(sum(pos) AS BIGINT) FROM {c} GROUP BY b")
    counts = {label: [0] * SCORE_BINS for label in labels}
    for b, neg, pos in found:
        counts[labels[0]][b] += int(neg)
        counts[labels[1]][b] += int(pos)
    return {"edges": _edges01(SCORE_BINS), "counts": counts}


# -- multiclass


def _auc_parts_sql(source: str, key: str, score: str, positive: str) -> str:
    """Per key: positives, negatives and 2 x the pairs ranked right (a tie counts half) -- the exact AUC
    is the last over 2 x positives x negatives."""
    return (f"WITH s AS (SELECT {key} AS g, {score} AS p, {positive} AS y FROM {source}), "
            "a AS (SELECT g, p, count(*) FILTER (WHERE y) AS pos, count(*) FILTER (WHERE NOT y) AS neg "
            "FROM s GROUP BY g, p), "
            "c AS (SELECT g, pos, neg, sum(pos) OVER (PARTITION BY g ORDER BY p DESC ROWS UNBOUNDED PRECEDING) AS tp "
            "FROM a) "
            "SELECT g, CAST(sum(pos) AS BIGINT), CAST(sum(neg) AS BIGINT), sum(CAST(neg AS HUGEINT) * (2 * tp - pos)) "
            "FROM c GROUP BY g")


def _auc_from_parts(pos: int, neg: int, pairs: int) -> float | None:
    return int(pairs) / (2 * pos * neg) if pos and neg else None


def _prf(matrix: list[list[int]]) -> tuple[list[dict], dict]:
    """Per-class precision, recall, f1, support from a confusion matrix (rows actual, columns predicted), and the
    macro / micro / weighted averages over the classes that occur as actual or predicted (as scikit-learn does,
    with zero_division=0)."""
    k = len(matrix)
    support = [sum(row) for row in matrix]
    predicted = [sum(matrix[i][j] for i in range(k)) for j in range(k)]
    per = []
    for j in range(k):
        tp = matrix[j][j]
        precision = tp / predicted[j] if predicted[j] else 0.0
        recall = tp / support[j] if support[j] else 0.0
        f1 = 2 * tp / (support[j] + predicted[j]) if support[j] + predicted[j] else 0.0
        per.append({"precision": precision, "recall": recall, "f1": f1, "support": support[j]})
    seen = [j for j in range(k) if support[j] or predicted[j]]
    n = sum(support)
    out = {}
    for m in ("precision", "recall", "f1"):
        out[f"macro_{m}"] = sum(per[j][m] for j in seen) / len(seen) if seen else None
        out[f"weighted_{m}"] = sum(per[j][m] * support[j] for j in seen) / n if n else None
    tp_all = sum(matrix[j][j] for j in seen)
    micro_p = _div(tp_all, sum(predicted[j] for j in seen)) or 0.0
    micro_r = _div(tp_all, sum(support[j] for j in seen)) or 0.0
    out["micro_precision"], out["micro_recall"] = micro_p, micro_r
    out["micro_f1"] = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0
    return per, out


def _own(k: int, columns: list[str] | None = None) -> str:
    """The value of the row's own class among `columns` (default __p0 ..): CASE <class code> WHEN 0 THEN .. END."""
    columns = columns or [f"__p{i}" for i in range(k)]
    return "CASE CAST(__label AS INTEGER) " + " ".join(f"WHEN {i} THEN {c}" for i, c in enumerate(columns)) + " END"


def _multiclass(cur: duckdb.DuckDBPyConnection, scored: Scored, rows: int) -> tuple[dict, dict]:
    k = len(scored.classes or [])
    labels = _labels(scored)
    clipped = [_clip(f"__p{i}") for i in range(k)]
    # like core.train.metrics: clipped, then renormalised (a no-op for probabilities that sum to 1)
    (logloss,) = _fetch(cur, f"SELECT sum(-ln(({_own(k, clipped)}) / ({' + '.join(clipped)}))) "
                             f"FROM {scored.table}")[0]
    matrix = [[0] * k for _ in range(k)]
    for actual, predicted, n in _fetch(cur, f"SELECT CAST(__label AS INTEGER), __pred, count(*) FROM {scored.table} "
                                            "GROUP BY ALL"):
        matrix[int(actual)][int(predicted)] = int(n)
    per, averages = _prf(matrix)
    union = " UNION ALL ".join(f"SELECT {i} AS k, __p{i} AS p, __label = {i} AS y FROM {scored.table}"
                               for i in range(k))
    aucs = {int(g): _auc_from_parts(pos, neg, pairs)
            for g, pos, neg, pairs in _fetch(cur, _auc_parts_sql(f"({union})", "k", "p", "y"))}
    hist = _fetch(cur, f"SELECT CAST(__label AS INTEGER) AS k, {_bin_sql(_own(k), SCORE_BINS)} AS b, count(*) "
                       f"FROM {scored.table} GROUP BY ALL")
    counts = {label: [0] * SCORE_BINS for label in labels}
    for code, b, n in hist:
        counts[labels[code]][b] += int(n)
    accuracy = sum(matrix[i][i] for i in range(k)) / rows
    metrics = {"logloss": logloss / rows, "accuracy": accuracy, **averages, "rows": rows}
    curves = {"confusion": {"labels": labels, "matrix": matrix},
              "per_class": [{"class": labels[i], **per[i], "auc": aucs.get(i)} for i in range(k)],
              "scores": {"edges": _edges01(SCORE_BINS), "counts": counts}}
    return metrics, curves


# -- regression


def _quantiles(exact: bool) -> str:
    return "quantile_cont" if exact else "approx_quantile"


def _bounds(lo: float | None, hi: float | None) -> tuple[float, float]:
    """A histogram range: [lo, hi], widened when it is empty."""
    lo, hi = (lo or 0.0), (hi if hi is not None else 0.0)
    if hi <= lo:
        pad = max(abs(lo) * 1e-6, 0.5)
        lo, hi = lo - pad, hi + pad
    return float(lo), float(hi)


def _edges(lo: float, hi: float, bins: int) -> list[float]:
    return [lo + (hi - lo) * i / bins for i in range(bins)] + [hi]


def _hist_bin(x: str, lo: str, hi: str, bins: int) -> str:
    """The bin of x among `bins` equal bins of [lo, hi] (hi in the last); NULL outside."""
    return (f"CASE WHEN {x} < {lo} OR {x} > {hi} THEN NULL "
            f"ELSE CAST(least(floor(({x} - {lo}) / ({hi} - {lo}) * {bins}), {bins - 1}) AS INTEGER) END")


def _hist2d(cur: duckdb.DuckDBPyConnection, source: str, x: str, y: str, xr: tuple[float, float],
           yr: tuple[float, float], bins: int) -> dict:
    """A bins x bins histogram of (x, y) over xr x yr: counts[y bin][x bin]; rows outside counted apart."""
    found = _fetch(cur, f"SELECT {_hist_bin(x, '$xlo', '$xhi', bins)} AS ix, {_hist_bin(y, '$ylo', '$yhi', bins)} "
                        f"AS iy, count(*) FROM {source} GROUP BY ALL",
                   {"xlo": xr[0], "xhi": xr[1], "ylo": yr[0], "yhi": yr[1]})
    counts = [[0] * bins for _ in range(bins)]
    outside = 0
    for ix, iy, n in found:
        if ix is None or iy is None:
            outside += int(n)
        else:
            counts[iy][ix] += int(n)
    return {"x_edges": _edges(*xr, bins), "y_edges": _edges(*yr, bins), "counts": counts, "outside": outside}


def _regression(cur: duckdb.DuckDBPyConnection, scored: Scored, rows: int) -> tuple[dict, dict, str | None]:
    t = scored.table
    exact = rows <= EXACT_ROWS
    q, tails = _quantiles(exact), f"[{TAIL!r}, {1 - TAIL!r}]"
    (n, mse, mae, mean_y, mean_p, var_y, mape, mape_rows, qy, qp, qe) = _fetch(cur, f"""
        SELECT count(*), avg((y - p) ^ 2), avg(abs(y - p)), avg(y), avg(p), var_pop(y),
               avg(abs((y - p) / y)) FILTER (WHERE y <> 0), count(*) FILTER (WHERE y <> 0),
               {q}(y, {tails}), {q}(p, {tails}), {q}(y - p, {tails})
        FROM (SELECT __label AS y, __pred AS p FROM {t})""")[0]
    note = None
    if exact:
        (median_ae,) = _fetch(cur, f"SELECT median(abs(__label - __pred)) FROM {t}")[0]
    else:
        (median_ae,) = _fetch(cur, f"SELECT median(e) FROM (SELECT abs(__label - __pred) AS e FROM {t}) "
                                   f"USING SAMPLE reservoir({EXACT_ROWS} ROWS) REPEATABLE ({SAMPLE_SEED})")[0]
        note = (f"median_ae was computed on a random sample of {EXACT_ROWS:,} of the {rows:,} test rows; "
                "the histogram bounds are approximate quantiles.")
    metrics = {"rmse": math.sqrt(mse), "mae": mae, "r2": (1 - mse / var_y) if var_y and n > 1 else None,
               "median_ae": _f(median_ae), "mape": _f(mape), "mape_rows": int(mape_rows),
               "mean_actual": mean_y, "mean_pred": mean_p, "rows": rows}
    common = _bounds(min(qy[0], qp[0]), max(qy[1], qp[1]))
    src = f"(SELECT __label AS y, __pred AS p, __label - __pred AS e FROM {t})"
    density = _hist2d(cur, src, "y", "p", common, common, DENSITY_BINS)
    er = _bounds(qe[0], qe[1])
    found = _fetch(cur, f"SELECT CASE WHEN e < $lo THEN -1 WHEN e > $hi THEN {RESIDUAL_BINS} "
                        f"ELSE {_hist_bin('e', '$lo', '$hi', RESIDUAL_BINS)} END AS b, count(*) FROM {src} GROUP BY b",
                   {"lo": er[0], "hi": er[1]})
    res = {"edges": _edges(*er, RESIDUAL_BINS), "counts": [0] * RESIDUAL_BINS, "below": 0, "above": 0}
    for b, count in found:
        if b < 0:
            res["below"] += int(count)
        elif b >= RESIDUAL_BINS:
            res["above"] += int(count)
        else:
            res["counts"][b] += int(count)
    rvp = _hist2d(cur, src, "p", "e", _bounds(qp[0], qp[1]), er, DENSITY_BINS)
    return metrics, {"density": density, "residuals": res, "residual_vs_pred": rvp}, note


# ----------------------------------------------------------------------------------------------
# Thresholds (binary)


def at_threshold(con: duckdb.DuckDBPyConnection, scored: Scored, threshold: float) -> dict:
    """The confusion counts and rates of a binary run at `threshold` over all test rows.

    A row is predicted positive when its score is >= threshold. Returns threshold, tp, fp, tn, fn,
    precision, recall, f1, accuracy, specificity, fpr, selection_rate (None where 0 / 0).
    """
    _require_task(scored, "binary")
    t = _finite_number(threshold, "threshold")
    cur = con.cursor()
    try:
        tp, fp, tn, fn = _fetch(cur, f"""
            SELECT count(*) FILTER (WHERE __score >= $t AND __label = 1),
                   count(*) FILTER (WHERE __score >= $t AND __label = 0),
                   count(*) FILTER (WHERE __score < $t AND __label = 0),
                   count(*) FILTER (WHERE __score < $t AND __label = 1)
            FROM {scored.table}""", {"t": t})[0]
    except duckdb.Error as exc:
        raise translate(exc, "Counting the test rows at a threshold") from None
    finally:
        cur.close()
    return {"threshold": t, **_rates(int(tp), int(fp), int(tn), int(fn))}


def suggest_thresholds(settings: Settings, con: duckdb.DuckDBPyConnection, scored: Scored, *, cost_fp: float = 1.0,
                       cost_fn: float = 1.0, target_precision: float | None = None,
                       target_recall: float | None = None) -> dict[str, dict]:
    """Thresholds of a binary run chosen over the exact curve (every distinct test score is a candidate).

    Returns
    -------
    dict
        "max_f1" (highest F1), "min_cost" (lowest ``cost_fp * fp + cost_fn * fn``), and when asked
        "precision" (the lowest threshold whose precision >= target_precision: the most recall) and
        "recall" (the highest threshold whose recall >= target_recall). Ties go to the higher
        threshold. Each is ``{"threshold": t, **at_threshold(t), "why": sentence}``, or
        ``{"threshold": None, "why": sentence}`` when no candidate qualifies.
    """
    _require_task(scored, "binary")
    cost_fp, cost_fn = _finite_number(cost_fp, "cost of a false positive"), _finite_number(
        cost_fn, "cost of a false negative")
    if cost_fp < 0 or cost_fn < 0 or not (cost_fp or cost_fn):
        raise QuarryError(f"The costs must be >= 0 and not both 0. Got {cost_fp:g} (false positive) and "
                          f"{cost_fn:g} (false negative).", "Enter what one mistake of each kind costs.")
    for name, target in (("precision", target_precision), ("recall", target_recall)):
        if target is not None and not 0 <= _finite_number(target, f"target {name}") <= 1:
            raise QuarryError(f"The target {name} must be between 0 and 1. Got {target!r}.",
                              "Enter a share such as 0.9.")
    evaluate(settings, con, scored)  # makes curve.parquet when it is missing or stale
    c = f"read_parquet({quote_literal(str(curve_path(settings, scored.run_id)))})"
    cur = con.cursor()
    try:
        pos, neg, candidates = _fetch(cur, f"SELECT CAST(sum(pos) AS BIGINT), CAST(sum(neg) AS BIGINT), count(*) "
                                           f"FROM {c}")[0]

        def best(where: str, order: str, params: dict | None = None) -> tuple | None:
            found = _fetch(cur, f"SELECT threshold, tp, fp FROM {c} WHERE {where} ORDER BY {order} LIMIT 1", params)
            return found[0] if found else None

        def result(row: tuple, why: str) -> dict:
            threshold, tp, fp = float(row[0]), int(row[1]), int(row[2])
            return {"threshold": threshold, **_rates(tp, fp, neg - fp, pos - tp), "why": why}

        out: dict[str, dict] = {}
        if pos:
            row = best("true", "2 * tp / (2 * tp + fp + ($p - tp)) DESC, threshold DESC", {"p": pos})
            r = result(row, "")
            r["why"] = (f"The highest F1 ({r['f1']:.3f}) of the {candidates:,} candidate thresholds: "
                        f"precision {r['precision']:.3f}, recall {r['recall']:.3f}.")
            out["max_f1"] = r
        else:
            out["max_f1"] = {"threshold": None, "why": "The test split has no positive rows, so F1 is undefined."}
        row = best("true", "$cfp * fp + $cfn * ($p - tp) ASC, threshold DESC",
                   {"cfp": cost_fp, "cfn": cost_fn, "p": pos})
        r = result(row, "")
        cost = cost_fp * r["fp"] + cost_fn * r["fn"]
        r["cost"] = cost
        r["why"] = (f"The lowest total cost ({cost_fp:g} x {r['fp']:,} false positives + {cost_fn:g} x {r['fn']:,} "
                    f"false negatives = {cost:,.6g}) of the {candidates:,} candidate thresholds.")
        out["min_cost"] = r
        if target_precision is not None:
            target = float(target_precision)
            row = best("tp / (tp + fp) >= $target", "threshold ASC", {"target": target})
            if row is None:
                top = best("true", "tp / (tp + fp) DESC, threshold ASC")
                out["precision"] = {"threshold": None,
                                    "why": f"No threshold reaches a precision of {target:.3f}; the highest is "
                                           f"{top[1] / (top[1] + top[2]):.3f} (threshold {top[0]:.4g})."}
            else:
                r = result(row, "")
                r["why"] = (f"The lowest threshold with precision at least {target:.3f} (it has "
                            f"{r['precision']:.3f}), so it keeps the most recall: {r['recall']:.3f}.")
                out["precision"] = r
        if target_recall is not None:
            target = float(target_recall)
            row = best("tp / $p >= $target", "threshold DESC", {"target": target, "p": pos}) if pos else None
            if row is None:
                out["recall"] = {"threshold": None,
                                 "why": "The test split has no positive rows, so recall is undefined."}
            else:
                r = result(row, "")
                r["why"] = (f"The highest threshold with recall at least {target:.3f} (it has {r['recall']:.3f}), "
                            f"so it flags the fewest rows: precision {r['precision'] or 0:.3f}.")
                out["recall"] = r
    except duckdb.Error as exc:
        raise translate(exc, "Choosing thresholds") from None
    finally:
        cur.close()
    return out


# ----------------------------------------------------------------------------------------------
# Slices and fairness

SLICE_METRICS = {
    "binary": ["auc", "accuracy", "precision", "recall", "positive_rate"],
    "multiclass": ["accuracy", "macro_recall"],
    "regression": ["rmse", "mae", "mean_residual"],
}
# None: no better direction -- the groups furthest from the overall value come first.
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "precision": True, "recall": True, "positive_rate": None,
                    "macro_recall": True, "rmse": False, "mae": False, "mean_residual": None}


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
            qf = _quantiles(scored.rows <= EXACT_ROWS).replace("quantile_cont", "quantile_disc")
            probs = "[" + ", ".join(repr(i / bins) for i in range(1, bins)) + "]"
            distinct, low, high, cuts, has_missing = _fetch(
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
        found = _fetch(cur, f"SELECT {key} AS key, count(*) FROM {scored.table} WHERE NOT {missing} GROUP BY key "
                            f"ORDER BY count(*) DESC, key LIMIT $k", {"k": int(max_groups)})
        top = [k for k, _ in found]
        if top and kind in (*NUMERIC, "temporal", "boolean"):  # values in their own order, not by count
            top = [k for (k,) in _fetch(cur, f"SELECT {key} AS key FROM {scored.table} "
                                             f"WHERE list_contains($top, {key}) GROUP BY key ORDER BY min({q})",
                                        {"top": top})]
        params = {"g_top": top} if top else {}
        chosen = f"list_contains($g_top, {key})" if top else "false"
        has_missing, has_other = _fetch(cur, f"SELECT count(*) FILTER (WHERE {missing}) > 0, count(*) FILTER "
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


def _binary_group_stats(cur: duckdb.DuckDBPyConnection, scored: Scored, g: Grouping, t: float,
                        with_auc: bool) -> tuple[dict, dict]:
    """Per group and overall: n, positives, predicted positives, tp, correct (and auc parts)."""
    found = _fetch(cur, f"""
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
        for name, _, _, pairs in _fetch(cur, _auc_parts_sql(src, "__g", "__score", "__label = 1"), g.params):
            groups[name]["pairs"] = int(pairs)
        for _, _, _, pairs in _fetch(cur, _auc_parts_sql(scored.table, "0", "__score", "__label = 1")):
            overall["pairs"] = int(pairs)
    return groups, overall


def _multiclass_group_stats(cur: duckdb.DuckDBPyConnection, scored: Scored, g: Grouping) -> tuple[dict, dict]:
    """Per group and overall: {class code: (rows, correct)}."""
    found = _fetch(cur, f"""
        SELECT g, grouping(g), k, count(*), count(*) FILTER (WHERE __pred = k)
        FROM (SELECT {g.sql} AS g, CAST(__label AS INTEGER) AS k, __pred FROM {scored.table})
        GROUP BY GROUPING SETS ((g, k), (k))""", g.params)
    groups: dict[str, dict] = {}
    overall: dict[int, tuple[int, int]] = {}
    for name, is_all, k, n, correct in found:
        (overall if is_all else groups.setdefault(name, {}))[int(k)] = (int(n), int(correct))
    return groups, overall


def _regression_group_stats(cur: duckdb.DuckDBPyConnection, scored: Scored, g: Grouping) -> tuple[dict, dict]:
    found = _fetch(cur, f"""
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
        return (_div(k, n), *wilson(k, n))
    if metric == "auc":
        neg = s["n"] - s["pos"]
        auc = _auc_from_parts(s["pos"], neg, s.get("pairs", 0))
        return (auc, *hanley_mcneil(auc, s["pos"], neg))
    if metric == "accuracy":  # multiclass: {class: (rows, correct)}
        n, c = sum(v[0] for v in s.values()), sum(v[1] for v in s.values())
        return (_div(c, n), *wilson(c, n))
    if metric == "macro_recall":
        return _macro_recall(s)
    if metric == "mae":
        return (_f(s["mae"]), *_mean_ci(_f(s["mae"]), _f(s["sd_abs"]), s["n"]))
    if metric == "mean_residual":
        return (_f(s["mean_e"]), *_mean_ci(_f(s["mean_e"]), _f(s["sd_e"]), s["n"]))
    if metric == "rmse":
        mse = _f(s["mse"])
        lo, hi = _mean_ci(mse, _f(s["sd_sq"]), s["n"])
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
    t = float(scored.threshold) if threshold is None else _finite_number(threshold, "threshold")
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


def _fair_row(task: str, s: dict) -> dict:
    if task == "binary":
        neg = s["n"] - s["pos"]
        return {"count": s["n"], "selection_rate": _div(s["pp"], s["n"]), "tpr": _div(s["tp"], s["pos"]),
                "fpr": _div(s["pp"] - s["tp"], neg), "precision": _div(s["tp"], s["pp"]),
                "accuracy": _div(s["correct"], s["n"]), "positives": s["pos"]}
    if task == "multiclass":
        return {"count": _count(s), "accuracy": _slice_value("accuracy", s)[0],
                "macro_recall": _macro_recall(s)[0]}
    return {"count": s["n"], "mean_pred": _f(s["mean_pred"]), "mean_actual": _f(s["mean_actual"]), "mae": _f(s["mae"])}


def _spread(values: list) -> tuple[float | None, float | None]:
    """(max - min, min / max) of the defined values."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return max(vals) - min(vals), _div(min(vals), max(vals))


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
    t = float(scored.threshold) if threshold is None else _finite_number(threshold, "threshold")
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


# ----------------------------------------------------------------------------------------------
# Training report


def model_report(run: Run) -> dict:
    """What the run folder says about the model: learning curve, importance, baselines and cross-validation.

    Returns
    -------
    dict
        ``{"task", "curve": {"metric", "train", "valid", "best_iteration"}, "importance": {"feature",
        "gain", "split"}, "baselines": [{"model": "model" | "prior" | "linear", <metric>: value, ...}],
        "baselines_split": "test" | "valid", "cv": run.json's cv or None}``. Baselines are on the test
        split (the valid split when the run has none, as training scored them).
    """
    curve = run.curve or {}
    importance = run.importance or {}
    metrics = run.info.get("metrics") or {}
    test = metrics.get("test") or {}
    split = "test" if test else "valid"
    model = test or metrics.get("valid") or {}
    baselines = [{"model": "model", **model}] if model else []
    baselines += [{"model": name, **(values or {})} for name, values in (run.info.get("baselines") or {}).items()]
    return {"task": run.task,
            "curve": {"metric": curve.get("metric"), "train": list(curve.get("train") or []),
                      "valid": list(curve.get("valid") or []), "best_iteration": run.best_iteration},
            "importance": {"feature": list(importance.get("feature") or []), "gain": list(importance.get("gain") or []),
                           "split": list(importance.get("split") or [])},
            "baselines": baselines, "baselines_split": split, "cv": run.info.get("cv")}

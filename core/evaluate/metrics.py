"""Model evaluation over a run's scored test split (core.holdout), computed in DuckDB out of core.

Every number comes from SQL aggregates over ``scored.parquet``; only bounded results reach Python
(at most about a thousand curve points, 60 x 60 histogram cells).

Binary runs first write ``curve.parquet`` beside the scored file: one row per distinct score, highest
first, with the rows at that score (``pos``, ``neg``) and the rows scored at or above it (``tp``,
``fp``). That table is the exact ROC and precision-recall curve (ties included), and AUC, average
precision, log loss, Brier score, calibration, gain and the score histograms are all sums over it,
so the scored file is read once. ``evaluation.json`` keeps the result; both stay valid while the
scored file (its path, size, modification time and scored.json) and the run's threshold are unchanged.

Thresholds are chosen in core.thresholds, slices and fairness measured in core.slices; both query the
scored file with the helpers here, and share the numeric ones of core.stats.

Conventions shared by every function: a ratio whose denominator is 0 is None; a classification label
is ``str(class value)``; confidence intervals are 95 %.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from core.atomic import atomic_path, write_text
from core.data.engine import connect as engine_connect
from core.data.engine import quote_literal, translate
from core.data.types import TASKS
from core.errors import QuarryError
from core.evaluate import holdout
from core.evaluate.holdout import Scored
from core.evaluate.stats import auc_from_parts, finite, rates, ratio, wilson
from core.fmt import jsonable
from core.model.runs import Run
from core.settings import Settings

FORMAT = "quarry.evaluation"
VERSION = 1

EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] for log loss
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
# Evaluation queries (the exact curve's sort, per-slice AUCs) run under this DuckDB memory limit, or the
# settings' when lower: on a 10M-row test split they would otherwise take what the limit allows (2.1 GiB
# peak RSS at the default 11 GiB, against 1.3 GiB capped, for 3 % more time; docs/benchmarks.md).
MEMORY_CAP = "1GB"


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for evaluation: the scored test split lives in the workspace, so it needs no
    dataset views; its memory is capped at MEMORY_CAP (DuckDB spills past it)."""
    return engine_connect(settings, memory_cap=MEMORY_CAP)


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


# ----------------------------------------------------------------------------------------------
# Helpers (fetch, require_task and finite_number serve core.thresholds and core.slices too)


def _labels(scored: Scored) -> list[str]:
    return [str(c) for c in scored.classes or []]


def fetch(cur: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[tuple]:
    """Run `sql` with its bound `params` on a cursor; all the rows."""
    return cur.sql(sql, params=params or None).fetchall()


def require_task(scored: Scored, *tasks: str) -> None:
    """QuarryError unless the scored run's task is one of `tasks`."""
    if scored.task not in tasks:
        raise QuarryError(f"This works on {' or '.join(tasks)} runs only; run {scored.run_id!r} is {scored.task}.",
                          "Pick a run of that task.")


def finite_number(value, name: str) -> float:
    """`value` as a float; QuarryError naming the `name` when it is not a finite number."""
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
    rows, wrong = fetch(cur, f"SELECT count(*), count(*) FILTER (WHERE {bad}) FROM {scored.table}")[0]
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
    require_task(scored, *TASKS)
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
    pos, neg, pairs, ap, logloss, brier, tp, fp = fetch(cur, f"""
        SELECT CAST(sum(pos) AS BIGINT), CAST(sum(neg) AS BIGINT), sum(CAST(neg AS HUGEINT) * (2 * tp - pos)),
               sum(pos * (tp / (tp + fp))), sum(-pos * ln({p}) - neg * ln(1 - {p})),
               sum(pos * (1 - threshold) ^ 2 + neg * threshold ^ 2),
               coalesce(sum(pos) FILTER (WHERE threshold >= $t), 0),
               coalesce(sum(neg) FILTER (WHERE threshold >= $t), 0)
        FROM {c}""", {"t": t})[0]
    tp, fp = int(tp), int(fp)
    both = pos > 0 and neg > 0
    at = rates(tp, fp, neg - fp, pos - tp)
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
    found = fetch(cur, f"""
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
        out["tpr"].append(ratio(tp, pos))
        out["fpr"].append(ratio(fp, neg))
        out["precision"].append(ratio(tp, tp + fp))
        out["recall"].append(ratio(tp, pos))
        out["fraction"].append(ratio(tp + fp, rows))
        out["tp"].append(int(tp))
        out["fp"].append(int(fp))
    return out


def _calibration(cur: duckdb.DuckDBPyConnection, c: str, rows: int) -> dict:
    """CALIBRATION_BINS bins of about equal row counts by score (tied scores stay in one bin)."""
    found = fetch(cur, f"""
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
    found = fetch(cur, f"""
        WITH a AS (SELECT tp, pos, pos + neg AS cnt, tp + fp AS cum FROM {c}),
             f AS (SELECT i, i * $r / {GAIN_POINTS} AS cut FROM range(1, {GAIN_POINTS + 1}) t(i))
        SELECT i, tp - pos + pos * (cut - (cum - cnt)) / cnt FROM f ASOF JOIN a ON a.cum >= f.cut ORDER BY i""",
                   {"r": float(rows)})
    fraction = [i / GAIN_POINTS for i in range(1, GAIN_POINTS + 1)]
    captured = {int(i): float(v) for i, v in found}
    gain = [ratio(captured.get(i, pos), pos) for i in range(1, GAIN_POINTS + 1)]
    lift = [None if g is None else g / f for g, f in zip(gain, fraction, strict=True)]
    return {"fraction": fraction, "gain": gain, "lift": lift}


def _bin_sql(x: str, bins: int) -> str:
    """The bin of a probability x among `bins` equal bins of [0, 1] (1.0 in the last)."""
    return f"CAST(greatest(least(floor({x} * {bins}), {bins - 1}), 0) AS INTEGER)"


def _edges01(bins: int) -> list[float]:
    return [i / bins for i in range(bins + 1)]


def _score_hist_from_curve(cur: duckdb.DuckDBPyConnection, c: str, labels: list[str]) -> dict:
    found = fetch(cur, f"SELECT {_bin_sql('threshold', SCORE_BINS)} AS b, CAST(sum(neg) AS BIGINT), "
                        f"CAST(sum(pos) AS BIGINT) FROM {c} GROUP BY b")
    counts = {label: [0] * SCORE_BINS for label in labels}
    for b, neg, pos in found:
        counts[labels[0]][b] += int(neg)
        counts[labels[1]][b] += int(pos)
    return {"edges": _edges01(SCORE_BINS), "counts": counts}


# -- multiclass


def auc_parts_sql(source: str, key: str, score: str, positive: str) -> str:
    """Per key: positives, negatives and 2 x the pairs ranked right (a tie counts half) -- the exact AUC
    is the last over 2 x positives x negatives."""
    return (f"WITH s AS (SELECT {key} AS g, {score} AS p, {positive} AS y FROM {source}), "
            "a AS (SELECT g, p, count(*) FILTER (WHERE y) AS pos, count(*) FILTER (WHERE NOT y) AS neg "
            "FROM s GROUP BY g, p), "
            "c AS (SELECT g, pos, neg, sum(pos) OVER (PARTITION BY g ORDER BY p DESC ROWS UNBOUNDED PRECEDING) AS tp "
            "FROM a) "
            "SELECT g, CAST(sum(pos) AS BIGINT), CAST(sum(neg) AS BIGINT), sum(CAST(neg AS HUGEINT) * (2 * tp - pos)) "
            "FROM c GROUP BY g")


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
    micro_p = ratio(tp_all, sum(predicted[j] for j in seen)) or 0.0
    micro_r = ratio(tp_all, sum(support[j] for j in seen)) or 0.0
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
    (logloss,) = fetch(cur, f"SELECT sum(-ln(({_own(k, clipped)}) / ({' + '.join(clipped)}))) "
                             f"FROM {scored.table}")[0]
    matrix = [[0] * k for _ in range(k)]
    for actual, predicted, n in fetch(cur, f"SELECT CAST(__label AS INTEGER), __pred, count(*) FROM {scored.table} "
                                            "GROUP BY ALL"):
        matrix[int(actual)][int(predicted)] = int(n)
    per, averages = _prf(matrix)
    union = " UNION ALL ".join(f"SELECT {i} AS k, __p{i} AS p, __label = {i} AS y FROM {scored.table}"
                               for i in range(k))
    aucs = {int(g): auc_from_parts(pos, neg, pairs)
            for g, pos, neg, pairs in fetch(cur, auc_parts_sql(f"({union})", "k", "p", "y"))}
    hist = fetch(cur, f"SELECT CAST(__label AS INTEGER) AS k, {_bin_sql(_own(k), SCORE_BINS)} AS b, count(*) "
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


def quantiles(exact: bool) -> str:
    """DuckDB's quantile function: exact (quantile_cont) or t-digest (approx_quantile)."""
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
    found = fetch(cur, f"SELECT {_hist_bin(x, '$xlo', '$xhi', bins)} AS ix, {_hist_bin(y, '$ylo', '$yhi', bins)} "
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
    q, tails = quantiles(exact), f"[{TAIL!r}, {1 - TAIL!r}]"
    (n, mse, mae, mean_y, mean_p, var_y, mape, mape_rows, qy, qp, qe) = fetch(cur, f"""
        SELECT count(*), avg((y - p) ^ 2), avg(abs(y - p)), avg(y), avg(p), var_pop(y),
               avg(abs((y - p) / y)) FILTER (WHERE y <> 0), count(*) FILTER (WHERE y <> 0),
               {q}(y, {tails}), {q}(p, {tails}), {q}(y - p, {tails})
        FROM (SELECT __label AS y, __pred AS p FROM {t})""")[0]
    note = None
    if exact:
        (median_ae,) = fetch(cur, f"SELECT median(abs(__label - __pred)) FROM {t}")[0]
    else:
        (median_ae,) = fetch(cur, f"SELECT median(e) FROM (SELECT abs(__label - __pred) AS e FROM {t}) "
                                   f"USING SAMPLE reservoir({EXACT_ROWS} ROWS) REPEATABLE ({SAMPLE_SEED})")[0]
        note = (f"median_ae was computed on a random sample of {EXACT_ROWS:,} of the {rows:,} test rows; "
                "the histogram bounds are approximate quantiles.")
    metrics = {"rmse": math.sqrt(mse), "mae": mae, "r2": (1 - mse / var_y) if var_y and n > 1 else None,
               "median_ae": finite(median_ae), "mape": finite(mape), "mape_rows": int(mape_rows),
               "mean_actual": mean_y, "mean_pred": mean_p, "rows": rows}
    common = _bounds(min(qy[0], qp[0]), max(qy[1], qp[1]))
    src = f"(SELECT __label AS y, __pred AS p, __label - __pred AS e FROM {t})"
    density = _hist2d(cur, src, "y", "p", common, common, DENSITY_BINS)
    er = _bounds(qe[0], qe[1])
    found = fetch(cur, f"SELECT CASE WHEN e < $lo THEN -1 WHEN e > $hi THEN {RESIDUAL_BINS} "
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

"""Target analysis: how strongly each feature goes with a chosen target, over the full data in DuckDB.

Every feature is cut into the bins its profile already has: numeric features into the histogram's
bins (values below and above the edges, ±Inf included, join the first and last bin), other
features into their top values plus '(other)'; missing values (NULL, NaN) are a bin of their own.
One GROUP BY GROUPING SETS query per batch of features counts the rows per (bin, target class),
or takes per bin the target's count, mean and variance. Only those small tables reach Python,
where the scores are computed:

- binary target: ROC AUC of the bins ranked by their positive rate (rows in one bin tie);
- multiclass target: mutual information (nats) between bins and classes;
- regression target: Pearson correlation for numeric features (exact, in SQL, over the rows where
  both are finite), the correlation ratio eta for the others.

Rows whose target is missing are left out (for regression, ±Inf too); the result says how many.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import duckdb
import numpy as np

from core.data.engine import quote_ident, translate
from core.data.types import MAX_CLASSES, NUMERIC, TASKS
from core.errors import QuarryError
from core.fmt import jsonable
from core.profile.missingness import missing_count, missing_sql
from core.profile.scan import ColumnProfile, Profile

METRICS = {"binary": "auc", "multiclass": "mutual_info", "regression": "correlation"}
TARGET_KINDS = (*NUMERIC, "string", "boolean")
# Features per GROUPING SETS query: as in core.profile, memory grows with the aggregates in one query.
BATCH_FEATURES = 32
BREAKDOWN_CLASSES = 10
OTHER, MISSING = "(other)", "(missing)"


@dataclass(frozen=True)
class FeatureRelation:
    """How strongly one feature goes with the target.

    ``score`` is the strength (higher is stronger, None where undefined): AUC of the bins ranked by
    positive rate (0.5 to 1), mutual information in nats, |Pearson r| or eta (0 to 1). ``raw`` keeps
    the direction where there is one: the AUC of a numeric feature's bins in value order (below 0.5:
    higher values go with the negative class), or the signed Pearson r. ``bins`` is the number of
    non-empty bins compared (0 for Pearson, which uses the values themselves).
    """

    feature: str
    kind: str
    metric: str
    score: float | None
    bins: int
    raw: float | None = None


@dataclass(frozen=True)
class TargetAnalysis:
    """Every usable feature's relation to `target`, strongest first."""

    table: str
    target: str
    task: str
    metric: str
    features: tuple[FeatureRelation, ...]
    rows: int
    positive: object = None  # binary: the class the AUC and positive rates are about
    classes: tuple[tuple[object, int], ...] = ()  # classification: (class, rows), in sorted class order
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class TargetBreakdown:
    """The target across one feature's bins (those with rows, in bin order: values, '(other)', '(missing)').

    Binary: each bin's share of the `positive` class. Multiclass: each bin's share of each of the
    `classes` (the commonest, at most 10). Regression: the target's mean and sample std per bin.
    """

    table: str
    target: str
    feature: str
    task: str
    labels: tuple[str, ...]
    rows: tuple[int, ...]
    positive: object = None
    positive_rate: tuple[float, ...] = ()
    classes: tuple[object, ...] = ()
    shares: tuple[tuple[float, ...], ...] = ()
    mean: tuple[float | None, ...] = ()
    std: tuple[float | None, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return jsonable(asdict(self))


# ----------------------------------------------------------------------------------------------
# The target: which task, which rows


def _lookup(profile: Profile, name: str, role: str) -> ColumnProfile:
    """The profile of column `name`, or an error that lists the columns there are."""
    for c in profile.columns:
        if c.name == name:
            return c
    names = [repr(c.name) for c in profile.columns]
    listed = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
    raise QuarryError(f"The {role} {name!r} is not a column of {profile.table!r}.",
                      f"Pick one of its columns (names are case-sensitive): {listed or 'it has none'}.")


def _distinct(col: ColumnProfile) -> int:
    """Distinct values that are not missing (the profile counts NaN as one value)."""
    return max(0, (col.distinct or 0) - (1 if col.nan else 0))


def detect_task(col: ColumnProfile) -> str:
    """The learning task a target column calls for, from its profile.

    Returns
    -------
    str
        'binary' (2 distinct values), 'multiclass' (text, true/false or whole numbers with at most
        50 distinct values) or 'regression' (any other numbers).

    Raises
    ------
    QuarryError
        The column cannot be a target: every value missing, one value only, not numbers/text/true-false,
        or text with more than 50 distinct values.
    """
    if col.kind not in TARGET_KINDS:
        raise QuarryError(f"The target {col.name!r} is a {col.type} column; a target must be numbers, text or "
                          "true/false.", "Pick another target, or derive one from this column first.")
    if col.count - (col.nan or 0) == 0:
        raise QuarryError(f"The target {col.name!r} has no values: every row is missing.",
                          "Pick a column with values as the target.")
    distinct = _distinct(col)
    if distinct < 2:
        raise QuarryError(f"The target {col.name!r} has one value only; there is nothing to predict.",
                          "Pick a column whose value varies.")
    if distinct == 2:
        return "binary"
    if col.kind in ("string", "boolean", "integer") and distinct <= MAX_CLASSES:
        return "multiclass"
    if col.kind in NUMERIC:
        return "regression"
    raise QuarryError(f"The target {col.name!r} has {distinct:,} distinct values; a text target may have at most "
                      f"{MAX_CLASSES}.", "Group its values into fewer classes, or pick another target.")


def _task_for(col: ColumnProfile, task: str | None) -> str:
    """The task asked for, checked against the column; detected when None."""
    if task is None:
        return detect_task(col)
    if task not in TASKS:
        raise QuarryError(f"Unknown task {task!r}.", f"Use one of: {', '.join(TASKS)}, or None to detect it.")
    if task == "regression" and col.kind not in NUMERIC:
        raise QuarryError(f"Regression needs a numeric target; {col.name!r} is {col.type}.",
                          "Use task='binary' or 'multiclass', or leave the task to be detected.")
    if task != "regression" and (col.kind not in TARGET_KINDS or _distinct(col) > MAX_CLASSES):
        raise QuarryError(f"A {task} target needs at most {MAX_CLASSES} classes of numbers, text or true/false; "
                          f"{col.name!r} is {col.type} with {_distinct(col):,} distinct values.",
                          "Use task='regression' for a numeric target, or group its values first.")
    return task


def _target_sql(col: ColumnProfile, task: str) -> tuple[str, str, tuple[str, ...]]:
    """(the target in SQL, the filter that keeps rows with a usable target, a note on the rows left out)."""
    q = quote_ident(col.name)
    if task == "regression":
        left = missing_count(col) + (col.pos_inf or 0) + (col.neg_inf or 0)
        y, keep, what = f"{q}::DOUBLE", f"isfinite({q}::DOUBLE)", "a missing or infinite target"
    else:
        left = missing_count(col)
        y, keep, what = q, f"NOT {missing_sql(col)}", "a missing target"
    return y, keep, (f"{left:,} rows with {what} were left out.",) if left else ()


# ----------------------------------------------------------------------------------------------
# Features: bins in SQL


def _fmt(x: float) -> str:
    """A bin edge as shown: 6 significant digits."""
    return f"{x:.6g}"


def _edge_labels(col: ColumnProfile, edges: list[float]) -> list[str]:
    """Labels of a histogram's bins; the first and last are open-ended, as they take the values beyond."""
    n = len(edges) - 1
    if n <= 1:
        return ["all values"]
    if col.kind == "integer" and edges[1] - edges[0] == 1.0 and edges[0] % 1 == 0.5:  # one whole number per bin
        v = [_fmt(e + 0.5) for e in edges[:-1]]
        return [f"≤ {v[0]}", *v[1:-1], f"≥ {v[-1]}"]
    e = [_fmt(x) for x in edges]
    return [f"< {e[1]}", *(f"[{e[k]}, {e[k + 1]})" for k in range(1, n - 1)), f"≥ {e[n - 1]}"]


def _numeric_bins(col: ColumnProfile) -> tuple[str, tuple[str, ...]]:
    """Bins of a numeric column between its histogram's edges: bin k holds edges[k] <= x < edges[k + 1]."""
    q = quote_ident(col.name)
    x = f"{q}::DOUBLE"
    edges = [float(e) for e in col.histogram.edges] if col.histogram else []
    n = max(len(edges) - 1, 1)
    cases = [f"WHEN {q} IS NULL THEN {n}"]
    if col.kind == "float":  # ±Inf are the extremes; then NaN is what is not finite (isnan(): see core.missingness)
        cases += [f"WHEN {x} = 'inf'::DOUBLE THEN {n - 1}", f"WHEN {x} = '-inf'::DOUBLE THEN 0",
                  f"WHEN NOT isfinite({x}) THEN {n}"]
    cases += [f"WHEN {x} < '{e!r}'::DOUBLE THEN {k}" for k, e in enumerate(edges[1:-1])]
    return f"CASE {' '.join(cases)} ELSE {n - 1} END", (*_edge_labels(col, edges), MISSING)


def _bins(col: ColumnProfile, params: list) -> tuple[str, tuple[str, ...]]:
    """(SQL giving each row's bin number for the column, the bins' labels); the last bin is '(missing)'.

    List parameters are appended to `params` and referred to by position.
    """
    if col.kind in NUMERIC:
        return _numeric_bins(col)
    q = quote_ident(col.name)
    values = [v for v, _ in col.top]
    k = len(values)
    labels = (*(str(v) for v in values), OTHER, MISSING)
    if not values:
        return f"CASE WHEN {q} IS NULL THEN 1 ELSE 0 END", labels
    params.append(values)
    listed = f"${len(params)}"
    if col.kind == "temporal":  # the profile keeps times as ISO text: compared as times, whatever digits it kept
        if not re.fullmatch(r"[A-Z_ ]+", col.type):
            raise QuarryError(f"{col.name!r} has an unexpected type {col.type!r}.", "Profile the dataset again.")
        listed = f"CAST({listed} AS {col.type}[])"
    found = f"list_position({listed}, {q}) - 1"  # NULL when not a top value
    return f"CASE WHEN {q} IS NULL THEN {k + 1} ELSE coalesce({found}, {k}) END", labels


def _grouped(cur: duckdb.DuckDBPyConnection, src: str, y: str, keep: str, bins: list[str], params: list,
             classify: bool) -> tuple[dict, list[dict]]:
    """One GROUPING SETS query: (the target's own stats, one {(bin, class): stats} dict per feature).

    Stats are (rows,) per class, or (rows, mean, population variance) of the target with class None.
    Bin numbers are never NULL, so a row's one non-NULL bin column says which feature it counts.
    """
    fs = [f"f{i}" for i in range(len(bins))]
    keys = ["y"] if classify else []
    sets = [f"({', '.join(keys)})", *(f"({', '.join([f, *keys])})" for f in fs)]
    stats = "count(*)" if classify else "count(*), avg(y), var_pop(y)"
    inner = ", ".join([f"{y} AS y", *(f"{b} AS {f}" for b, f in zip(bins, fs, strict=True))])
    sql = (f"SELECT {', '.join([*keys, *fs, stats])} FROM (SELECT {inner} FROM {src} WHERE {keep}) "
           f"GROUP BY GROUPING SETS ({', '.join(sets)})")
    whole: dict = {}
    cells: list[dict] = [{} for _ in fs]
    for row in cur.execute(sql, params or None).fetchall():
        cls = row[0] if classify else None
        codes, stat = row[len(keys):len(keys) + len(fs)], row[len(keys) + len(fs):]
        i = next((i for i, b in enumerate(codes) if b is not None), None)
        if i is None:
            whole[cls] = stat
        else:
            cells[i][(codes[i], cls)] = stat
    return whole, cells


def _pearson(cur: duckdb.DuckDBPyConnection, src: str, y: str, keep: str, cols: list[ColumnProfile]) -> list:
    """Pearson r of each numeric column with the target over rows where both are finite (None: undefined)."""
    if not cols:
        return []
    xs = ", ".join(f"{quote_ident(c.name)}::DOUBLE AS x{i}" for i, c in enumerate(cols))
    aggs = ", ".join(f"corr(x{i}, y) FILTER (WHERE isfinite(x{i}))" for i in range(len(cols)))
    row = cur.execute(f"SELECT {aggs} FROM (SELECT {y} AS y, {xs} FROM {src} WHERE {keep})").fetchall()[0]
    return [float(r) if r is not None and math.isfinite(r) else None for r in row]


# ----------------------------------------------------------------------------------------------
# Scores from the grouped counts


def _auc(pos: np.ndarray, neg: np.ndarray, score: np.ndarray | None = None) -> float | None:
    """ROC AUC of a score that is constant within each bin, from each bin's positive and negative counts.

    The score is each bin's positive rate when None. Pairs within a bin, or across bins of equal
    score, count half, as sklearn's roc_auc_score counts ties.
    """
    keep = (pos + neg) > 0
    pos, neg = pos[keep].astype(float), neg[keep].astype(float)
    if not pos.sum() or not neg.sum():
        return None
    score = pos / (pos + neg) if score is None else np.asarray(score)[keep]
    _, group = np.unique(score, return_inverse=True)  # ascending score
    p, n = np.bincount(group, weights=pos), np.bincount(group, weights=neg)
    below = np.cumsum(n) - n
    return float((p * (below + n / 2)).sum() / (pos.sum() * neg.sum()))


def _eta(n: np.ndarray, mean: np.ndarray, var: np.ndarray) -> float | None:
    """Correlation ratio from per-group rows, means and population variances."""
    if not n.sum():
        return None
    grand = (n * mean).sum() / n.sum()
    between = (n * (mean - grand) ** 2).sum()
    total = between + (n * var).sum()
    return float(math.sqrt(between / total)) if total > 0 else None


def _matrix(cells: dict, classes: list) -> tuple[list, np.ndarray]:
    """(bin numbers with rows, in order; their rows-per-class matrix)."""
    codes = sorted({b for b, _ in cells})
    row, col = {b: i for i, b in enumerate(codes)}, {c: j for j, c in enumerate(classes)}
    m = np.zeros((len(codes), len(classes)), dtype=np.int64)
    for (b, c), (n, *_) in cells.items():
        m[row[b], col[c]] = n
    return codes, m


def _relation(col: ColumnProfile, labels: tuple[str, ...], cells: dict, task: str, classes: list) -> FeatureRelation:
    """A feature's score from its grouped counts (classification) or grouped target stats (regression)."""
    if task == "regression":
        stats = np.array(list(cells.values()), dtype=float).reshape(-1, 3)
        return FeatureRelation(col.name, col.kind, "eta", _eta(stats[:, 0], stats[:, 1], stats[:, 2]), len(cells))
    codes, m = _matrix(cells, classes)
    if task == "multiclass":
        from sklearn.metrics import mutual_info_score  # here: scikit-learn costs ~1 s to import

        mi = float(mutual_info_score(None, None, contingency=m)) if m.sum() else None
        return FeatureRelation(col.name, col.kind, "mutual_info", mi, len(codes))
    auc = _auc(m[:, 1], m[:, 0])
    raw = None
    if col.kind in NUMERIC:  # value order, missing values left out
        values = np.array(codes) != len(labels) - 1
        raw = _auc(m[values, 1], m[values, 0], np.array(codes)[values])
    return FeatureRelation(col.name, col.kind, "auc", None if auc is None else max(auc, 1 - auc), len(codes), raw)


def _check_classes(task: str, target: str, classes: list) -> None:
    if task == "binary" and len(classes) != 2:
        raise QuarryError(f"A binary target needs exactly 2 classes; {target!r} has {len(classes)} "
                          "among the rows where it is not missing.",
                          "Use task='multiclass', or leave the task to be detected.")


def target_relations(con: duckdb.DuckDBPyConnection, table: str, profile: Profile, target: str,
                     task: str | None = None) -> TargetAnalysis:
    """Score every other column's relation to `target`, over the full data, strongest first.

    Parameters
    ----------
    table
        A registered dataset (a view name); `profile` is its profile, whose histogram edges and top
        values become the features' bins.
    target
        The column to predict.
    task
        'binary', 'multiclass' or 'regression'; detected from the target's profile when None
        (see detect_task).

    Returns
    -------
    TargetAnalysis
        Columns of kind 'other' (lists, structs, ...) are skipped, and said so in the notes.
    """
    col = _lookup(profile, target, "target")
    task = _task_for(col, task)
    y, keep, notes = _target_sql(col, task)
    feats = [c for c in profile.columns if c.name != target and c.kind != "other"]
    skipped = [c.name for c in profile.columns if c.name != target and c.kind == "other"]
    classify = task != "regression"
    src = quote_ident(table)
    binned: list[tuple[ColumnProfile, tuple[str, ...], dict]] = []
    pearson: list[tuple[ColumnProfile, float | None]] = []
    cur = con.cursor()
    try:
        for start in range(0, max(len(feats), 1), BATCH_FEATURES):
            batch = feats[start:start + BATCH_FEATURES]
            grouped = [c for c in batch if classify or c.kind not in NUMERIC]
            params: list = []
            sqls = [_bins(c, params) for c in grouped]
            whole, cells = _grouped(cur, src, y, keep, [s for s, _ in sqls], params, classify)
            binned += [(c, labels, t) for c, (_, labels), t in zip(grouped, sqls, cells, strict=True)]
            numeric = [c for c in batch if not classify and c.kind in NUMERIC]
            pearson += list(zip(numeric, _pearson(cur, src, y, keep, numeric), strict=True))
    except duckdb.Error as exc:
        raise translate(exc, f"Relating the columns of {table!r} to {target!r}") from None
    finally:
        cur.close()

    classes = sorted(whole) if classify else []
    _check_classes(task, target, classes)
    rows = sum(int(s[0]) for s in whole.values())
    relations = [_relation(c, labels, cells, task, classes) for c, labels, cells in binned]
    relations += [FeatureRelation(c.name, c.kind, "pearson", None if r is None else abs(r), 0, r) for c, r in pearson]
    order = {c.name: i for i, c in enumerate(profile.columns)}
    relations.sort(key=lambda r: (r.score is None, -(r.score or 0.0), order[r.feature]))  # ties: table order
    if skipped:
        notes += (f"Skipped (no bins for their type): {', '.join(skipped)}.",)
    return TargetAnalysis(table, target, task, METRICS[task], tuple(relations), rows,
                          positive=classes[1] if task == "binary" else None,
                          classes=tuple((c, int(whole[c][0])) for c in classes), notes=notes)


def target_by_feature(con: duckdb.DuckDBPyConnection, table: str, profile: Profile, target: str, feature: str,
                      task: str | None = None) -> TargetBreakdown:
    """The target's distribution across one feature's bins, over the full data.

    Parameters
    ----------
    table
        A registered dataset (a view name); `profile` is its profile.
    target, feature
        The column to predict and the column to break it down by (cut into the same bins as in
        target_relations).
    task
        As in target_relations; detected when None.
    """
    col = _lookup(profile, target, "target")
    feat = _lookup(profile, feature, "feature")
    if feature == target:
        raise QuarryError(f"{feature!r} is the target itself.", "Pick another column to break the target down by.")
    if feat.kind == "other":
        raise QuarryError(f"The feature {feature!r} is a {feat.type} column, which cannot be cut into bins.",
                          "Pick a column of numbers, text, true/false or times.")
    task = _task_for(col, task)
    y, keep, notes = _target_sql(col, task)
    params: list = []
    sql, labels = _bins(feat, params)
    cur = con.cursor()
    try:
        whole, (cells,) = _grouped(cur, quote_ident(table), y, keep, [sql], params, task != "regression")
    except duckdb.Error as exc:
        raise translate(exc, f"Breaking {target!r} down by {feature!r} in {table!r}") from None
    finally:
        cur.close()

    common = dict(table=table, target=target, feature=feature, task=task, notes=notes)
    if task == "regression":
        codes = sorted(b for b, _ in cells)
        n, mean, var = zip(*(cells[(b, None)] for b in codes), strict=True) if codes else ((), (), ())
        std = [math.sqrt(v * k / (k - 1)) if k > 1 and v is not None else None for k, v in zip(n, var, strict=True)]
        return TargetBreakdown(labels=tuple(labels[b] for b in codes), rows=tuple(int(k) for k in n),
                               mean=tuple(mean), std=tuple(std), **common)
    classes = sorted(whole)
    _check_classes(task, target, classes)
    codes, m = _matrix(cells, classes)
    rows = m.sum(axis=1)
    shown = dict(labels=tuple(labels[b] for b in codes), rows=tuple(int(k) for k in rows))
    if task == "binary":
        return TargetBreakdown(positive=classes[1], positive_rate=tuple(float(r) for r in m[:, 1] / rows),
                               **shown, **common)
    top = sorted(range(len(classes)), key=lambda j: (-int(whole[classes[j]][0]), str(classes[j])))[:BREAKDOWN_CLASSES]
    if len(classes) > len(top):
        common["notes"] = (*notes, f"Shares of the {len(top)} commonest of {len(classes)} classes.")
    shares = tuple(tuple(float(v) for v in r) for r in m[:, top] / rows[:, None])
    return TargetBreakdown(classes=tuple(classes[j] for j in top), shares=shares, **shown, **common)

"""The leakage guard: before training, a feature that predicts the target almost perfectly on its own is left out.

Such a column is almost always computed from the target (an arrival delay beside "was the flight late", a
refund date beside "was it refunded") or written after the fact; a model that uses it scores AUC 1.0 in the
test and nothing in production. Each candidate feature is scored alone, over the *training* rows only (a
seeded sample of at most ``SAMPLE_ROWS``, fewer for wide tables: ``sample_rows``), by how well its own value
predicts the target out of fold:

- its values are put in bins (numbers and times: up to ``BINS`` equal-count bins; text and true/false: each
  value), the target is summarised per bin on one half of the rows and predicts the other half, and back;
  a bin or category not seen in the other half predicts the prior. Out of fold, an ID-like column or a
  many-valued category predicts nothing, while a column the target is a function of (a threshold on it,
  or any mapping) predicts it whole.
- binary: the AUC of those predictions; multiclass: the share of rows whose class is predicted, scaled so
  that the majority class scores 0 and all rows 1; regression: R² of the predicted values.

A pair can leak where neither column does alone (an actual and a scheduled arrival time, whose difference is
the delay): the difference and the ratio of each pair of the ``PAIR_TOP`` strongest numeric features are
scored the same way (on ``PAIR_ROWS`` of the rows), and of a pair past the threshold the stronger column is
left out.

A feature at or past the threshold (AUC ``LEAK_AUC``; the other two ``LEAK_SHARE``) is excluded by default
and listed with its figure; the user can keep it (Train page, ``train --keep-leaky COL``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pyarrow.compute as pc

from core.data.engine import quote_ident, translate
from core.model.encoding import Labels, label_sql
from core.model.splits import SPLIT_COLUMN

SAMPLE_ROWS = 200_000
SAMPLE_CELLS = 20_000_000  # rows x features held at once (~160 MB): wide tables are checked on fewer rows
BINS = 64
LEAK_AUC = 0.99
LEAK_SHARE = 0.98
MIN_ROWS = 40  # below this the check says nothing
PAIR_TOP = 8
PAIR_ROWS = 50_000


@dataclass(frozen=True)
class Leak:
    """A feature that predicts the target almost alone: the measure, its value, the threshold, the rows checked."""

    feature: str
    measure: str  # "AUC", "share of classes predicted" or "R²"
    value: float
    threshold: float
    rows: int
    kept: bool = False  # the user chose to keep it anyway
    pair: str = ""  # with a partner: the expression that leaks, e.g. 'arr_time - sched_arr_time'

    def sentence(self, target: str) -> str:
        """'arr_delay alone predicts delayed with AUC 0.998 (out of fold, 200,000 training rows): ...'."""
        what = f"{self.pair} predicts" if self.pair else f"{self.feature} alone predicts"
        tail = (f"; {self.feature} is the stronger of the two alone" if self.pair else "")
        return (f"{what} {target} with {self.measure} {self.value:.3f} (threshold {self.threshold:g}; out of fold, "
                f"on {self.rows:,} training rows{tail}): probably computed from the target or known only after it")

    def to_json(self) -> dict:
        return asdict(self)


def sample_rows(features: int) -> int:
    """Training rows the guard looks at: SAMPLE_ROWS, fewer for wide tables (SAMPLE_CELLS), never under 5,000."""
    return max(5_000, min(SAMPLE_ROWS, SAMPLE_CELLS // max(features, 1)))


def leakage_sentence(leak: dict, target: str) -> str:
    """The evidence of a leak as kept in run.json (Leak.to_json), in words."""
    return Leak(**leak).sentence(target)


def _bins(values: np.ndarray, kind: str, mask: np.ndarray) -> np.ndarray:
    """A bin code per row (-1: missing): equal-count bins of the rows in `mask` for numbers, values otherwise."""
    if kind in ("numeric", "temporal"):
        x = values.astype(np.float64)
        finite = np.isfinite(x)
        codes = np.full(len(x), -1, dtype=np.int64)
        ref = x[finite & mask]
        if not len(ref):
            return codes
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, BINS + 1)[1:-1]))
        codes[finite] = np.searchsorted(edges, x[finite], side="right")
        return codes
    if kind == "codes":  # already one code per distinct value (check() encodes text in Arrow)
        return values.astype(np.int64)
    _, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.astype(np.int64)


def _oof(codes: np.ndarray, y: np.ndarray, folds: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Out-of-fold per-row predictions: the mean of y (rows x outputs) over the bin in the other fold."""
    out = np.empty_like(y, dtype=np.float64)
    shift = codes - codes.min() + 1 if len(codes) else codes
    size = int(shift.max()) + 1 if len(shift) else 1
    for f in (0, 1):
        fit, use = folds != f, folds == f
        counts = np.bincount(shift[fit], minlength=size).astype(np.float64)
        sums = np.stack([np.bincount(shift[fit], weights=y[fit, k], minlength=size) for k in range(y.shape[1])], 1)
        seen = counts[shift[use]] > 0
        means = np.where(seen[:, None], sums[shift[use]] / np.maximum(counts[shift[use]], 1)[:, None], prior)
        out[use] = means
    return out


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC with ties counted half (as sklearn's roc_auc_score), from counts per distinct score: the out-of-fold
    scores take a few dozen values, so this is one sort and two bincounts."""
    values, index = np.unique(score, return_inverse=True)
    pos = np.bincount(index, weights=(y == 1).astype(np.float64), minlength=len(values))
    neg = np.bincount(index, minlength=len(values)) - pos
    if not pos.sum() or not neg.sum():
        return 0.5
    below = np.cumsum(neg) - neg  # negatives scored strictly lower than each value
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def strength(values: np.ndarray, kind: str, y: np.ndarray, task: str, n_classes: int,
             seed: int = 0) -> tuple[str, float]:
    """How well one feature predicts the target alone, out of fold (see the module docstring): (measure, value)."""
    rng = np.random.default_rng(seed)
    folds = rng.integers(0, 2, size=len(y))
    codes = _bins(values, kind, folds == 0)
    if task == "regression":
        target = y.reshape(-1, 1).astype(np.float64)
        pred = _oof(codes, target, folds, target.mean(axis=0))[:, 0]
        var = float(np.var(target))
        return "R²", max(0.0, 1 - float(np.mean((pred - target[:, 0]) ** 2)) / var) if var > 0 else 0.0
    onehot = np.eye(max(n_classes, 2))[y.astype(np.int64)]
    pred = _oof(codes, onehot, folds, onehot.mean(axis=0))
    if task == "binary":
        auc = _auc(pred[:, 1], y)
        return "AUC", max(auc, 1 - auc)
    majority = float(onehot.mean(axis=0).max())
    hit = float(np.mean(pred.argmax(axis=1) == y))
    return "share of classes predicted", max(0.0, (hit - majority) / (1 - majority)) if majority < 1 else 0.0


def check(cur: duckdb.DuckDBPyConnection, query: str, params: dict, names: list[str], kinds: list[str],
          target: str, task: str, classes: list | None, seed: int = 0) -> tuple[list[Leak], int]:
    """(the features of `names` that predict `target` almost alone on the train rows of a split query
    (core.model.splits.split_sql), worst first; the number of training rows checked)."""
    if not names:
        return [], 0
    as_value = {"numeric": "CAST({q} AS DOUBLE)", "temporal": "CAST(epoch({q}) AS DOUBLE)"}
    cols = ", ".join(as_value.get(k, "CAST({q} AS VARCHAR)").format(q=quote_ident(n)) + f" AS __c{i}"
                     for i, (n, k) in enumerate(zip(names, kinds, strict=True)))
    sql = (f"SELECT {cols}, {label_sql(target, task)} AS __y FROM ({query}) "
           f"WHERE {SPLIT_COLUMN} = 'train' AND {quote_ident(target)} IS NOT NULL "
           f"USING SAMPLE reservoir({sample_rows(len(names))} ROWS) REPEATABLE ({int(seed)})")
    try:
        rows = cur.sql(sql, params=params or None).to_arrow_table()
    except duckdb.Error as exc:
        raise translate(exc, "Checking the features for leakage") from None
    if rows.num_rows < MIN_ROWS:
        return [], 0
    labels = Labels(task, classes)
    y = labels(rows.column("__y"))
    keep = ~np.isnan(y)
    y = y[keep]
    n_classes = len(classes) if classes else 1
    found, numbers = [], {}
    for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        column = rows.column(f"__c{i}")
        if kind in ("numeric", "temporal"):
            column = pc.fill_null(column, np.nan)
        else:  # text and true/false: each value a bin, missing one of them (Arrow's codes, no Python strings)
            column = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode").indices
            kind = "codes"
        values = np.asarray(column.to_numpy(zero_copy_only=False))[keep]
        measure, value = strength(values, kind, y, task, n_classes, seed)
        threshold = LEAK_AUC if measure == "AUC" else LEAK_SHARE
        if value >= threshold:
            found.append(Leak(name, measure, round(value, 4), threshold, int(len(y))))
        elif kind in ("numeric", "temporal"):
            numbers[name] = (value, values)
    found += _pairs(numbers, y, task, n_classes, seed)
    return sorted(found, key=lambda leak: -leak.value), int(len(y))


def _pairs(numbers: dict[str, tuple[float, np.ndarray]], y: np.ndarray, task: str, n_classes: int,
           seed: int) -> list[Leak]:
    """Pairs of the strongest numeric features whose difference or ratio predicts the target almost alone; of
    each, the stronger column alone (checked again until no pair of the rest leaks)."""
    top = sorted(numbers, key=lambda n: -numbers[n][0])[:PAIR_TOP]
    m = min(len(y), PAIR_ROWS)
    found: list[Leak] = []
    for a, b in [(a, b) for i, a in enumerate(top) for b in top[i + 1:]]:
        if any(leak.feature in (a, b) for leak in found):
            continue
        x, z = numbers[a][1][:m], numbers[b][1][:m]
        with np.errstate(divide="ignore", invalid="ignore"):
            for op, derived in (("-", x - z), ("/", np.where(z != 0, x / z, np.nan))):
                measure, value = strength(derived, "numeric", y[:m], task, n_classes, seed)
                threshold = LEAK_AUC if measure == "AUC" else LEAK_SHARE
                if value >= threshold:
                    stronger = a if numbers[a][0] >= numbers[b][0] else b
                    found.append(Leak(stronger, measure, round(value, 4), threshold, m, pair=f"{a} {op} {b}"))
                    break
    return found

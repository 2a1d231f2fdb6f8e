"""Small numeric helpers shared by core.evaluate, core.thresholds and core.slices: ratios, finite floats,
the rates of a confusion matrix and 95 % intervals.

A ratio whose denominator is 0 is None.
"""
from __future__ import annotations

import math

Z = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


def ratio(a: float, b: float) -> float | None:
    """a / b; None when b is 0."""
    return a / b if b else None


def finite(value) -> float | None:
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


def mean_ci(mean: float | None, sd: float | None, n: int) -> tuple[float | None, float | None]:
    """The normal interval of a mean (mean +- z sd / sqrt(n)); (None, None) below 2 rows."""
    if mean is None or sd is None or n < 2:
        return None, None
    half = Z * sd / math.sqrt(n)
    return mean - half, mean + half


def rates(tp: int, fp: int, tn: int, fn: int) -> dict:
    """The confusion counts at one threshold and the rates made from them (None where 0 / 0)."""
    n = tp + fp + tn + fn
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn), "accuracy": ratio(tp + tn, n), "specificity": ratio(tn, tn + fp),
            "fpr": ratio(fp, fp + tn), "selection_rate": ratio(tp + fp, n)}


def auc_from_parts(pos: int, neg: int, pairs: int) -> float | None:
    """The exact AUC from the counts of core.evaluate.auc_parts_sql; None without both classes."""
    return int(pairs) / (2 * pos * neg) if pos and neg else None

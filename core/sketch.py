"""Quantiles and histograms of a numeric column from one logarithmic bucket count over the full data.

A DDSketch (Masson, Rim & Lee, VLDB 2019) computed in SQL: every finite non-zero value x falls in
bucket ``ceil(log_gamma |x|)`` (negatives apart, zeros counted exactly), with
``gamma = (1 + a) / (1 - a)``. DuckDB counts the buckets in a single pass (a ``histogram``
aggregate with a few hundred keys per column), no value is sampled, and any quantile read back from
the counts is within a relative error ``a`` of the value at that rank — cheaper than a t-digest in
DuckDB and with a guarantee that holds for skewed columns too. The equal-width histogram shown to
the user is laid over the buckets, spreading each bucket's count evenly across its width.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)


def bucket_sql(x: str) -> tuple[str, str]:
    """(positive bucket, negative bucket) SQL expressions for a finite DOUBLE expression `x`."""
    return (f"ceil(ln({x}) / {LN_GAMMA!r})::INTEGER", f"ceil(ln(-({x})) / {LN_GAMMA!r})::INTEGER")


def signed_bucket_sql(x: str) -> str:
    """The WHEN branches of one CASE giving both signs' buckets in one key: 2k for the positive bucket k,
    2k + 1 for the negative bucket k (zero and NULL fall through). One histogram() instead of two."""
    pos, neg = bucket_sql(x)
    return f"WHEN {x} > 0 THEN 2 * {pos} WHEN {x} < 0 THEN 2 * {neg} + 1"


def split_signed(counts: dict) -> tuple[dict, dict]:
    """(positive, negative) bucket counts from a signed_bucket_sql histogram."""
    positive, negative = {}, {}
    for key, n in counts.items():
        k = int(key)
        if k % 2:
            negative[(k - 1) // 2] = n
        else:
            positive[k // 2] = n
    return positive, negative


def _buckets(positive: dict, negative: dict, zeros: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower edges, upper edges, counts) of every bucket, in increasing order of value."""
    pk = np.array(sorted(positive), dtype=np.float64)
    nk = np.array(sorted(negative, reverse=True), dtype=np.float64)
    lo = np.concatenate([-GAMMA ** nk, [0.0] if zeros else [], GAMMA ** (pk - 1)])
    hi = np.concatenate([-GAMMA ** (nk - 1), [0.0] if zeros else [], GAMMA ** pk])
    counts = np.concatenate([[negative[k] for k in sorted(negative, reverse=True)], [zeros] if zeros else [],
                             [positive[k] for k in sorted(positive)]]).astype(np.float64)
    return lo, hi, counts


def quantiles(positive: dict, negative: dict, zeros: int, probs: Sequence[float], lowest: float,
              highest: float) -> list[float] | None:
    """Each quantile as the middle (in relative terms) of the bucket holding its rank, within [lowest, highest]."""
    lo, hi, counts = _buckets(positive, negative, zeros)
    n = counts.sum()
    if not n:
        return None
    cum = np.cumsum(counts)
    out = []
    for p in probs:
        j = int(np.searchsorted(cum, p * (n - 1), side="right"))
        a, b = lo[j], hi[j]
        # The harmonic mean 2ab/(a+b) is within the relative accuracy of every value in (a, b], for either sign.
        value = 0.0 if a == b == 0 else 2 / (1 / a + 1 / b)
        out.append(float(min(max(value, lowest), highest)))
    return out


def histogram(positive: dict, negative: dict, zeros: int, edges: Sequence[float], lowest: float,
              highest: float) -> tuple[list[int], int, int]:
    """(counts per bin between `edges`, below the first edge, above the last): buckets spread evenly.

    Bucket bounds are clipped to [lowest, highest], the column's true extremes, so nothing spreads
    beyond them; a zero bucket is a point.
    """
    lo, hi, counts = _buckets(positive, negative, zeros)
    lo, hi = np.clip(lo, lowest, highest), np.clip(hi, lowest, highest)
    width = hi - lo

    def up_to(t: float, strictly: bool = False) -> float:
        point = (lo < t) if strictly else (lo <= t)  # a zero bucket is a point: below the first edge only if < it
        share = np.where(width > 0, np.clip((t - lo) / np.where(width > 0, width, 1), 0, 1), point * 1.0)
        return float(np.dot(share, counts))

    cdf = np.array([up_to(edges[0], strictly=True), *(up_to(e) for e in edges[1:])])
    total = counts.sum()
    parts = np.concatenate([[cdf[0]], np.diff(cdf), [total - cdf[-1]]])
    whole = _round_keeping_total(parts)
    return whole[1:-1], whole[0], whole[-1]


def _round_keeping_total(parts: np.ndarray) -> list[int]:
    """Whole numbers that add up to round(sum(parts)): largest remainders round up."""
    floors = np.floor(parts + 1e-9).astype(np.int64)
    short = int(round(parts.sum())) - int(floors.sum())
    if short > 0:
        for k in np.argsort(-(parts - floors))[:short]:
            floors[k] += 1
    return floors.tolist()

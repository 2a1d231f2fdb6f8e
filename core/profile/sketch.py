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

import duckdb
import numpy as np

from core.data.engine import quote_ident

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


# ----------------------------------------------------------------------------------------------
# A float column's whole profile from one GROUP BY on its bucket


# Group keys that are not a bucket (a finite value's signed key stays within ±72,000).
ZERO, POS_INF, NEG_INF, NAN = 1 << 30, (1 << 30) + 1, (1 << 30) + 2, (1 << 30) + 3


def group_key_sql(x: str) -> str:
    """A float's group: its signed bucket, or zero, +Inf, -Inf or NaN (NULL stays NULL).

    NOT isfinite comes first: DuckDB may decide the other tests from Parquet statistics (which leave
    NaN out), and NaN must never reach ln() and the INTEGER cast."""
    return (f"CASE WHEN NOT isfinite({x}) THEN CASE WHEN {x} = 'inf'::DOUBLE THEN {POS_INF} "
            f"WHEN {x} = '-inf'::DOUBLE THEN {NEG_INF} ELSE {NAN} END WHEN {x} = 0 THEN {ZERO} "
            f"{signed_bucket_sql(x)} END")


def bucket_stats(cur: duckdb.DuckDBPyConnection, src: str, names: Sequence[str]) -> dict[int, dict]:
    """Every figure of a profile of float columns, from one GROUP BY per column on its bucket.

    Each group holds the values of one bucket (or the zeros, +Inf, -Inf, NaN), with their count,
    extremes, mean, population variance and HyperLogLog distinct count. Buckets partition the values,
    so the column's figures follow: counts add up, extremes are the groups' extremes, the moments
    combine exactly (Chan et al.), distinct counts add up, and the bucket counts are the quantile
    sketch. One grouped aggregate replaces a dozen filtered ones: 0.49 s vs 0.71 s for a column of
    20M doubles. Returns {position in `names`: fields}.
    """
    branches = []
    for j, name in enumerate(names):
        x = f"{quote_ident(name)}::DOUBLE"
        branches.append(f"SELECT {j} AS g, {group_key_sql(x)} AS k, count({x}) AS n, min({x}) AS lo, "
                        f"max({x}) AS hi, avg({x}) AS mean, var_pop({x}) AS var, "
                        f"approx_count_distinct({x}) AS d FROM {src} GROUP BY ALL")
    cols = cur.sql(" UNION ALL ".join(branches)).fetchnumpy()
    g = np.asarray(cols["g"])
    out = {}
    for j in range(len(names)):
        mine = g == j
        key = np.ma.filled(np.ma.asarray(cols["k"])[mine].astype(np.int64), -1 << 40)  # NULL: the missing values
        n = np.asarray(np.ma.filled(np.ma.asarray(cols["n"])[mine], 0), dtype=np.int64)
        part = {c: np.ma.filled(np.ma.asarray(cols[c])[mine].astype(np.float64), np.nan)
                for c in ("lo", "hi", "mean", "var", "d")}
        out[j] = _combine(key, n, part)
    return out


def _combine(key: np.ndarray, n: np.ndarray, part: dict) -> dict:
    """One column's figures from its groups (see bucket_stats)."""
    def count(k: int) -> int:
        return int(n[key == k].sum())

    zeros, pinf, ninf, nan = count(ZERO), count(POS_INF), count(NEG_INF), count(NAN)
    bucket = (key > -(1 << 40)) & (key < ZERO)
    finite = bucket | (key == ZERO)
    fields = {"count": int(n[key > -(1 << 40)].sum()), "zeros": zeros, "nan": nan, "pos_inf": pinf, "neg_inf": ninf,
              "negatives": int(n[bucket & (key % 2 == 1)].sum()) + ninf,
              "distinct": int(round(part["d"][bucket].sum())) + (zeros > 0) + (pinf > 0) + (ninf > 0) + (nan > 0)}
    total = int(n[finite].sum())
    if not total:
        return {**fields, "min": None, "max": None, "mean": None, "std": None, "positive": {}, "negative": {}}
    w, m, v = n[finite].astype(np.float64), part["mean"][finite], part["var"][finite]
    mean = float(np.dot(w, m) / total)
    m2 = float(np.dot(w, v) + np.dot(w, (m - mean) ** 2))
    positive, negative = split_signed(dict(zip(key[bucket].tolist(), n[bucket].tolist(), strict=True)))
    return {**fields, "min": float(part["lo"][finite].min()), "max": float(part["hi"][finite].max()), "mean": mean,
            "std": math.sqrt(m2 / (total - 1)) if total > 1 else None, "positive": positive, "negative": negative}

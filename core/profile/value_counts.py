"""Exact column statistics from value counts: the fast path for columns with few distinct values.

Most columns of a real table (categories, flags, small integers, rounded scores) hold a few
thousand distinct values at most. For those, one query (a ``GROUP BY`` per column, joined by
``UNION ALL``) counts every value of every such column, and everything a profile shows follows
exactly from the (value, count) pairs: missing, distinct, extremes, moments, quantiles, zeros, top
values, histogram. That is cheaper than the dozen aggregates per column it replaces, and exact.

Which columns qualify is guessed from the first rows (``probe_distinct``); a guess that proves
wrong (more than ``MAX_VALUES`` values) is caught while the counts stream in, and that column goes
back to the general aggregate path.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.data.engine import quote_ident

PROBE_ROWS = 131_072
# A column is counted by value when its first PROBE_ROWS rows hold at most this many distinct values,
# and at most this share of those rows (a high share means values keep coming: an ID, a measurement).
PROBE_MAX_DISTINCT = 50_000
PROBE_MAX_SHARE = 0.3
# Counting stops for a column that turns out to hold more values than this; it is profiled by aggregates.
MAX_VALUES = 200_000
# A column whose probe is (almost) all distinct is taken as unique per row: no top values are sought.
UNIQUE_SHARE = 0.95
# Above this many values tied for the last top place, ties are broken by Arrow's text of the values.
TIES_BY_TEXT = 1_000


def probe_distinct(cur: duckdb.DuckDBPyConnection, src: str, names: Sequence[str]) -> tuple[int, list[int]]:
    """(rows probed, approximate distinct values of each column among the first PROBE_ROWS rows): cheap."""
    if not names:
        return 0, []
    cols = ", ".join(f"approx_count_distinct({quote_ident(n)})" for n in names)
    inner = ", ".join(quote_ident(n) for n in names)
    row = cur.sql(f"SELECT count(*), {cols} FROM (SELECT {inner} FROM {src} LIMIT {PROBE_ROWS})").fetchall()[0]
    return int(row[0]), [int(v or 0) for v in row[1:]]


def few_values(distinct: int, rows: int) -> bool:
    """Whether a probe of `rows` rows with `distinct` values suggests counting the column by value."""
    return distinct <= PROBE_MAX_DISTINCT and distinct <= max(PROBE_MAX_SHARE * rows, 1_000)


def looks_unique(distinct: int, rows: int) -> bool:
    """Whether a probe suggests one value per row (HyperLogLog runs a few % low, hence the margin)."""
    return rows >= 1_000 and distinct >= UNIQUE_SHARE * rows


def count_values(cur: duckdb.DuckDBPyConnection, src: str, names: Sequence[str],
                 max_values: int = MAX_VALUES) -> tuple[dict[int, tuple[pa.Array, np.ndarray]], set[int]]:
    """Count every value of each column in one scan.

    Returns ({position in `names`: (values, counts)}, positions that overflowed `max_values`). The
    values come as one Arrow array per column; missing values are counted as one null value.
    """
    k = len(names)
    if not k:
        return {}, set()
    # One GROUP BY per column, as branches of one UNION ALL: each branch reads its own column only, and
    # groups by that column alone (an integer key with a narrow range gets DuckDB's perfect hash table).
    # The same result as GROUP BY GROUPING SETS, which was 1.36x slower (2.11 s vs 1.55 s on 14 columns x 20M rows).
    branches = []
    for j, name in enumerate(names):
        cols = ", ".join("v" if i == j else "NULL" for i in range(k))
        branches.append(f"SELECT {j} AS g, {cols}, n FROM (SELECT {quote_ident(name)} AS v, count(*) AS n "
                        f"FROM {src} GROUP BY ALL)")
    values: dict[int, list] = {j: [] for j in range(k)}
    counts: dict[int, list] = {j: [] for j in range(k)}
    sizes = dict.fromkeys(range(k), 0)
    reader = cur.sql(" UNION ALL ".join(branches)).to_arrow_reader(batch_size=1 << 20)
    try:
        for batch in reader:
            g = batch.column(0).to_numpy()
            n = batch.column(k + 1).to_numpy()
            for gid in np.unique(g):
                j = int(gid)
                rows = np.flatnonzero(g == gid)
                whole = len(rows) == len(g)
                counts[j].append(n if whole else n[rows])
                values[j].append(batch.column(j + 1) if whole else batch.column(j + 1).take(rows))
                sizes[j] += len(rows)
            over = {j for j in range(k) if sizes[j] > max_values}
            if over:
                return {}, over
    finally:
        reader.close()
    return {j: (_concat(values[j]), np.concatenate(counts[j]) if counts[j] else np.zeros(0, np.int64))
            for j in range(k)}, set()


def _concat(chunks: list) -> pa.Array:
    if not chunks:
        return pa.array([], pa.null())
    return pa.concat_arrays([c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in chunks])


def present(values: pa.Array, counts: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """The non-missing values and their counts."""
    if not values.null_count:
        return values, counts
    keep = values.is_valid()
    return values.filter(keep), counts[keep.to_numpy(zero_copy_only=False)]


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, probs: Sequence[float]) -> list[float]:
    """quantile_cont over the values x repeated w times (x sorted): linear interpolation, as DuckDB and NumPy."""
    cum = np.cumsum(w)
    n = int(cum[-1])
    out = []
    for p in probs:
        h = (n - 1) * p
        lo, hi = math.floor(h), math.ceil(h)
        a, b = x[np.searchsorted(cum, lo, side="right")], x[np.searchsorted(cum, hi, side="right")]
        out.append(float(a + (h - lo) * (b - a)))
    return out


def numeric_stats(values: pa.Array, counts: np.ndarray, kind: str, probs: Sequence[float]) -> dict:
    """Count, extremes, moments, quantiles, zeros, negatives and non-finite counts from value counts."""
    kept, w = present(values, counts)
    if pa.types.is_decimal(kept.type):  # via text: Arrow's direct cast is not correctly rounded (100.10000000000001)
        kept = pc.cast(kept, pa.string())
    x = pc.cast(kept, pa.float64()).to_numpy(zero_copy_only=False) if len(kept) else np.zeros(0)
    return weighted_stats(x, w.astype(np.int64), kind, probs)


def weighted_stats(x: np.ndarray, w: np.ndarray, kind: str, probs: Sequence[float]) -> dict:
    """numeric_stats over float values `x` occurring `w` times each (no missing values among them)."""
    out = {"count": int(w.sum()), "distinct": len(x), "zeros": int(w[x == 0].sum()), "negatives": int(w[x < 0].sum())}
    if kind == "float":
        out.update(nan=int(w[np.isnan(x)].sum()), pos_inf=int(w[x == math.inf].sum()),
                   neg_inf=int(w[x == -math.inf].sum()))
    fin = np.isfinite(x)
    x, w = x[fin], w[fin]
    if not len(x):
        return {**out, "min": None, "max": None, "mean": None, "std": None, "quantiles": None}
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    n = int(w.sum())
    mean = float(np.dot(x, w) / n)
    std = float(math.sqrt(float(np.dot(w, (x - mean) ** 2)) / (n - 1))) if n > 1 else None
    qs = _weighted_quantiles(x, w, probs)
    return {**out, "min": float(x[0]), "max": float(x[-1]), "mean": mean, "std": std,
            "quantiles": qs, "finite": (x, w)}


def histogram_counts(x: np.ndarray, w: np.ndarray, lo: float, hi: float, start: float, width: float,
                     n: int) -> tuple[list[int], int, int]:
    """(counts per bin, below, above): the same bucketing as the SQL path, over weighted values."""
    below = int(w[x < lo].sum())
    above = int(w[x > hi].sum())
    inside = (x >= lo) & (x <= hi)
    idx = np.minimum(np.floor((x[inside] - start) / width).astype(np.int64), n - 1)
    return np.bincount(idx, weights=w[inside], minlength=n).astype(np.int64).tolist(), below, above


def string_stats(values: pa.Array, counts: np.ndarray) -> dict:
    """Count, empty strings, length statistics and extremes from value counts."""
    kept, w = present(values, counts)
    if not len(kept):
        return {"count": 0, "distinct": 0, "empty": 0, "length_min": None, "length_max": None, "length_mean": None,
                "min": None, "max": None}
    lengths = pc.utf8_length(kept).to_numpy(zero_copy_only=False).astype(np.int64)  # characters, as len()
    w = w.astype(np.int64)
    extremes = pc.min_max(kept)  # UTF-8 byte order is code point order: the same as Python's min/max
    return {"count": int(w.sum()), "distinct": len(kept), "empty": int(w[lengths == 0].sum()),
            "length_min": int(lengths.min()), "length_max": int(lengths.max()),
            "length_mean": float(np.dot(lengths, w) / w.sum()),
            "min": extremes["min"].as_py(), "max": extremes["max"].as_py()}


def top_values(values: pa.Array, counts: np.ndarray, k: int) -> tuple[tuple[object, int], ...]:
    """The k most frequent non-missing values, ties by their text (as the SQL path ranks them)."""
    kept, w = present(values, counts)
    if not len(kept):
        return ()
    idx = np.arange(len(w))
    if len(w) > k:  # every value as frequent as the k-th most frequent, ties included
        kth = np.partition(w, len(w) - k)[len(w) - k]
        idx, tied = np.flatnonzero(w > kth), np.flatnonzero(w == kth)
        if len(tied) > TIES_BY_TEXT:  # many ties (an ID-like column): the first by text, ranked by Arrow
            text = pc.cast(kept.take(pa.array(tied)), pa.string())
            tied = tied[pc.sort_indices(text).to_numpy()[:k]]
        idx = np.concatenate([idx, tied])
    pairs = list(zip(kept.take(pa.array(idx)).to_pylist(), w[idx].tolist(), strict=True))
    pairs.sort(key=lambda vc: (-vc[1], str(vc[0])))
    return tuple((v, int(n)) for v, n in pairs[:k])

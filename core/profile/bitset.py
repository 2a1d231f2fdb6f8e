"""Integer columns with one value per row (IDs), profiled exactly from a bitmap of their values.

An ID column holds as many values as rows: counting it by value builds a hash table the size of the
table, and the general aggregates spend a logarithmic sketch on its quantiles. DuckDB's
``bitstring_agg(x, lo, hi)`` instead sets bit ``x - lo`` for every value, in one pass and without
hashing, where ``lo`` and ``hi`` are the column's extremes, read beforehand from the files' metadata
(free for Parquet). When as many bits are set as values were counted, every value occurs once and
the set bits *are* the column: count, distinct, extremes, mean, standard deviation, quantiles and
histogram follow exactly, and the table can hold no two equal rows.

The figures are read off the bitmap a byte at a time through 256-entry tables (bits set, the sum
and the sum of squares of their places), never one Python object per value.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import duckdb
import numpy as np

from core.data.engine import quote_ident

# The widest range a bitmap covers (bits): a 8 MiB bitmap per thread, and a few arrays of one number
# per byte (64 MiB each at most) to read it.
MAX_RANGE = 1 << 26

_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)  # [byte, place]: place 0 is the first bit
_POP = _BITS.sum(axis=1).astype(np.int64)
_SUM = (_BITS @ np.arange(8)).astype(np.float64)
_SUM2 = (_BITS @ np.arange(8) ** 2).astype(np.float64)
_PREFIX = np.concatenate([np.zeros((256, 1), np.int64), np.cumsum(_BITS, axis=1)], axis=1)  # bits set in places < m


def metadata_bounds(cur: duckdb.DuckDBPyConnection, src: str, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """{column: (min, max)} of integer columns when DuckDB answers both from the files' metadata (Parquet
    statistics) without reading data; {} when it would have to scan (a CSV, files without statistics)."""
    if not names:
        return {}
    sql = "SELECT " + ", ".join(f"min({quote_ident(n)}), max({quote_ident(n)})" for n in names) + f" FROM {src}"
    plan = " ".join(str(cell) for row in cur.sql("EXPLAIN " + sql).fetchall() for cell in row)
    if re.search(r"table[ _]scan|read_", plan, re.IGNORECASE):
        return {}
    row = cur.sql(sql).fetchall()[0]
    return {n: (int(row[2 * j]), int(row[2 * j + 1])) for j, n in enumerate(names)
            if row[2 * j] is not None and -(1 << 63) <= int(row[2 * j]) <= int(row[2 * j + 1]) < (1 << 63)}


def fits(lo: int, hi: int) -> bool:
    """Whether a column with these extremes can be profiled from a bitmap."""
    return hi - lo < MAX_RANGE


def aggregate_sql(column: str, lo: int, hi: int) -> str:
    """The bitmap of a column's values between its extremes, as bytes (the bits left-padded to whole bytes)."""
    return f"bitstring_agg({quote_ident(column)}::BIGINT, {lo}, {hi})::BLOB"


class Bitmap:
    """The values of an integer column that occur at least once, as bits: value lo + k is bit k."""

    def __init__(self, blob: bytes, lo: int, hi: int) -> None:
        self.lo, self.bytes = lo, np.frombuffer(blob, dtype=np.uint8)
        self.pad = 8 * len(self.bytes) - (hi - lo + 1)  # leading zero bits of the first byte
        self.cum = np.cumsum(_POP[self.bytes])  # values in bytes 0..i
        self.count = int(self.cum[-1]) if len(self.cum) else 0

    def _value(self, byte: int, place: np.ndarray | int) -> np.ndarray | int:
        return self.lo + 8 * byte + place - self.pad

    def at_rank(self, r: int) -> int:
        """The r-th smallest value (r from 0)."""
        i = int(np.searchsorted(self.cum, r, side="right"))
        before = int(self.cum[i - 1]) if i else 0
        return int(self._value(i, int(np.flatnonzero(_BITS[self.bytes[i]])[r - before])))

    def count_below(self, x: int) -> int:
        """How many values are < x."""
        p = x - self.lo + self.pad  # bit position of x in the padded bitmap
        if p <= 0:
            return 0
        if p >= 8 * len(self.bytes):
            return self.count
        i, m = divmod(p, 8)
        return (int(self.cum[i - 1]) if i else 0) + int(_PREFIX[self.bytes[i], m])

    def moments(self) -> tuple[float, float | None]:
        """(mean, sample standard deviation), summed per byte around the middle of the range."""
        n = self.count
        centre = (8 * len(self.bytes) + self.pad) / 2  # in padded positions
        base = 8.0 * np.arange(len(self.bytes)) - centre  # each byte's first place, centred
        # Sums over the bytes of each of the 256 byte values, then through the tables: two passes in all.
        c, b1, b2 = (np.bincount(self.bytes, weights=w, minlength=256) for w in (None, base, base * base))
        d1 = float(np.dot(_POP, b1) + np.dot(_SUM, c))
        d2 = float(np.dot(_POP, b2) + 2 * np.dot(_SUM, b1) + np.dot(_SUM2, c))
        mean = self.lo - self.pad + centre + d1 / n
        var = (d2 - d1 * d1 / n) / (n - 1) if n > 1 else None
        return mean, (math.sqrt(max(var, 0.0)) if var is not None else None)

    def quantiles(self, probs: Sequence[float]) -> list[float]:
        """quantile_cont of the values (linear interpolation between ranks, as DuckDB and NumPy)."""
        out = []
        for p in probs:
            h = (self.count - 1) * p
            a, b = self.at_rank(math.floor(h)), self.at_rank(math.ceil(h))
            out.append(float(a + (h - math.floor(h)) * (b - a)))
        return out

    def histogram(self, lo: float, hi: float, start: float, width: float, n: int) -> tuple[list[int], int, int]:
        """(counts per bin, below lo, above hi): the bins of core.value_counts.histogram_counts, exactly.

        Each bin holds a run of whole numbers; its first is found with the very formula the other paths
        apply to each value, so a value on an edge lands in the same bin whichever path counts it.
        """
        def bin_of(x: int) -> int:
            return min(math.floor((x - start) / width), n - 1)

        first, last = math.ceil(lo), math.floor(hi)
        edges = [first]
        for k in range(1, n):
            g = min(max(math.ceil(start + k * width), edges[-1]), last + 1)
            while g > edges[-1] and bin_of(g - 1) >= k:
                g -= 1
            while g <= last and bin_of(g) < k:
                g += 1
            edges.append(g)
        edges.append(last + 1)
        below_lo = [self.count_below(e) for e in edges]
        counts = [max(b - a, 0) for a, b in zip(below_lo[:-1], below_lo[1:], strict=True)]
        return counts, below_lo[0], self.count - below_lo[-1]

    def stats(self, probs: Sequence[float]) -> dict:
        """The numeric figures of a profile (every value occurring once): count, distinct, extremes,
        mean, std, quantiles, zeros, negatives."""
        if not self.count:
            return {"count": 0, "distinct": 0, "zeros": 0, "negatives": 0, "min": None, "max": None, "mean": None,
                    "std": None, "quantiles": None}
        mean, std = self.moments()
        return {"count": self.count, "distinct": self.count, "zeros": self.count_below(1) - self.count_below(0),
                "negatives": self.count_below(0), "min": self.at_rank(0), "max": self.at_rank(self.count - 1),
                "mean": mean, "std": std, "quantiles": self.quantiles(probs)}

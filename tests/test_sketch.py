"""The logarithmic bucket sketch (core.sketch) against NumPy on skewed, signed and awkward data."""
from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest

from core.profile import sketch

PROBS = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


def _buckets(values: np.ndarray) -> tuple[dict, dict, int]:
    """Count the buckets with the same SQL the profile runs."""
    con = duckdb.connect()
    con.register("v", {"x": values})
    pos, neg = sketch.bucket_sql("x")
    row = con.sql(f"SELECT histogram(CASE WHEN NOT isfinite(x) THEN NULL WHEN x > 0 THEN {pos} END), "
                  f"histogram(CASE WHEN NOT isfinite(x) THEN NULL WHEN x < 0 THEN {neg} END), "
                  "count_if(x = 0) FROM v").fetchall()[0]
    return row[0] or {}, row[1] or {}, int(row[2])


DATA = {
    "lognormal": np.random.default_rng(1).lognormal(3, 2, 50_000),
    "signed": np.random.default_rng(2).normal(0, 100, 50_000),
    "zeros and ids": np.concatenate([np.zeros(5_000), np.arange(1, 20_001, dtype=float)]),
    "tiny and huge": np.array([1e-300, 2e-300, 1.0, 1e300, -1e300, -5.0]),
    "one value": np.array([-7.25]),
}


@pytest.mark.parametrize("name", DATA)
def test_quantiles_are_within_the_relative_accuracy_of_a_value_at_that_rank(name):
    x = np.sort(DATA[name])
    pos, neg, zeros = _buckets(x)
    got = sketch.quantiles(pos, neg, zeros, PROBS, x[0], x[-1])
    a = sketch.RELATIVE_ACCURACY
    for p, q in zip(PROBS, got, strict=True):
        lower, upper = np.quantile(x, p, method="lower"), np.quantile(x, p, method="higher")
        lo, hi = sorted((lower * (1 - a) if lower > 0 else lower * (1 + a), upper * (1 + a) if upper > 0
                         else upper * (1 - a)))
        assert lo - 1e-12 <= q <= hi + 1e-12, (name, p, q, lower, upper)


@pytest.mark.parametrize("name", ["lognormal", "signed", "zeros and ids"])
def test_histogram_keeps_the_total_and_stays_close_to_exact_counts(name):
    x = DATA[name]
    pos, neg, zeros = _buckets(x)
    lo, hi = np.quantile(x, 0.01), np.quantile(x, 0.99)
    edges = np.linspace(lo, hi, 31)
    counts, below, above = sketch.histogram(pos, neg, zeros, edges.tolist(), x.min(), x.max())
    exact = [int((x < lo).sum()), *np.histogram(x[(x >= lo) & (x <= hi)], bins=edges)[0].tolist(),
             int((x > hi).sum())]
    got = [below, *counts, above]
    assert sum(got) == len(x) and all(isinstance(c, int) for c in got)
    assert np.abs(np.cumsum(got) - np.cumsum(exact)).max() <= 0.01 * len(x)


def test_nothing_finite_gives_no_quantiles():
    assert sketch.quantiles({}, {}, 0, PROBS, math.nan, math.nan) is None

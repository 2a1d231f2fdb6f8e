"""Missing-value patterns vs pandas on the same data: isna() pattern counts and the correlation of isna() flags."""
from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from core.data import catalog as cat
from core.errors import QuarryError
from core.profile.missingness import missing_patterns
from core.profile.scan import Profile, profile_table
from tests.conftest import write_parquet

N = 2000
ODD = 'miss "ü" col'


def make_table(n: int = N) -> pa.Table:
    """Columns missing alone, together, never, always; NaN without ±Inf (the Parquet statistics trap)."""
    rng = np.random.default_rng(3)
    gone = rng.random(n) < 0.2  # a and b are often missing together
    a = [None if g else float(v) for g, v in zip(gone, rng.normal(size=n), strict=True)]
    b = [None if g and rng.random() < 0.7 or rng.random() < 0.05 else f"s{i % 9}" for i, g in enumerate(gone)]
    nan = [math.nan if rng.random() < 0.1 else float(v) for v in rng.normal(size=n)]  # NaN only, no NULL
    inf = [math.inf if i % 5 == 0 else float(i) for i in range(n)]  # ±Inf are values, not missing
    return pa.table({
        "a": pa.array(a, pa.float64()),
        "b": pa.array(b, pa.string()),
        ODD: pa.array([None if i % 7 == 0 else i for i in range(n)], pa.int64()),
        "nan": pa.array(nan, pa.float64()),
        "never": pa.array(range(n), pa.int64()),
        "inf": pa.array(inf, pa.float64()),
        "always": pa.array([None] * n, pa.string()),
        "mixed": pa.array([None if i % 3 == 0 else (math.nan if i % 3 == 1 else 1.0) for i in range(n)]),
    })


TABLE = make_table()
MISSING = ["a", "b", ODD, "nan", "always", "mixed"]


def _register(con, catalog, root, table: pa.Table, name: str) -> Profile:
    path = write_parquet(root / f"{name}.parquet", table, row_group_size=400)
    cat.register(con, catalog, str(path), name=name, replace=True)
    return profile_table(con, name, exact=True)


@pytest.fixture
def data(con, catalog, root) -> Profile:
    return _register(con, catalog, root, TABLE, "t")


def _isna(columns: list[str], table: pa.Table = TABLE) -> pd.DataFrame:
    return table.to_pandas()[columns].isna()  # pandas: None and NaN are missing, ±Inf are not


def _patterns(flags: pd.DataFrame) -> Counter:
    return Counter(tuple(c for c, f in zip(flags.columns, row, strict=True) if f) for row in flags.itertuples(False))


def test_patterns_equal_pandas(con, data):
    m = missing_patterns(con, "t", data, top=100)
    flags = _isna(MISSING)
    want = _patterns(flags)
    assert (m.table, m.columns, m.rows) == ("t", tuple(MISSING), N)
    assert m.missing == tuple(int(flags[c].sum()) for c in MISSING)
    assert m.missing[MISSING.index("nan")] == sum(math.isnan(v) for v in TABLE.column("nan").to_pylist()) > 0
    assert dict(m.patterns) == dict(want) and len(m.patterns) == len(want) == m.pattern_count
    assert [n for _, n in m.patterns] == sorted(want.values(), reverse=True)
    assert sum(n for _, n in m.patterns) == N
    assert m.notes == ()


def test_top_patterns_only(con, data):
    m = missing_patterns(con, "t", data, top=3)
    want = _patterns(_isna(MISSING))
    assert [n for _, n in m.patterns] == sorted(want.values(), reverse=True)[:3]
    assert all(want[cols] == n for cols, n in m.patterns)
    assert m.pattern_count == len(want) > 3


def test_nullity_correlation_equals_pandas(con, data):
    m = missing_patterns(con, "t", data)
    want = _isna(MISSING).astype(float).corr().to_numpy()  # NaN where a column is always missing
    got = np.array([[np.nan if v is None else v for v in row] for row in m.matrix])
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    i, j, k = MISSING.index("a"), MISSING.index("b"), MISSING.index("always")
    assert m.matrix[i][j] == pytest.approx(want[i, j], rel=1e-12) and m.matrix[i][j] > 0.5
    assert m.matrix[i][i] == 1.0
    assert m.matrix[k] == (None,) * len(MISSING) and all(row[k] is None for row in m.matrix)


def test_max_columns_keeps_those_with_most_missing(con, data):
    m = missing_patterns(con, "t", data, max_columns=2)
    assert m.columns == ("always", "mixed")  # in table order: 2,000 and 1,334 missing
    assert m.missing == (N, sum(i % 3 != 2 for i in range(N)))
    assert m.notes == ("6 columns have missing values; the 2 with most are compared.",)
    assert dict(m.patterns) == dict(_patterns(_isna(["always", "mixed"])))


def test_nothing_missing_is_an_empty_result(con, catalog, root):
    p = _register(con, catalog, root, TABLE.select(["never", "inf"]), "full")
    m = missing_patterns(con, "full", p)
    assert (m.columns, m.missing, m.patterns, m.pattern_count, m.matrix, m.rows) == ((), (), (), 0, (), N)
    assert m.notes == ("No column has missing values.",)


def test_zero_rows(con, catalog, root):
    p = _register(con, catalog, root, TABLE.slice(0, 0), "zero")
    m = missing_patterns(con, "zero", p)
    assert (m.columns, m.patterns, m.rows) == ((), (), 0)


def test_one_row(con, catalog, root):
    p = _register(con, catalog, root, TABLE.slice(0, 1), "one")
    gone = tuple(c for c in MISSING if _isna(MISSING).loc[0, c])
    m = missing_patterns(con, "one", p)
    assert {ODD, "always", "mixed"} <= set(gone)  # row 0: NULL in ODD, always and mixed
    assert m.columns == gone and m.rows == 1
    assert m.patterns == ((gone, 1),) and m.pattern_count == 1
    assert m.matrix == ((None,) * len(gone),) * len(gone)  # every column is always missing in one row


@pytest.mark.parametrize(("kw", "words"), [
    ({"max_columns": 0}, "max_columns must be between 1 and 62. Got 0"),
    ({"max_columns": 63}, "Got 63"),
    ({"top": 0}, "top must be at least 1. Got 0"),
])
def test_bad_arguments_are_explained(con, data, kw, words):
    with pytest.raises(QuarryError, match=words) as err:
        missing_patterns(con, "t", data, **kw)
    assert err.value.hint


def test_unknown_table_is_explained(con, data):
    with pytest.raises(QuarryError, match="does not exist"):
        missing_patterns(con, "nope", data)


def test_to_json(con, data):
    doc = json.loads(json.dumps(missing_patterns(con, "t", data, top=2).to_json()))
    assert doc["columns"] == MISSING and len(doc["patterns"]) == 2
    assert doc["patterns"][0][1] >= doc["patterns"][1][1] and doc["matrix"][4] == [None] * 6

"""Steps over other rows (core/features/steps/relational.py) against pandas: sort, group, shift, on unsorted
data with gaps.

The data has missing keys, missing times, missing and NaN values, two keys, ties in time and rows in random
order; lag and rolling are also checked never to read the row itself or a later one.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from core.features import recipe as R
from tests.recipe_support import run, snapshot, table


def relational_data(rows: int = 600, seed: int = 7, ties: bool = True) -> pa.Table:
    """Rows in random order: keys k1 (int) and k2 (text), time t (ties when `ties`), unique tie-breaker `seq`."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1)
    slots = rng.integers(0, 40 if ties else 10**9, rows)
    v = rng.normal(50, 20, rows).round(3)

    def gap(i: int, k: int, every: int) -> bool:
        return (i * 13 + k) % every == 0

    return pa.table({
        "id": pa.array(np.arange(rows), pa.int64()),
        "k1": pa.array([None if gap(i, 1, 12) else int(x) for i, x in enumerate(rng.integers(0, 4, rows))], pa.int64()),
        "k2": pa.array([None if gap(i, 2, 15) else ["x", "y", "ü z"][int(x)] for i, x in enumerate(rng.integers(0, 3,
                                                                                                             rows))]),
        "t": pa.array([None if gap(i, 3, 14) else start + timedelta(hours=int(s)) for i, s in enumerate(slots)],
                      pa.timestamp("us")),
        "seq": pa.array(rng.permutation(rows), pa.int64()),
        "v": pa.array([math.nan if gap(i, 4, 23) else (None if gap(i, 5, 9) else float(x)) for i, x in enumerate(v)],
                      pa.float64()),
        "n": pa.array([None if gap(i, 6, 10) else int(x) for i, x in enumerate(rng.integers(-5, 100, rows))],
                      pa.int64()),
        "flag": pa.array([None if gap(i, 7, 8) else bool(x) for i, x in enumerate(rng.integers(0, 2, rows))]),
        "word": pa.array([None if gap(i, 8, 7) else str(x) for i, x in enumerate(rng.integers(100, 999, rows))]),
    })


@pytest.fixture
def data(con: duckdb.DuckDBPyConnection) -> str:
    return table(con, "events", relational_data())


def frame(out: pa.Table) -> pd.DataFrame:
    return out.to_pandas().set_index("id").sort_index()


def reference() -> pd.DataFrame:
    return relational_data().to_pandas().set_index("id").sort_index()


def numbers(s: pd.Series) -> pd.Series:
    """As floats, missing (None, NA, NaN) as NaN: what a feature holds, for comparing."""
    return pd.to_numeric(s.astype(object).where(s.notna(), np.nan), errors="coerce").astype(float)


def texts(s: pd.Series) -> list:
    """Text values in index order, missing as None (pandas may say None or NaN)."""
    return [None if pd.isna(x) else x for x in s.sort_index().tolist()]


def assert_same(got: pd.Series, want: pd.Series, what: str) -> None:
    g, w = numbers(got.sort_index()), numbers(want.sort_index())
    assert (g.index == w.index).all()
    assert g.isna().sum() == w.isna().sum(), f"{what}: {g.isna().sum()} missing, expected {w.isna().sum()}"
    np.testing.assert_allclose(g.to_numpy(), w.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=what)


def sequences(df: pd.DataFrame, keys: list[str], order: list[str]) -> pd.DataFrame:
    """The rows that belong to a sequence (key and time known), sorted as the step orders them."""
    known = df[[*keys, "t"]].notna().all(axis=1)
    return df[known].sort_values([*keys, *order], kind="stable")


def lag_ref(df: pd.DataFrame, col: str, keys: list[str], n: int) -> pd.Series:
    s = sequences(df, keys, ["t", "seq"])
    shifted = s.groupby(keys)[col].shift(n) if keys else s[col].shift(n)
    return shifted.reindex(df.index)


def rolling_ref(df: pd.DataFrame, col: str, keys: list[str], n: int, agg: str) -> pd.Series:
    s = sequences(df, keys, ["t", "seq"])
    values = numbers(s[col])

    def previous(x: pd.Series) -> pd.Series:
        window = x.shift(1).rolling(n, min_periods=0 if agg == "count" else 1)
        return getattr(window, agg)()

    out = values.groupby([s[k] for k in keys]).transform(previous) if keys else previous(values)
    return out.reindex(df.index)


def group_ref(df: pd.DataFrame, col: str, keys: list[str], agg: str) -> pd.Series:
    values = df[col] if pd.api.types.is_string_dtype(df[col]) else numbers(df[col])
    groups = values.groupby([df[k] for k in keys], dropna=False)
    if agg == "sum":  # no value in the group: missing, as in SQL (pandas would say 0)
        return groups.transform(lambda x: x.sum(min_count=1))
    return groups.transform({"mean": "mean", "std": "std", "count": "count", "min": "min", "max": "max"}[agg])


# ----------------------------------------------------------------------------------------------
# group_aggregate


@pytest.mark.parametrize("agg", ["mean", "sum", "count", "min", "max", "std"])
@pytest.mark.parametrize("keys", [["k1"], ["k1", "k2"]])
@pytest.mark.parametrize("col", ["v", "n", "flag"])
def test_group_aggregate_equals_pandas(con, data, agg, keys, col):
    out, compiled, _ = run(con, [R.Step("group_aggregate", {"value": col, "keys": keys, "agg": agg})], data)
    name = f"{agg}_{col}_per_{'_'.join(keys)}"
    assert out.column_names[-1] == name and out.num_rows == 600
    got, ref = frame(out), reference()
    assert_same(got[name], group_ref(ref, col, keys, agg), name)
    assert ref[keys].isna().any(axis=None) and got.loc[ref[keys].isna().any(axis=1), name].notna().any(), \
        "rows with a missing key form a group of their own"
    same = out.schema.field(col).type
    assert out.schema.field(name).type == {"count": pa.int64(), "min": same, "max": same}.get(agg, pa.float64())
    if (agg, col, len(keys)) == ("mean", "v", 2):
        snapshot("relational_group_aggregate", compiled.sql)
        assert compiled.steps[0].description == ("mean_v_per_k1_k2 = mean of v over the rows with the same k1, k2 "
                                                 "(among the rows being transformed)")


@pytest.mark.parametrize("agg", ["count", "min", "max"])
def test_group_aggregate_of_text(con, data, agg):
    out, _, _ = run(con, [R.Step("group_aggregate", {"value": "word", "keys": ["k2"], "agg": agg})], data)
    got, ref = frame(out), reference()
    want = group_ref(ref, "word", ["k2"], agg)
    if agg == "count":
        assert_same(got["count_word_per_k2"], want, agg)
    else:
        assert texts(got[f"{agg}_word_per_k2"]) == texts(want)


def test_group_aggregate_is_computed_over_the_rows_it_is_applied_to(con, data):
    """Not fitted: scoring a subset aggregates over that subset only (documented in the step's help)."""
    step = R.Step("group_aggregate", {"value": "n", "keys": ["k1"], "agg": "count"})
    whole, _, recipe = run(con, [step], data)
    compiled = R.compile_recipe(con, recipe, R.source_sql(data, where="id < 30"))
    part = frame(con.sql(compiled.sql, params=compiled.params).to_arrow_table())
    ref = reference()
    assert_same(part["count_n_per_k1"], group_ref(ref[ref.index < 30], "n", ["k1"], "count"), "subset")
    assert (part["count_n_per_k1"] < frame(whole).loc[part.index, "count_n_per_k1"]).all()
    assert "rows the recipe is applied to" in R.kinds()["group_aggregate"].help


@pytest.mark.parametrize("params, message", [
    ({"value": "word", "keys": ["k1"], "agg": "mean"}, "the mean needs a numeric column; 'word' is VARCHAR"),
    ({"value": "word", "keys": ["k1"], "agg": "std"}, "the std needs a numeric column"),
    ({"value": "v", "keys": ["v"], "agg": "sum"}, "'v' is both the value and a key"),
    ({"value": "v", "keys": [], "agg": "sum"}, "Per (key columns) needs at least one column"),
    ({"value": "v", "keys": ["k1"], "agg": "median"}, "Aggregate must be one of mean, sum, count, min, max, std"),
    ({"value": "v", "keys": ["nope"]}, "Per (key columns) names the column 'nope', which does not exist"),
])
def test_group_aggregate_refuses_bad_parameters(con, data, params, message):
    with pytest.raises(R.RecipeError, match="^Step 1 \\(group_aggregate\\): ") as err:
        run(con, [R.Step("group_aggregate", params)], data)
    assert message in err.value.message


def test_a_second_identical_aggregate_is_refused(con, data):
    step = R.Step("group_aggregate", {"value": "v", "keys": ["k1"]})
    with pytest.raises(R.RecipeError, match="Step 2 \\(group_aggregate\\): it would add the column 'mean_v_per_k1'"):
        run(con, [step, step], data)


# ----------------------------------------------------------------------------------------------
# lag


@pytest.mark.parametrize("keys", [["k1"], ["k1", "k2"], []])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("col", ["v", "word", "flag"])
def test_lag_equals_pandas_sort_and_shift(con, data, keys, n, col):
    step = R.Step("lag", {"column": col, "keys": keys, "time": "t", "tie_breaker": "seq", "n": n})
    out, compiled, _ = run(con, [step], data)
    got, ref = frame(out), reference()
    want = lag_ref(ref, col, keys, n)
    name = f"{col}_lag{n}"
    assert out.schema.field(name).type == out.schema.field(col).type
    if col == "word":
        assert texts(got[name]) == texts(want)
    else:
        assert_same(got[name], want, name)
    missing = ref[[*keys, "t"]].isna().any(axis=1)
    assert missing.any() and got.loc[missing, name].isna().all()
    if (col, n, keys) == ("v", 1, ["k1", "k2"]):
        snapshot("relational_lag", compiled.sql)
        assert compiled.steps[0].description == ("v_lag1 = v 1 row earlier among the rows of the same k1, k2 "
                                                 "ordered by t, then seq")


def test_lag_with_ties_and_no_tie_breaker_reads_an_earlier_or_simultaneous_other_row(con):
    """Ties are ordered arbitrarily without a tie-breaker, but the lagged row is never the row itself or later."""
    table(con, "events", relational_data())
    out, compiled, _ = run(con, [R.Step("lag", {"column": "seq", "keys": ["k1"], "time": "t"})], "events")
    got = frame(out)
    assert compiled.steps[0].description == "seq_lag1 = seq 1 row earlier among the rows of the same k1 " \
                                            "ordered by t (ties in any order)"
    by_seq = got.reset_index().set_index("seq")
    rows = got[got["seq_lag1"].notna()]
    source = by_seq.loc[rows["seq_lag1"].astype(int)]
    assert (source["t"].to_numpy() <= rows["t"].to_numpy()).all()
    assert (source["id"].to_numpy() != rows.index.to_numpy()).all()
    assert (source["k1"].to_numpy() == rows["k1"].to_numpy()).all()
    ties = got.dropna(subset=["k1", "t"]).duplicated(["k1", "t"], keep=False)
    assert ties.sum() > 100, "the data must have ties for this test to mean anything"


# ----------------------------------------------------------------------------------------------
# rolling


@pytest.mark.parametrize("agg", ["mean", "sum", "min", "max", "count"])
@pytest.mark.parametrize("keys", [["k1"], ["k2", "k1"], []])
@pytest.mark.parametrize("n", [1, 4])
def test_rolling_equals_pandas_shift_then_roll(con, data, agg, keys, n):
    step = R.Step("rolling", {"column": "v", "keys": keys, "time": "t", "tie_breaker": "seq", "n": n, "agg": agg})
    out, compiled, _ = run(con, [step], data)
    name = f"v_rolling_{agg}{n}"
    got, ref = frame(out), reference()
    want = rolling_ref(ref, "v", keys, n, agg)
    missing = ref[[*keys, "t"]].isna().any(axis=1)
    if agg == "count":  # 0 at a sequence's start; missing only for rows outside any sequence
        assert (got.loc[~missing, name] >= 0).all() and got.loc[missing, name].isna().all()
    assert_same(got[name], want, name)
    if (agg, n, keys) == ("mean", 4, ["k1"]):
        snapshot("relational_rolling", compiled.sql)
        assert compiled.steps[0].description == ("v_rolling_mean4 = mean of v over the 4 previous rows of the same k1 "
                                                 "ordered by t, then seq, not counting the row itself")


@pytest.mark.parametrize("col, agg", [("n", "sum"), ("flag", "mean"), ("word", "max"), ("word", "count")])
def test_rolling_of_integers_booleans_and_text(con, data, col, agg):
    step = R.Step("rolling", {"column": col, "keys": ["k1"], "time": "t", "tie_breaker": "seq", "n": 3, "agg": agg})
    out, _, _ = run(con, [step], data)
    got, ref = frame(out), reference()
    name = f"{col}_rolling_{agg}3"
    if col == "word" and agg == "max":
        s = sequences(ref, ["k1"], ["t", "seq"])
        codes = s["word"].map(lambda w: np.nan if pd.isna(w) else float(w))  # 3-digit numbers: text order = number
        want = codes.groupby(s["k1"]).transform(lambda x: x.shift(1).rolling(3, min_periods=1).max())
        assert_same(got[name].map(lambda w: np.nan if w is None else float(w)), want.reindex(ref.index), name)
    else:
        assert_same(got[name], rolling_ref(ref, col, ["k1"], 3, agg), name)


STEPS = {
    "lag": {"column": "v", "keys": ["k1", "k2"], "time": "t", "tie_breaker": "seq", "n": 2},
    "rolling_mean": {"column": "v", "keys": ["k1"], "time": "t", "tie_breaker": "seq", "n": 5, "agg": "mean"},
    "rolling_max": {"column": "v", "keys": ["k2"], "time": "t", "tie_breaker": "seq", "n": 3, "agg": "max"},
    "rolling_count_no_key": {"column": "v", "time": "t", "tie_breaker": "seq", "n": 6, "agg": "count"},
}


@pytest.mark.parametrize("which", STEPS)
def test_lag_and_rolling_never_read_the_row_itself_or_a_later_one(con, which):
    """Poison every value at or after a cut-off time (the rows' own values included): no earlier row may change."""
    clean = relational_data()
    cut = datetime(2024, 1, 1) + timedelta(hours=20)
    times = clean["t"].to_pylist()
    poisoned = clean.set_column(clean.column_names.index("v"), "v", pa.array(
        [1e12 if t is not None and t >= cut else v for t, v in zip(times, clean["v"].to_pylist(), strict=True)]))
    kind = "lag" if which == "lag" else "rolling"
    step = R.Step(kind, STEPS[which])
    before, _, _ = run(con, [step], table(con, "clean", clean))
    after, compiled, _ = run(con, [step], table(con, "poisoned", poisoned))
    name = compiled.columns[-1].name
    a, b = frame(before), frame(after)
    early = a["t"] < cut
    assert early.sum() > 100 and (~early).sum() > 100
    assert_same(b.loc[early, name], a.loc[early, name], f"{name} before the cut-off")
    assert not np.allclose(numbers(b.loc[~early, name]).fillna(0), numbers(a.loc[~early, name]).fillna(0)), \
        "the poison must reach later rows, or this test proves nothing"


def test_a_tie_breaker_makes_the_result_independent_of_input_order(con):
    step = R.Step("rolling", {"column": "v", "keys": ["k1"], "time": "t", "tie_breaker": "seq", "n": 3, "agg": "sum"})
    data = relational_data()
    shuffled = data.take(pa.array(np.random.default_rng(0).permutation(data.num_rows)))
    first, _, _ = run(con, [step], table(con, "a", data))
    second, _, _ = run(con, [step], table(con, "b", shuffled))
    assert_same(frame(first)["v_rolling_sum3"], frame(second)["v_rolling_sum3"], "shuffled")


@pytest.mark.parametrize("kind, params, message", [
    ("lag", {"column": "v", "time": "t", "n": 0}, "Rows back (N) must be in [1, 1000000]. Got 0."),
    ("lag", {"column": "v", "time": "t", "n": 1.5}, "Rows back (N) must be a whole number. Got 1.5."),
    ("rolling", {"column": "v", "time": "t", "n": -2}, "Previous rows (N) must be in [1, 1000000]. Got -2."),
    ("rolling", {"column": "word", "time": "t", "agg": "mean"}, "the mean needs a numeric column; 'word' is VARCHAR"),
    ("rolling", {"column": "v", "time": "word"}, "Ordered by (time column) needs temporal or integer or float or "
                                                 "decimal columns; 'word' is VARCHAR"),
    ("rolling", {"column": "v", "time": "t", "agg": "std"}, "Aggregate must be one of mean, sum, min, max, count"),
    ("lag", {"column": "v", "time": "t", "tie_breaker": "t"}, "the time, tie-breaker and key columns must all be "
                                                              "different"),
    ("lag", {"column": "v", "keys": ["k1"], "time": "k1"}, "must all be different"),
    ("lag", {"column": "v"}, "Ordered by (time column) is required"),
    ("lag", {"column": "v", "time": "t", "window": 3}, "unknown parameter(s) window"),
])
def test_lag_and_rolling_refuse_bad_parameters(con, data, kind, params, message):
    with pytest.raises(R.RecipeError, match=f"^Step 1 \\({kind}\\): ") as err:
        run(con, [R.Step(kind, params)], data)
    assert message in err.value.message


def test_relational_recipe_runs_inlined_and_round_trips(con, data):
    steps = [R.Step("filter", {"expression": "n IS NOT NULL"}),
             R.Step("group_aggregate", {"value": "n", "keys": ["k2"], "agg": "max"}),
             R.Step("lag", {"column": "max_n_per_k2", "keys": ["k1"], "time": "t", "tie_breaker": "seq", "n": 2}),
             R.Step("rolling", {"column": "n", "keys": ["k1", "k2"], "time": "t", "tie_breaker": "seq", "n": 2,
                                "agg": "min"})]
    out, compiled, recipe = run(con, steps, data)
    again = R.loads(recipe.dumps())
    assert again == recipe
    inlined = con.sql(R.compile_recipe(con, again, R.source_sql(data)).inline()).to_arrow_table()
    assert frame(inlined).equals(frame(out))
    ref = reference()
    ref = ref[ref["n"].notna()].copy()
    ref["max_n_per_k2"] = group_ref(ref, "n", ["k2"], "max")
    assert_same(frame(out)["max_n_per_k2_lag2"], lag_ref(ref, "max_n_per_k2", ["k1"], 2), "lag of an aggregate")
    assert_same(frame(out)["n_rolling_min2"], rolling_ref(ref, "n", ["k1", "k2"], 2, "min"), "rolling")


def test_a_float_time_that_is_nan_counts_as_missing(con, data):
    step = R.Step("lag", {"column": "n", "keys": ["k1"], "time": "v", "tie_breaker": "seq"})
    out, _, _ = run(con, [step], data)
    ref = reference()
    raw = relational_data()["v"]
    assert raw.null_count > 0 and pc.sum(pc.is_nan(raw)).as_py() > 0  # both kinds of missing time
    ref["t"] = numbers(ref["v"])  # the reference orders by v, NaN and NULL alike missing
    assert_same(frame(out)["n_lag1"], lag_ref(ref, "n", ["k1"], 1), "lag ordered by a float")
    assert frame(out).loc[ref["v"].isna(), "n_lag1"].isna().all()

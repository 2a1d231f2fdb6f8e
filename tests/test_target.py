"""Target analysis vs a plain in-memory reference: the same bins cut in NumPy, scored with sklearn/NumPy/pandas.

The reference takes only the bin edges and top values from the profile (they define the bins) and
does everything else the obvious way on the whole Arrow table: bin each row, then roc_auc_score on
each row's bin positive rate, mutual_info_score on the (class, bin) labels, corrcoef on finite pairs,
and eta from a pandas groupby.
"""
from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import mutual_info_score, roc_auc_score

from core.data import catalog as cat
from core.errors import QuarryError
from core.profile import target
from core.profile.scan import NUMERIC, ColumnProfile, Profile, profile_table
from tests.conftest import write_parquet

N = 3000
CATS = [f"c{i:02d}" for i in range(14)]  # more than the profile's 10 top values: '(other)' has rows
ODD = 'cat "x" ü'  # a feature name with quotes, a space and unicode
Y_REG = 'y reg "ü"'
LEVELS = ["low", "mid", "high", "top"]


def _nulls(values: list, every: int, offset: int = 0) -> list:
    return [None if i % every == offset else v for i, v in enumerate(values)]


def make_table(n: int = N) -> pa.Table:
    """A binary, a multiclass and a regression target; features of every kind with NULL, NaN and ±Inf."""
    rng = np.random.default_rng(11)
    z = rng.normal(size=n)
    y_bin = (z + rng.normal(size=n)) > 0.3
    x = (z + 0.5 * rng.normal(size=n)).tolist()
    x[5], x[6] = math.inf, -math.inf
    x = [math.nan if i % 23 == 3 else v for i, v in enumerate(x)]
    cat_idx = np.clip(((z + 3) / 6 * len(CATS)).astype(int) + rng.integers(-2, 3, n), 0, len(CATS) - 1)
    multi = np.digitize(z + 0.7 * rng.normal(size=n), [-0.7, 0.0, 0.7])
    y_reg = (3 * z + rng.normal(size=n)).tolist()
    y_reg[7], y_reg[8] = math.inf, -math.inf
    y_reg = [math.nan if i % 43 == 1 else v for i, v in enumerate(y_reg)]
    prices = [Decimal(p) for p in ("0.00", "-1.50", "2.25", "19.99", "100.10")]
    return pa.table({
        "y_bin": pa.array(_nulls(y_bin.tolist(), 37), pa.bool_()),
        "y_multi": pa.array(_nulls([LEVELS[k] for k in multi], 41), pa.string()),
        Y_REG: pa.array(_nulls(y_reg, 47), pa.float64()),
        "x": pa.array(_nulls(x, 31), pa.float64()),
        "perfect": pa.array(np.where(y_bin, 10.0, 0.0) + rng.uniform(size=n)),
        "noise": pa.array([math.nan if i % 11 == 4 else v for i, v in enumerate(rng.normal(size=n))]),  # no ±Inf
        "coin": pa.array(rng.choice(["heads", "tails"], n)),
        ODD: pa.array(_nulls([CATS[k] for k in cat_idx], 19), pa.string()),
        "small_int": pa.array(_nulls((rng.integers(0, 12, n) + 3 * y_bin).tolist(), 17), pa.int64()),
        "wide_int": pa.array(rng.integers(-5000, 5000, n), pa.int64()),
        "price": pa.array(_nulls([prices[k] for k in rng.integers(0, 5, n)], 7), pa.decimal128(10, 2)),
        "flag": pa.array(_nulls((rng.random(n) < np.where(y_bin, 0.7, 0.3)).tolist(), 13), pa.bool_()),
        "day": pa.array(_nulls([date(2024, 1, 1) + timedelta(days=int(k)) for k in rng.integers(0, 40, n)], 29),
                        pa.date32()),
        "when": pa.array(_nulls([datetime(2024, 1, 1, 5) + timedelta(milliseconds=int(k) * 125)
                                 for k in rng.integers(0, 8, n)], 53), pa.timestamp("us")),  # fractional seconds
        "tags": pa.array([[i % 3] for i in range(n)], pa.list_(pa.int64())),
    })


TABLE = make_table()
FRAME = TABLE.to_pandas()


def _register(con, catalog, root, table: pa.Table, name: str) -> Profile:
    path = write_parquet(root / f"{name}.parquet", table, row_group_size=500)  # NaN-free stats in some groups
    cat.register(con, catalog, str(path), name=name, replace=True)
    return profile_table(con, name, exact=True)


@pytest.fixture
def data(con, catalog, root) -> Profile:
    return _register(con, catalog, root, TABLE, "t")


# ----------------------------------------------------------------------------------------------
# The reference


def ref_codes(values: pd.Series, col: ColumnProfile) -> np.ndarray:
    """Each row's bin, cut in NumPy from the profile's edges / top values; the last bin is missing."""
    if col.kind in NUMERIC:
        edges = np.array(col.histogram.edges, dtype=float)
        v = np.array([np.nan if a is None else float(a) for a in values], dtype=float)
        codes = np.searchsorted(edges[1:-1], v, side="right")  # -Inf -> first bin, +Inf -> last
        codes[np.isnan(v)] = len(edges) - 1
        return codes
    key = pd.Timestamp if col.kind == "temporal" else (lambda a: a)  # times compared as times, not text
    top = {key(v): i for i, (v, _) in enumerate(col.top)}
    # pd.isna: pandas 3 reads missing text as NaN, not None
    return np.array([len(top) + 1 if pd.isna(a) else top.get(key(a), len(top)) for a in values])


def _finite_target(name: str) -> np.ndarray:
    y = np.array([np.nan if a is None else a for a in FRAME[name]], dtype=float)
    return np.isfinite(y)


def ref_binary(p: Profile, feature: str) -> tuple[float, float | None]:
    """(AUC of each row's bin positive rate, AUC of the bin number over non-missing bins: numeric only)."""
    keep = FRAME["y_bin"].notna().to_numpy()
    y = FRAME["y_bin"][keep].astype(bool).to_numpy()
    col = p.column(feature)
    codes = ref_codes(FRAME[feature], col)[keep]
    rate = pd.Series(y).groupby(codes).transform("mean").to_numpy()
    auc = roc_auc_score(y, rate)
    if col.kind not in NUMERIC:
        return auc, None
    present = codes != len(col.histogram.edges) - 1
    return auc, roc_auc_score(y[present], codes[present])


def ref_eta(y: np.ndarray, codes: np.ndarray) -> float:
    groups = pd.Series(y).groupby(codes)
    between = (groups.size() * (groups.mean() - y.mean()) ** 2).sum()
    return math.sqrt(between / ((y - y.mean()) ** 2).sum())


def _approx(value: float):
    return pytest.approx(value, rel=1e-9, abs=1e-12)


# ----------------------------------------------------------------------------------------------
# Tasks


@pytest.fixture
def kinds(con, catalog, root) -> Profile:
    n = 120
    t = pa.table({
        "flag": pa.array([i % 3 == 0 for i in range(n)]),
        "yes_no": pa.array(_nulls([["yes", "no"][i % 2] for i in range(n)], 5)),
        "zero_one_nan": pa.array([[0.0, 1.0, math.nan][i % 3] for i in range(n)]),
        "five_ints": pa.array([i % 5 for i in range(n)], pa.int64()),
        "many_ints": pa.array(list(range(n)), pa.int64()),
        "few_floats": pa.array([float(i % 5) for i in range(n)]),
        "price": pa.array([Decimal(i % 7) for i in range(n)], pa.decimal128(6, 0)),
        "words": pa.array([f"w{i % 60}" for i in range(n)]),
        "empty": pa.array([None] * n, pa.string()),
        "nan_only": pa.array([math.nan] * n),
        "constant": pa.array(["same"] * n),
        "day": pa.array([date(2024, 1, 1 + i % 20) for i in range(n)]),
        "tags": pa.array([[i] for i in range(n)]),
    })
    return _register(con, catalog, root, t, "kinds")


@pytest.mark.parametrize(("column", "task"), [
    ("flag", "binary"),
    ("yes_no", "binary"),
    ("zero_one_nan", "binary"),  # NaN is missing, not a third class
    ("five_ints", "multiclass"),
    ("many_ints", "regression"),  # 120 distinct: more than 50 classes
    ("few_floats", "regression"),  # floats are never classes
    ("price", "regression"),
])
def test_detect_task(kinds, column, task):
    assert target.detect_task(kinds.column(column)) == task


@pytest.mark.parametrize(("column", "words"), [
    ("words", "60 distinct values; a text target may have at most 50"),
    ("empty", "has no values: every row is missing"),
    ("nan_only", "has no values: every row is missing"),
    ("constant", "has one value only"),
    ("day", "is a DATE column; a target must be numbers, text or true/false"),
    ("tags", "is a BIGINT\\[\\] column"),
])
def test_unusable_targets_are_explained(kinds, column, words):
    with pytest.raises(QuarryError, match=words) as err:
        target.detect_task(kinds.column(column))
    assert err.value.hint


def test_float_binary_target_leaves_nan_out(con, kinds):
    # One row group whose statistics (0 to 1) leave the NaN out: isnan() would be answered "never" from them.
    a = target.target_relations(con, "kinds", kinds, "zero_one_nan")
    assert (a.task, a.rows, a.classes, a.positive) == ("binary", 80, ((0.0, 40), (1.0, 40)), 1.0)
    assert a.notes[0] == "40 rows with a missing target were left out."
    score = {r.feature: r.score for r in a.features}
    assert score["flag"] == 1.0  # flag is i % 3 == 0, exactly the 0.0 class
    assert score["five_ints"] == 0.5  # i % 5 against i % 3: every pair equally often


# ----------------------------------------------------------------------------------------------
# Binary: AUC


def test_binary_auc_equals_sklearn_on_the_binned_score(con, data):
    a = target.target_relations(con, "t", data, "y_bin")
    keep = FRAME["y_bin"].notna()
    assert (a.table, a.target, a.task, a.metric, a.positive) == ("t", "y_bin", "binary", "auc", True)
    assert a.rows == int(keep.sum()) == N - len(range(0, N, 37))
    assert a.classes == ((False, int((FRAME["y_bin"] == False).sum())),  # noqa: E712
                         (True, int((FRAME["y_bin"] == True).sum())))  # noqa: E712
    assert a.notes == (f"{N - a.rows:,} rows with a missing target were left out.",
                       "Skipped (no bins for their type): tags.")
    expected = set(TABLE.column_names) - {"y_bin", "tags"}
    assert {r.feature for r in a.features} == expected and len(a.features) == len(expected)
    for r in a.features:
        auc, raw = ref_binary(data, r.feature)
        assert (r.metric, r.kind) == ("auc", data.column(r.feature).kind)
        assert r.score == _approx(max(auc, 1 - auc)), r.feature
        assert r.raw == (None if raw is None else _approx(raw)), r.feature
        assert r.bins == len(np.unique(ref_codes(FRAME[r.feature], data.column(r.feature))[keep.to_numpy()]))
    scores = [r.score for r in a.features]
    assert scores == sorted(scores, reverse=True)


def test_binary_known_answers(con, data):
    by = {r.feature: r for r in target.target_relations(con, "t", data, "y_bin").features}
    assert by["perfect"].score == 1.0 and by["perfect"].raw == 1.0
    assert abs(by["coin"].score - 0.5) < 0.02 and by["coin"].bins == 2
    assert by["x"].raw > 0.5  # higher x, more positives
    assert target.target_relations(con, "t", data, "y_bin").features[0].feature == "perfect"


def test_binary_breakdown(con, data):
    b = target.target_by_feature(con, "t", data, "y_bin", ODD)
    keep = FRAME["y_bin"].notna().to_numpy()
    col = data.column(ODD)
    codes = ref_codes(FRAME[ODD], col)[keep]
    y = FRAME["y_bin"][keep].astype(bool).to_numpy()
    present = np.unique(codes)
    labels = [str(v) for v, _ in col.top] + ["(other)", "(missing)"]
    assert b.labels == tuple(labels[k] for k in present)
    assert b.labels[-2:] == ("(other)", "(missing)")
    assert b.rows == tuple(int((codes == k).sum()) for k in present)
    assert b.positive is True
    assert b.positive_rate == tuple(_approx(y[codes == k].mean()) for k in present)
    assert (b.classes, b.shares, b.mean, b.std) == ((), (), (), ())
    json.dumps(b.to_json())


# ----------------------------------------------------------------------------------------------
# Multiclass: mutual information


def test_multiclass_mutual_information_equals_sklearn(con, data):
    a = target.target_relations(con, "t", data, "y_multi")
    keep = FRAME["y_multi"].notna().to_numpy()
    y = FRAME["y_multi"][keep].to_numpy()
    assert (a.task, a.metric, a.positive, a.rows) == ("multiclass", "mutual_info", None, int(keep.sum()))
    assert a.classes == tuple((c, int((y == c).sum())) for c in sorted(LEVELS))
    for r in a.features:
        codes = ref_codes(FRAME[r.feature], data.column(r.feature))[keep]
        assert r.metric == "mutual_info" and r.raw is None
        assert r.score == _approx(mutual_info_score(y, codes)), r.feature
    assert {r.feature for r in a.features[:2]} == {"x", Y_REG}  # both are driven by the same signal


def test_multiclass_breakdown_by_a_numeric_feature(con, data):
    b = target.target_by_feature(con, "t", data, "y_multi", "x")
    keep = FRAME["y_multi"].notna().to_numpy()
    y = FRAME["y_multi"][keep].to_numpy()
    col = data.column("x")
    codes = ref_codes(FRAME["x"], col)[keep]
    present = np.unique(codes)
    counts = pd.Series(y).value_counts()
    assert b.classes == tuple(sorted(LEVELS, key=lambda c: (-counts[c], c)))
    assert b.labels[0].startswith("< ") and b.labels[-2].startswith("≥ ") and b.labels[-1] == "(missing)"
    assert b.rows == tuple(int((codes == k).sum()) for k in present)
    assert b.shares == tuple(tuple(_approx((y[codes == k] == c).mean()) for c in b.classes) for k in present)


def test_multiclass_breakdown_keeps_the_ten_commonest_classes(con, catalog, root):
    t = pa.table({"y": [f"k{i % 12:02d}" for i in range(240)] + ["k00"] * 10, "g": ["a", "b"] * 125})
    p = _register(con, catalog, root, t, "many")
    b = target.target_by_feature(con, "many", p, "y", "g")
    assert b.task == "multiclass" and b.classes == ("k00", *(f"k{i:02d}" for i in range(1, 10)))
    assert b.notes == ("Shares of the 10 commonest of 12 classes.",)
    assert b.shares[0][0] == 25 / 125


# ----------------------------------------------------------------------------------------------
# Regression: Pearson and eta


def test_regression_pearson_and_eta_equal_numpy(con, data):
    a = target.target_relations(con, "t", data, Y_REG)
    keep = _finite_target(Y_REG)
    y = FRAME[Y_REG][keep].to_numpy(dtype=float)
    assert (a.task, a.metric, a.positive, a.classes, a.rows) == ("regression", "correlation", None, (), keep.sum())
    assert a.notes[0] == f"{N - int(keep.sum()):,} rows with a missing or infinite target were left out."
    for r in a.features:
        col = data.column(r.feature)
        if col.kind in NUMERIC:
            x = np.array([np.nan if v is None else float(v) for v in FRAME[r.feature][keep]])
            pair = np.isfinite(x)
            want = np.corrcoef(x[pair], y[pair])[0, 1]
            assert (r.metric, r.bins, r.raw) == ("pearson", 0, _approx(want)), r.feature
            assert r.score == _approx(abs(want))
        else:
            codes = ref_codes(FRAME[r.feature], col)[keep]
            assert (r.metric, r.raw) == ("eta", None)
            assert r.score == _approx(ref_eta(y, codes)), r.feature
            assert r.bins == len(np.unique(codes))
    assert a.features[0].feature == "x"


def test_regression_breakdown(con, data):
    b = target.target_by_feature(con, "t", data, Y_REG, "small_int")
    keep = _finite_target(Y_REG)
    y = FRAME[Y_REG][keep].to_numpy(dtype=float)
    col = data.column("small_int")
    codes = ref_codes(FRAME["small_int"], col)[keep]
    present = np.unique(codes)
    # Whole-number bins are labelled by their number; the first and last take the values beyond.
    lo = int(col.histogram.edges[0] + 0.5)
    assert b.labels[:3] == (f"≤ {lo}", str(lo + 1), str(lo + 2)) and b.labels[-1] == "(missing)"
    assert b.rows == tuple(int((codes == k).sum()) for k in present)
    assert b.mean == tuple(_approx(y[codes == k].mean()) for k in present)
    assert b.std == tuple(_approx(y[codes == k].std(ddof=1)) for k in present)


def test_timestamps_with_fractional_seconds_match_their_top_values(con, data):
    b = target.target_by_feature(con, "t", data, Y_REG, "when")
    keep = _finite_target(Y_REG)
    col = data.column("when")
    assert len(col.top) == 8 and col.other == 0 and any("." in v for v, _ in col.top)
    assert b.labels == (*(v for v, _ in col.top), "(missing)")  # no '(other)': every time is a top value
    assert b.rows == tuple(int(n) for n in np.bincount(ref_codes(FRAME["when"], col)[keep])[[*range(8), 9]])


def test_temporal_feature_is_binned_by_its_top_days(con, data):
    b = target.target_by_feature(con, "t", data, Y_REG, "day")
    col = data.column("day")
    keep = _finite_target(Y_REG)
    codes = ref_codes(FRAME["day"], col)[keep]
    assert b.labels == (*(v for v, _ in col.top), "(other)", "(missing)")
    assert b.rows == tuple(int((codes == k).sum()) for k in range(len(col.top) + 2))


# ----------------------------------------------------------------------------------------------
# Batches, names, edge cases, errors


def test_batches_give_the_same_answer(con, data, monkeypatch):
    whole = target.target_relations(con, "t", data, "y_multi")
    monkeypatch.setattr(target, "BATCH_FEATURES", 3)
    assert target.target_relations(con, "t", data, "y_multi") == whole


def test_a_target_with_an_odd_name_binary_by_force(con, data):
    a = target.target_relations(con, "t", data, ODD, task="multiclass")
    assert a.task == "multiclass" and len(a.classes) == len(CATS)
    with pytest.raises(QuarryError, match="exactly 2 classes; 'cat \"x\" ü' has 14"):
        target.target_relations(con, "t", data, ODD, task="binary")


def test_forced_task_checks(con, data):
    with pytest.raises(QuarryError, match="Regression needs a numeric target; 'coin' is VARCHAR"):
        target.target_relations(con, "t", data, "coin", task="regression")
    with pytest.raises(QuarryError, match="at most 50 classes"):
        target.target_relations(con, "t", data, "noise", task="multiclass")
    with pytest.raises(QuarryError, match="Unknown task 'ranking'"):
        target.target_relations(con, "t", data, "coin", task="ranking")


@pytest.mark.parametrize(("call", "words"), [
    (lambda con, p: target.target_relations(con, "t", p, "nope"), "The target 'nope' is not a column of 't'"),
    (lambda con, p: target.target_by_feature(con, "t", p, "Y_BIN", "x"), "The target 'Y_BIN' is not a column"),
    (lambda con, p: target.target_by_feature(con, "t", p, "y_bin", "nope"), "The feature 'nope' is not a column"),
    (lambda con, p: target.target_by_feature(con, "t", p, "y_bin", "y_bin"), "is the target itself"),
    (lambda con, p: target.target_by_feature(con, "t", p, "y_bin", "tags"), "cannot be cut into bins"),
    (lambda con, p: target.target_relations(con, "missing_view", p, "y_bin"), "does not exist"),
])
def test_bad_requests_are_explained(con, data, call, words):
    with pytest.raises(QuarryError, match=words) as err:
        call(con, data)
    assert err.value.hint


def test_unknown_column_hint_lists_the_columns(con, data):
    with pytest.raises(QuarryError) as err:
        target.target_relations(con, "t", data, "nope")
    assert err.value.hint.startswith("Pick one of its columns (names are case-sensitive): 'y_bin', 'y_multi', ")


def test_zero_rows(con, catalog, root):
    p = _register(con, catalog, root, TABLE.slice(0, 0), "zero")
    with pytest.raises(QuarryError, match="every row is missing"):
        target.target_relations(con, "zero", p, "y_bin")
    a = target.target_relations(con, "zero", p, Y_REG, task="regression")
    assert a.rows == 0 and all(r.score is None for r in a.features)
    with pytest.raises(QuarryError, match="exactly 2 classes; 'y_bin' has 0"):
        target.target_relations(con, "zero", p, "y_bin", task="binary")
    assert target.target_by_feature(con, "zero", p, Y_REG, "x", task="regression").rows == ()


def test_one_row(con, catalog, root):
    p = _register(con, catalog, root, TABLE.slice(2, 1), "one")  # row 2: the targets are not missing
    with pytest.raises(QuarryError, match="one value only"):
        target.target_relations(con, "one", p, Y_REG)
    a = target.target_relations(con, "one", p, Y_REG, task="regression")
    assert a.rows == 1 and all(r.score is None for r in a.features)
    b = target.target_by_feature(con, "one", p, Y_REG, "coin", task="regression")
    assert (b.labels, b.rows, b.mean, b.std) == ((FRAME["coin"][2],), (1,), (FRAME[Y_REG][2],), (None,))


def test_to_json(con, data):
    doc = json.loads(json.dumps(target.target_relations(con, "t", data, "y_bin").to_json()))
    assert doc["task"] == "binary" and doc["positive"] is True and doc["features"][0]["feature"] == "perfect"
    assert set(doc["features"][0]) == {"feature", "kind", "metric", "score", "bins", "raw"}

"""Alerts on generated data: each column is built to trigger exactly one alert (or none), and the
figures behind an alert are checked against NumPy on the same values."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from core.data import catalog as cat
from core.errors import QuarryError
from core.profile import alerts as al
from core.profile.alerts import Alert, all_alerts, mixed_type_alerts, outlier_alerts, profile_alerts, target_alerts
from core.profile.scan import Profile, profile_table
from tests.conftest import WEIRD, write_parquet

N = 1000


def _profile(con, catalog, root: Path, table: pa.Table, name: str = "t", exact: bool = True) -> Profile:
    path = write_parquet(root / f"{name}.parquet", table)
    cat.register(con, catalog, str(path), name=name, replace=True)
    return profile_table(con, name, exact=exact)


def _kinds(alerts: tuple[Alert, ...]) -> set[tuple[str, str | None]]:
    return {(a.kind, a.column) for a in alerts}


def _one(alerts: tuple[Alert, ...], kind: str, column: str | None) -> Alert:
    found = [a for a in alerts if (a.kind, a.column) == (kind, column)]
    assert len(found) == 1, (kind, column, alerts)
    return found[0]


def _fences(values: np.ndarray) -> tuple[float, float]:
    """Tukey's far fences from NumPy's linear quantiles (what DuckDB's quantile_cont computes)."""
    p25, p75 = np.quantile(values, [0.25, 0.75])
    return p25 - 3 * (p75 - p25), p75 + 3 * (p75 - p25)


# ----------------------------------------------------------------------------------------------
# One table, one column per alert, and columns that must stay quiet

RNG = np.random.default_rng(3)
U = np.arange(N) / N
# 50 % in [0, 1], 25 % in [1, 10], 25 % in [10, 20]: quantile skewness 0.9, and the max stays
# inside the far fence (p75 + 3·IQR = 38.4), so the column is skewed without outliers.
SKEWED = np.where(U < 0.5, 2 * U, np.where(U < 0.75, 1 + 36 * (U - 0.5), 10 + 40 * (U - 0.75)))
SPIKY = RNG.normal(0, 1, N)
SPIKY[:5], SPIKY[5:8] = 1000.0, -1000.0
FLOATY = RNG.random(N)
FLOATY[:3], FLOATY[3], FLOATY[4] = math.nan, math.inf, -math.inf
HALF = RNG.random(N)

TABLE = pa.table({
    "id": pa.array(range(N), pa.int64()),
    'quo"te code': [f"c{i}" for i in range(N)],
    "city": [f"city{i % 600}" for i in range(N)],
    "ünïcødé const": pa.array([7] * N, pa.int64()),
    "all null": pa.array([None] * N, pa.string()),
    "almost": pa.array([2 if i % 200 == 0 else 1 for i in range(N)], pa.int64()),
    "half missing": pa.array([None if i % 10 < 6 else float(v) for i, v in enumerate(HALF)], pa.float64()),
    "some missing": pa.array([None if i % 4 == 0 else int(v) for i, v in enumerate(RNG.integers(0, 100, N))]),
    "skewed": SKEWED,
    "spiky": SPIKY,
    "zeros": pa.array([0 if i % 5 else int(v) for i, v in enumerate(RNG.integers(1, 300, N))], pa.int64()),
    "floaty": FLOATY,
    # Quiet columns: nothing to say about any of these.
    "uniform": RNG.random(N),
    "normal int": pa.array(np.round(RNG.normal(500, 50, N)).astype(np.int64)),
    "category": [["a", "b", "c", "d"][i % 4] for i in range(N)],
    "flag": [i % 2 == 0 for i in range(N)],
    "price": pa.array([float(v) for v in np.round(RNG.uniform(1, 100, N), 2)], pa.float64()).cast(
        pa.decimal128(10, 2)),
})

EXPECTED = {
    ("id_like", "id"), ("id_like", 'quo"te code'), ("high_cardinality", "city"), ("constant", "ünïcødé const"),
    ("constant", "all null"), ("almost_constant", "almost"), ("missing", "half missing"),
    ("missing", "some missing"), ("skewed", "skewed"), ("outliers", "spiky"), ("zeros", "zeros"),
    ("non_finite", "floaty"),
}


@pytest.fixture
def profile(con, catalog, root) -> Profile:
    return _profile(con, catalog, root, TABLE)


def test_profile_alerts_are_exactly_the_planted_ones(profile):
    assert _kinds(profile_alerts(profile)) == EXPECTED


def test_all_alerts_with_data_are_the_same_set_sorted_warnings_first(profile, con):
    got = all_alerts(profile, con, fmt="parquet")
    assert _kinds(got) == EXPECTED
    severities = [a.severity for a in got]
    assert severities == sorted(severities, key=lambda s: s != "warning")
    warnings = [a.column for a in got if a.severity == "warning"]
    assert warnings == sorted(warnings)
    # The profile's outlier estimate is replaced by the exact count.
    assert _one(got, "outliers", "spiky").evidence["exact_count"] is True


def test_id_like_message_reads_like_a_sentence(profile):
    a = _one(profile_alerts(profile), "id_like", "id")
    assert a.severity == "warning"
    assert a.message == "id is unique per row (1,000 distinct in 1,000 rows): an ID, not a feature."
    assert a.evidence["distinct"] == 1000 and a.evidence["share"] == 1.0


def test_constant_and_empty_columns(profile):
    got = profile_alerts(profile)
    const = _one(got, "constant", "ünïcødé const")
    assert const.evidence["value"] == 7 and const.evidence["distinct"] == 1
    assert "all 1,000 of its values are 7" in const.message
    empty = _one(got, "constant", "all null")
    assert empty.message == "all null is empty: all 1,000 values are missing."
    # A constant column gets nothing else (it is also 100 % "almost constant" and, here, all missing).
    assert [a.kind for a in got if a.column in ("ünïcødé const", "all null")] == ["constant", "constant"]


def test_missing_severity_follows_the_share(profile):
    got = profile_alerts(profile)
    half, some = _one(got, "missing", "half missing"), _one(got, "missing", "some missing")
    assert (half.severity, half.evidence["missing"], half.evidence["share"]) == ("warning", 600, 0.6)
    assert (some.severity, some.evidence["missing"], some.evidence["share"]) == ("info", 250, 0.25)
    assert half.message == "half missing is 60% missing (600 of 1,000 rows)."


def test_cardinality_almost_constant_zeros(profile):
    got = profile_alerts(profile)
    city = _one(got, "high_cardinality", "city")
    assert (city.evidence["distinct"], city.evidence["share"]) == (600, 0.6)
    almost = _one(got, "almost_constant", "almost")
    assert (almost.evidence["value"], almost.evidence["value_count"], almost.evidence["share"]) == (1, 995, 0.995)
    zeros = _one(got, "zeros", "zeros")
    assert (zeros.evidence["zeros"], zeros.evidence["count"], zeros.evidence["share"]) == (800, 1000, 0.8)


def test_skewness_is_the_quantile_skewness_of_numpy_quantiles(profile):
    a = _one(profile_alerts(profile), "skewed", "skewed")
    p5, p50, p95 = np.quantile(SKEWED, [0.05, 0.5, 0.95])
    assert a.evidence["skewness"] == pytest.approx((p95 + p5 - 2 * p50) / (p95 - p5))
    assert a.evidence["skewness"] > al.SKEW_LIMIT
    assert (a.evidence["p5"], a.evidence["p50"], a.evidence["p95"]) == pytest.approx((p5, p50, p95))
    assert "right-skewed" in a.message and "log transform" in a.message


def test_non_finite_counts(profile):
    a = _one(profile_alerts(profile), "non_finite", "floaty")
    assert (a.evidence["nan"], a.evidence["pos_inf"], a.evidence["neg_inf"]) == (3, 1, 1)
    assert a.message.startswith("floaty holds 3 NaN, 1 +Inf and 1 -Inf among its 1,000 values")


def test_outliers_from_the_profile_name_the_fences_and_the_histogram_tails(profile):
    a = _one(profile_alerts(profile), "outliers", "spiky")
    lo, hi = _fences(SPIKY)
    ev = a.evidence
    assert (ev["lower_fence"], ev["upper_fence"]) == pytest.approx((lo, hi))
    assert (ev["min"], ev["max"], ev["exact_count"]) == (-1000.0, 1000.0, False)
    p1, p99 = np.quantile(SPIKY, [0.01, 0.99])
    assert (ev["below_histogram"], ev["above_histogram"]) == (int((SPIKY < p1).sum()), int((SPIKY > p99).sum()))
    assert "the max 1,000 lies above" in a.message and "the min -1,000 lies below" in a.message


def test_outlier_counts_are_exact(profile, con):
    (a,) = outlier_alerts(con, "t", profile)
    lo, hi = _fences(SPIKY)
    assert a.column == "spiky"
    assert (a.evidence["below"], a.evidence["above"]) == (int((SPIKY < lo).sum()), int((SPIKY > hi).sum())) == (3, 5)
    assert a.evidence["share"] == 8 / N
    assert a.message.startswith("spiky has 8 values (0.8%) beyond Tukey's far fences (3 below -4.")


def test_outlier_counts_leave_non_finite_values_out_and_batch_columns(con, catalog, root, monkeypatch):
    # 40 columns with outliers (more than one batch), weird names, NaN and ±Inf that must not count.
    names = [f"{WEIRD[k % len(WEIRD)]} {k}" for k in range(40)]
    data = {}
    for k, name in enumerate(names):
        v = np.random.default_rng(k).uniform(0, 1, 400)  # no outliers of its own
        v[: k % 7 + 1] = 50.0 + k
        v[100:103] = [math.nan, math.inf, -math.inf]
        data[name] = v
    profile = _profile(con, catalog, root, pa.table(data), name="wide")
    calls: list[int] = []
    real = al._aggregate

    def spy(cur, table, exprs, params=None):
        calls.append(len(exprs) // 2)
        return real(cur, table, exprs, params)

    monkeypatch.setattr(al, "_aggregate", spy)
    got = outlier_alerts(con, "wide", profile)
    assert calls == [32, 8]
    assert [a.column for a in got] == names
    for a in got:
        v = data[a.column]
        finite = v[np.isfinite(v)]
        lo, hi = _fences(finite)
        assert (a.evidence["below"], a.evidence["above"]) == (int((finite < lo).sum()), int((finite > hi).sum()))
        assert a.evidence["outliers"] == names.index(a.column) % 7 + 1


def test_no_outlier_query_when_extremes_lie_within_the_fences(con, catalog, root, monkeypatch):
    profile = _profile(con, catalog, root, pa.table({"u": np.linspace(0, 1, N), "s": SKEWED}))
    monkeypatch.setattr(al, "_aggregate", lambda *a, **k: pytest.fail("no query expected"))
    assert outlier_alerts(con, "t", profile) == ()


def test_duplicate_rows(con, catalog, root):
    t = pa.table({"a": [i % 40 for i in range(100)], "b": [f"x{i % 40}" for i in range(100)]})
    a = _one(profile_alerts(_profile(con, catalog, root, t)), "duplicates", None)
    assert (a.evidence["duplicate_rows"], a.evidence["rows"], a.evidence["share"]) == (60, 100, 0.6)
    assert a.message == "t has 60 duplicate rows (60% of 100): rows identical to an earlier one."


def test_high_cardinality_by_count(con, catalog, root):
    # 1,200 categories in 5,000 rows: 24 % of rows, but more than HIGH_CARDINALITY_COUNT; 834 is not.
    t = pa.table({"k": [f"k{i % 1200}" for i in range(5000)], "small": [f"s{i // 6}" for i in range(5000)]})
    assert _kinds(profile_alerts(_profile(con, catalog, root, t))) == {("high_cardinality", "k")}


def test_approximate_distinct_counts_say_about(con, catalog, root):
    t = pa.table({"code": [f"u{i}" for i in range(5000)]})
    profile = _profile(con, catalog, root, t, exact=False)
    a = _one(profile_alerts(profile), "id_like", "code")
    assert "unique or almost unique per row (about " in a.message and a.evidence["distinct_exact"] is False


@pytest.mark.parametrize(("exact", "kind"), [(True, "high_cardinality"), (False, "id_like")])
def test_approximate_distinct_counts_have_a_looser_id_threshold(con, catalog, root, exact, kind):
    # HyperLogLog can count 4,800 in a 5,000-row ID column: 96 % is an ID when the count is approximate.
    t = pa.table({"code": [f"u{i}" for i in range(5000)]})
    p = _profile(con, catalog, root, t)
    p = dataclasses.replace(p, exact=exact, columns=(dataclasses.replace(p.columns[0], distinct=4800),))
    assert _kinds(profile_alerts(p)) == {(kind, "code")}


def test_few_rows_are_not_ids_and_few_levels_not_skewed(con, catalog, root):
    t = pa.table({"id": list(range(40)), "flag": [1 if i % 20 == 0 else 0 for i in range(40)]})
    # 'flag' is 95 % zeros: a zeros alert, never "skewed" (two levels) nor an outlier (IQR 0).
    assert _kinds(profile_alerts(_profile(con, catalog, root, t))) == {("zeros", "flag")}


def test_zero_rows_give_one_alert_and_no_query_fails(con, catalog, root):
    t = pa.table({"x": pa.array([], pa.float64()), "s": pa.array([], pa.string())})
    profile = _profile(con, catalog, root, t)
    assert _kinds(all_alerts(profile, con, fmt="csv")) == {("empty", None)}
    assert outlier_alerts(con, "t", profile) == () == mixed_type_alerts(con, "t", profile, "csv")


def test_to_json_is_plain_json(profile, con):
    for a in all_alerts(profile, con):
        doc = a.to_json()
        assert json.loads(json.dumps(doc, allow_nan=False)) == doc
        assert set(doc) == {"kind", "column", "severity", "message", "evidence"}


# ----------------------------------------------------------------------------------------------
# Mixed types in a CSV

ROWS = 200


def _csv_line(i: int) -> list[str]:
    amount = "" if i % 50 == 0 else str(i) if i % 10 < 6 else "N/A" if i % 10 < 9 else "12a"
    when = f"2024-01-{i % 28 + 1:02d}" if i % 4 else "unknown"
    both = str(i) if i % 3 == 0 else f"2024-02-{i % 28 + 1:02d} 10:00:00" if i % 3 == 1 else "x"
    return [str(i), amount, when, "42" if i == 7 else f"name{i}", "N/A" if i == 100 else str(i * 3),
            str(i) if i % 2 else "many", both, str(i) if i % 2 else f"2024-03-{i % 28 + 1:02d}"]


@pytest.fixture
def mixed_csv(con, catalog, root) -> Profile:
    header = ["clean", "amount", "when", "name", "almost", 'qty "units"', "both", "nd"]
    lines = [",".join('"' + h.replace('"', '""') + '"' for h in header)] + [",".join(_csv_line(i))
                                                                             for i in range(ROWS)]
    path = root / "mixed.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    dataset = cat.register(con, catalog, str(path), name="m")
    assert dataset.format == "csv"
    return profile_table(con, "m", exact=True)


def test_csv_columns_are_typed_as_expected(mixed_csv):
    assert {c.name: c.type for c in mixed_csv.columns} == {
        "clean": "BIGINT", "amount": "VARCHAR", "when": "VARCHAR", "name": "VARCHAR", "almost": "VARCHAR",
        'qty "units"': "VARCHAR", "both": "VARCHAR", "nd": "VARCHAR"}


def test_mixed_types_are_found_in_exactly_the_mixed_columns(mixed_csv, con):
    got = mixed_type_alerts(con, "m", mixed_csv, "csv")
    # 'name' has one number in 200 (0.5 %): text with a stray number, not a mixed column.
    assert [a.column for a in got] == ["amount", "when", "almost", 'qty "units"', "both", "nd"]
    assert {a.kind for a in got} == {"mixed_types"}


def test_mixed_types_figures_and_examples(mixed_csv, con):
    got = {a.column: a for a in mixed_type_alerts(con, "m", mixed_csv, "csv")}
    amount = got["amount"].evidence
    # 4 empty fields (read as missing) are left out: 196 values, of which 116 numbers.
    assert (amount["non_empty"], amount["numbers"], amount["dates"], amount["text"]) == (196, 116, 0, 80)
    assert amount["text_examples"] == ["N/A", "12a"]
    assert got["amount"].message == ("amount has mixed types: 59.2% of values are numbers, the rest text "
                                     "(e.g. 'N/A', '12a').")
    assert got["when"].message == "when has mixed types: 75% of values are dates, the rest text (e.g. 'unknown')."
    assert (got["almost"].evidence["numbers"], got["almost"].evidence["text_examples"]) == (199, ["N/A"])
    assert got['qty "units"'].evidence["number_share"] == 0.5
    assert got["both"].message == ("both has mixed types: 33.5% of values are numbers and 33.5% dates, "
                                   "the rest text (e.g. 'x').")
    assert got["nd"].message == "nd has mixed types: 50% of values are numbers, the rest dates."
    assert got["nd"].evidence["text_examples"] == []


def test_mixed_types_only_for_csv(con, catalog, root):
    t = pa.table({"s": [str(i) if i % 2 else "n/a" for i in range(100)]})
    profile = _profile(con, catalog, root, t)
    assert mixed_type_alerts(con, "t", profile, "parquet") == ()
    assert [a.column for a in mixed_type_alerts(con, "t", profile, "csv")] == ["s"]


def test_all_alerts_on_a_csv_include_mixed_types(mixed_csv, con):
    got = all_alerts(mixed_csv, con, fmt="csv")
    mixed = {c for k, c in _kinds(got) if k == "mixed_types"}
    assert mixed == {"amount", "when", "almost", 'qty "units"', "both", "nd"}
    assert _one(got, "id_like", "clean").severity == "warning"


def test_missing_wording_in_a_csv(profile):
    a = _one(profile_alerts(profile, fmt="csv"), "missing", "half missing")
    assert a.message == "half missing is 60% missing or empty (600 of 1,000 rows)."


# ----------------------------------------------------------------------------------------------
# The target


def _target_profile(con, catalog, root, labels: list) -> Profile:
    return _profile(con, catalog, root, pa.table({"y": labels, "x": list(range(len(labels)))}))


def test_imbalanced_target(con, catalog, root):
    profile = _target_profile(con, catalog, root, [i % 40 == 0 for i in range(1000)])
    (a,) = target_alerts(profile, "y")
    assert (a.kind, a.column, a.severity) == ("imbalanced", "y", "warning")
    assert a.evidence["class_shares"] == {"False": 0.975, "True": 0.025}
    assert (a.evidence["smallest_class"], a.evidence["smallest_share"]) == (True, 0.025)
    assert a.message == ("The target y is imbalanced: its smallest class, True, is 2.5% of 1,000 labelled rows "
                         "(False 97.5%, True 2.5%).")


@pytest.mark.parametrize("labels", [
    [["a", "b", "c"][i % 3] for i in range(900)],  # balanced
    ["rare" if i % 10 == 0 else "common" for i in range(1000)],  # 10 %: at the threshold, not under it
    [f"c{i % 12}" if i % 100 else "tiny" for i in range(1200)],  # 13 classes: more than the profile lists
])
def test_targets_that_are_not_imbalanced(con, catalog, root, labels):
    assert target_alerts(_target_profile(con, catalog, root, labels), "y") == ()


def _rel(feature: str, metric: str, score: float) -> SimpleNamespace:
    return SimpleNamespace(feature=feature, metric=metric, score=score, kind="numeric", bins=None)


LN2 = math.log(2)


@pytest.mark.parametrize(("relation", "leak"), [
    (_rel("f", "auc", 0.995), True),
    (_rel("f", "auc", 0.99), True),
    (_rel("f", "auc", 0.98), False),
    (_rel("f", "correlation", -0.995), True),
    (_rel("f", "correlation", 0.9), False),
    (_rel("f", "eta", 0.991), True),
    (_rel("f", "eta", 0.5), False),
    (_rel("f", "mutual_info", 0.96 * LN2), True),  # a balanced binary target's entropy is ln 2
    (_rel("f", "mutual_info", 0.90 * LN2), False),
    (_rel("f", "auc", math.nan), False),
    (_rel("y", "auc", 1.0), False),  # the target itself
])
def test_leakage_thresholds(con, catalog, root, relation, leak):
    profile = _target_profile(con, catalog, root, [i % 2 == 0 for i in range(100)])
    got = target_alerts(profile, "y", [relation])
    assert _kinds(got) == ({("leakage", "f")} if leak else set())
    if leak:
        assert got[0].severity == "warning" and "probably target leakage" in got[0].message


def test_mutual_information_is_normalised_by_the_given_entropy_or_not_judged(con, catalog, root):
    profile = _target_profile(con, catalog, root, [float(i) for i in range(100)])  # a regression target
    rel = [_rel("f", "mutual_info", 2.0)]
    assert target_alerts(profile, "y", rel) == ()
    (a,) = target_alerts(profile, "y", rel, target_entropy=2.05)
    assert a.evidence["normalized"] == pytest.approx(2.0 / 2.05)


def test_unknown_metric_and_target_raise(con, catalog, root):
    profile = _target_profile(con, catalog, root, [i % 2 == 0 for i in range(100)])
    with pytest.raises(QuarryError, match="No leakage rule for the metric 'r2'"):
        target_alerts(profile, "y", [_rel("f", "r2", 0.99)])
    with pytest.raises(QuarryError, match="'nope' is not a column"):
        target_alerts(profile, "nope")


def test_all_alerts_with_a_target(con, catalog, root):
    profile = _target_profile(con, catalog, root, [i % 40 == 0 for i in range(1000)])
    got = all_alerts(profile, target="y", relations=[_rel("x", "auc", 0.999)])
    assert [(a.kind, a.column) for a in got] == [("id_like", "x"), ("leakage", "x"), ("imbalanced", "y")]


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_leakage_from_the_real_target_analysis(con, catalog, root, kind):
    from core.profile.target import target_relations

    rng = np.random.default_rng(11)
    y = rng.random(4_000) < 0.3 if kind == "binary" else rng.normal(0, 1, 4_000)
    t = pa.table({"y": y, "leak": y.astype(float) * 2 + 1, "noise": rng.normal(0, 1, 4_000)})
    path = write_parquet(root / f"leak_{kind}.parquet", t)
    cat.register(con, catalog, str(path), name=f"leak_{kind}")
    p = profile_table(con, f"leak_{kind}", exact=True)
    rel = target_relations(con, f"leak_{kind}", p, "y")
    found = {(a.kind, a.column) for a in all_alerts(p, con, target="y", relations=rel.features)}
    assert ("leakage", "leak") in found and ("leakage", "noise") not in found

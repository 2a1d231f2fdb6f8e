"""Splits as SQL: fractions, no row on two sides, exact class shares, time order, disjoint groups, bad configs."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from core.data import catalog as cat
from core.errors import QuarryError
from core.features.recipe import source_sql
from core.model.splits import SplitConfig, SplitError, split_counts, split_sql
from tests.conftest import write_parquet

N = 5000
CLASSES = {"a": 0.6, "b": 0.3, "c": 0.1}


def make_table(n: int = N) -> pa.Table:
    """Rows with an id, an imbalanced class target (some missing), a float target with NaN, a time column
    with ties (five rows per hour) and missing times, and 250 groups of unequal size."""
    rng = np.random.default_rng(3)
    start = datetime(2024, 1, 1)
    label = rng.choice(list(CLASSES), size=n, p=list(CLASSES.values())).tolist()
    value = rng.normal(size=n)
    value[::53] = np.nan
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "label": pa.array([None if i % 97 == 5 else v for i, v in enumerate(label)]),
        "value": pa.array(value),
        "ts": pa.array([None if i % 101 == 7 else start + timedelta(hours=i // 5) for i in range(n)],
                       pa.timestamp("us")),
        "grp": pa.array(rng.zipf(1.6, size=n) % 250, pa.int64()),
        "x": pa.array(rng.normal(size=n)),
    })


TABLE = make_table()


@pytest.fixture
def src(con, catalog, root) -> str:
    path = write_parquet(root / "split.parquet", TABLE)
    cat.register(con, catalog, str(path), name="s")
    return source_sql("s")


def assign(con, src: str, config: SplitConfig, target: str = "label") -> dict[int, str]:
    """id -> split, asserting that no id appears twice."""
    rows = con.sql(f"SELECT id, __split FROM ({split_sql(con, src, {}, config, target)})").fetchall()
    ids = [i for i, _ in rows]
    assert len(ids) == len(set(ids)), "a row is in two splits"
    return dict(rows)


def column(name: str) -> list:
    return TABLE.column(name).to_pylist()


def test_random_split_fractions_stable_and_seeded(con, src):
    config = SplitConfig("random", valid=0.2, test=0.1, seed=7)
    got = assign(con, src, config)
    usable = {i for i, v in zip(column("id"), column("label"), strict=True) if v is not None}
    assert set(got) == usable  # every usable row once, rows with a missing target left out
    shares = Counter(got.values())
    for part, share in (("train", 0.7), ("valid", 0.2), ("test", 0.1)):
        assert abs(shares[part] / len(got) - share) < 0.03, (part, shares)
    assert assign(con, src, config) == got  # stable
    other = assign(con, src, SplitConfig("random", valid=0.2, test=0.1, seed=8))
    assert sum(got[i] != other[i] for i in got) > len(got) * 0.2  # the seed matters


def test_split_counts_and_dropped_rows(con, src):
    config = SplitConfig("random", seed=1)
    counts = split_counts(con, src, {}, config, "label", by_class=True)
    got = assign(con, src, config)
    assert counts.rows == dict(Counter(got.values()))
    missing = sum(v is None for v in column("label"))
    assert counts.dropped == {"missing target": missing}
    label = dict(zip(column("id"), column("label"), strict=True))
    for part in ("train", "valid", "test"):
        assert counts.classes[part] == dict(sorted(Counter(label[i] for i, p in got.items() if p == part).items()))
    assert counts.to_json()["rows"] == counts.rows


def test_float_target_drops_nan(con, src):
    got = assign(con, src, SplitConfig(), target="value")
    assert len(got) == sum(v == v for v in column("value"))  # NaN != NaN


def test_stratified_split_has_exact_class_shares(con, src):
    config = SplitConfig("stratified", valid=0.15, test=0.2, seed=3)
    got = assign(con, src, config)
    label = dict(zip(column("id"), column("label"), strict=True))
    per_class = Counter(label[i] for i in got)
    for cls, n in per_class.items():
        parts = Counter(p for i, p in got.items() if label[i] == cls)
        assert abs(parts["valid"] - n * 0.15) <= 1 and abs(parts["test"] - n * 0.2) <= 1, (cls, parts)
        assert parts["train"] + parts["valid"] + parts["test"] == n
    assert assign(con, src, config) == got


def test_time_split_keeps_time_order(con, src):
    config = SplitConfig("time", valid=0.2, test=0.2, column="ts")
    got = assign(con, src, config)
    ts = dict(zip(column("id"), column("ts"), strict=True))
    label = dict(zip(column("id"), column("label"), strict=True))
    assert all(ts[i] is not None for i in got)
    times = {p: [ts[i] for i, q in got.items() if q == p] for p in ("train", "valid", "test")}
    assert max(times["train"]) < min(times["valid"]) and max(times["valid"]) < min(times["test"])
    # ties (five rows per hour) never straddle a cut, so the shares are close, not exact
    usable = sum(1 for i in ts if ts[i] is not None and label[i] is not None)
    assert len(got) == usable
    for part, share in (("train", 0.6), ("valid", 0.2), ("test", 0.2)):
        assert abs(len(times[part]) / usable - share) < 0.01
    counts = split_counts(con, src, {}, config, "label")
    missing_time = sum(1 for i in ts if ts[i] is None and label[i] is not None)
    assert counts.dropped == {"missing target": sum(v is None for v in label.values()), "missing time": missing_time}


def test_time_split_on_a_number_and_without_test(con, src):
    got = assign(con, src, SplitConfig("time", valid=0.25, test=0.0, column="id"))
    assert set(got.values()) == {"train", "valid"}
    train = [i for i, p in got.items() if p == "train"]
    valid = [i for i, p in got.items() if p == "valid"]
    assert max(train) < min(valid)
    assert abs(len(valid) / len(got) - 0.25) < 0.01


def test_group_split_puts_each_group_on_one_side(con, src):
    config = SplitConfig("group", valid=0.2, test=0.2, column="grp", seed=5)
    got = assign(con, src, config)
    grp = dict(zip(column("id"), column("grp"), strict=True))
    sides: dict[int, set] = {}
    for i, p in got.items():
        sides.setdefault(grp[i], set()).add(p)
    assert all(len(s) == 1 for s in sides.values()), "a group is on two sides"
    group_shares = Counter(next(iter(s)) for s in sides.values())
    assert set(group_shares) == {"train", "valid", "test"}
    assert abs(group_shares["train"] / len(sides) - 0.6) < 0.1  # a share of groups, not rows
    assert assign(con, src, SplitConfig("group", valid=0.2, test=0.2, column="grp", seed=6)) != got


def test_split_over_a_query_with_parameters(con, src):
    query = "SELECT * FROM (" + src + ") WHERE x > $p0_0"
    got = con.sql(f"SELECT count(*) FROM ({split_sql(con, query, {'p0_0': 0.0}, SplitConfig(), 'label')})",
                  params={"p0_0": 0.0}).fetchall()[0][0]
    expected = sum(1 for x, v in zip(column("x"), column("label"), strict=True) if x > 0 and v is not None)
    assert got == expected


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"valid": 1.2}, "The 'valid' fraction must be a float in [0, 1). Got 1.2."),
    ({"test": -0.1}, "The 'test' fraction must be a float in [0, 1). Got -0.1."),
    ({"test": "0.1"}, "The 'test' fraction must be a float in [0, 1). Got '0.1'."),
    ({"valid": 0.5, "test": 0.5}, "The valid and test fractions must leave rows to train on: valid + test must be "
                                  "below 1. Got 0.5 + 0.5 = 1."),
    ({"kind": "shuffle"}, "The split kind must be one of random, stratified, time, group. Got 'shuffle'."),
    ({"kind": "time"}, "A time split needs a time column."),
    ({"seed": 1.5}, "The split seed must be an int. Got 1.5."),
])
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(SplitError) as err:
        SplitConfig(**kwargs)
    assert err.value.message == message
    assert isinstance(err.value, QuarryError) and err.value.hint


@pytest.mark.parametrize(("config", "target", "message"), [
    (SplitConfig(), "nope", "The target 'nope' is not a column of the data."),
    (SplitConfig("group", column="nope"), "label", "The group column 'nope' is not a column of the data."),
    (SplitConfig("time", column="label"), "x", "The time column 'label' is VARCHAR; a time split needs dates, times "
                                               "or numbers."),
])
def test_bad_columns_are_refused(con, src, config, target, message):
    with pytest.raises(SplitError) as err:
        split_sql(con, src, {}, config, target)
    assert err.value.message == message


def test_a_split_column_in_the_data_is_refused(con, src):
    with pytest.raises(SplitError, match="already has a column named '__split'"):
        split_sql(con, f"SELECT *, 1 AS __split FROM ({src})", {}, SplitConfig(), "label")


def test_describe():
    assert SplitConfig().describe() == "random split: 70% train / 15% valid / 15% test, seed 42"
    assert (SplitConfig("time", 0.1, 0.2, column="ts").describe()
            == "time split on 'ts': 70% train / 10% valid / 20% test")

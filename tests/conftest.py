"""Fixtures: a fresh data root and workspace per test, a sandboxed connection, small generated data."""
from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.data import engine
from core.data.catalog import Catalog
from core.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
# Column names that break naive SQL: spaces, quotes, unicode, keywords, capitals.
WEIRD = ["has space", 'quo"te', "ünïcødé", "select", "Mixed Case", "semi;colon"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def quarry_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> Settings:
    """Point Quarry at `root` (data root, workspace inside it), 1 GB and 2 threads, no other settings."""
    monkeypatch.setenv("QUARRY_DATA_ROOTS", str(root))
    monkeypatch.setenv("QUARRY_WORKSPACE", str(root / "workspace"))
    monkeypatch.setenv("QUARRY_MEMORY_LIMIT", "1GB")
    monkeypatch.setenv("QUARRY_THREADS", "2")
    for name in ("QUARRY_TEMP_DIR", "QUARRY_SQL_TIME_LIMIT_S", "QUARRY_DOWNLOAD_MAX_ROWS", "QUARRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return load_settings()


@pytest.fixture
def settings(root: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return quarry_env(monkeypatch, root)


@pytest.fixture
def con(settings: Settings) -> duckdb.DuckDBPyConnection:
    c = engine.connect(settings)
    yield c
    c.close()


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    return Catalog(settings)


def sample_table(rows: int = 1000) -> pa.Table:
    """Small table with nulls, NaN, +-Inf, unicode and awkward column names."""
    start = datetime(2024, 1, 1)
    amount = [None if i % 17 == 0 else (math.nan if i % 29 == 0 else (i * 1.5) % 97) for i in range(rows)]
    if rows > 3:
        amount[1], amount[2] = math.inf, -math.inf
    return pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "amount": pa.array(amount, pa.float64()),
        "country": pa.array([None if i % 11 == 0 else ["US", "DE", "FR", "日本"][i % 4] for i in range(rows)]),
        "ts": pa.array([start + timedelta(hours=i) for i in range(rows)], pa.timestamp("us")),
        **{name: pa.array([(i * 7 + k) % 13 for i in range(rows)], pa.int64()) for k, name in enumerate(WEIRD)},
    })


def write_parquet(path: Path, table: pa.Table, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **kw)
    return path


@pytest.fixture
def sample(root: Path) -> Path:
    """A 1,000-row Parquet file under the data root."""
    return write_parquet(root / "sample.parquet", sample_table(), row_group_size=256)


def until(pred, timeout: float = 60.0, every: float = 0.05):
    """Poll `pred` until it returns something true (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")

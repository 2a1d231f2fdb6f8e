"""Engine: quoting, the sandboxed connection's settings, time limits and paged previews vs a reference."""
from __future__ import annotations

import math
import os
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core.data import catalog as cat
from core.data import engine, sandbox
from core.errors import QuarryError, QueryError, QueryTimeout
from core.settings import load_settings, memory_bytes
from tests.conftest import WEIRD


@pytest.mark.parametrize(("name", "quoted"), [
    ("plain", '"plain"'),
    ("has space", '"has space"'),
    ('quo"te', '"quo""te"'),
    ("select", '"select"'),
    ("ünïcødé", '"ünïcødé"'),
])
def test_quote_ident(name, quoted, con):
    assert engine.quote_ident(name) == quoted
    assert con.execute(f"SELECT 1 AS {engine.quote_ident(name)}").description[0][0] == name


def test_quote_literal_round_trips(con):
    text = "it's a 'test' \\ ; --"
    assert con.execute(f"SELECT {engine.quote_literal(text)}").fetchone()[0] == text


def test_connection_uses_settings_and_is_locked(con, settings):
    get = lambda name: con.execute(f"SELECT current_setting('{name}')").fetchone()[0]  # noqa: E731
    assert get("threads") == 2
    assert get("memory_limit") in ("953.6 MiB", "1.0 GB", "1000.0 MB", "953.6MiB")
    spill = Path(get("temp_directory"))  # a folder Quarry made for itself inside QUARRY_TEMP_DIR
    assert spill.parent.parent == settings.temp_dir and spill.parent.name.startswith("quarry-spill-")
    assert oct(spill.parent.stat().st_mode & 0o777) == "0o700"
    assert str(settings.temp_dir) not in get("allowed_directories")
    assert get("enable_external_access") is False
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET threads = 1")


def test_bad_settings_name_the_variable(monkeypatch, settings):
    monkeypatch.setenv("QUARRY_THREADS", "lots")
    with pytest.raises(QuarryError, match="QUARRY_THREADS must be a whole number"):
        load_settings()
    monkeypatch.setenv("QUARRY_THREADS", "2")
    monkeypatch.setenv("QUARRY_MEMORY_LIMIT", "a lot")
    with pytest.raises(QuarryError, match="QUARRY_MEMORY_LIMIT must be a size"):
        load_settings()


@pytest.mark.parametrize("kind", ["file", "proc", "unwritable"])
def test_bad_temp_dir_names_the_variable(monkeypatch, settings, tmp_path, kind):
    if kind == "file":
        target = tmp_path / "a-file"
        target.write_text("x")
    elif kind == "proc":
        target = Path("/proc/x")
    else:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o500)
        if os.access(target, os.W_OK):  # root writes anywhere: the check cannot be shown
            pytest.skip("running as root")
    monkeypatch.setenv("QUARRY_TEMP_DIR", str(target))
    with pytest.raises(QuarryError, match="QUARRY_TEMP_DIR") as exc:
        load_settings()
    assert str(target) in exc.value.message and "QUARRY_TEMP_DIR" in exc.value.hint


def test_shared_temp_dir_is_not_readable(settings, tmp_path, monkeypatch):
    """QUARRY_TEMP_DIR pointed at a shared folder (here with someone's file in it) is not readable through
    DuckDB: spill files go to a private folder inside it, which is not an allowed directory either."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    secret = shared / "someone-elses.csv"
    secret.write_text("password\nhunter2\n")
    monkeypatch.setenv("QUARRY_TEMP_DIR", str(shared))
    con = engine.connect(load_settings())
    try:
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"SELECT * FROM read_csv('{secret}')").fetchall()
        spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
        # DuckDB may read its own spill folder: it is Quarry's alone (0700, a random name per process).
        assert spill.parent.parent == shared and oct(spill.parent.stat().st_mode & 0o777) == "0o700"
    finally:
        con.close()


def test_time_limit_interrupts_only_that_query(con):
    with pytest.raises(QueryTimeout, match="0.2 s time limit"):
        engine.with_time_limit(con, 0.2, "The query",
                               lambda cur: cur.execute("SELECT count(*) FROM range(100000000000)").fetchall())
    assert con.execute("SELECT 42").fetchone()[0] == 42  # the connection keeps working


def test_spills_to_disk_under_a_small_memory_limit(root, monkeypatch):
    monkeypatch.setenv("QUARRY_DATA_ROOTS", str(root))
    monkeypatch.setenv("QUARRY_MEMORY_LIMIT", "100MB")
    monkeypatch.setenv("QUARRY_THREADS", "2")
    con = engine.connect(load_settings())
    # ~5M distinct keys: far more hash-table state than 100MB; it completes by spilling.
    n = con.execute("SELECT count(*) FROM (SELECT i % 5000000 AS k, sum(i) FROM range(20000000) t(i) GROUP BY k)"
                    ).fetchone()[0]
    assert n == 5_000_000


def _reference(sample, where=None, order_by=None, descending=False):
    """The obvious, slow way: pyarrow in memory."""
    t = pq.read_table(sample)
    if where is not None:
        t = t.filter(where(t))
    if order_by:
        idx = sorted(range(t.num_rows), key=lambda i: _key(t[order_by][i].as_py(), descending))
        t = t.take(idx)
    return t


def _key(v, descending):
    """Sort key for integer columns: nulls last in both directions."""
    return (v is None, 0 if v is None else (-v if descending else v))


@pytest.mark.parametrize(("order_by", "descending"), [("id", True), ("has space", False), ('quo"te', True)])
def test_preview_pages_match_reference(con, catalog, sample, order_by, descending):
    cat.register(con, catalog, str(sample))
    ref = _reference(sample, order_by=order_by, descending=descending)
    for offset in (0, 50, 980):
        page = sandbox.preview(catalog, "sample", order_by=order_by, descending=descending, offset=offset, limit=50)
        assert page.total_rows == 1000
        got = page.table.column(order_by).to_pylist()
        assert got == ref.column(order_by).to_pylist()[offset:offset + 50]


def test_preview_filter_columns_and_caption(con, catalog, sample):
    cat.register(con, catalog, str(sample))
    page = sandbox.preview(catalog, "sample", columns=["select", "ünïcødé", "country"],
                          where="\"ünïcødé\" > 5 AND country = '日本'", order_by="id", offset=10, limit=25)
    ref = _reference(sample, where=lambda t: pc.and_(pc.greater(t["ünïcødé"], 5), pc.equal(t["country"], "日本")))
    assert page.table.column_names == ["select", "ünïcødé", "country"]
    assert page.total_rows == ref.num_rows
    assert page.table.column("select").to_pylist() == ref.column("select").to_pylist()[10:35]
    assert page.caption() == f"Rows 11–35 of {ref.num_rows:,}"
    assert page.page_count == math.ceil(ref.num_rows / 25)


def test_preview_handles_every_weird_column(con, catalog, sample):
    cat.register(con, catalog, str(sample))
    for name in WEIRD:
        page = sandbox.preview(catalog, "sample", columns=[name], order_by=name, limit=5)
        assert page.table.column_names == [name]


def test_preview_float_edge_values(con, catalog, sample):
    cat.register(con, catalog, str(sample))
    nans = len([i for i in range(1000) if i % 29 == 0 and i % 17 != 0])
    top = sandbox.preview(catalog, "sample", columns=["amount"], order_by="amount", descending=True, limit=nans + 1)
    values = top.table["amount"].to_pylist()
    assert all(math.isnan(v) for v in values[:nans]) and values[nans] == math.inf  # DuckDB: NaN above +inf
    low = sandbox.preview(catalog, "sample", columns=["amount"], order_by="amount", limit=1)
    assert low.table["amount"][0].as_py() == -math.inf
    nulls = sandbox.preview(catalog, "sample", where="amount IS NULL", limit=5)
    assert nulls.total_rows == len([i for i in range(1000) if i % 17 == 0])


@pytest.mark.parametrize(("where", "words"), [
    ("nope > 1", 'Referenced column "nope" not found'),
    ("amount >", "not valid SQL"),
    ("1=1; DROP VIEW sample", "not valid SQL"),
    ("amount > (SELECT count(*) FROM read_csv('/etc/passwd'))", "reads files directly"),
])
def test_bad_filters_are_clear(con, catalog, sample, where, words):
    cat.register(con, catalog, str(sample))
    with pytest.raises(QueryError) as exc:
        sandbox.preview(catalog, "sample", where=where)
    assert words in exc.value.message and exc.value.message.startswith("The filter")
    assert con.execute('SELECT count(*) FROM "sample"').fetchone()[0] == 1000


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, 1001)])
def test_page_bounds(con, catalog, sample, offset, limit):
    cat.register(con, catalog, str(sample))
    with pytest.raises(QueryError, match="page"):
        sandbox.preview(catalog, "sample", offset=offset, limit=limit)


@pytest.mark.parametrize("text, expected", [("1GB", 10**9), ("512MiB", 512 * 2**20), ("1.5 GiB", int(1.5 * 2**30)),
                                            ("100kb", 10**5)])
def test_memory_sizes_in_bytes(text, expected):
    assert memory_bytes(text) == expected


def test_a_memory_cap_lowers_the_limit_but_never_raises_it(settings):
    def limit(con) -> int:
        return memory_bytes(con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])

    capped = engine.connect(settings, memory_cap="256MB")  # settings: 1GB
    assert 200 * 10**6 < limit(capped) <= 256 * 10**6
    uncapped = engine.connect(settings, memory_cap="8GB")
    assert 0.9 * 10**9 < limit(uncapped) <= 10**9
    capped.close()
    uncapped.close()

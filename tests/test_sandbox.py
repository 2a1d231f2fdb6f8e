"""User SQL: only one SELECT runs; every refusal is clear; nothing outside the data roots is read."""
from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from core.data import catalog as cat
from core.data import sandbox, sqlworker
from core.errors import DatasetError, QueryError, QueryRefused, QueryTimeout
from tests.conftest import sample_table, write_parquet


@pytest.fixture
def registered(con, catalog, sample):
    return cat.register(con, catalog, str(sample), name="t")


def _still_intact(con):
    assert con.execute('SELECT count(*) FROM "t"').fetchone()[0] == 1000


@pytest.mark.parametrize(("sql", "words"), [
    ("DROP VIEW t", "DROP statements are not allowed here: this one drops objects"),
    ("CREATE TABLE x AS SELECT 1", "CREATE statements are not allowed here"),
    ("INSERT INTO t SELECT * FROM t", "INSERT statements are not allowed here: this one writes data"),
    ("DELETE FROM t", "DELETE statements are not allowed here"),
    ("UPDATE t SET id = 0", "UPDATE statements are not allowed here"),
    ("ATTACH 'other.db'", "ATTACH statements are not allowed here"),
    ("INSTALL httpfs", "INSTALL statements are not allowed here"),
    ("LOAD httpfs", "LOAD statements are not allowed here"),
    ("SET threads = 1", "SET statements are not allowed here"),
    ("PRAGMA database_list", "PRAGMA statements are not allowed here"),
    ("COPY t TO 'out.csv'", "COPY statements are not allowed here"),
    ("EXPORT DATABASE 'dump'", "EXPORT statements are not allowed here"),
    ("CALL pragma_version()", "CALL statements are not allowed here"),
    ("SELECT 1; DROP VIEW t", "Only one statement can run at a time; this text has 2"),
    ("SELECT 1; SELECT 2;", "Only one statement can run at a time"),
])
def test_refused_statements(con, catalog, settings, registered, sql, words):
    with pytest.raises(QueryRefused) as exc:
        sandbox.run_query(catalog, sql)
    assert words in exc.value.message
    assert "SELECT" in exc.value.hint or "statements" in exc.value.hint
    _still_intact(con)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('{outside}')",
    "SELECT * FROM t WHERE id IN (SELECT 1 FROM read_blob('/etc/passwd'))",
])
def test_files_outside_the_roots_cannot_be_read(con, catalog, settings, registered, tmp_path, sql):
    outside = write_parquet(tmp_path / "outside.parquet", sample_table(3))
    with pytest.raises(QueryRefused, match="reads files directly"):
        sandbox.run_query(catalog, sql.format(outside=outside))


def test_files_are_read_through_registered_datasets_only(con, catalog, settings, root, registered):
    """Even under the data roots: the workspace (catalog, runs, audit log) is there by default."""
    pacsv.write_csv(pa.table({"x": [1, 2]}), root / "inside.csv")
    with pytest.raises(QueryRefused, match="Register the file on the Data page") as exc:
        sandbox.run_query(catalog, f"SELECT sum(x) AS s FROM read_csv('{root / 'inside.csv'}')")
    assert "read_csv() reads files directly" in exc.value.message
    cat.register(con, catalog, str(root / "inside.csv"), name="inside")
    assert sandbox.run_query(catalog, "SELECT sum(x) AS s FROM inside").table.to_pylist() == [{"s": 3}]


@pytest.mark.parametrize(("sql", "error", "words"), [
    ("", QueryError, "There is no SQL to run"),
    ("-- just a comment", QueryError, "only comments"),
    ("SELEC 1", QueryError, "is not valid SQL"),
    ("SELECT nope FROM t", QueryError, 'Referenced column "nope" not found'),
    ("SELECT * FROM missing_table", QueryError, "missing_table"),
])
def test_bad_sql_is_explained(con, catalog, settings, registered, sql, error, words):
    with pytest.raises(error, match=words):
        sandbox.run_query(catalog, sql)


def test_time_limit_stops_the_query(con, catalog, settings, registered):
    quick = dataclasses.replace(settings, sql_time_limit_s=0.3)
    with pytest.raises(QueryTimeout, match="QUARRY_SQL_TIME_LIMIT_S"):
        sandbox.run_query(cat.Catalog(quick), "SELECT count(*) FROM range(1000000000000)")
    _still_intact(con)


def test_pages_and_totals(con, catalog, settings, registered):
    sql = "SELECT id, \"select\" FROM t WHERE id % 3 = 0 ORDER BY id DESC -- trailing comment"
    page = sandbox.run_query(catalog, sql, offset=100, limit=50)
    expected = [i for i in range(999, -1, -1) if i % 3 == 0]
    assert page.total_rows == len(expected) == 334
    assert page.table.column("id").to_pylist() == expected[100:150]
    assert page.caption() == "Rows 101–150 of 334"


def test_from_first_and_cte_are_selects(con, catalog, settings, registered):
    assert sandbox.run_query(catalog, "FROM t SELECT count(*) AS n").table.to_pylist() == [{"n": 1000}]
    cte = "WITH x AS (SELECT id FROM t WHERE id < 10) SELECT count(*) AS n FROM x;"
    assert sandbox.run_query(catalog, cte).table.to_pylist() == [{"n": 10}]


def test_export_csv_and_parquet(con, catalog, settings, registered):
    data, rows = sandbox.export_query(catalog, "SELECT id, country FROM t ORDER BY id", "csv")
    back = pacsv.read_csv(pa.BufferReader(data))
    assert rows == 1000 and back.column("id").to_pylist() == list(range(1000))
    data, _ = sandbox.export_query(catalog, "SELECT * FROM t", "parquet")
    assert pq.read_table(pa.BufferReader(data)).num_rows == 1000
    capped = dataclasses.replace(settings, download_max_rows=999)
    with pytest.raises(QueryError, match="more than 999 rows"):
        sandbox.export_query(cat.Catalog(capped), "SELECT * FROM t", "csv")


def test_write_query_streams_to_parquet(con, catalog, settings, registered, tmp_path):
    out = tmp_path / "elsewhere" / "result.parquet"
    out.parent.mkdir()
    assert sandbox.write_query(catalog, "SELECT * FROM t WHERE id < 500", out) == 500
    assert pq.read_table(out).num_rows == 500
    with pytest.raises(QueryError, match="must end in .parquet"):
        sandbox.write_query(catalog, "SELECT 1", tmp_path / "x.csv")
    with pytest.raises(QueryError, match="does not exist"):
        sandbox.write_query(catalog, "SELECT 1", tmp_path / "nope" / "x.parquet")


def test_failed_write_leaves_nothing(con, catalog, settings, registered, tmp_path):
    quick = dataclasses.replace(settings, sql_time_limit_s=0.3)
    out = tmp_path / "r.parquet"
    with pytest.raises(QueryTimeout):
        sandbox.write_query(cat.Catalog(quick), "SELECT i FROM range(1000000000000) t(i) ORDER BY i DESC", out)
    assert list(tmp_path.glob("*r.parquet*")) == []


def test_save_as_dataset(con, catalog, settings, registered):
    d = sandbox.save_as_dataset(con, catalog, "SELECT country, count(*) AS n FROM t GROUP BY 1", "by_country")
    assert d.source == str(settings.datasets_dir / "by_country.parquet")
    assert "by_country" in catalog.names()
    got = dict(con.execute('SELECT country, n FROM "by_country"').fetchall())
    assert sum(got.values()) == 1000 and set(got) == {"US", "DE", "FR", "日本", None}
    with pytest.raises(QueryError, match="already exists"):
        sandbox.save_as_dataset(con, catalog, "SELECT 1", "by_country")
    with pytest.raises(DatasetError, match="cannot be a dataset name"):
        sandbox.save_as_dataset(con, catalog, "SELECT 1", "bad name")


def test_failed_save_leaves_no_half_written_dataset(con, catalog, settings, registered):
    quick = dataclasses.replace(settings, sql_time_limit_s=0.3)
    quick_catalog = cat.Catalog(quick)
    with pytest.raises(QueryTimeout):
        sandbox.save_as_dataset(con, quick_catalog, "SELECT i FROM range(1000000000000) t(i)", "huge")
    assert "huge" not in catalog.names()
    assert sorted(p.name for p in settings.datasets_dir.iterdir()) == []


@pytest.mark.parametrize("sql", [
    "SELECT * FROM t ORDER BY amount DESC NULLS LAST",
    "SELECT * FROM t ORDER BY id LIMIT 30 OFFSET 990",
    "SELECT country, count(*) AS n FROM t GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT id FROM t WHERE id < 5 UNION ALL SELECT id FROM t WHERE id > 995 ORDER BY id",
    "WITH x AS (SELECT * FROM t ORDER BY id LIMIT 7) SELECT * FROM x ORDER BY id DESC",
    "SELECT DISTINCT country FROM t ORDER BY country",
    "SELECT id, row_number() OVER (ORDER BY amount) AS r FROM t QUALIFY r <= 12 ORDER BY r",
])
def test_totals_are_right_whatever_the_order(con, catalog, settings, registered, sql):
    page = sandbox.run_query(catalog, sql, limit=5)
    assert page.total_rows == len(con.execute(sql).fetchall())
    expected_first = con.execute(sql + " LIMIT 5" if "LIMIT" not in sql else sql).fetchall()[:5]
    assert [tuple(r.values()) for r in page.table.to_pylist()] == [tuple(r) for r in expected_first] or \
        "ORDER BY amount" in sql  # ties in amount may come back in any order


def test_counting_drops_only_the_outer_order_by(con):
    cur = con.cursor()
    counted = sqlworker.without_order_by(cur, "SELECT id, row_number() OVER (ORDER BY id) AS r FROM range(3) t(id) "
                                            "ORDER BY r DESC LIMIT 2")
    assert "OVER (ORDER BY id)" in counted and "DESC" not in counted and "LIMIT 2" in counted
    assert sqlworker.without_order_by(cur, "SELECT 1 AS x") == "SELECT 1 AS x"  # nothing to drop: unchanged


def test_preview_uses_a_known_total(catalog, registered):
    page = sandbox.preview(catalog, "t", order_by="id", total=1000)
    assert page.total_rows == 1000 and page.table.num_rows == 50
    assert sandbox.count_rows_where(catalog, "t", "id < 10") == 10 and sandbox.count_rows_where(catalog, "t") == 1000

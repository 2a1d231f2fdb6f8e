"""The process user SQL runs in: it cannot write a file, it is stopped at hard limits, and the app stays up.

These tests attack the second layer directly, as if the parse-tree check (core.sqlcheck) had a hole.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path

import duckdb
import psutil
import pytest

from core.data import catalog as cat
from core.data import sandbox, sqlworker
from core.errors import QueryError, QueryRefused, QueryTimeout
from tests.conftest import quarry_env

ATTACKS = [
    "WITH x AS (COPY (SELECT 1) TO '{victim}' (FORMAT parquet)) SELECT 1",
    "SELECT * FROM (WITH y AS (COPY (SELECT 42 AS id) TO '{victim}' (FORMAT parquet)) SELECT 1)",
    "SELECT 1 UNION ALL SELECT * FROM (WITH y AS (COPY (SELECT 2) TO '{victim}') SELECT 3)",
    "SELECT * FROM query('COPY (SELECT 1) TO ''{victim}'' (FORMAT parquet)')",
    "SELECT * FROM query_table('t')",
    "SELECT * FROM json_execute_serialized_sql('x')",
    "SELECT \"current_setting\"('temp_directory')",
    "SELECT main.current_setting('temp_directory')",
    "SELECT * FROM read_text('{catalog}')",
    "SELECT * FROM read_blob('{runs}')",
    "SELECT * FROM duckdb_settings()",
    "COPY t TO '{victim}' (FORMAT parquet)",
    "ATTACH '{runs}' AS r",
    "SELECT 1; COPY t TO '{victim}'",
]


def _tree_digest(*folders: Path) -> dict[str, str]:
    """Every file under the folders with its content's hash (spill folders excluded: they come and go)."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and "quarry-spill-" not in str(p):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def victim(con, catalog, sample, settings):
    """A registered dataset, the catalog and a runs registry: what an attacker would overwrite."""
    d = cat.register(con, catalog, str(sample), name="t")
    (settings.workspace / "runs").mkdir(exist_ok=True)
    (settings.workspace / "runs" / "runs.duckdb").write_bytes(b"registry")
    return d


@pytest.mark.parametrize("attack", ATTACKS)
def test_no_user_text_changes_a_byte(catalog, settings, victim, attack):
    sql = attack.format(victim=victim.source, catalog=settings.workspace / "catalog.json",
                        runs=settings.workspace / "runs" / "runs.duckdb")
    before = _tree_digest(*settings.data_roots, settings.workspace)
    with pytest.raises(QueryError):
        sandbox.run_query(catalog, sql)
    with pytest.raises(QueryError):
        sandbox.export_query(catalog, sql, "csv")
    assert _tree_digest(*settings.data_roots, settings.workspace) == before


def _write_in_confined_child(spill: str, target: str, out) -> None:
    """In a child: confine as the SQL worker does, then try DuckDB COPY and a plain Python write."""
    results = {"landlock": sqlworker.confine_writes(spill)}
    con = duckdb.connect()
    for name, attempt in [("copy", lambda: con.execute(f"COPY (SELECT 1 AS x) TO '{target}' (FORMAT parquet)")),
                          ("python", lambda: Path(target).write_text("x")),
                          ("spill", lambda: (Path(spill) / "ok.bin").write_bytes(b"1"))]:
        try:
            attempt()
            results[name] = "wrote"
        except Exception as exc:  # noqa: BLE001 - any refusal counts
            results[name] = type(exc).__name__
    out.send(results)


@pytest.mark.skipif(sqlworker.landlock_abi() < 1, reason="this kernel has no Landlock")
def test_the_query_process_cannot_write_outside_its_spill_folder(tmp_path):
    """Even a COPY that got past the parse-tree check writes nothing: the process itself is confined."""
    spill = tmp_path / "spill"
    spill.mkdir()
    target = tmp_path / "data" / "victim.parquet"
    target.parent.mkdir()
    target.write_bytes(b"original")
    here, there = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_write_in_confined_child,
                                                         args=(str(spill), str(target), there))
    child.start()
    results = here.recv()
    child.join()
    assert results["landlock"] is True
    assert results["copy"] != "wrote" and results["python"] == "PermissionError"
    assert results["spill"] == "wrote"
    assert target.read_bytes() == b"original"


@pytest.mark.parametrize("sql", [
    "SELECT len(range(1000000000))",
    "SELECT list_resize([1], 1e9)",
    "SELECT repeat('x', 4000000000)",
    "SELECT count(*) FROM range(1000000000000)",
])
def test_hard_limits_hold_and_the_app_stays_small(root, monkeypatch, sql):
    """The issue's attacks: each ends with one clear message; no process passes the memory cap."""
    monkeypatch.setenv("QUARRY_SQL_TIME_LIMIT_S", "3")
    monkeypatch.setenv("QUARRY_SQL_MEMORY_LIMIT", "256MB")
    settings = quarry_env(monkeypatch, root)
    catalog = cat.Catalog(settings)
    me = psutil.Process()
    before = me.memory_info().rss
    with pytest.raises(QueryError) as exc:
        sandbox.run_query(catalog, sql)
    assert isinstance(exc.value, QueryTimeout | QueryError)
    text = exc.value.message
    assert ("time limit" in text or "memory" in text or "out of memory" in text), text
    assert me.memory_info().rss - before < 200 * 2**20  # the app process did not hold the query's memory


def test_out_of_memory_names_the_setting(root, monkeypatch):
    monkeypatch.setenv("QUARRY_SQL_MEMORY_LIMIT", "64MB")
    settings = quarry_env(monkeypatch, root)
    with pytest.raises(QueryError) as exc:
        sandbox.run_query(cat.Catalog(settings), "SELECT list(i::VARCHAR) FROM range(100000000) t(i)")
    assert "memory" in exc.value.message and "QUARRY_SQL_MEMORY_LIMIT" in exc.value.hint
    assert "Possible solutions" not in exc.value.message


def test_a_process_past_the_memory_cap_is_killed(settings):
    """The watch kills a process whose resident memory passes the cap (what DuckDB does not count)."""
    import socket
    import subprocess
    import sys

    grower = subprocess.Popen([sys.executable, "-c", "import time\nx = []\nwhile True:\n"
                               "    x.append(bytearray(16 * 2**20)); time.sleep(0.01)"])
    box = sqlworker.Box.of(settings, ())
    box = sqlworker.Box(**{**box.__dict__, "memory_cap_bytes": 300 * 2**20})
    a, b = socket.socketpair()
    watch = sqlworker._Watch(grower.pid, box, a, time_limit_s=60)
    assert grower.wait(timeout=30) == -9
    watch.stop()
    assert watch.reason == "memory" and watch.peak > 300 * 2**20
    err = watch.error("The query")
    assert "used more than 0.293 GiB of memory" in err.message and "QUARRY_SQL_MEMORY_LIMIT" in err.hint
    a.close()
    b.close()


def test_operations_are_a_fixed_table(catalog):
    with pytest.raises(ValueError, match="unknown operation"):
        with sqlworker.call(sandbox.box(catalog), "os.system", {}):
            pass


def test_the_server_is_restarted_when_it_dies(catalog, victim):
    assert sandbox.run_query(catalog, "SELECT count(*) AS n FROM t").table.to_pylist() == [{"n": 1000}]
    sqlworker._SERVER["proc"].kill()
    sqlworker._SERVER["proc"].wait()
    assert sandbox.run_query(catalog, "SELECT count(*) AS n FROM t").table.to_pylist() == [{"n": 1000}]


def test_refused_before_any_process_starts(catalog, victim):
    with pytest.raises(QueryRefused, match="copies data to a file"):
        sandbox.run_query(catalog, ATTACKS[0].format(victim=victim.source))
    assert os.path.getsize(victim.source) > 100


def test_recipe_previews_run_under_the_same_limits(root, monkeypatch, con, sample):
    """A recipe expression that allocates without end is stopped in the sandbox with a clear message."""
    from core.features import recipe as R
    from core.features.preview import fit_in_sandbox, preview_in_sandbox

    monkeypatch.setenv("QUARRY_SQL_TIME_LIMIT_S", "5")
    monkeypatch.setenv("QUARRY_SQL_MEMORY_LIMIT", "256MB")
    settings = quarry_env(monkeypatch, root)
    catalog = cat.Catalog(settings)
    cat.register(con, catalog, str(sample), name="t")
    bad = R.Recipe(steps=(R.Step("expression", {"name": "x", "expression": "len(list_resize([1], 1e9))"}),))
    with pytest.raises(QueryError) as exc:
        preview_in_sandbox(catalog, bad.dumps(), "t")
    assert "memory" in exc.value.message or "time limit" in exc.value.message
    good = R.Recipe(steps=(R.Step("expression", {"name": "x", "expression": "id * 2"}),))
    preview = preview_in_sandbox(catalog, fit_in_sandbox(catalog, good.dumps(), "t"), "t")
    assert preview.rows_out == 1000 and preview.summaries[0].name == "x"
    assert "x" in preview.head.column_names


READS = [  # found by an attack pass: each read a file or a setting through layer 1 before it checked table names
    "FROM '{catalog}'",
    "SELECT * FROM '{secret}'",
    "SELECT * FROM '{root}/**/*.csv'",
    "SELECT * FROM t WHERE id IN (SELECT 1 FROM '{secret}')",
    "WITH x AS (SELECT * FROM '{secret}') SELECT * FROM x",
    "SELECT * FROM pg_settings WHERE name = 'temp_directory'",
    "SELECT * FROM pg_catalog.pg_settings",
    "SELECT * FROM information_schema.tables",
    "SHOW temp_directory",
    "SELECT * FROM (SHOW allowed_directories)",
    "SELECT pg_get_viewdef((SELECT oid FROM pg_class WHERE relname = 't')) FROM t LIMIT 1",
    "SELECT * FROM main.pg_settings",
]


@pytest.mark.parametrize("attack", READS)
def test_only_registered_datasets_and_ctes_can_be_read(catalog, settings, victim, root, attack):
    (root / "secret.csv").write_text("a\nSECRETCSV\n")
    sql = attack.format(catalog=settings.workspace / "catalog.json", secret=root / "secret.csv", root=root)
    with pytest.raises(QueryRefused) as exc:
        sandbox.run_query(catalog, sql)
    assert "SECRETCSV" not in exc.value.message and "tmp" not in exc.value.message.replace(str(root), "")
    with pytest.raises(QueryRefused):
        sandbox.preview(catalog, "t", where=f"id IN (SELECT 1 FROM ({sql}))" if sql.startswith("SELECT") else
                        f"id IN (SELECT 1 FROM '{root / 'secret.csv'}')")


@pytest.mark.parametrize("sql", [
    "SELECT count(*) AS n FROM t",
    "SELECT count(*) AS n FROM main.t",
    "WITH a AS (SELECT * FROM t), b AS (SELECT * FROM a) SELECT count(*) AS n FROM b",
    "DESCRIBE t", "SUMMARIZE t", "SELECT * FROM (DESCRIBE SELECT * FROM t)",
    "SELECT * FROM json_each('{\"a\": 1}')", "SELECT * FROM repeat_row(1, num_rows := 2)",
    "SELECT pg_typeof(1) AS ty",
])
def test_legitimate_queries_still_run(catalog, victim, sql):
    assert sandbox.run_query(catalog, sql).total_rows >= 1


def test_a_killed_query_leaves_no_spill_files(root, monkeypatch, con, sample):
    monkeypatch.setenv("QUARRY_SQL_TIME_LIMIT_S", "3")
    monkeypatch.setenv("QUARRY_SQL_MEMORY_LIMIT", "100MB")
    settings = quarry_env(monkeypatch, root)
    catalog = cat.Catalog(settings)
    with pytest.raises(QueryError):
        sandbox.run_query(catalog, "SELECT count(*) FROM (SELECT DISTINCT md5(range::VARCHAR) || repeat('y', 200) "
                                   "FROM range(200000000))")
    spill = Path(sqlworker.Box.of(settings, ()).spill_root)
    assert [p for p in spill.iterdir() if p.is_dir() and p.name.isdigit()] == []


def test_a_huge_query_text_is_refused_before_it_is_parsed(catalog, victim):
    sql = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(40_000))
    with pytest.raises(QueryRefused, match="characters long"):
        sandbox.run_query(catalog, sql)


def test_a_page_of_huge_cells_stays_in_the_child(catalog, victim):
    """One 300 MB value would otherwise be carried into the app's memory to show one row."""
    with pytest.raises(QueryError, match="at most 32 MiB are shown"):
        sandbox.run_query(catalog, "SELECT repeat('x', 300000000) AS big")
    assert sandbox.run_query(catalog, "SELECT repeat('x', 1000) AS fine").table.num_rows == 1

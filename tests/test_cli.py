"""CLI: every command in human and --json form; every error is one line on stderr and a non-zero exit."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from core.cli.main import main
from tests.conftest import REPO, sample_table, write_parquet


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)  # exactly one JSON document


def test_register_list_show_preview_remove(capsys, settings, sample):
    code, out, _ = run(capsys, "datasets", "register", str(sample), "--name", "s")
    assert code == 0 and out.startswith("Registered s: 1,000 rows x 10 columns, 1 file(s)")
    assert '  quo"te' in out and "ünïcødé" in out
    assert [d["name"] for d in run_json(capsys, "datasets", "list")] == ["s"]
    info = run_json(capsys, "datasets", "show", "s")
    assert info["rows"] == 1000 and info["columns"][0] == {"name": "id", "type": "BIGINT"}
    page = run_json(capsys, "datasets", "preview", "s", "--sort", "id", "--desc", "--page", "2", "--page-size", "10",
                    "--columns", "id,country", "--where", "id < 500")
    assert [r[0] for r in page["rows"]] == list(range(489, 479, -1)) and page["total_rows"] == 500
    code, out, _ = run(capsys, "datasets", "preview", "s", "--page-size", "3")
    assert code == 0 and "Rows 1–3 of 1,000" in out
    code, out, _ = run(capsys, "datasets", "remove", "s")
    assert code == 0 and "its files at" in out and sample.exists()
    assert run_json(capsys, "datasets", "list") == []


def test_a_path_works_wherever_a_dataset_is_expected(capsys, settings, sample):
    info = run_json(capsys, "datasets", "show", str(sample))
    assert info["rows"] == 1000 and info["dataset"]["name"] == "sample"


def test_sql_prints_pages_json_and_writes_parquet(capsys, settings, sample, tmp_path):
    run(capsys, "datasets", "register", str(sample), "--name", "t")
    code, out, _ = run(capsys, "sql", "SELECT country, count(*) AS n FROM t GROUP BY 1 ORDER BY 2 DESC, 1",
                       "--limit", "2")
    assert code == 0 and "Rows 1–2 of 5" in out and "country" in out
    doc = run_json(capsys, "sql", "SELECT id, amount FROM t WHERE id IN (1, 17, 29) ORDER BY id")
    assert doc["rows"] == [[1, None], [17, None], [29, None]]  # inf, null and NaN all become JSON null
    out_file = tmp_path / "result.parquet"
    doc = run_json(capsys, "sql", "SELECT * FROM t WHERE id < 10", "--out", str(out_file))
    assert doc["rows"] == 10 and pq.read_table(out_file).num_rows == 10


@pytest.mark.parametrize(("argv", "words"), [
    (["datasets", "register", "missing.parquet"], "error: No file or folder at missing.parquet"),
    (["datasets", "show", "nope"], "No file or folder at nope"),
    (["datasets", "remove", "nope"], "There is no dataset named 'nope'"),
    (["sql", "DROP VIEW t"], "DROP statements are not allowed here"),
    (["sql", "SELECT * FROM read_csv('/etc/passwd')"], "read_csv() reads files directly"),
    (["sql", "WITH x AS (COPY (SELECT 1) TO 'v.parquet') SELECT 1"], "copies data to a file"),
    (["sql", "SELECT 1", "--limit", "0"], "page size must be between 1 and 1000"),
    (["datasets", "preview", "t", "--page", "0"], "--page must be 1 or more"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["datasets", "register"], "the following arguments are required: path"),
])
def test_errors_are_one_line(capsys, settings, sample, argv, words):
    run(capsys, "datasets", "register", str(sample), "--name", "t")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert words in err and err.count("\n") == 1 and err.startswith("error: ")


def test_bad_parquet_and_settings_errors(capsys, settings, root, monkeypatch):
    (root / "bad.parquet").write_text("not parquet")
    code, _, err = run(capsys, "datasets", "register", "bad.parquet")
    assert code == 2 and "bad.parquet is not a Parquet file" in err
    monkeypatch.setenv("QUARRY_THREADS", "zero")
    code, _, err = run(capsys, "datasets", "list")
    assert code == 2 and "QUARRY_THREADS" in err


def test_demo_writes_and_registers(capsys, settings, tmp_path):
    out_dir = settings.data_roots[0] / "demo"
    docs = run_json(capsys, "demo", "--only", "transactions", "--rows", "5000", "--out-dir", str(out_dir))
    assert docs[0]["rows"] == 5000 and docs[0]["registered_as"] == "transactions"
    again = run_json(capsys, "demo", "--only", "transactions", "--if-missing", "--out-dir", str(out_dir))
    assert again[0]["kept"] is True
    assert run_json(capsys, "datasets", "show", "transactions")["rows"] == 5000


def test_real_entry_point_never_prints_a_traceback(settings, tmp_path):
    """`python -m core` as a user runs it: a real process, one-line error, exit 2."""
    write_parquet(settings.data_roots[0] / "x.parquet", sample_table(3))
    env = {**os.environ}
    ok = subprocess.run([sys.executable, "-m", "core", "datasets", "register", "x.parquet", "--json"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and json.loads(ok.stdout)["rows"] == 3
    bad = subprocess.run([sys.executable, "-m", "core", "sql", "SELECT * FROM"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1

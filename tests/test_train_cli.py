"""The train, runs and score commands end to end on small generated data."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from core.cli.main import main
from tests.conftest import write_parquet


@pytest.fixture
def data(root):
    rng = np.random.default_rng(5)
    n = 3_000
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n)
    y = (x + (colour == "red") * 1.5 + rng.normal(scale=0.5, size=n)) > 0.5
    return write_parquet(root / "d.parquet", pa.table({"id": np.arange(n), "x": x, "colour": colour, "y": y}))


def _json(capsys) -> object:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_then_list_show_tag_rename_score_delete(capsys, settings, data, tmp_path):
    assert main(["datasets", "register", str(data), "--name", "d"]) == 0
    capsys.readouterr()
    assert main(["train", "d", "--target", "y", "--rounds", "60", "--split", "stratified", "--param", "num_leaves=7",
                 "--name", "first", "--json"]) == 0
    out = _json(capsys)
    run_id = out["run_id"]
    assert out["metrics"]["test"]["auc"] > out["baselines"]["prior"]["auc"] + 0.2
    assert out["device"]["used"] == "cpu" and out["data_path"] == "memory"
    assert main(["runs", "list", "--json"]) == 0
    listed = _json(capsys)
    assert [r["run_id"] for r in listed] == [run_id] and listed[0]["name"] == "first"
    assert main(["runs", "show", run_id, "--json"]) == 0
    info = _json(capsys)
    assert info["params"]["num_leaves"] == 7 and "id" not in info["features"]  # an ID is not a feature
    assert main(["runs", "tag", run_id, "--add", "keep"]) == 0 and main(["runs", "rename", run_id, "best"]) == 0
    capsys.readouterr()
    assert main(["runs", "list", "--tag", "keep", "--json"]) == 0 and _json(capsys)[0]["name"] == "best"
    out_file = tmp_path / "scored.parquet"
    assert main(["score", run_id, "d", "--out", str(out_file), "--keep", "id", "--json"]) == 0
    assert _json(capsys)["rows"] == 3_000
    got = duckdb.sql(f"SELECT count(*), count(DISTINCT id), min(score) >= 0, max(score) <= 1 FROM '{out_file}'")
    assert got.fetchall()[0] == (3_000, 3_000, True, True)
    assert main(["runs", "delete", run_id]) == 0
    capsys.readouterr()
    assert main(["runs", "list", "--json"]) == 0 and _json(capsys) == []


def test_train_errors_are_one_line(capsys, settings, data):
    assert main(["datasets", "register", str(data), "--name", "d"]) == 0
    assert main(["train", "d", "--target", "nope"]) == 2
    assert main(["train", "d", "--target", "y", "--param", "num_leaves=1"]) == 2
    assert "num_leaves" in capsys.readouterr().err
    assert main(["train", "d", "--target", "y", "--device", "cuda"]) == 2
    assert "build-lightgbm-cuda.sh" in capsys.readouterr().err
    assert main(["train", "d", "--target", "y", "--param", "oops"]) == 2
    assert main(["score", "no-such-run", "d", "--out", "/tmp/x.parquet"]) == 2


def test_train_with_a_search(capsys, settings, data):
    assert main(["datasets", "register", str(data), "--name", "d"]) == 0
    capsys.readouterr()
    assert main(["train", "d", "--target", "y", "--rounds", "30", "--trials", "3", "--json"]) == 0
    run_id = _json(capsys)["run_id"]
    assert main(["runs", "show", run_id, "--json"]) == 0
    tuning = _json(capsys)["tuning"]
    assert len(tuning["trials"]) == 3 and tuning["best_value"] == min(
        t["value"] for t in tuning["trials"] if t["state"] == "complete")


def test_train_with_cross_validation(capsys, settings, data):
    assert main(["datasets", "register", str(data), "--name", "d"]) == 0
    capsys.readouterr()
    assert main(["train", "d", "--target", "y", "--rounds", "20", "--cv", "3", "--json"]) == 0
    out = _json(capsys)
    assert out["cv"]["folds"] == 3
    assert main(["runs", "show", out["run_id"], "--json"]) == 0
    cv = _json(capsys)["cv"]
    assert cv["folds"] == 3 and len(cv["per_fold"]) == 3 and cv["rounds"] <= 20
    assert cv["mean"]["auc"] == pytest.approx(np.mean([f["auc"] for f in cv["per_fold"]]))
    assert main(["train", "d", "--target", "y", "--cv", "1"]) == 2
    assert "The 'cv_folds' parameter must be 0 (off) or an int in [2, 20]. Got 1." in capsys.readouterr().err


def test_the_memory_budget_setting_decides_the_data_path(capsys, settings, data, monkeypatch):
    monkeypatch.setenv("QUARRY_TRAIN_MEMORY_MB", "0.01")  # 10 kB: less than 2,100 rows x 2 features x 8 bytes
    assert main(["datasets", "register", str(data), "--name", "d"]) == 0
    capsys.readouterr()
    assert main(["train", "d", "--target", "y", "--rounds", "10", "--json"]) == 0
    assert _json(capsys)["data_path"] == "sequence"


def test_a_path_that_was_never_registered_trains_evaluates_and_scores(capsys, settings, root, tmp_path):
    """README: a dataset is 'a registered name or a path' for every command (the training worker used to miss
    the path's view: 'Table with name ... does not exist')."""
    from tests.eval_support import task_table

    path = write_parquet(root / "loose" / "rows.parquet", task_table("binary", rows=1500))
    assert main(["train", str(path), "--target", "y", "--rounds", "10", "--device", "cpu", "--json"]) == 0
    run_id = _json(capsys)["run_id"]
    assert main(["datasets", "list", "--json"]) == 0
    assert _json(capsys) in ([], {"datasets": []})  # trained from the path: nothing was registered
    assert main(["runs", "show", run_id, "--json"]) == 0
    assert _json(capsys)["source_path"] == str(path)
    assert main(["evaluate", run_id, "--json"]) == 0
    assert _json(capsys)["test_rows"] == pytest.approx(1500 * 0.15, abs=60)
    out = tmp_path / "scored.parquet"
    assert main(["score", run_id, str(path), "--out", str(out), "--json"]) == 0
    assert duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchall()[0][0] == 1500

"""The run registry (core/model/runs.py): saving, listing, loading, renaming, tagging, deleting, comparing.

Runs are made from tiny real LightGBM models trained here on generated data, encoded per the run
folder contract by a plain-Python reference encoder (``reference_matrix``, also used by test_score).
Saving must be atomic: child processes are killed in the middle of save_run and the registry must
never show a run that is not complete; two processes saving at once must both land.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pytest

from core.errors import QuarryError
from core.model import runs
from core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
FEATURES = ["x1", "x2", "color", "flag", "day", "ts"]
COLORS = ["red", "green", "blue", "violet"]
CLASSES = {"binary": ["no", "yes"], "multiclass": ["a", "b", "c"]}


# ----------------------------------------------------------------------------------------------
# Data, a reference encoder and tiny models (shared with test_score)


def make_table(rows: int = 400, seed: int = 0, colors: list[str] = COLORS) -> pa.Table:
    """Generated rows: a float with nulls, an int, a string category with nulls, a bool, a date, a timestamp,
    an id and a region (for keeping), and a label per task."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x1_missing = rng.random(rows) < 0.1
    x2 = rng.integers(0, 100, rows)
    color = rng.choice(colors, rows)
    color_missing = rng.random(rows) < 0.05
    flag = rng.random(rows) < 0.4
    days = rng.integers(0, 700, rows)
    seconds = rng.integers(0, 700 * 86_400, rows)
    micros = rng.integers(0, 1_000_000, rows)
    signal_ = np.where(x1_missing, 0.5, x1) + x2 / 50 + np.select([color == "red", color == "blue"], [1.0, -1.0], 0) \
        + flag * 0.7 + days / 700
    noisy = signal_ + rng.normal(scale=0.5, size=rows)
    start = datetime(2024, 1, 1)
    return pa.table({
        "id": pa.array(np.arange(rows) + seed * 100_000, pa.int64()),
        "region": pa.array([f"r{i % 5}" for i in range(rows)]),
        "x1": pa.array([None if m else float(v) for v, m in zip(x1, x1_missing, strict=True)], pa.float64()),
        "x2": pa.array(x2, pa.int64()),
        "color": pa.array([None if m else str(c) for c, m in zip(color, color_missing, strict=True)]),
        "flag": pa.array([None if i % 23 == 0 else bool(f) for i, f in enumerate(flag)], pa.bool_()),
        "day": pa.array([date(2023, 1, 1) + timedelta(days=int(d)) for d in days], pa.date32()),
        "ts": pa.array([start + timedelta(seconds=int(s), microseconds=int(u)) for s, u in zip(seconds, micros,
                                                                                             strict=True)],
                       pa.timestamp("us")),
        "label_binary": pa.array(np.where(noisy > np.median(noisy), "yes", "no")),
        "label_multiclass": pa.array(np.array(["a", "b", "c"])[np.digitize(noisy, np.quantile(noisy, [1 / 3, 2 / 3]))]),
        "label_regression": pa.array(noisy, pa.float64()),
    })


def _encode_value(value: object, categories: list | None) -> float:
    """One value per the run folder contract, in plain Python."""
    if categories is not None:
        return float(categories.index(value)) if value is not None and value in categories else np.nan
    if value is None:
        return np.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
    if isinstance(value, date):
        return float((value - date(1970, 1, 1)).days * 86_400)
    return float(value)


def reference_matrix(table: pa.Table, features: list[str], categorical: dict[str, list]) -> np.ndarray:
    """The model input, encoded value by value in Python (the slow, obviously correct reference)."""
    cols = table.select(features).to_pydict()
    return np.array([[_encode_value(v, categorical.get(f)) for v in cols[f]] for f in features],
                    dtype=np.float64).T.reshape(table.num_rows, len(features))


def labels(table: pa.Table, task: str) -> np.ndarray:
    values = table.column(f"label_{task}").to_pylist()
    if task == "regression":
        return np.array(values, dtype=np.float64)
    return np.array([CLASSES[task].index(v) for v in values], dtype=np.float64)


def train_booster(table: pa.Table, task: str, features: list[str], categorical: dict[str, list],
                  rounds: int = 12, **params) -> lgb.Booster:
    """A tiny, deterministic LightGBM model on the reference encoding."""
    x = reference_matrix(table, features, categorical)
    objective = {"binary": {"objective": "binary"}, "multiclass": {"objective": "multiclass", "num_class": 3},
                 "regression": {"objective": "regression"}}[task]
    data = lgb.Dataset(x, labels(table, task), feature_name=features,
                       categorical_feature=[features.index(c) for c in categorical], free_raw_data=False)
    return lgb.train({**objective, "num_leaves": 7, "min_data_in_leaf": 5, "min_data_per_group": 5,
                      "cat_smooth": 1, "learning_rate": 0.2, "verbose": -1, "seed": 1, "deterministic": True,
                      "num_threads": 1, **params}, data, num_boost_round=rounds)


def run_json(task: str, features: list[str], categorical: dict[str, list], **extra) -> dict:
    """A run.json per the contract (its metrics made up: the registry only files them)."""
    doc = {
        "format": "quarry.run", "version": 1, "run_id": runs.new_run_id(), "name": f"{task} run",
        "created_at": datetime.now(UTC).isoformat(), "dataset": "train", "fingerprint": "f" * 20,
        "target": f"label_{task}", "task": task, "features": features, "categorical": categorical,
        "split": {"method": "random", "valid": 0.2, "test": 0.2, "seed": 7},
        "params": {"num_leaves": 7, "learning_rate": 0.2, "num_boost_round": 12},
        "device": {"requested": "auto", "used": "cpu", "reason": "no GPU"}, "data_path": "memory",
        "rows": {"train": 240, "valid": 80, "test": 80}, "timings": {"train_s": 0.1},
        "metrics": {"valid": {"auc": 0.8, "logloss": 0.5}, "test": {"auc": 0.79, "logloss": 0.52}}
        if task == "binary" else {"valid": {"logloss": 0.9, "accuracy": 0.6}, "test": {"logloss": 0.95}}
        if task == "multiclass" else {"valid": {"rmse": 0.6, "mae": 0.5}, "test": {"rmse": 0.62, "mae": 0.51}},
        "baselines": {}, "best_iteration": 12, "tags": [],
    }
    if task != "regression":
        doc["classes"] = CLASSES[task]
    return {**doc, **extra}


def save_trained(settings: Settings, task: str, table: pa.Table | None = None, *, features: list[str] = FEATURES,
                 categorical: dict | None = None, recipe_json: str | None = None, booster: lgb.Booster | None = None,
                 **extra) -> tuple[str, lgb.Booster]:
    """Train a tiny model on `table` (default: generated rows) and save it as a run; (run id, booster)."""
    table = make_table() if table is None else table
    categorical = {"color": COLORS[:3]} if categorical is None else categorical
    booster = booster or train_booster(table, task, features, categorical)
    curve = {"metric": "l2", "train": [0.5, 0.4], "valid": [0.55, 0.45]}
    importance = {"feature": features, "gain": booster.feature_importance("gain").tolist(),
                  "split": booster.feature_importance("split").tolist()}
    doc = run_json(task, features, categorical, **extra)
    path = runs.save_run(settings, doc, booster.model_to_string(), curve, importance, recipe_json)
    return path.name, booster


# ----------------------------------------------------------------------------------------------
# Save, list, load


@pytest.fixture(scope="module")
def boosters() -> dict[str, lgb.Booster]:
    table = make_table()
    return {t: train_booster(table, t, FEATURES, {"color": COLORS[:3]}) for t in ("binary", "multiclass", "regression")}


def test_run_ids_sort_by_creation_time_and_are_unique():
    ids = []
    for _ in range(5):
        ids.append(runs.new_run_id())
        time.sleep(0.002)
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert all(runs.RUN_ID_RE.match(i) for i in ids)
    assert len({runs.new_run_id() for _ in range(200)}) == 200


def test_save_writes_the_folder_of_the_contract_and_load_reads_it_back(settings, boosters):
    run_id, booster = save_trained(settings, "binary", booster=boosters["binary"], recipe_json=None)
    folder = settings.workspace / "runs" / run_id
    assert sorted(p.name for p in folder.iterdir()) == ["curve.json", "importance.json", "model.txt", "run.json"]
    doc = json.loads((folder / "run.json").read_text())
    assert doc["format"] == "quarry.run" and doc["version"] == 1 and doc["run_id"] == run_id
    assert doc["features"] == FEATURES and doc["categorical"] == {"color": ["red", "green", "blue"]}
    assert (folder / "model.txt").read_text() == booster.model_to_string()
    assert not [p for p in (settings.workspace / "runs").iterdir() if p.name.startswith(".")]

    run = runs.load_run(settings, run_id)
    assert run.info == doc and run.recipe is None and run.recipe_json is None
    assert run.task == "binary" and run.classes == ["no", "yes"] and run.threshold == 0.5
    assert run.curve == {"metric": "l2", "train": [0.5, 0.4], "valid": [0.55, 0.45]}
    assert run.importance["feature"] == FEATURES
    assert "model_text" not in run.__dict__  # read lazily
    assert run.model_text == booster.model_to_string()
    x = np.random.default_rng(3).normal(size=(20, len(FEATURES)))
    np.testing.assert_array_equal(run.booster.predict(x), booster.predict(x))


def test_list_shows_saved_runs_with_their_main_metric_newest_first(settings, boosters):
    ids = [save_trained(settings, t, booster=boosters[t])[0] for t in ("binary", "multiclass", "regression")]
    listed = runs.list_runs(settings)
    assert [r.run_id for r in listed] == ids[::-1]
    by_task = {r.task: r for r in listed}
    assert (by_task["binary"].metric, by_task["binary"].valid_metric, by_task["binary"].test_metric) == \
        ("auc", 0.8, 0.79)
    assert (by_task["multiclass"].metric, by_task["multiclass"].valid_metric, by_task["multiclass"].test_metric) == \
        ("logloss", 0.9, 0.95)
    assert (by_task["regression"].metric, by_task["regression"].valid_metric) == ("rmse", 0.6)
    r = by_task["binary"]
    assert (r.name, r.dataset, r.target, r.device, r.tags, r.status) == \
        ("binary run", "train", "label_binary", "cpu", (), "complete")
    assert datetime.fromisoformat(r.created_at).tzinfo is not None
    assert r.to_json()["tags"] == []


def test_list_filters_and_sorts(settings, boosters):
    a, _ = save_trained(settings, "regression", booster=boosters["regression"], dataset="one",
                        metrics={"valid": {"rmse": 0.3}, "test": {}})
    b, _ = save_trained(settings, "regression", booster=boosters["regression"], dataset="two",
                        metrics={"valid": {"rmse": 0.1}, "test": {}})
    c, _ = save_trained(settings, "regression", booster=boosters["regression"], dataset="one", metrics={})
    d, _ = save_trained(settings, "binary", booster=boosters["binary"], dataset="one")
    assert [r.run_id for r in runs.list_runs(settings, dataset="one")] == [d, c, a]
    assert [r.run_id for r in runs.list_runs(settings, task="regression", dataset="one")] == [c, a]
    assert [r.run_id for r in runs.list_runs(settings, order_by="created_at", descending=False)] == [a, b, c, d]
    # missing metrics sort last either way
    assert [r.run_id for r in runs.list_runs(settings, task="regression", order_by="valid_metric",
                                             descending=False)] == [b, a, c]
    assert [r.run_id for r in runs.list_runs(settings, task="regression", order_by="valid_metric")] == [a, b, c]
    with pytest.raises(QuarryError, match="cannot be sorted by 'gain; DROP TABLE runs'") as err:
        runs.list_runs(settings, order_by="gain; DROP TABLE runs")
    assert "valid_metric" in err.value.hint


def test_an_unknown_run_id_says_which_runs_exist(settings, boosters):
    run_id, _ = save_trained(settings, "binary", booster=boosters["binary"])
    for bad in ("20990101-000000-000-000000", "../../etc", ".partial-x", ""):
        with pytest.raises(QuarryError, match="No run with the id") as err:
            runs.load_run(settings, bad)
        assert run_id in err.value.hint
    with pytest.raises(QuarryError, match="No run"):
        runs.delete_run(settings, "nope")
    with pytest.raises(QuarryError, match="No run"):
        runs.rename_run(settings, "nope", "x")


# ----------------------------------------------------------------------------------------------
# Run ids are names, never paths

BAD_RUN_IDS = ["../x", "../../etc/passwd", "..", ".", "/etc", "/tmp/run", "x/../y", "run\n", "run\x00",
               "ru\x00n", "a" * 10_000, "", " run", "run ", "rün", "..\\x", "-run", "_run", "a" * 81]


@pytest.mark.parametrize("bad", BAD_RUN_IDS, ids=lambda b: repr(b)[:30])
def test_a_bad_run_id_is_refused_before_any_path_is_made(settings, boosters, bad):
    run_id, _ = save_trained(settings, "binary", booster=boosters["binary"])
    escape = settings.workspace / "x"  # what "../x" would name from runs/ or evaluations/
    escape.mkdir()
    (escape / "keep").write_text("keep")
    calls = (runs.load_run, runs.delete_run, lambda s, i: runs.rename_run(s, i, "new"),
             lambda s, i: runs.tag_run(s, i, add=["t"]), lambda s, i: runs.compare_runs(s, [run_id, i]))
    for call in calls:
        with pytest.raises(runs.RunError, match="No run with the id") as err:
            call(settings, bad)
        assert len(err.value.message) < 80 and run_id in err.value.hint
    with pytest.raises(runs.RunIdError, match="is not a run id") as err:
        runs.cache_dir(settings, bad)
    assert len(err.value.message) < 80
    with pytest.raises(runs.RunIdError):
        runs.check_run_id(bad)
    assert (escape / "keep").read_text() == "keep"
    assert [r.run_id for r in runs.list_runs(settings)] == [run_id]


def test_run_ids_that_are_names_pass(settings):
    for good in (runs.new_run_id(), "a", "A-b_9", "a" * 80):
        assert runs.check_run_id(good) == good
        assert runs.cache_dir(settings, good) == (settings.workspace / "evaluations").resolve() / good
    for bad in (None, 7, b"run", ["run"]):
        with pytest.raises(runs.RunIdError):
            runs.check_run_id(bad)


def test_a_run_folder_linked_from_outside_is_refused(settings, boosters, root):
    import shutil

    run_id, _ = save_trained(settings, "binary", booster=boosters["binary"])
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    shutil.move(settings.workspace / "runs" / run_id, elsewhere / run_id)
    (settings.workspace / "runs" / run_id).symlink_to(elsewhere / run_id, target_is_directory=True)
    with pytest.raises(runs.RunIdError, match="is outside"):
        runs.load_run(settings, run_id)
    with pytest.raises(runs.RunIdError, match="is outside"):
        runs.delete_run(settings, run_id)
    assert runs.list_runs(settings) == []
    assert (elsewhere / run_id / "run.json").is_file()


def test_an_evaluation_folder_linked_from_outside_is_refused(settings, boosters, root):
    run_id, _ = save_trained(settings, "binary", booster=boosters["binary"])
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "keep").write_text("keep")
    (settings.workspace / "evaluations").mkdir()
    (settings.workspace / "evaluations" / run_id).symlink_to(root / "elsewhere", target_is_directory=True)
    with pytest.raises(runs.RunIdError, match="is outside"):
        runs.cache_dir(settings, run_id)
    with pytest.raises(runs.RunIdError, match="is outside"):
        runs.delete_run(settings, run_id)  # refused before anything is removed
    assert (root / "elsewhere" / "keep").read_text() == "keep"
    assert [r.run_id for r in runs.list_runs(settings)] == [run_id]


def test_a_run_json_naming_another_run_id_is_damaged(settings, boosters):
    """run.json's id names the run's caches (cache_dir): one that is not the folder's name is refused."""
    run_id, _ = save_trained(settings, "binary", booster=boosters["binary"])
    path = settings.workspace / "runs" / run_id / "run.json"
    for other in ("../../x", "20990101-000000-000-000000"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "run_id": other}))
        with pytest.raises(runs.RunError, match="damaged: run.json names the run"):
            runs.load_run(settings, run_id)


def test_save_refuses_a_bad_run_and_leaves_nothing(settings, boosters):
    text = boosters["binary"].model_to_string()
    good = run_json("binary", FEATURES, {"color": ["red"]})
    for doc, match in (({**good, "task": "ranking"}, "task must be one of"),
                       ({**good, "classes": ["only"]}, "needs 'classes'"),
                       ({**good, "features": []}, "needs 'features'"),
                       ({**good, "categorical": {"nope": ["a"]}}, "categorical"),
                       ({**good, "run_id": "../escape"}, "cannot be a run id"),
                       ({**good, "format": "other"}, "format")):
        with pytest.raises(QuarryError, match=match):
            runs.save_run(settings, doc, text, {}, {}, None)
    with pytest.raises(QuarryError, match="text format"):
        runs.save_run(settings, good, "\x80\x04pickle", {}, {}, None)
    with pytest.raises(QuarryError, match="not valid JSON"):
        runs.save_run(settings, good, text, {}, {}, "{nope")
    assert not (settings.workspace / "runs").exists() or not list((settings.workspace / "runs").iterdir())
    assert runs.list_runs(settings) == []


def test_a_save_that_fails_midway_leaves_no_folder(settings, boosters, monkeypatch):
    real = runs._write

    def failing(path: Path, text: str) -> None:
        if path.name == "importance.json":
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(runs, "_write", failing)
    with pytest.raises(OSError, match="No space"):
        save_trained(settings, "binary", booster=boosters["binary"])
    assert list((settings.workspace / "runs").iterdir()) == []
    assert runs.list_runs(settings) == []


def test_the_same_run_id_cannot_be_saved_twice(settings, boosters):
    run_id, _ = save_trained(settings, "binary", booster=boosters["binary"])
    with pytest.raises(QuarryError, match="already exists"):
        save_trained(settings, "binary", booster=boosters["binary"], run_id=run_id)
    assert len(runs.list_runs(settings)) == 1


# ----------------------------------------------------------------------------------------------
# Rename, tag, delete, compare


def test_rename_and_tag_change_the_folder_and_the_registry(settings, boosters):
    a, _ = save_trained(settings, "binary", booster=boosters["binary"])
    b, _ = save_trained(settings, "binary", booster=boosters["binary"], tags=["baseline"])
    summary = runs.rename_run(settings, a, "  fewer leaves  ")
    assert summary.name == "fewer leaves"
    assert runs.tag_run(settings, a, add=["keep", "demo", "keep"]).tags == ("keep", "demo")
    assert runs.tag_run(settings, a, add="best", remove=["demo", "absent"]).tags == ("keep", "best")
    assert [r.run_id for r in runs.list_runs(settings, tag="keep")] == [a]
    assert [r.run_id for r in runs.list_runs(settings, tag="baseline")] == [b]
    doc = runs.load_run(settings, a).info
    assert (doc["name"], doc["tags"]) == ("fewer leaves", ["keep", "best"])
    with pytest.raises(QuarryError, match="run name"):
        runs.rename_run(settings, a, "   ")
    with pytest.raises(QuarryError, match="tag"):
        runs.tag_run(settings, a, add=["x" * 51])


def test_delete_removes_folder_and_row(settings, boosters):
    a, _ = save_trained(settings, "binary", booster=boosters["binary"])
    b, _ = save_trained(settings, "binary", booster=boosters["binary"])
    runs.delete_run(settings, a)
    assert [r.run_id for r in runs.list_runs(settings)] == [b]
    assert sorted(p.name for p in (settings.workspace / "runs").iterdir()) == [b]
    with duckdb.connect(str(runs.registry_path(settings)), read_only=True) as db:
        assert db.execute("SELECT run_id FROM runs").fetchall() == [(b,)]
    with pytest.raises(QuarryError, match="No run"):
        runs.load_run(settings, a)


def test_compare_shows_only_differing_parameters_and_all_metrics(settings, boosters):
    a, _ = save_trained(settings, "binary", booster=boosters["binary"],
                        params={"num_leaves": 7, "learning_rate": 0.2, "seed": 1})
    b, _ = save_trained(settings, "binary", booster=boosters["binary"],
                        params={"num_leaves": 31, "learning_rate": 0.2, "seed": 1, "max_bin": 63},
                        metrics={"valid": {"auc": 0.85}, "test": {"auc": 0.84, "f1": 0.7}})
    got = runs.compare_runs(settings, [a, b, a])
    assert [r["run_id"] for r in got["runs"]] == [a, b]
    assert got["params"] == {"num_leaves": [7, 31], "max_bin": [None, 63]}
    assert got["metrics"] == {"valid": {"auc": [0.8, 0.85], "logloss": [0.5, None]},
                              "test": {"auc": [0.79, 0.84], "logloss": [0.52, None], "f1": [None, 0.7]}}
    assert got["setup"] == {}  # same dataset, target, features, split
    c, _ = save_trained(settings, "binary", booster=boosters["binary"], dataset="other",
                        split={"method": "time", "column": "ts"})
    setup = runs.compare_runs(settings, [a, c])["setup"]
    assert setup["dataset"] == ["train", "other"] and set(setup) == {"dataset", "split"}
    with pytest.raises(QuarryError, match="at least two"):
        runs.compare_runs(settings, [a])
    with pytest.raises(QuarryError, match="No run"):
        runs.compare_runs(settings, [a, "missing"])


# ----------------------------------------------------------------------------------------------
# Reconciliation: the folders are the truth


def test_deleting_the_registry_file_loses_nothing(settings, boosters):
    a, _ = save_trained(settings, "binary", booster=boosters["binary"])
    b, _ = save_trained(settings, "regression", booster=boosters["regression"])
    runs.rename_run(settings, a, "renamed")
    runs.tag_run(settings, b, add=["prod"])
    before = runs.list_runs(settings)
    for p in settings.workspace.glob("runs.duckdb*"):
        p.unlink()
    assert runs.list_runs(settings) == before
    assert runs.registry_path(settings).exists()


def test_rows_whose_folder_is_gone_are_dropped_and_damaged_folders_are_not_listed(settings, boosters):
    import shutil

    a, _ = save_trained(settings, "binary", booster=boosters["binary"])
    b, _ = save_trained(settings, "binary", booster=boosters["binary"])
    shutil.rmtree(settings.workspace / "runs" / a)
    damaged = settings.workspace / "runs" / "20200101-000000-000-abcdef"
    damaged.mkdir()
    (damaged / "run.json").write_text("{not json")
    assert [r.run_id for r in runs.list_runs(settings)] == [b]
    with pytest.raises(QuarryError, match="damaged"):
        runs.load_run(settings, damaged.name)


def test_stale_partial_folders_are_ignored_then_removed(settings, boosters):
    save_trained(settings, "binary", booster=boosters["binary"])
    young = settings.workspace / "runs" / ".partial-20250101-000000-000-aaaaaa"
    old = settings.workspace / "runs" / ".partial-20240101-000000-000-bbbbbb"
    for folder in (young, old):
        folder.mkdir()
        (folder / "model.txt").write_text("tree\n")
        (folder / "run.json").write_text(json.dumps(run_json("binary", FEATURES, {})))
    two_hours_ago = time.time() - 7200
    for p in (old / "model.txt", old / "run.json", old):
        os.utime(p, (two_hours_ago, two_hours_ago))
    assert len(runs.list_runs(settings)) == 1
    assert young.exists() and not old.exists()


# ----------------------------------------------------------------------------------------------
# Other processes: killed saves, concurrent saves, a held registry file

CHILD = r"""
import json, os, sys, time
from pathlib import Path
from core.model import runs
from core.settings import load_settings

mode, payload_path, marker = sys.argv[1:4]
payload = json.loads(Path(payload_path).read_text())
settings = load_settings()
runs.LOCK_TRIES = int(payload.get("lock_tries", runs.LOCK_TRIES))

def block(what):
    # hang forever right after model.txt is written (_write), or before the registry row (_upsert)
    real = getattr(runs, what)
    def stuck(*args):
        if what == "_write":
            real(*args)
        if what == "_upsert" or args[0].name == "model.txt":
            Path(marker).touch()
            time.sleep(120)
        if what == "_upsert":
            real(*args)
    setattr(runs, what, stuck)

if mode == "hold_registry":
    import duckdb
    settings.workspace.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(runs.registry_path(settings)))
    Path(marker).touch()
    time.sleep(float(payload["hold_s"]))
    con.close()
    sys.exit(0)
if mode == "block_write":
    block("_write")
if mode == "block_registry":
    block("_upsert")
count = int(payload.get("count", 1))
if mode == "ready":
    Path(marker).touch()
for i in range(count):
    doc = dict(payload["run_json"], run_id=payload.get("run_id") or runs.new_run_id(), name=f"{os.getpid()}-{i}")
    runs.save_run(settings, doc, payload["model_text"], payload["curve"], payload["importance"], None)
"""


def _child(tmp_path: Path, mode: str, payload: dict, tag: str = "") -> tuple[subprocess.Popen, Path]:
    payload_path = tmp_path / f"payload{tag}.json"
    payload_path.write_text(json.dumps(payload))
    marker = tmp_path / f"marker{tag}"
    marker.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(payload_path), str(marker)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    return proc, marker


def _wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read().decode()}")
        assert time.monotonic() < deadline, "child never reached the point to kill it at"
        time.sleep(0.01)


def _payload(booster: lgb.Booster, **extra) -> dict:
    return {"run_json": run_json("binary", FEATURES, {"color": COLORS[:3]}),
            "model_text": booster.model_to_string(), "curve": {"metric": "auc"}, "importance": {}, **extra}


def _check_invariant(settings: Settings, model_text: str) -> list[str]:
    """Every listed run is complete and loads; no partial folder is listed. The listed ids."""
    listed = runs.list_runs(settings)
    for r in listed:
        run = runs.load_run(settings, r.run_id)
        assert run.model_text == model_text
        assert run.curve == {"metric": "auc"}
    assert not any(r.run_id.startswith(".") for r in listed)
    return [r.run_id for r in listed]


def test_a_save_killed_while_writing_files_leaves_no_run(settings, boosters, tmp_path):
    run_id = runs.new_run_id()
    proc, marker = _child(tmp_path, "block_write", _payload(boosters["binary"], run_id=run_id))
    _wait_for(marker, proc)
    partial = settings.workspace / "runs" / f".partial-{run_id}"
    assert partial.is_dir() and (partial / "model.txt").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert runs.list_runs(settings) == []
    with pytest.raises(QuarryError, match="No run"):
        runs.load_run(settings, run_id)
    assert partial.is_dir()  # young: left alone (its save might still be running), never listed
    old = time.time() - 7200
    for p in (*partial.iterdir(), partial):
        os.utime(p, (old, old))
    assert runs.list_runs(settings) == []
    assert not partial.exists()


def test_a_save_killed_before_its_registry_row_is_indexed_by_the_next_listing(settings, boosters, tmp_path):
    run_id = runs.new_run_id()
    proc, marker = _child(tmp_path, "block_registry", _payload(boosters["binary"], run_id=run_id))
    _wait_for(marker, proc)
    assert (settings.workspace / "runs" / run_id / "run.json").exists()  # renamed: complete
    proc.send_signal(signal.SIGKILL)  # it held the lock and the DuckDB file: both go with it
    proc.wait()
    assert _check_invariant(settings, boosters["binary"].model_to_string()) == [run_id]


def test_saves_killed_at_many_moments_never_leave_an_incomplete_run(settings, boosters, tmp_path):
    # a 20 MB model takes tens of milliseconds to write: kills land before, during and after the rename
    text = boosters["binary"].model_to_string() + "\n" * 20_000_000
    attempted = []
    for attempt, delay in enumerate((0, 0.01, 0.03, 0.06, 0.1, 0.2)):
        run_id = runs.new_run_id()
        attempted.append(run_id)
        payload = {**_payload(boosters["binary"], run_id=run_id), "model_text": text}
        proc, marker = _child(tmp_path, "ready", payload, tag=str(attempt))
        _wait_for(marker, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        listed = _check_invariant(settings, text)
        assert set(listed) <= set(attempted)
        partials = [p.name for p in (settings.workspace / "runs").iterdir() if p.name.startswith(".partial-")]
        assert all(p.removeprefix(".partial-") not in listed for p in partials)


def test_two_processes_saving_at_once_both_land(settings, boosters, tmp_path):
    # no retries on a held DuckDB file: only the file lock keeps the two from colliding
    payload = {**_payload(boosters["binary"]), "count": 12, "lock_tries": 1}
    children = [_child(tmp_path, "save", payload, tag=str(i))[0] for i in range(2)]
    for proc in children:
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    with duckdb.connect(str(runs.registry_path(settings)), read_only=True) as db:  # before any reconciliation
        names = [r[0] for r in db.execute("SELECT name FROM runs").fetchall()]
    assert len(names) == 24
    assert {n.split("-")[0] for n in names} == {str(p.pid) for p in children}
    assert len(_check_invariant(settings, boosters["binary"].model_to_string())) == 24


def test_a_registry_file_held_briefly_by_another_program_is_waited_for(settings, boosters, tmp_path):
    save_trained(settings, "binary", booster=boosters["binary"])
    proc, marker = _child(tmp_path, "hold_registry", {"hold_s": 0.8})
    _wait_for(marker, proc)
    started = time.monotonic()
    assert len(runs.list_runs(settings)) == 1
    assert time.monotonic() - started > 0.3  # it did wait
    proc.wait()


def test_a_registry_file_held_for_long_gives_a_clear_error(settings, boosters, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "LOCK_TRIES", 3)
    proc, marker = _child(tmp_path, "hold_registry", {"hold_s": 30})
    try:
        _wait_for(marker, proc)
        with pytest.raises(QuarryError, match="held by another program") as err:
            runs.list_runs(settings)
        assert "DuckDB shell" in err.value.hint
        # a save still lands (the folder is the truth) and is listed once the file is free
        run_id, _ = save_trained(settings, "binary", booster=boosters["binary"])
    finally:
        proc.kill()
        proc.wait()
    assert [r.run_id for r in runs.list_runs(settings)] == [run_id]

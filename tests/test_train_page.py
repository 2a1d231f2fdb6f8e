"""Train, Runs and Score pages on a small generated binary dataset: jobs, reattaching, cancel, runs, scoring."""
from __future__ import annotations

import time

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from core import catalog as cat
from core import engine, jobs, runs, train_job
from tests.conftest import REPO, write_parquet

APP = str(REPO / "app.py")
ROWS = 3000
SUBMIT = "FormSubmitter:train_form-Start training"


def fraud_table(rows: int = ROWS) -> pa.Table:
    """A binary target that depends on x1, x2 and a category; `id` is ID-like (left out by default)."""
    rng = np.random.default_rng(7)
    x1, x2 = rng.normal(size=rows), rng.uniform(0, 10, size=rows)
    channel = rng.choice(["web", "shop", "phone"], size=rows)
    logit = 1.5 * x1 - 0.4 * x2 + 1.0 * (channel == "web") + 1.0
    y = rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))
    return pa.table({"id": pa.array(range(rows), pa.int64()), "x1": x1, "x2": x2, "channel": channel.tolist(),
                     "y": pa.array(y.tolist(), pa.bool_())})


@pytest.fixture(autouse=True)
def no_workers_left(settings):
    """A failing test must not leave a training worker running."""
    yield
    for job in jobs.list_jobs(settings):
        if job.state == "running":
            jobs.cancel(settings, job.job_id)


@pytest.fixture
def fraud(settings, root):
    path = write_parquet(root / "fraud.parquet", fraud_table())
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(path), name="fraud")
    con.close()
    return path


def open_page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def fill_form(at: AppTest, *, rounds: int = 20, early: int = 0, params: str = "", name: str = "") -> AppTest:
    at.selectbox(key="train_target").set_value("y")
    at.number_input(key="train_rounds").set_value(rounds)
    at.number_input(key="train_early").set_value(early)
    at.text_area(key="train_params").set_value(params)
    at.text_input(key="train_name").set_value(name)
    at.button(key=SUBMIT).click().run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def train_run(settings, name: str, **extra) -> str:
    """A run trained in this process (no worker): fast set-up for the Runs and Score pages."""
    params = {"dataset": "fraud", "target": "y", "num_boost_round": 15, "early_stopping_rounds": 0,
              "device": "cpu", "name": name, **extra}
    return train_job.run(params)["run_id"]


def _until(pred, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


# ---- Train


def test_train_starts_a_job_shows_the_run_and_reattaches(settings, fraud):
    at = open_page("train")
    assert not at.expander[0].proto.expanded  # Advanced starts closed
    fill_form(at, name="first try")
    job_id = at.session_state["train_job"]
    assert at.query_params["job"] == job_id
    assert jobs.get(settings, job_id).params["target"] == "y"
    assert at.button(key="train_cancel")  # the live view, with its Cancel button
    job = jobs.wait(settings, job_id, timeout_s=60)
    assert job.state == "done", job.error
    run_id = job.result["run_id"]

    at.run()  # a rerun shows how it ended
    assert f"Training finished: run {run_id} saved." in texts(at.success)
    table = next(d.value for d in at.dataframe if "model (test)" in d.value.columns)
    assert list(table["metric"]) == ["auc", "logloss", "accuracy"]
    assert {"prior baseline", "linear baseline"} <= set(table.columns)
    link = at.get("page_link")[0]
    assert link.value == f"Open run {run_id} on the Runs page" and link.proto.page.endswith("runs")
    assert link.proto.query_string == f"run={run_id}"
    assert [(r.run_id, r.name, r.target) for r in runs.list_runs(settings)] == [(run_id, "first try", "y")]
    assert run_id in list(next(d.value for d in at.dataframe if "job" in d.value.columns)["run"])

    other_tab = open_page("train", job=job_id)  # a reload or another tab: the URL's job reattaches
    assert f"Training finished: run {run_id} saved." in texts(other_tab.success)
    assert other_tab.session_state["train_job"] == job_id

    colleague = open_page("train")  # no job in the URL or the session: pick it from the workspace's jobs
    assert not colleague.success and "train_job" not in colleague.session_state
    colleague.selectbox(key="train_follow_pick").set_value(job_id).run()
    colleague.button(key="train_follow").click().run()
    assert f"Training finished: run {run_id} saved." in texts(colleague.success)
    assert colleague.query_params["job"] == job_id


def test_cancel_stops_the_worker_and_keeps_no_run(settings, fraud):
    at = open_page("train")
    fill_form(at, rounds=100_000, early=0, params="learning_rate=0.0001\nnum_leaves=7")
    job_id = at.session_state["train_job"]
    _until(lambda: jobs.get(settings, job_id).last.get("iteration"))  # training is under way
    at.run()
    assert "Iteration" in [m.label for m in at.metric] and at.get("plotly_chart")
    at.button(key="train_cancel").click().run()  # the live fragment's button
    assert jobs.get(settings, job_id).state == "cancelled"
    pid = int((jobs.folder(settings) / job_id / "pid").read_text())
    _until(lambda: not jobs._alive(pid), timeout=20)
    assert "Training cancelled" in texts(at.warning)
    assert jobs.get(settings, job_id).progress[-1]["iteration"] < 100_000
    assert runs.list_runs(settings) == [] and not list(runs.runs_dir(settings).glob("*"))


@pytest.mark.parametrize(("params", "message"), [
    ("num_leaves=1", "The 'num_leaves' parameter must be an int in [2, 131072]. Got 1."),
    ("num_leafs=31", "Unknown LightGBM parameter 'num_leafs'."),
    ("num_leaves 31", "Line 1 of the LightGBM parameters is not NAME=VALUE. Got 'num_leaves 31'."),
    ('{"num_leaves": 31,}', "The LightGBM parameters are not valid JSON"),
    ("num_iterations=10", "The LightGBM parameter 'num_iterations' is set by Quarry."),
])
def test_bad_advanced_params_start_no_job(settings, fraud, params, message):
    at = open_page("train")
    fill_form(at, params=params)
    assert at.error and at.error[0].value.startswith(message), texts(at.error)
    assert jobs.list_jobs(settings) == [] and "train_job" not in at.session_state


def test_an_unknown_job_in_the_url_is_said_and_forgotten(settings, fraud):
    at = open_page("train", job="20250101-000000-abcdef")
    assert texts(at.error) == "There is no job '20250101-000000-abcdef'."
    assert "job" not in at.query_params and "train_job" not in at.session_state


def test_no_target_starts_no_job(settings, fraud):
    at = open_page("train")
    at.button(key=SUBMIT).click().run()
    assert texts(at.error) == "Pick a target: the column to predict."
    assert jobs.list_jobs(settings) == []


# ---- Runs


def test_runs_page_lists_shows_renames_tags_and_deletes(settings, fraud):
    run_id = train_run(settings, "small")
    at = open_page("runs", run=run_id)
    listed = at.dataframe[0].value
    assert list(listed["name"]) == ["small"] and list(listed["run id"]) == [run_id]
    assert at.selectbox(key="runs_pick").value == run_id
    setup = at.table[0].value
    facts = dict(zip(setup[""], setup["value"], strict=True))
    assert facts["target"] == "y" and facts["task"] == "binary" and facts["features"] == "3 (left out: id)"
    assert facts["device"].startswith("cpu (asked: cpu") and facts["data path"] == "in memory"
    metrics = next(d.value for d in at.dataframe if "model (test)" in d.value.columns)
    run = runs.load_run(settings, run_id)
    assert metrics.set_index("metric").loc["auc", "model (test)"] == f"{run.info['metrics']['test']['auc']:.4f}"
    assert {c.key for c in at.get("plotly_chart")} >= {"runs_curve", "runs_importance_gain", "runs_importance_split"}

    at.text_input(key=f"runs_name_{run_id}").set_value("renamed")
    at.button(key="runs_rename").click().run()
    assert runs.list_runs(settings)[0].name == "renamed" and at.subheader[0].value == "renamed"
    at.text_input(key=f"runs_tag_add_{run_id}").set_value("baseline, v1")
    at.button(key="runs_tags").click().run()
    assert runs.list_runs(settings)[0].tags == ("baseline", "v1")
    at.multiselect(key=f"runs_tag_remove_{run_id}").set_value(["v1"])
    at.button(key="runs_tags").click().run()
    assert runs.list_runs(settings)[0].tags == ("baseline",)
    assert list(at.dataframe[0].value["tags"]) == ["baseline"]

    assert at.button(key="runs_delete").disabled  # not without the confirmation
    at.checkbox(key=f"runs_confirm_{run_id}").check().run()  # a checkbox reruns the page at once
    at.button(key="runs_delete").click().run()
    assert runs.list_runs(settings) == [] and not (runs.runs_dir(settings) / run_id).exists()
    assert "No runs yet" in at.info[0].value


def test_runs_page_filters_and_compares(settings, fraud):
    a = train_run(settings, "slow", params={"learning_rate": 0.05})
    b = train_run(settings, "fast", params={"learning_rate": 0.3}, tags=["fast"])
    at = open_page("runs")
    assert list(at.dataframe[0].value["name"]) == ["fast", "slow"]  # newest first
    at.selectbox(key="runs_tag").set_value("fast").run()
    assert list(at.dataframe[0].value["name"]) == ["fast"]
    at.selectbox(key="runs_tag").set_value(None).run()
    at.selectbox(key="runs_order").set_value("name").run()
    at.toggle(key="runs_desc").set_value(False).run()
    assert list(at.dataframe[0].value["name"]) == ["fast", "slow"]

    at.multiselect(key="runs_compare").set_value([a, b]).run()
    assert not at.exception and not at.error
    params = next(d.value for d in at.dataframe if "parameter" in d.value.columns)
    labels = [f"slow ({a[-6:]})", f"fast ({b[-6:]})"]
    assert list(params.columns) == ["parameter", *labels]
    assert params.set_index("parameter").loc["learning_rate"].tolist() == ["0.0500", "0.3000"]
    metrics = next(d.value for d in at.dataframe if "metric" in d.value.columns and labels[0] in d.value.columns)
    assert "auc (test)" in list(metrics["metric"])
    curves = next(c for c in at.get("plotly_chart") if c.key == "runs_compare_curves")
    assert curves.proto.spec.count(labels[0]) >= 2


# ---- Score


def test_score_page_scores_registers_and_previews(settings, fraud):
    run_id = train_run(settings, "for scoring")
    at = open_page("score")
    assert at.selectbox(key="score_run").value == run_id and at.selectbox(key="score_dataset").value == "fraud"
    at.multiselect(key="score_keep_fraud").set_value(["id"])
    at.text_input(key="score_out").set_value("fraud_scored")
    at.button(key="score_go").click().run()
    assert not at.error, texts(at.error)
    assert texts(at.success) == f"Scored {ROWS:,} rows into fraud_scored: pick it in the sidebar."
    assert {m.label: m.value for m in at.metric}["Rows"] == f"{ROWS:,}"
    preview = at.dataframe[0].value
    assert list(preview.columns) == ["id", "score", "prediction"] and len(preview) == 20
    assert "fraud_scored" in cat.Catalog(settings).names()
    out = settings.datasets_dir / "fraud_scored.parquet"
    got = duckdb.sql(f"SELECT count(*), min(score) >= 0, max(score) <= 1 FROM '{out}'").fetchall()[0]
    assert got == (ROWS, True, True)


def test_score_page_refuses_a_dataset_without_a_feature(settings, fraud, root):
    train_run(settings, "needs x1")
    path = write_parquet(root / "less.parquet", fraud_table(100).drop(["x1"]))
    con = engine.connect(settings)
    cat.register(con, cat.Catalog(settings), str(path), name="less")
    con.close()
    at = open_page("score")
    at.selectbox(key="score_dataset").set_value("less").run()
    assert at.error[0].value.startswith("The dataset 'less' lacks the column 'x1' that run"), texts(at.error)
    assert not [b for b in at.button if b.key == "score_go"]  # nothing to press: nothing is written
    assert not settings.datasets_dir.exists() or not list(settings.datasets_dir.iterdir())

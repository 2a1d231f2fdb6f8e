"""Train, Runs and Score pages on a small generated binary dataset: jobs, reattaching, cancel, runs, scoring."""
from __future__ import annotations

import json
import subprocess

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from core import jobs, ui
from core.data import catalog as cat
from core.data import engine
from core.fmt import md
from core.model import charts, runs, tune
from core.model import job as train_job
from tests.conftest import REPO, until, write_parquet

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


def fill_form(at: AppTest, *, rounds: int = 20, early: int = 0, params: str = "", name: str = "", trials: int = 0,
              time_budget: int | None = None, cv_folds: int = 0) -> AppTest:
    at.selectbox(key="train_target").set_value("y")
    at.number_input(key="train_trials").set_value(trials)
    at.number_input(key="train_time_budget").set_value(time_budget)
    at.number_input(key="train_cv_folds").set_value(cv_folds)
    at.number_input(key="train_rounds").set_value(rounds)
    at.number_input(key="train_early").set_value(early)
    at.text_area(key="train_params").set_value(params)
    at.text_input(key="train_name").set_value(name)
    at.button(key=SUBMIT).click().run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def table_with(at: AppTest, column: str):
    """The first dataframe shown that has `column`."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def train_run(settings, name: str, **extra) -> str:
    """A run trained in this process (no worker): fast set-up for the Runs and Score pages."""
    params = {"dataset": "fraud", "target": "y", "num_boost_round": 15, "early_stopping_rounds": 0,
              "device": "cpu", "name": name, **extra}
    return train_job.run(params)["run_id"]


def cv_in_training_core(settings) -> bool:
    """True once core.train_job passes the form's cv_folds on to core.train (another change lands it)."""
    try:
        return getattr(train_job.config_from({"dataset": "fraud", "target": "y", "cv_folds": 3}, settings),
                       "cv_folds", 0) == 3
    except Exception:  # an older core refusing the key also means "not yet"
        return False


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
    until(lambda: jobs.get(settings, job_id).last.get("iteration"))  # training is under way
    at.run()
    assert "Iteration" in [m.label for m in at.metric] and at.get("plotly_chart")
    at.button(key="train_cancel").click().run()  # the live fragment's button
    assert jobs.get(settings, job_id).state == "cancelled"
    pid = json.loads((jobs.folder(settings) / job_id / "worker.json").read_text())["pid"]
    until(lambda: not jobs._alive(pid), timeout=20)
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
    assert at.error and at.error[0].value.startswith(md(message)), texts(at.error)  # shown as plain text
    assert jobs.list_jobs(settings) == [] and "train_job" not in at.session_state


def test_an_unknown_job_in_the_url_is_said_and_forgotten(settings, fraud):
    at = open_page("train", job="20250101-000000-abcdef")
    assert texts(at.error) == "There is no job '20250101-000000-abcdef'."
    assert "job" not in at.query_params and "train_job" not in at.session_state


@pytest.mark.parametrize("bad", ["../../demo", "/tmp/demo", "20250101-000000-abcdef/../../../demo",
                                 "20250101-000000-abcdef\n", "9" * 5000])
def test_a_job_id_that_is_a_path_is_refused_not_followed(settings, root, bad):
    """?job=../../demo names a folder outside workspace/jobs whose planted pid file names another process:
    the page says the id is not one, forgets it, and neither shows nor cancels that 'job'."""
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        demo = root / "demo"
        demo.mkdir()
        jobs.folder(settings).mkdir(parents=True)  # as in any workspace that ran a job: ".." then resolves
        (demo / "job.json").write_text(json.dumps({"job_id": "x", "kind": "train", "target": "os:system",
                                                   "params": {}, "title": "planted", "started_at": "2026"}))
        (demo / "pid").write_text(str(stranger.pid))
        at = open_page("train", job=bad)
        assert texts(at.error).endswith("is not a job id.")
        assert "20261203-174000-a1b2c3" in texts(at.caption)
        assert "job" not in at.query_params and "train_job" not in at.session_state
        assert "train_cancel" not in [b.key for b in at.button]
        assert not (demo / "cancelled").exists() and stranger.poll() is None
        with pytest.raises(jobs.JobIdError):  # nor can anything put such an id in the session or the URL
            ui.follow_job(bad)
    finally:
        stranger.kill()
        stranger.wait()


def test_no_target_starts_no_job(settings, fraud):
    at = open_page("train")
    at.button(key=SUBMIT).click().run()
    assert texts(at.error) == "Pick a target: the column to predict."
    assert jobs.list_jobs(settings) == []


def test_a_search_job_reports_trials_and_its_run_shows_the_search(settings, fraud):
    at = open_page("train")
    fill_form(at, rounds=20, name="searched", trials=3)
    job_id = at.session_state["train_job"]
    assert jobs.get(settings, job_id).params["tune"] == {"n_trials": 3, "timeout_s": None}
    job = jobs.wait(settings, job_id, timeout_s=120)
    assert job.state == "done", job.error
    assert [p["trial"] for p in job.progress if "trial" in p] == [1, 2, 3]
    assert not [p for p in job.progress if "iteration" in p]  # a search reports trials, not iterations

    at.run()  # how it ended: the trials, and the run
    run_id = job.result["run_id"]
    assert f"Training finished: run {run_id} saved." in texts(at.success)
    best_seen = min(p["value"] for p in job.progress if p.get("trial_state") == "complete")
    assert f"Search: trial 3 of 3 finished (3 complete, 0 pruned) · best valid value {best_seen:.5g}" in \
        texts(at.caption)
    assert list(table_with(at, "progress")["progress"]) == ["trial 3/3"]  # the jobs list

    page = open_page("runs", run=run_id)
    trials = table_with(page, "iterations")
    assert len(trials) == 3 and sorted(trials["number"]) == [0, 1, 2]
    assert list(trials.columns[:5]) == ["number", "state", "value", "seconds", "iterations"]
    assert set(trials.columns[5:]) == set(tune.SPACE)  # every searched parameter, one column each
    assert list(trials["value"]) == sorted(trials["value"])  # best first
    best = min(trials[trials["state"] == "complete"]["value"])
    best_number = int(trials["number"][0])
    assert f"3 trials (3 complete, 0 pruned) · best valid binary_logloss {best:.5g} (trial {best_number})" in \
        texts(page.caption)
    tuning = runs.load_run(settings, run_id).info["tuning"]
    assert tuning["best_value"] == best
    shown = page.table[1].value  # the best parameters, beside the trials
    assert dict(zip(shown["parameter"], shown["value"], strict=True)) == {
        k: f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in tuning["best_params"].items()}
    points = next(t for t in chart(page, "runs_trials_chart")["data"] if t["name"] == "complete")
    assert sorted(points["x"]) == [0, 1, 2] and min(points["y"]) == best


def test_the_live_panel_of_a_search_counts_trials(settings, fraud):
    at = open_page("train")
    fill_form(at, rounds=30, name="long search", trials=500, time_budget=600)
    job_id = at.session_state["train_job"]
    assert jobs.get(settings, job_id).params["tune"] == {"n_trials": 500, "timeout_s": 600.0}
    until(lambda: len([p for p in jobs.get(settings, job_id).progress if "trial" in p]) >= 2)
    at.run()
    bar = at.get("progress")[0].proto.text
    lines = [p for p in jobs.get(settings, job_id).progress if "trial" in p]
    counted = int(bar.split(" · ")[1].split(" done")[0])  # lines shown at the rerun, perhaps fewer than now
    assert 2 <= counted <= len(lines) and bar.startswith(f"Trial {counted + 1} of 500 running · {counted} done ("), bar
    shown = {m.label: m.value for m in at.metric}
    assert list(shown) == ["Best so far", "Elapsed", "Left (about)"]  # no per-iteration view for a search
    assert shown["Best so far"] == f"{lines[counted - 1]['best']:.4g}"
    assert shown["Left (about)"] != "–"
    assert {c.key for c in at.get("plotly_chart")} == {"train_live_trials"}
    at.button(key="train_cancel").click().run()
    assert jobs.get(settings, job_id).state == "cancelled"
    assert "Training cancelled" in texts(at.warning)
    assert "Search: trial " in texts(at.caption)  # after it ended, the trials it got through
    assert chart(at, "train_ended_curve")["data"]


def test_the_trial_chart_marks_pruned_trials_and_follows_the_best():
    fig = charts.trial_values([{"number": 0, "state": "complete", "value": 0.5},
                               {"number": 1, "state": "pruned", "value": 0.7},  # a job's line: where it stopped
                               {"number": 2, "state": "complete", "value": 0.4},
                               {"number": 3, "state": "pruned", "value": None},  # run.json keeps no value
                               {"number": 4, "state": "complete", "value": 0.45}], metric="binary_logloss")
    traces = {t.name: t for t in fig.data}
    assert traces["complete"].x == (0, 2, 4) and traces["complete"].y == (0.5, 0.4, 0.45)
    assert traces["pruned"].x == (1, 3) and traces["pruned"].y == (0.7, 0.7)
    assert traces["pruned"].marker.symbol == "x"
    assert traces["best so far"].x == (0, 2, 4, 4) and traces["best so far"].y == (0.5, 0.4, 0.4, 0.4)
    assert fig.layout.title.text == "Search: valid binary_logloss by trial"
    assert charts.trial_values([]) is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"cv_folds": 1}, "Cross-validation needs 2 to 20 folds. Got 1."),
    ({"time_budget": 60}, "A time budget limits a parameter search: it needs a number of trials."),
])
def test_bad_search_or_cv_settings_start_no_job(settings, fraud, fields, message):
    at = open_page("train")
    fill_form(at, **fields)
    assert texts(at.error) == message
    assert jobs.list_jobs(settings) == []


def test_cv_folds_are_sent_and_the_run_shows_them(settings, fraud):
    if not cv_in_training_core(settings):
        pytest.skip("core.train_job does not pass cv_folds to core.train.TrainConfig yet: cross-validation has not "
                    "landed in the training core")
    at = open_page("train")
    fill_form(at, rounds=15, name="with folds", cv_folds=3)
    job_id = at.session_state["train_job"]
    assert jobs.get(settings, job_id).params["cv_folds"] == 3
    job = jobs.wait(settings, job_id, timeout_s=120)
    assert job.state == "done", job.error
    cv = runs.load_run(settings, job.result["run_id"]).info["cv"]
    assert cv["folds"] == 3 and len(cv["per_fold"]) == 3
    at.run()  # how it ended: the folds beside the metrics
    assert list(table_with(at, "fold 3")["metric"]) == list(cv["mean"])
    assert f"Cross-validation: 3 folds · {cv['rounds']:,} rounds each" in texts(at.caption)
    page = open_page("runs", run=job.result["run_id"])
    table = table_with(page, "fold 3")
    assert list(table.columns) == ["metric", "mean", "std", "fold 1", "fold 2", "fold 3"]
    assert list(table["metric"]) == list(cv["mean"])


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


def test_runs_page_shows_cross_validation_when_the_run_has_it(settings, fraud):
    plain = runs.load_run(settings, train_run(settings, "plain"))
    info = {k: v for k, v in plain.info.items() if k not in ("run_id", "created_at")}
    info["name"] = "cross-validated"
    info["cv"] = {"folds": 3, "rounds": 15, "rows": [801, 795, 804],
                  "per_fold": [{"auc": 0.81, "logloss": 0.52}, {"auc": 0.79, "logloss": 0.55},
                               {"auc": 0.83, "logloss": 0.5}],
                  "mean": {"auc": 0.81, "logloss": 0.5233}, "std": {"auc": 0.0163, "logloss": 0.0205}}
    cv_id = runs.save_run(settings, info, plain.model_text, plain.curve, plain.importance).name

    at = open_page("runs", run=cv_id)
    assert at.subheader[0].value == "cross-validated"
    assert "**Cross-validation**" in texts(at.markdown) and "**Search**" not in texts(at.markdown)
    assert texts(at.caption).count("3 folds · 15 rounds each · held-out rows 801, 795, 804. Each fold's") == 1
    assert table_with(at, "fold 1").to_dict("list") == {
        "metric": ["auc", "logloss"], "mean": ["0.8100", "0.5233"], "std": ["0.0163", "0.0205"],
        "fold 1": ["0.8100", "0.5200"], "fold 2": ["0.7900", "0.5500"], "fold 3": ["0.8300", "0.5000"]}

    at.selectbox(key="runs_pick").set_value(plain.run_id).run()  # a run without folds or a search: neither part
    assert "**Cross-validation**" not in texts(at.markdown) and "**Search**" not in texts(at.markdown)
    assert not [d for d in at.dataframe if "fold 1" in d.value.columns or "iterations" in d.value.columns]


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

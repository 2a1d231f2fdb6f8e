"""Train: LightGBM on the active dataset in a worker process (optionally an Optuna parameter search, and
cross-validation); follow it live, cancel it, reattach from anywhere."""
import streamlit as st

from core import jobs, ui
from core.errors import QuarryError
from core.features import store as recipe_store
from core.fmt import human_seconds, md
from core.model import charts
from core.model.job import TARGET
from core.model.splits import KINDS, SplitConfig
from core.model.train import DEFAULT_METRIC, DEVICES, TASKS, check_params

ui.page_guard()
ui.require_role("train")  # a viewer sees why not, and nothing else

st.title("Train")
ws = ui.workspace()
settings = ws.settings
name = ui.active_dataset(ws)
job_id = ui.followed_job()
form_col, job_col = st.columns([2, 3], gap="large")

# ---- The form (left): what to train
with form_col:
    info = ui.describe_shown(ws, name) if name else None  # None: the reason is shown; the jobs still follow
    if name is None:
        st.info("No dataset yet: register one on the Data page first.", icon=":material/info:")
    elif info is not None:
        columns = [c.name for c in info.columns]
        with st.form("train_form"):
            st.markdown(f"**{md(name)}** · {info.rows:,} rows × {len(columns):,} columns")
            target = st.selectbox("Target", columns, index=None, key="train_target",
                                  placeholder="the column to predict")
            task = st.selectbox("Task", ["auto", *TASKS], key="train_task",
                                help="auto: binary, multiclass or regression, detected from the target's values.")
            features = st.multiselect("Features", columns, key="train_features",
                                      placeholder="all but the target and ID-like columns")
            st.caption("Leave Features empty to use every column but the target and ID-like ones "
                       "(almost every value distinct, e.g. a transaction id).")
            recipe = st.selectbox("Recipe (optional)", [None, *recipe_store.names(settings)], key="train_recipe",
                                  format_func=lambda r: "(none: the raw columns)" if r is None else r,
                                  help="A recipe kept on the Features page: the model learns from its output.")
            a, b = st.columns(2)
            kind = a.selectbox("Split", KINDS, key="train_split",
                               help="random; stratified by target class; time (train on the past); group (each "
                                    "group on one side only).")
            split_column = b.selectbox("Time or group column", [None, *columns], key="train_split_column",
                                       format_func=lambda c: "(none)" if c is None else c,
                                       help="The time column of a time split, or the group column of a group split.")
            c, d, e = st.columns(3)
            valid = c.number_input("Valid fraction", 0.0, 0.9, 0.15, 0.05, key="train_valid")
            test = d.number_input("Test fraction", 0.0, 0.9, 0.15, 0.05, key="train_test")
            seed = e.number_input("Seed", value=42, step=1, key="train_seed")
            f, g = st.columns(2)
            rounds = f.number_input("Most boosting rounds", 1, 100_000, 1000, 100, key="train_rounds")
            early = g.number_input("Early stopping (0: off)", 0, 10_000, 50, 10, key="train_early",
                                   help="Stop when the valid metric has not improved for this many rounds.")
            h, i = st.columns(2)
            device = h.selectbox("Device", DEVICES, key="train_device",
                                 help="auto: CPU below a million training rows, else CUDA or an OpenCL GPU when "
                                      "usable. The run records the device used and why.")
            class_weight = i.selectbox("Class weight", [None, "balanced"], key="train_class_weight",
                                       format_func=lambda w: "none" if w is None else w,
                                       help="balanced: weight classes by their rarity (classification only).")
            j, k = st.columns(2)
            cv_folds = j.number_input("Cross-validation folds", 0, 20, 0, 1, key="train_cv_folds",
                                      help="0: off. 2 to 20: also train on k folds of the train and valid rows and "
                                           "report each metric's mean and spread across folds. The run's model is "
                                           "still the one trained on the split above.")
            run_name = k.text_input("Run name (optional)", key="train_name", placeholder="target on dataset")
            keep_leaky = st.multiselect("Keep even if leaky", columns, key="train_keep_leaky",
                                        help="Before training, each feature is checked on the training rows: one that "
                                             "predicts the target almost alone (AUC 0.99, or 98 % of it) looks "
                                             "computed from the target and is left out. List a feature here to "
                                             "keep it anyway.")
            with st.expander("Advanced", expanded=False):
                extra = st.text_area("Extra LightGBM parameters", key="train_params", height=110,
                                     placeholder='num_leaves=31\nlearning_rate=0.1\n\nor {"num_leaves": 31}',
                                     help="One NAME=VALUE per line, or a JSON object. Checked before training "
                                          "starts; see https://lightgbm.readthedocs.io/en/latest/Parameters.html.")
            with st.expander("Search parameters (Optuna)", expanded=False):
                t1, t2 = st.columns(2)
                n_trials = t1.number_input("Trials (0: off)", 0, 1000, 0, 5, key="train_trials",
                                           help="Train this many times with LightGBM parameters drawn by Optuna "
                                                "(TPE) over yours; then train the best once more: that is the run.")
                time_budget = t2.number_input("Time budget (s)", 1, 7 * 24 * 3600, None, 60,
                                              key="train_time_budget", placeholder="no limit",
                                              help="Optional: start no new trial after this many seconds.")
                st.caption("Each trial is scored on the valid split (log loss, or RMSE for regression: lower is "
                           "better); trials clearly behind the median are pruned early. Parameters you set under "
                           "Advanced are kept fixed.")
            submitted = st.form_submit_button("Start training", type="primary", icon=":material/model_training:")
        if submitted:
            try:
                if target is None:
                    raise QuarryError("Pick a target: the column to predict.", "Choose it in the Target box.")
                chosen_task = None if task == "auto" else task
                if cv_folds == 1:
                    raise QuarryError("Cross-validation needs 2 to 20 folds. Got 1.", "Set 0 to turn it off.")
                if time_budget and not n_trials:
                    raise QuarryError("A time budget limits a parameter search: it needs a number of trials.",
                                      "Set Trials (e.g. 20), or clear the time budget.")
                split = SplitConfig(kind=kind, valid=float(valid), test=float(test), seed=int(seed),
                                    column=split_column if kind in ("time", "group") else None)
                params = {"dataset": name, "target": target, "task": chosen_task, "features": features or None,
                          "recipe": recipe, "split": split.to_json(),
                          "params": check_params(ui.parse_params(extra), chosen_task),
                          "num_boost_round": int(rounds), "early_stopping_rounds": int(early), "device": device,
                          "class_weight": class_weight, "seed": int(seed), "name": run_name.strip() or None,
                          "cv_folds": int(cv_folds), "keep_leaky": list(keep_leaky),
                          "tune": {"n_trials": int(n_trials), "timeout_s": float(time_budget) if time_budget
                                   else None} if n_trials else None}
                job_id = jobs.start(settings, "train", TARGET, params, title=run_name.strip() or f"{target} on {name}")
            except QuarryError as exc:
                ui.show_error(exc)
            else:
                ui.follow_job(job_id)


# ---- The job followed (right): live while it runs, then how it ended
@st.fragment(run_every=1.0)
def live(job_id: str) -> None:
    """Redrawn every second while the job runs; the whole page reruns once it has ended."""
    job = jobs.get(settings, job_id)
    if job.state != "running":
        st.rerun()
    st.markdown(f"**{md(job.title)}** · running · job {job_id}")
    if ui.search_of(job.params):
        live_search(job)
    else:
        live_training(job)
    st.button("Cancel", key="train_cancel", icon=":material/stop_circle:", on_click=jobs.cancel,
              args=(settings, job_id))


def live_search(job: jobs.Job) -> None:
    """A parameter search: trials done, the best value so far, each trial's value; then the refit."""
    s = ui.search_progress(job)
    done = f" · {s.done:,} done ({s.complete:,} complete, {s.pruned:,} pruned)" if s.done else ""
    if s.total and s.done >= s.total:
        st.progress(1.0, text=f"Trial {s.done:,} of {s.total:,} done · training the best parameters once more…")
    elif s.total:
        st.progress(s.share, text=f"Trial {s.done + 1:,} of {s.total:,} running{done}")
    else:
        st.progress(0.0, text="Reading the data…")
    m1, m2, m3 = st.columns(3)
    m1.metric("Best so far", f"{s.best:.4g}" if s.best is not None else "–",
              help="The valid split's value of the best complete trial: lower is better.")
    m2.metric("Elapsed", human_seconds(s.elapsed_s))
    m3.metric("Left (about)", human_seconds(s.eta_s) if s.eta_s is not None else "–",
              help="Mean time per finished trial × trials left (at most the time budget left plus one trial); "
                   "the refit of the best parameters comes after.")
    fig = charts.trial_values(s.trials, metric=_curve_metric(job), height=260)
    if fig is not None:
        st.plotly_chart(fig, key="train_live_trials")


def _curve_metric(job: jobs.Job) -> str | None:
    task = job.params.get("task")
    return (job.params.get("params") or {}).get("metric") or (DEFAULT_METRIC[task] if task else None)


def live_training(job: jobs.Job) -> None:
    """One training: boosting iterations done of the most and the learning curve."""
    p = ui.job_progress(job)
    if p.total:
        st.progress(p.share, text=f"Iteration {p.iteration:,} of at most {p.total:,}")
    else:
        st.progress(0.0, text="Reading the data…")
    m1, m2, m3 = st.columns(3)
    m1.metric("Iteration", f"{p.iteration:,} / {p.total:,}" if p.total else "–")
    m2.metric("Elapsed", human_seconds(p.elapsed_s))
    m3.metric("Left (at most)", human_seconds(p.eta_s) if p.eta_s is not None else "–",
              help="Time per iteration × iterations left; early stopping may end it sooner.")
    fig = charts.learning_curve(job.progress, metric=_curve_metric(job))
    if fig is not None:
        st.plotly_chart(fig, key="train_live_curve")
    elif p.total and p.iteration >= p.total:
        st.caption("Scoring the test split and the baselines…")


def ended(job: jobs.Job) -> None:
    """How a job ended: the run and its test metrics, the error, or the cancellation."""
    if job.state == "done":
        run_id = job.result["run_id"]
        st.success(f"Training finished: run {run_id} saved.", icon=":material/check_circle:")
        device = job.result.get("device") or {}
        st.caption(f"{md(job.title)} · device {device.get('used', '?')} ({device.get('reason', '')}) · data path "
                   f"{job.result.get('data_path', '?')} · {human_seconds(ui.job_progress(job).elapsed_s)}")
        st.dataframe(ui.metrics_table(job.result.get("metrics"), job.result.get("baselines")), hide_index=True,
                     width="stretch")
        st.caption("Baselines are scored on the test split (the valid split when there is no test split): "
                   "the model should beat both.")
        leaks = [leak for leak in job.result.get("leakage") or [] if not leak.get("kept")]
        ui.leakage_note(job.result)
        if leaks and st.button("Include anyway and train again", key="train_keep_leaky_again",
                               icon=":material/replay:",
                               help="The same training with these features kept: " + ", ".join(
                                   md(leak["feature"]) for leak in leaks)):
            again = {**job.params, "keep_leaky": sorted({*(job.params.get("keep_leaky") or []),
                                                         *(leak["feature"] for leak in leaks)})}
            try:
                ui.follow_job(jobs.start(settings, "train", TARGET, again, title=f"{job.title} (leaky kept)"))
                st.rerun()
            except QuarryError as exc:
                ui.show_error(exc)
        if job.result.get("cv"):
            st.dataframe(ui.cv_table(job.result["cv"]), hide_index=True, width="stretch")
            st.caption(f"Cross-validation: {ui.cv_summary(job.result['cv'])}.")
        links = st.columns(3)
        links[0].page_link("pages/runs.py", label=f"Open run {run_id} on the Runs page",
                           icon=":material/leaderboard:", query_params={"run": run_id})
        links[1].page_link("pages/evaluate.py", label="Evaluate it", icon=":material/fact_check:",
                           query_params={"run": run_id})
        links[2].page_link("pages/explain.py", label="Explain it", icon=":material/psychology:",
                           query_params={"run": run_id})
    elif job.state == "failed":
        err = job.error or {}
        st.error(f"Training failed: {md(err.get('message', 'no reason was recorded.'))}", icon=":material/error:")
        if err.get("hint"):
            st.caption(md(err["hint"]))
    else:
        st.warning(f"Training cancelled: {md(job.title)}. No run was saved.", icon=":material/stop_circle:")
    if ui.search_of(job.params):
        s = ui.search_progress(job)
        best = f" · best valid value {s.best:.5g}" if s.best is not None else ""
        st.caption(f"Search: trial {s.done:,} of {s.total:,} finished ({s.complete:,} complete, {s.pruned:,} "
                   f"pruned){best}" + (" · the best parameters were trained once more for the run."
                                       if job.state == "done" else "."))
        fig = charts.trial_values(s.trials, metric=_curve_metric(job), height=260)
    else:
        fig = charts.learning_curve(job.progress)
    if fig is not None and job.state != "done":
        st.plotly_chart(fig, key="train_ended_curve")
    st.button("Dismiss", key="train_dismiss", on_click=ui.follow_job, args=(None,))


def recent_jobs(polling: bool) -> None:
    """This workspace's training jobs, anyone's; follow any of them. Redrawn every 2 s while one runs."""
    recent = jobs.list_jobs(settings, kind="train")[:20]
    running = sum(j.state == "running" for j in recent)
    if polling and not running:
        st.rerun()  # the whole page, which stops the polling
    if not recent:
        return
    st.subheader(f"Training jobs ({running} running)" if running else "Training jobs")
    st.dataframe(ui.train_jobs_table(recent), hide_index=True, width="stretch", height=min(38 + 35 * len(recent), 250))
    labels = {j.job_id: ui.job_label(j) for j in recent}
    pick_col, go_col = st.columns([4, 1], vertical_alignment="bottom")
    pick = pick_col.selectbox("Follow a job", list(labels), index=None, format_func=labels.get,
                              key="train_follow_pick", placeholder="any job of this workspace, e.g. a colleague's")
    if go_col.button("Follow", key="train_follow", disabled=pick is None):
        ui.follow_job(pick)
        st.rerun()  # the whole page: the panel above follows it


any_running = any(j.state == "running" for j in jobs.list_jobs(settings, kind="train")[:20])
with job_col:
    job = None
    if job_id:
        try:
            job = jobs.get(settings, job_id)
        except QuarryError as exc:
            ui.show_error(exc)
            ui.follow_job(None)
    if job is None:
        st.info("Fill in the form and press “Start training”: it runs in a worker process of its own, so you can "
                "leave this page, reload it or open it in another tab and come back to it.", icon=":material/info:")
    elif job.state == "running":
        ui.follow_job(job.job_id)
        live(job.job_id)
    else:
        ui.follow_job(job.job_id)
        ended(job)

    st.fragment(recent_jobs, run_every=2.0 if any_running else None)(any_running)

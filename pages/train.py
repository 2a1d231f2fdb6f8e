"""Train: LightGBM on the active dataset in a worker process; follow it live, cancel it, reattach from anywhere."""
import streamlit as st

from core import charts, jobs, recipe_store, ui
from core.errors import QuarryError
from core.fmt import human_seconds
from core.splits import KINDS, SplitConfig
from core.train import DEFAULT_METRIC, DEVICES, TASKS, check_params
from core.train_job import TARGET

ui.page_guard()

st.title("Train")
ws = ui.workspace()
settings = ws.settings
name = ui.active_dataset(ws)
job_id = ui.followed_job()
form_col, job_col = st.columns([2, 3], gap="large")

# ---- The form (left): what to train
with form_col:
    if name is None:
        st.info("No dataset yet: register one on the Data page first.", icon=":material/info:")
    else:
        info = ui.describe(name, ws.version())
        columns = [c.name for c in info.columns]
        with st.form("train_form"):
            st.markdown(f"**{name}** · {info.rows:,} rows × {len(columns):,} columns")
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
            run_name = st.text_input("Run name (optional)", key="train_name", placeholder="target on dataset")
            with st.expander("Advanced", expanded=False):
                extra = st.text_area("Extra LightGBM parameters", key="train_params", height=110,
                                     placeholder='num_leaves=31\nlearning_rate=0.1\n\nor {"num_leaves": 31}',
                                     help="One NAME=VALUE per line, or a JSON object. Checked before training "
                                          "starts; see https://lightgbm.readthedocs.io/en/latest/Parameters.html.")
            submitted = st.form_submit_button("Start training", type="primary", icon=":material/model_training:")
        if submitted:
            try:
                if target is None:
                    raise QuarryError("Pick a target: the column to predict.", "Choose it in the Target box.")
                chosen_task = None if task == "auto" else task
                split = SplitConfig(kind=kind, valid=float(valid), test=float(test), seed=int(seed),
                                    column=split_column if kind in ("time", "group") else None)
                params = {"dataset": name, "target": target, "task": chosen_task, "features": features or None,
                          "recipe": recipe, "split": split.to_json(),
                          "params": check_params(ui.parse_params(extra), chosen_task),
                          "num_boost_round": int(rounds), "early_stopping_rounds": int(early), "device": device,
                          "class_weight": class_weight, "seed": int(seed), "name": run_name.strip() or None}
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
    p = ui.job_progress(job)
    st.markdown(f"**{job.title}** · running · job {job_id}")
    if p.total:
        st.progress(p.share, text=f"Iteration {p.iteration:,} of at most {p.total:,}")
    else:
        st.progress(0.0, text="Reading the data…")
    m1, m2, m3 = st.columns(3)
    m1.metric("Iteration", f"{p.iteration:,} / {p.total:,}" if p.total else "–")
    m2.metric("Elapsed", human_seconds(p.elapsed_s))
    m3.metric("Left (at most)", human_seconds(p.eta_s) if p.eta_s is not None else "–",
              help="Time per iteration × iterations left; early stopping may end it sooner.")
    task = job.params.get("task")
    metric = (job.params.get("params") or {}).get("metric") or (DEFAULT_METRIC[task] if task else None)
    fig = charts.learning_curve(job.progress, metric=metric)
    if fig is not None:
        st.plotly_chart(fig, key="train_live_curve")
    elif p.total and p.iteration >= p.total:
        st.caption("Scoring the test split and the baselines…")
    st.button("Cancel", key="train_cancel", icon=":material/stop_circle:", on_click=jobs.cancel,
              args=(settings, job_id))


def ended(job: jobs.Job) -> None:
    """How a job ended: the run and its test metrics, the error, or the cancellation."""
    if job.state == "done":
        run_id = job.result["run_id"]
        st.success(f"Training finished: run {run_id} saved.", icon=":material/check_circle:")
        device = job.result.get("device") or {}
        st.caption(f"{job.title} · device {device.get('used', '?')} ({device.get('reason', '')}) · data path "
                   f"{job.result.get('data_path', '?')} · {human_seconds(ui.job_progress(job).elapsed_s)}")
        st.dataframe(ui.metrics_table(job.result.get("metrics"), job.result.get("baselines")), hide_index=True,
                     width="stretch")
        st.caption("Baselines are scored on the test split (the valid split when there is no test split): "
                   "the model should beat both.")
        st.page_link("pages/runs.py", label=f"Open run {run_id} on the Runs page", icon=":material/leaderboard:",
                     query_params={"run": run_id})
    elif job.state == "failed":
        err = job.error or {}
        st.error(f"Training failed: {err.get('message', 'no reason was recorded.')}", icon=":material/error:")
        if err.get("hint"):
            st.caption(err["hint"])
    else:
        st.warning(f"Training cancelled: {job.title}. No run was saved.", icon=":material/stop_circle:")
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
    st.dataframe(ui.jobs_table(recent), hide_index=True, width="stretch", height=min(38 + 35 * len(recent), 250))
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

"""Runs: every training run of the workspace; one in detail (set-up, metrics, curve, importance, parameter search,
cross-validation); manage; compare."""
import streamlit as st

from core import ui
from core.errors import QuarryError
from core.fmt import md
from core.model import charts, runs

ui.page_guard()

st.title("Runs")
ws = ui.workspace()
settings = ws.settings
try:
    every = runs.list_runs(settings)
except QuarryError as exc:
    ui.show_error(exc)
    st.stop()
if not every:
    st.info("No runs yet: train one on the Train page.", icon=":material/info:")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
    st.stop()

# ---- Filters, sort, the table
datasets, tasks, tags = ui.run_facets(every)
f1, f2, f3, f4, f5 = st.columns([3, 3, 3, 3, 2], vertical_alignment="bottom")


def everything(v: str | None) -> str:
    return "(all)" if v is None else v


dataset = f1.selectbox("Dataset", [None, *datasets], format_func=everything, key="runs_dataset")
task = f2.selectbox("Task", [None, *tasks], format_func=everything, key="runs_task")
tag = f3.selectbox("Tag", [None, *tags], format_func=everything, key="runs_tag")
order = f4.selectbox("Sort by", runs.ORDER_COLUMNS, key="runs_order", format_func=lambda c: c.replace("_", " "))
descending = f5.toggle("Descending", value=True, key="runs_desc")
shown = runs.list_runs(settings, dataset=dataset, task=task, tag=tag, order_by=order, descending=descending)
st.dataframe(ui.runs_table(shown), hide_index=True, width="stretch", height=min(38 + 35 * max(len(shown), 1), 320),
             column_config={"valid": st.column_config.NumberColumn(format="%.4f"),
                            "test": st.column_config.NumberColumn(format="%.4f")})
st.caption(f"{len(shown):,} of {len(every):,} runs · valid and test hold each run's main metric (the metric column).")
labels = ui.run_labels(shown)
if not labels:
    st.stop()

# A link such as /runs?run=ID (from the Train page) picks that run, once.
ui.run_from_url("runs_pick", labels)
if st.session_state.get("runs_pick") not in labels:  # deleted, or hidden by a filter
    st.session_state.pop("runs_pick", None)

detail, compare_tab = st.tabs(["Run", "Compare"], key="runs_tabs")  # keyed: the open tab survives reruns
with detail:
    picked = st.selectbox("Run", list(labels), format_func=labels.get, key="runs_pick")
    ui.run_to_url("runs_pick", picked)
    try:
        run = runs.load_run(settings, picked)
    except QuarryError as exc:
        ui.show_error(exc)
        st.stop()
    st.subheader(md(run.name))
    st.caption(f"Run {run.run_id}" + (f" · tags: {', '.join(map(md, run.info.get('tags')))}" if run.info.get("tags")
                                      else ""))
    links = st.columns(3)
    links[0].page_link("pages/evaluate.py", label="Evaluate on the test split", icon=":material/fact_check:",
                       query_params={"run": picked})
    links[1].page_link("pages/explain.py", label="Explain (SHAP, what-if)", icon=":material/psychology:",
                       query_params={"run": picked})
    links[2].page_link("pages/score.py", label="Score a dataset", icon=":material/batch_prediction:",
                       query_params={"run": picked})
    setup_col, metrics_col = st.columns([4, 5], gap="large")
    with setup_col:
        st.markdown("**Set-up**")
        st.table(ui.run_setup(run), hide_index=True, hide_header=True)  # wraps long values
        ui.leakage_note(run.info)
    with metrics_col:
        st.markdown("**Metrics**")
        st.dataframe(ui.metrics_table(run.info.get("metrics"), run.info.get("baselines")), hide_index=True,
                     width="stretch")
        st.caption("Baselines are scored on the test split (the valid split when there is no test split).")
        for note in run.info.get("notes") or []:
            st.caption(md(note))
    curve = charts.learning_curve(run.curve, best=run.best_iteration)
    if curve is not None:
        st.plotly_chart(curve, key="runs_curve")
    gain_col, split_col = st.columns(2)
    for col, by in ((gain_col, "gain"), (split_col, "split")):
        fig = charts.importance(run.importance, by=by)
        if fig is not None:
            col.plotly_chart(fig, key=f"runs_importance_{by}")

    tuning = run.info.get("tuning")
    if tuning:
        st.markdown("**Search**")
        st.caption(ui.search_summary(tuning) + ". The run's model is the best trial's parameters trained once more.")
        trials = ui.trials_table(tuning)
        st.dataframe(trials, hide_index=True, width="stretch", key="runs_trials",
                     height=min(38 + 35 * max(len(trials["number"]), 1), 320),
                     column_config={"value": st.column_config.NumberColumn(format="%.5g")})
        chart_col, best_col = st.columns([3, 1], gap="large")
        fig = charts.trial_values(tuning.get("trials") or [], metric=tuning.get("metric"))
        if fig is not None:
            chart_col.plotly_chart(fig, key="runs_trials_chart")
        best_col.markdown("Best parameters")
        best_col.table(ui.best_params_table(tuning), hide_index=True, hide_header=True)
    cv = run.info.get("cv")
    if cv:
        st.markdown("**Cross-validation**")
        st.caption(ui.cv_summary(cv) + ". Each fold's model is trained on the other folds of the train and valid "
                   "rows and scored on its own; std is the spread across folds. The test split is not used.")
        st.dataframe(ui.cv_table(cv), hide_index=True, width="stretch", key="runs_cv")

    st.markdown("**Manage**")
    rename_col, tag_col, delete_col = st.columns(3, gap="large")
    with rename_col:
        new_name = st.text_input("Name", value=run.name, key=f"runs_name_{picked}")
        if st.button("Rename", key="runs_rename", icon=":material/edit:"):
            try:
                runs.rename_run(settings, picked, new_name)
            except QuarryError as exc:
                ui.show_error(exc)
            else:
                st.toast(f"Renamed to {md(new_name.strip())}.", icon=":material/edit:")
                st.rerun()
    with tag_col:
        add = st.text_input("Add tags", key=f"runs_tag_add_{picked}", placeholder="comma-separated, e.g. baseline")
        remove = st.multiselect("Remove tags", run.info.get("tags") or [], key=f"runs_tag_remove_{picked}")
        if st.button("Update tags", key="runs_tags", icon=":material/sell:"):
            try:
                runs.tag_run(settings, picked, add=[t for t in add.split(",") if t.strip()], remove=remove)
            except QuarryError as exc:
                ui.show_error(exc)
            else:
                st.rerun()
    with delete_col:
        sure = st.checkbox("Yes, delete this run and its model", key=f"runs_confirm_{picked}")
        if st.button("Delete run", key="runs_delete", icon=":material/delete:", disabled=not sure):
            try:
                runs.delete_run(settings, picked)
            except QuarryError as exc:
                ui.show_error(exc)
            else:
                st.query_params.pop("run", None)
                st.toast(f"Deleted run {picked}.", icon=":material/delete:")
                st.rerun()

with compare_tab:
    chosen = st.multiselect("Runs to compare (2 to 5)", list(labels), format_func=labels.get, max_selections=5,
                            key="runs_compare")
    if len(chosen) < 2:
        st.caption("Pick two to five runs to see their metrics, the parameters that differ and their curves.")
    else:
        try:
            cmp = ui.compare(settings, chosen)
        except QuarryError as exc:
            ui.show_error(exc)
        else:
            st.markdown("**Metrics**")
            st.dataframe(cmp.metrics, hide_index=True, width="stretch")
            st.markdown("**Parameters that differ**")
            if cmp.params["parameter"]:
                st.dataframe(cmp.params, hide_index=True, width="stretch")
            else:
                st.caption("The same LightGBM parameters.")
            st.markdown("**Set-up that differs**")
            if cmp.setup["set-up"]:
                st.dataframe(cmp.setup, hide_index=True, width="stretch")
            else:
                st.caption("The same data, target, features and split.")
            fig = charts.compare_curves(cmp.curves)
            if fig is not None:
                st.plotly_chart(fig, key="runs_compare_curves")

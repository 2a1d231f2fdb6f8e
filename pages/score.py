"""Score: a saved run's recipe and model over every row of a dataset, written to the workspace as a new dataset."""
import streamlit as st

from core import ui
from core.errors import QuarryError
from core.fmt import human_seconds, md
from core.model import runs

ui.page_guard()
ui.require_role("score")  # a viewer sees why not, and nothing else

st.title("Score")
ws = ui.workspace()
names = ws.catalog.names()
try:
    saved = runs.list_runs(ws.settings)
except QuarryError as exc:
    ui.show_error(exc)
    st.stop()
if not names:
    st.info("No dataset yet: register one on the Data page first.", icon=":material/info:")
    st.stop()
if not saved:
    st.info("No runs yet: train one on the Train page, then score any dataset with its columns.",
            icon=":material/info:")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
    st.stop()

labels = ui.run_labels(saved)
ui.run_from_url("score_run", labels)  # /score?run=ID picks that run, once
active = ui.active_dataset(ws)
run_col, data_col = st.columns(2)
run_id = run_col.selectbox("Run", list(labels), format_func=labels.get, key="score_run",
                           help="A saved run: its recipe and model are applied to every row.")
dataset = data_col.selectbox("Dataset to score", names, index=names.index(active) if active in names else 0,
                             key="score_dataset", help="Any dataset with the training data's columns.")
info = ui.describe_shown(ws, dataset)
if info is None:  # its files are gone: the reason is shown; another dataset can still be picked above
    st.stop()
keep_col, out_col = st.columns(2)
keep = keep_col.multiselect("Columns to keep (IDs)", [c.name for c in info.columns], key=f"score_keep_{dataset}",
                            help="Copied next to the predictions, to join them back to the rows.")
out_name = out_col.text_input("Output dataset name", key="score_out", placeholder=f"{dataset}_scored",
                              help="Written to the workspace as Parquet and registered under this name.")
out_name = out_name.strip() or f"{dataset}_scored"

try:
    run = ui.check_scoring(run_id, dataset, tuple(keep))
except QuarryError as exc:  # before any work: nothing is written
    ui.show_error(exc)
    st.stop()
outputs = {"binary": "score (probability of the positive class) and prediction (0/1)",
           "multiclass": md("prob_<class>") + " for each class and prediction (the class)",  # <class>: not a tag
           "regression": "prediction"}
st.caption(f"{info.rows:,} rows of {md(dataset)} · {len(run.features):,} features"
           + (" through the run's recipe" if run.recipe else "") + f" · adds {outputs.get(run.task, 'predictions')}.")

if st.button("Score and register", key="score_go", type="primary", icon=":material/batch_prediction:"):
    bar = st.progress(0.0, text="Scoring…")
    try:
        result, d = ui.score_to_dataset(run_id, dataset, tuple(keep), out_name, progress=lambda done, total: (
            bar.progress(done / total if total else 1.0, text=f"Scored {done:,} of {total:,} rows")))
    except QuarryError as exc:
        bar.empty()
        ui.show_error(exc)
    else:
        bar.empty()
        st.success(f"Scored {result.rows:,} rows into {md(d.name)}: pick it in the sidebar.",
                   icon=":material/check_circle:")
        m1, m2 = st.columns(2)
        m1.metric("Rows", f"{result.rows:,}")
        m2.metric("Time", human_seconds(result.seconds))
        st.caption(f"Written to {md(result.out)}")
        fresh = ui.workspace()
        page = ui.preview(d.name, (), "", None, False, 0, 20, fresh.version())
        st.dataframe(page.table, hide_index=True, width="stretch")
        st.caption(page.caption())

"""Home: what Quarry does, the workflow, and the active dataset."""
import streamlit as st

from core import ui
from core.fmt import human_bytes, md

ui.page_guard()

st.title("Quarry")
st.markdown("Machine learning on tabular data too big for pandas: **DuckDB does the heavy lifting out of "
            "core**, and this page only ever receives aggregates, samples and single pages of rows.")

st.subheader("Workflow")
steps = [
    ("1. Data", "Register Parquet/CSV files, folders, globs or hive partitions; browse them page by page.", True),
    ("2. Profile", "Statistics, distributions, alerts, missing patterns and target analysis over the full data.",
     True),
    ("3. SQL", "Ask questions in SQL over your datasets; save a result as a new dataset.", True),
    ("4. Features", "A recipe of feature steps compiled to SQL, reused unchanged in training and scoring.", True),
    ("5. Train", "LightGBM on data bigger than memory in a worker process, with tuning and a run registry.", True),
    ("6. Evaluate / Explain", "Metrics over the whole test split, thresholds, slices, fairness, SHAP and what-if.",
     True),
    ("7. Score", "Batch scoring out of core with the run's recipe.", True),
]
cols = st.columns(len(steps))
for col, (name, text, ready) in zip(cols, steps, strict=True):
    with col.container(border=True):
        st.markdown(f"**{name}**")
        st.caption(text)
        if not ready:
            st.caption(":gray-badge[coming next]")

st.subheader("Active dataset")
with ui.errors_shown():
    ws = ui.workspace()
    name = ui.active_dataset(ws)
    if name is None:
        st.info("No dataset yet. Open the Data page to register one (e.g. demo/flights.parquet), "
                "or run `python -m core demo` to generate the demo data.", icon=":material/info:")
    else:
        info = ui.describe(name, ws.version())
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Dataset", md(name))
        c2.metric("Rows", f"{info.rows:,}")
        c3.metric("Columns", f"{len(info.columns):,}")
        c4.metric("On disk", human_bytes(info.bytes))
        st.caption(f"From {md(info.dataset.source)}")
    st.page_link("pages/data.py", label="Browse it on the Data page", icon=":material/table_view:")
    st.page_link("pages/profile.py", label="Profile it", icon=":material/query_stats:")
    st.page_link("pages/sql.py", label="Query it on the SQL page", icon=":material/terminal:")
    st.page_link("pages/features.py", label="Engineer features", icon=":material/tune:")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
    st.page_link("pages/evaluate.py", label="Evaluate a run", icon=":material/fact_check:")
    st.page_link("pages/explain.py", label="Explain a run", icon=":material/psychology:")

"""Quarry: the router. Page list, sidebar dataset picker, password gate; no logic."""
import streamlit as st

from core import ui

st.set_page_config(page_title="Quarry", page_icon=":material/landscape:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/table_view:"),
    st.Page("pages/profile.py", title="Profile", icon=":material/query_stats:"),
    st.Page("pages/features.py", title="Features", icon=":material/tune:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/leaderboard:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page("pages/explain.py", title="Explain", icon=":material/psychology:"),
    st.Page("pages/score.py", title="Score", icon=":material/batch_prediction:"),
    st.Page("pages/sql.py", title="SQL", icon=":material/terminal:"),
]
if not ui.signed_in():
    st.navigation(pages, position="hidden")  # no page links before sign-in; the URL's page opens after it
    ui.password_form()
    st.stop()

nav = st.navigation(pages)
if not ui.settings_ok():
    st.stop()
ui.sidebar_dataset_picker()
with ui.routed():
    nav.run()

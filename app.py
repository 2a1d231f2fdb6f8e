"""Quarry: the router. Page list, sidebar dataset picker, auth gate; no logic."""
import streamlit as st

from core import ui

st.set_page_config(page_title="Quarry", page_icon=":material/landscape:", layout="wide")

if not ui.auth_gate() or not ui.settings_ok():
    st.stop()

nav = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/table_view:"),
    st.Page("pages/sql.py", title="SQL", icon=":material/terminal:"),
])
ui.sidebar_dataset_picker()
with ui.routed():
    nav.run()

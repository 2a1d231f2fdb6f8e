"""Quarry: the router. Page list, sidebar dataset picker, sign-in gate and role guard; no logic."""
import streamlit as st

from core import ui

st.set_page_config(page_title="Quarry", page_icon=":material/landscape:", layout="wide")

who = ui.signed_in_as()  # None before sign-in; pages a role may not use are left out of the menu


def page(path: str, title: str, icon: str, **kw) -> st.Page:
    return st.Page(path, title=title, icon=icon, visibility=ui.page_visibility(path[6:-3], who), **kw)


pages = [
    page("pages/home.py", "Home", ":material/home:", default=True),
    page("pages/data.py", "Data", ":material/table_view:"),
    page("pages/profile.py", "Profile", ":material/query_stats:"),
    page("pages/features.py", "Features", ":material/tune:"),
    page("pages/train.py", "Train", ":material/model_training:"),
    page("pages/runs.py", "Runs", ":material/leaderboard:"),
    page("pages/evaluate.py", "Evaluate", ":material/fact_check:"),
    page("pages/explain.py", "Explain", ":material/psychology:"),
    page("pages/score.py", "Score", ":material/batch_prediction:"),
    page("pages/sql.py", "SQL", ":material/terminal:"),
]
who = ui.gate(pages, who)  # the sign-in page (password, OpenID Connect) or "no access", and stop, until signed in

nav = st.navigation(pages)
if not ui.settings_ok():
    st.stop()
ui.sidebar_user(who)
ui.guard_page(nav.url_path)  # a viewer opening /train by URL sees why not, and nothing else
ui.sidebar_dataset_picker()
with ui.routed():
    nav.run()

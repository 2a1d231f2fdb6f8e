"""SQL: one SELECT over the registered datasets, paged, downloadable and savable as a dataset."""
import streamlit as st

from core import ui
from core.data import sandbox
from core.errors import QuarryError
from core.fmt import human_seconds, md

ui.page_guard()
ui.require_role("sql")  # a viewer sees why not, and nothing else

st.title("SQL")
ws = ui.workspace()
names = ws.catalog.names()
if not names:
    st.info("No datasets yet: register one on the Data page first.", icon=":material/info:")
    st.stop()

flash = st.session_state.pop("sql_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

active = ui.active_dataset(ws) or names[0]
with st.expander("Tables", icon=":material/table:"):
    st.caption("Each registered dataset is a table. Names with spaces, capitals or keywords need \"double quotes\".")
    for n in names:
        try:
            cols = ui.describe(n, ws.version()).columns
        except QuarryError as exc:  # each dataset on its own: one whose files are gone does not hide the rest
            st.markdown(f"**{md(n)}** — unavailable")
            st.caption(md(exc.message))
            continue
        st.markdown(f"**{md(n)}** — " + ", ".join(f"{md(c.name, code=True)} {md(c.type.lower())}" for c in cols[:40])
                    + (" …" if len(cols) > 40 else ""))

sql = st.text_area("Query", value=sandbox.example_query(active), height=160, key="sql_query",
                   help="One SELECT statement. Writes, ATTACH, INSTALL/LOAD, SET, PRAGMA and COPY are refused; "
                        f"queries stop after {ws.settings.sql_time_limit_s:g} s.")
if st.button("Run", key="sql_run", type="primary", icon=":material/play_arrow:"):
    st.session_state["sql_ran"] = sql
    ui.audit_event("sql.run", sql=sql)
    st.session_state["sql_page"] = 1

ran = st.session_state.get("sql_ran")
if not ran:
    st.caption("Write a query and press Run.")
    st.stop()

a, b, _ = st.columns([1, 1, 4])
page_size = a.selectbox("Rows per page", [25, 50, 100, 250, 1000], index=1, key="sql_page_size")
page_no = b.number_input("Page", min_value=1, step=1, key="sql_page")
try:
    page = ui.run_query(ran, (page_no - 1) * page_size, page_size, ws.version())
except QuarryError as exc:
    ui.show_error(exc)
    st.stop()

st.dataframe(page.table, hide_index=True, width="stretch", height=min(38 + 35 * max(page.table.num_rows, 1), 640))
st.caption(f"{page.caption()} · page {page_no:,} of {page.page_count:,} · {human_seconds(page.seconds)} in DuckDB")

left, right = st.columns(2)
with left.container(border=True):
    st.markdown("**Download**")
    if page.total_rows > ws.settings.download_max_rows:
        st.caption(f"{page.total_rows:,} rows is more than the {ws.settings.download_max_rows:,}-row download limit: "
                   "save it as a dataset, or use `python -m core sql \"...\" --out result.parquet`.")
    else:
        c1, c2 = st.columns(2)
        c1.download_button("CSV", lambda: ui.export(ran, "csv"), file_name="result.csv", mime="text/csv",
                           key="sql_download_csv", icon=":material/download:", on_click="ignore")
        c2.download_button("Parquet", lambda: ui.export(ran, "parquet"), file_name="result.parquet",
                           mime="application/vnd.apache.parquet", key="sql_download_parquet",
                           icon=":material/download:", on_click="ignore")
with right.container(border=True):
    st.markdown("**Save as dataset**")
    new_name = st.text_input("Name", key="sql_save_name", placeholder="e.g. delayed_flights")
    if st.button("Save", key="sql_save"):
        with ui.errors_shown():
            saved = sandbox.save_as_dataset(ws.con, ws.catalog, ran, new_name)
            ui.set_active_dataset(saved.name)
            st.session_state["sql_flash"] = f"Saved {page.total_rows:,} rows as dataset '{md(saved.name)}'."
            st.rerun()

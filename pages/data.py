"""Data: register datasets, see their schema and size, and browse them a page at a time."""
import streamlit as st

from core import ui
from core.data import catalog as cat
from core.data import sources
from core.errors import QuarryError
from core.fmt import human_bytes, human_seconds, md

ui.page_guard()

st.title("Data")
ws = ui.workspace()

flash = st.session_state.pop("data_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")


def registered(dataset: cat.Dataset, how: str) -> None:
    ui.set_active_dataset(dataset.name)
    st.session_state["data_flash"] = f"{how} '{md(dataset.name)}'. It is now the active dataset."
    st.rerun()


def remove_button(name: str) -> None:
    """Forget dataset `name` (its files stay): in the Manage tab, and under the message when its files are gone."""
    if st.button(f"Remove '{md(name)}' from the catalog", key="data_remove", disabled=not ui.allowed("remove_dataset"),
                 help=None if ui.allowed("remove_dataset") else "Only admins remove datasets."):
        with ui.errors_shown():
            ws.catalog.remove(name)
            st.session_state.pop(ui.DATASET_KEY, None)
            st.query_params.pop(ui.DATASET_KEY, None)
            st.session_state["data_flash"] = f"Removed '{md(name)}' (its files are untouched)."
            st.rerun()


# With no dataset yet the form is simply open; afterwards it folds away. (An expander whose
# `expanded` flips between runs can be left half open by the browser.)
first_time = not ws.catalog.names()
with st.container(border=True) if first_time else st.expander("Register a dataset", icon=":material/add:"):
    if first_time:
        st.markdown("**Register a dataset**")
    roots = ", ".join(md(r) for r in ws.settings.data_roots)
    by_path, by_browse, by_upload = st.tabs(["Path", "Browse the data roots", "Upload a small file"],
                                            key="data_register_tabs")  # keyed: the open tab survives reruns
    with by_path:
        path = st.text_input("Parquet or CSV file, folder (hive partitions welcome) or glob", key="data_path",
                             placeholder="demo/flights.parquet  ·  sales/year=*/  ·  logs/**/*.parquet")
        st.caption(f"Relative paths are looked up under the data roots: {roots}")
        name = st.text_input("Name (optional)", key="data_name", placeholder="derived from the path",
                             help="The dataset's table name in SQL: letters, digits and _.")
        if st.button("Register", key="data_register", type="primary", disabled=not ui.allowed("register")):
            with ui.errors_shown():
                registered(cat.register(ws.con, ws.catalog, path, name=name or None), "Registered")
    with by_browse:
        found = sources.discover(ws.settings)
        if not found:
            st.caption(f"No Parquet or CSV files under {roots}.")
        else:
            pick = st.selectbox("Files and partitioned folders", found, key="data_browse")
            if st.button("Register this", key="data_register_browse", disabled=not ui.allowed("register")):
                with ui.errors_shown():
                    registered(cat.register(ws.con, ws.catalog, pick), "Registered")
    with by_upload:
        upload = st.file_uploader("Parquet or CSV", type=["parquet", "pq", "csv", "tsv"], key="data_upload")
        st.caption("Uploads are copied into the uploads folder of the first data root. "
                   "For big files, put them under a data root and register the path instead.")
        if upload is not None and st.button("Register upload", key="data_register_upload",
                                            disabled=not ui.allowed("register")):
            with ui.errors_shown():
                registered(cat.register_upload(ws.con, ws.catalog, upload.name, upload.getvalue()), "Uploaded")

name = ui.active_dataset(ws)
if name is None:
    st.info("No dataset yet: register one above, or run `python -m core demo` for the demo data.",
            icon=":material/info:")
    st.stop()

try:
    info = ui.describe(name, ws.version())
except QuarryError as exc:
    ui.show_error(exc)
    remove_button(name)
    st.stop()

st.subheader(md(name))
c1, c2, c3, c4 = st.columns(4)
c1.metric("Rows", f"{info.rows:,}")
c2.metric("Columns", f"{len(info.columns):,}")
c3.metric("Files", f"{info.files:,}")
c4.metric("On disk", human_bytes(info.bytes))
st.caption(f"{info.dataset.format.upper()} from {md(info.dataset.source)}")
for part in info.partitions:
    st.caption(f"Partition **{md(part.key)}**: {len(part.values):,} values ({', '.join(map(md, part.values[:10]))}"
               f"{' …' if len(part.values) > 10 else ''})")
if info.rows == 0:
    st.warning("This dataset has 0 rows: there is nothing to preview. Check that the right file was registered.",
               icon=":material/warning:")

preview_tab, schema_tab, manage_tab = st.tabs(["Preview", "Schema", "Manage"], key="data_tabs")
column_names = [c.name for c in info.columns]

with preview_tab:
    a, b = st.columns(2)
    shown = a.multiselect("Columns", column_names, key="data_columns", placeholder="all columns")
    where = b.text_input("Filter", key="data_where",
                         placeholder="a SQL condition, e.g. amount > 100 AND country = 'US'",
                         help="A SQL condition over the columns, run in DuckDB over the whole dataset.")
    c, d, e, f = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    order_by = c.selectbox("Sort by", [None, *column_names], key="data_sort",
                           format_func=lambda v: "(file order)" if v is None else v)
    descending = d.toggle("Descending", key="data_desc", disabled=order_by is None)
    page_size = e.selectbox("Rows per page", [25, 50, 100, 250, 1000], index=1, key="data_page_size")
    page_no = f.number_input("Page", min_value=1, value=1, step=1, key="data_page")
    try:
        page = ui.preview(name, tuple(shown), where, order_by, descending, (page_no - 1) * page_size, page_size,
                          ws.version())
    except QuarryError as exc:
        ui.show_error(exc)
    else:
        st.dataframe(page.table, hide_index=True, width="stretch",
                     height=min(38 + 35 * max(page.table.num_rows, 1), 640))
        st.caption(f"{page.caption()} · page {page_no:,} of {page.page_count:,} · "
                   f"{human_seconds(page.seconds)} in DuckDB")
        if page_no > page.page_count and page.total_rows:
            st.caption(f"There are only {page.page_count:,} pages: go back to page {page.page_count:,}.")

with schema_tab:
    st.dataframe({"column": column_names, "type": [c.type for c in info.columns]}, hide_index=True,
                 width="stretch")

with manage_tab:
    st.caption("Removing a dataset forgets it in Quarry; its files are never touched.")
    remove_button(name)

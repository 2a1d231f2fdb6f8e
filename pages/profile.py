"""Profile: column statistics, distributions and top values, computed by DuckDB over the full data."""
import streamlit as st

from core import charts, correlate, ui
from core.errors import QuarryError
from core.fmt import human_seconds
from core.profile import column_facts, summary_rows

ui.page_guard()

PAGE = 25

st.title("Profile")
ws = ui.workspace()
name = ui.active_dataset(ws)
if name is None:
    st.info("No dataset yet: register one on the Data page first.", icon=":material/info:")
    st.stop()

info = ui.describe(name, ws.version())
left, right = st.columns([3, 1], vertical_alignment="bottom")
left.markdown(f"**{name}** · {info.rows:,} rows × {len(info.columns):,} columns")
exact = right.toggle("Exact", key="profile_exact",
                     help="Exact distinct counts, quantiles and duplicate rows. Slower: DuckDB holds every value.")
cols = len(info.columns)
run = st.button("Profile the full data", key="profile_run", type="primary", icon=":material/query_stats:")
bar = st.progress(0.0, text="Profiling…") if run else None


def show_progress(done: int, total: int, ready: tuple) -> None:
    scan, n = (1, done) if done <= cols else (2, done - cols)
    bar.progress(done / total, text=f"Scan {scan} of 2 · {n:,} of {cols:,} columns")


try:
    p, kept = ui.profile(name, exact, run=run, progress=show_progress if bar else None)
except QuarryError as exc:
    ui.show_error(exc)
    st.stop()
if bar is not None:
    bar.empty()
if p is None:
    st.caption("Every statistic is computed by DuckDB over all rows (two scans), nothing is sampled. "
               "The profile is kept in the workspace until the files change.")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
c1.metric("Rows", f"{p.rows:,}")
c2.metric("Columns", f"{len(p.columns):,}")
cells = p.rows * len(p.columns)
c3.metric("Missing cells", f"{p.missing_cells:,}" + (f" ({100 * p.missing_cells / cells:.1f}%)" if cells else ""))
c4.metric("Duplicate rows", f"{p.duplicate_rows:,}")
st.caption(" ".join(p.notes) + f" Computed in {human_seconds(p.seconds)} over the full data"
           + ("; reopened from the workspace, as the files have not changed since." if kept else "."))

overview, detail, related = st.tabs(["Columns", "Column detail", "Correlations"])
with overview:
    search = st.text_input("Find columns", key="profile_search", placeholder="part of a column name")
    rows = summary_rows(p)
    keep = [i for i, c in enumerate(rows["column"]) if search.lower() in c.lower()]
    pages = max(1, -(-len(keep) // PAGE))
    page_no = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="profile_page")
    shown = keep[(page_no - 1) * PAGE: page_no * PAGE]
    st.dataframe({k: [v[i] for i in shown] for k, v in rows.items()}, hide_index=True, width="stretch",
                 height=min(38 + 35 * max(len(shown), 1), 38 + 35 * PAGE))
    st.caption(f"{len(keep):,} of {len(p.columns):,} columns" + (f" match '{search}'" if search else ""))
    fig = charts.missing(p)
    if fig is not None:
        st.plotly_chart(fig, key="profile_missing_chart")

with detail:
    names = [c.name for c in p.columns]
    picked = st.selectbox("Column", names, key="profile_column")
    col = p.column(picked)
    a, b = st.columns([1, 2])
    facts = column_facts(col, p.exact)
    with a:
        st.dataframe({"statistic": [k for k, _ in facts], "value": [v for _, v in facts]}, hide_index=True,
                     width="stretch", height=38 + 35 * len(facts))
    with b:
        figures = [f for f in (charts.histogram(col), charts.top_values(col), charts.over_time(col)) if f is not None]
        if not figures:
            st.caption("No chart for this column's type.")
        for i, fig in enumerate(figures):
            st.plotly_chart(fig, key=f"profile_chart_{i}")

with related:
    methods = {"pearson": "Pearson", "spearman": "Spearman", "cramers_v": "Cramér's V"}
    method = st.radio("Method", list(methods), format_func=methods.get, horizontal=True, key="profile_corr_method")
    if method == "cramers_v":
        usable = [c.name for c in p.columns if c.distinct is not None and 1 < c.distinct <= correlate.MAX_CATEGORIES]
    else:
        usable = [c.name for c in p.columns if c.kind in ("integer", "float", "decimal") and (c.distinct or 0) > 1]
    chosen = st.multiselect("Columns", usable, default=usable[:12], key=f"profile_corr_columns_{method}",
                            max_selections=correlate.MAX_COLUMNS)
    if len(chosen) < 2:
        st.caption("Pick at least two columns." if usable else "This dataset has no columns for this method.")
    else:
        try:
            corr = ui.correlations(name, tuple(chosen), method, ws.version())
        except QuarryError as exc:
            ui.show_error(exc)
        else:
            st.plotly_chart(charts.heatmap(corr), key="profile_corr_chart")
            st.caption(f"Computed on a random sample of {corr.sample_rows:,} of {corr.total_rows:,} rows "
                       "(repeatable)." if corr.sampled else f"Computed on all {corr.total_rows:,} rows.")

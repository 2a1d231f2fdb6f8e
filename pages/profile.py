"""Profile: statistics, distributions, alerts, missing patterns and target analysis, over the full data."""
import json

import streamlit as st

from core import ui
from core.errors import QuarryError
from core.fmt import human_seconds, md
from core.profile import charts, correlate
from core.profile.scan import column_facts, column_rows, summary_rows

ui.page_guard()

PAGE = 25

st.title("Profile")
ws = ui.workspace()
name = ui.active_dataset_or_stop(ws)

info = ui.describe(name, ws.version())
st.markdown(f"**{md(name)}** · {info.rows:,} rows × {len(info.columns):,} columns")
left, right = st.columns([2, 1], vertical_alignment="bottom")
target = left.selectbox("Target (optional)", [None, *[c.name for c in info.columns]], key="profile_target",
                        format_func=lambda c: "(none)" if c is None else c,
                        help="The column a model would predict: every other column is ranked by its relation to it.")
exact = right.toggle("Exact", key="profile_exact",
                     help="Exact distinct counts, quantiles and duplicate rows. Slower: DuckDB holds every value.")
go, stop = st.columns([1, 4])
run = go.button("Profile the full data", key="profile_run", type="primary", icon=":material/query_stats:")
cancel = stop.empty()
if run:
    # Pressing Cancel reruns the page, which stops this run at its next progress update; nothing is kept.
    cancel.button("Cancel", key="profile_cancel", icon=":material/stop_circle:",
                  on_click=lambda: st.session_state.update(profile_cancelled=True))
elif st.session_state.pop("profile_cancelled", False):
    st.warning("Profiling cancelled: nothing was kept. Press “Profile the full data” to start again.",
               icon=":material/stop_circle:")
bar = st.progress(0.0, text="Profiling…") if run else None
partial = st.empty()


def show_progress(done: int, total: int, ready: tuple) -> None:
    bar.progress(done / total, text=f"{len(ready):,} of {len(info.columns):,} columns profiled")
    if ready:  # what is done renders while the rest runs
        partial.dataframe(column_rows(ready), hide_index=True, width="stretch", height=38 + 35 * min(len(ready), 10))


try:
    p, kept = ui.profile(name, exact, run=run, progress=show_progress if bar else None)
except QuarryError as exc:
    ui.show_error(exc)
    st.stop()
partial.empty()
cancel.empty()
if bar is not None:
    bar.empty()
if p is None:
    st.caption("Every statistic is computed by DuckDB over all rows; only correlations use a sample, and say so. "
               "The profile is kept in the workspace until the files change.")
    st.stop()

stamp = (ws.version(), p.seconds)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Rows", f"{p.rows:,}")
c2.metric("Columns", f"{len(p.columns):,}")
cells = p.rows * len(p.columns)
c3.metric("Missing cells", f"{p.missing_cells:,}" + (f" ({100 * p.missing_cells / cells:.1f}%)" if cells else ""))
c4.metric("Duplicate rows", f"{p.duplicate_rows:,}")
st.caption(" ".join(map(md, p.notes)) + f" Computed in {human_seconds(p.seconds)} over the full data"
           + ("; reopened from the workspace, as the files have not changed since." if kept else "."))

try:
    found = ui.insights(name, exact, target, stamp)
except QuarryError as exc:  # an unusable target: say why, and show the rest without it
    ui.show_error(exc)
    target = None
    try:
        found = ui.insights(name, exact, None, stamp)
    except QuarryError as again:
        ui.show_error(again)
        st.stop()

d1, d2, _ = st.columns([1, 1, 3])
d1.download_button("Profile (JSON)", lambda: json.dumps({**p.to_json(), **found.to_json()}),
                   file_name=f"{name}-profile.json", mime="application/json", key="profile_download_json",
                   icon=":material/download:", on_click="ignore")
d2.download_button("Report (HTML)", lambda: ui.report_html(name, exact, target, stamp),
                   file_name=f"{name}-profile.html", mime="text/html", key="profile_download_html",
                   icon=":material/download:", on_click="ignore")

n_alerts = len(found.alerts)
overview, detail, alerts_tab, missing_tab, related, target_tab = st.tabs(
    ["Columns", "Column detail", f"Alerts ({n_alerts})", "Missing values", "Correlations", "Target"],
    key="profile_tabs")  # keyed: the open tab survives reruns (picking a column, a method, a feature)
with overview:
    search = st.text_input("Find columns", key="profile_search", placeholder="part of a column name")
    rows = summary_rows(p)
    keep = [i for i, c in enumerate(rows["column"]) if search.lower() in c.lower()]
    pages = max(1, -(-len(keep) // PAGE))
    page_no = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="profile_page")
    shown = keep[(page_no - 1) * PAGE: page_no * PAGE]
    st.dataframe({k: [v[i] for i in shown] for k, v in rows.items()}, hide_index=True, width="stretch",
                 height=min(38 + 35 * max(len(shown), 1), 38 + 35 * PAGE))
    st.caption(f"{len(keep):,} of {len(p.columns):,} columns" + (f" match '{md(search)}'" if search else ""))

with detail:
    names = [c.name for c in p.columns]
    picked = st.selectbox("Column", names, key="profile_column")
    col = p.column(picked)
    a, b = st.columns([1, 2])
    facts = column_facts(col, p.exact)
    with a:
        st.dataframe({"statistic": [k for k, _ in facts], "value": [v for _, v in facts]}, hide_index=True,
                     width="stretch", height=38 + 35 * len(facts))
        for alert in (x for x in found.alerts if x.column == picked):
            (st.warning if alert.severity == "warning" else st.info)(md(alert.message))
    with b:
        figures = [f for f in (charts.histogram(col), charts.top_values(col), charts.over_time(col)) if f is not None]
        if not figures:
            st.caption("No chart for this column's type.")
        for i, fig in enumerate(figures):
            st.plotly_chart(fig, key=f"profile_chart_{i}")

with alerts_tab:
    if not found.alerts:
        st.success("No alerts: no constant, ID-like, mostly missing or skewed columns, no duplicates, no outliers "
                   "beyond the far fences.", icon=":material/check_circle:")
    else:
        st.dataframe({"severity": [a.severity for a in found.alerts], "alert": [a.kind for a in found.alerts],
                      "column": [a.column or "(dataset)" for a in found.alerts],
                      "what was found": [a.message for a in found.alerts]},
                     hide_index=True, width="stretch", height=min(38 + 35 * len(found.alerts), 600),
                     column_config={"what was found": st.column_config.TextColumn(width="large")})

with missing_tab:
    fig = charts.missing(p)
    if fig is None:
        st.success("No missing values in any column.", icon=":material/check_circle:")
    else:
        st.plotly_chart(fig, key="profile_missing_chart")
    if found.patterns.patterns:
        m = found.patterns
        st.markdown("**Which columns are missing together** (the commonest patterns over all rows)")
        st.dataframe({"missing together": [", ".join(cols) or "(none of them)" for cols, _ in m.patterns],
                      "rows": [n for _, n in m.patterns],
                      "% of rows": [round(100 * n / m.rows, 2) if m.rows else 0 for _, n in m.patterns]},
                     hide_index=True, width="stretch")
        st.caption(f"{len(m.patterns):,} of {m.pattern_count:,} patterns. " + " ".join(map(md, m.notes)))
        fig = charts.nullity(m)
        if fig is not None:
            st.plotly_chart(fig, key="profile_nullity_chart")

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

with target_tab:
    t = found.target
    if t is None:
        st.info("Choose a target above to rank every column by how much it tells about it.", icon=":material/info:")
    else:
        st.caption(f"Task: {t.task} · measure: {charts.METRIC_NAMES.get(t.metric, t.metric)}, over all "
                   f"{t.rows:,} rows with a target, each feature binned as in its histogram or top values. "
                   + " ".join(map(md, t.notes)))
        fig = charts.feature_strengths(t)
        if fig is not None:
            st.plotly_chart(fig, key="profile_target_chart")
        feature = st.selectbox("Target across a feature", [f.feature for f in t.features], key="profile_target_feature")
        if feature:
            try:
                st.plotly_chart(charts.target_breakdown(ui.target_breakdown(name, exact, target, feature, stamp)),
                                key="profile_breakdown_chart")
            except QuarryError as exc:
                ui.show_error(exc)

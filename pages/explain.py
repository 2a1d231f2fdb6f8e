"""Explain: SHAP values (LightGBM's exact TreeSHAP) on a stratified sample of a run's test split — global,
dependence, partial dependence, one row's waterfall and a what-if panel."""
import math

import streamlit as st

from core import ui
from core.errors import QuarryError
from core.explain import charts as explain_charts
from core.explain import effects, lineage
from core.explain import shap as explain
from core.explain.local import explain_row, find_rows, what_if
from core.fmt import human_seconds, md

ui.page_guard()

st.title("Explain")
ws = ui.workspace()
run, scored = ui.run_and_test_split("expl_run")
stamp = ui.stamp(scored)

size_col, info_col = st.columns([1, 3], vertical_alignment="bottom")
n = int(size_col.number_input("Sample rows", min_value=100, max_value=explain.MAX_ROWS,
                              value=min(explain.DEFAULT_ROWS, max(scored.rows, 100)), step=1000, key="expl_rows",
                              help="SHAP values are computed for a stratified sample of the test split: each class "
                                   "(or target band) in its test proportion."))
n = min(n, scored.rows)
ready_key = f"expl_ready_{run.run_id}_{n}"
if not st.session_state.get(ready_key) and explain.is_cached(ws.settings, run, scored, n):
    st.session_state[ready_key] = True
if not st.session_state.get(ready_key):
    estimate = ui.shap_estimate(run, scored, stamp, n)
    info_col.caption(f"SHAP for {n:,} of {scored.rows:,} test rows: about {human_seconds(estimate)} "
                     f"({len(run.features)} features). The result is kept for this run and sample size.")
    if not st.button("Compute SHAP values", key="expl_go", type="primary", icon=":material/play_arrow:"):
        st.stop()
bar = st.empty()
try:
    sample = ui.shap_sample(run, scored, n, 0, lambda done, total: bar.progress(
        done / max(total, 1), text=f"SHAP: {done:,} of {total:,} rows"))
except QuarryError as exc:
    bar.empty()
    ui.show_error(exc)
    st.stop()
bar.empty()
st.session_state[ready_key] = True
info_col.caption(f"Stratified sample of {sample.n:,} of {sample.test_rows:,} test rows · exact TreeSHAP "
                 f"({'kept from an earlier run, ' if sample.cached else ''}computed in {human_seconds(sample.seconds)})"
                 f" · values in {'log-odds' if run.task != 'regression' else 'target units'}")

class_index = None
if run.task == "multiclass":
    class_index = st.selectbox("Class to explain", range(len(run.classes)), format_func=lambda k: str(run.classes[k]),
                               key="expl_class", help="SHAP values and partial dependence of this class's score.")
features = list(run.features)
importance = explain.global_importance(sample, class_index)
ranked = [f for f, _ in importance]
links = lineage.recipe_links(run, ws.con)
glob, dep, pdp, local = st.tabs(["Global", "Dependence", "Partial dependence", "Local & what-if"],
                                 key="expl_tabs")  # keyed: the open tab survives reruns

with glob:
    bar_col, swarm_col = st.columns([2, 3], gap="large")
    bar_col.plotly_chart(explain_charts.importance_figure(importance),
                         key="expl_importance")
    swarm_col.plotly_chart(explain_charts.beeswarm_figure(sample, class_index=class_index), key="expl_beeswarm")
    if links:
        st.markdown("**Engineered features and the recipe steps that made them**")
        st.dataframe({"feature": [f for f in ranked if f in links], "recipe step": [links[f] for f in ranked
                                                                                   if f in links]},
                     hide_index=True, width="stretch", key="expl_links")

with dep:
    c1, c2 = st.columns(2)
    feature = c1.selectbox("Feature", ranked, key="expl_dep_feature")
    colour = c2.selectbox("Colour by", ["(automatic)", "(none)", *[f for f in ranked if f != feature]],
                          key="expl_dep_colour", help="Automatic: the feature that best explains the spread of "
                                                      "this feature's SHAP values at a given value.")
    interaction = {"(automatic)": "auto", "(none)": None}.get(colour, colour)
    try:
        d = effects.dependence(sample, feature, interaction=interaction, class_index=class_index)
    except QuarryError as exc:
        ui.show_error(exc)
    else:
        st.plotly_chart(explain_charts.dependence_figure(d), key="expl_dependence")
        if links.get(feature):
            st.caption(f"{md(feature)} comes from the recipe: {md(links[feature])}.")

with pdp:
    c1, c2 = st.columns([3, 1])
    pd_feature = c1.selectbox("Feature", ranked, key="expl_pdp_feature")
    ice_rows = c2.number_input("ICE lines", min_value=0, max_value=500, value=100, step=50, key="expl_ice_rows")
    try:
        p = effects.partial_dependence(run, sample, pd_feature, ice_rows=int(ice_rows), class_index=class_index)
    except QuarryError as exc:
        ui.show_error(exc)
    else:
        st.plotly_chart(explain_charts.pdp_figure(p), key="expl_pdp")
        st.caption("Each thin line is one sample row with only this feature changed (ICE); the bold line is their "
                   "average over up to 2,000 sample rows (partial dependence), predicted by the model. Numeric "
                   "features are varied between their 5th and 95th percentiles in the sample.")

with local:
    hows = {"number": "Test row number", "id": "An ID column's value",
            "confident_wrong": "Most confident wrong predictions"}
    if run.task != "regression":
        hows["near_threshold"] = "Closest to the decision threshold" if run.task == "binary" else "Least sure"
    how = st.radio("Pick a row", list(hows), format_func=hows.get, horizontal=True, key="expl_how")
    row = None
    try:
        if how == "number":
            row = int(st.number_input(f"Test row (0 to {scored.rows - 1:,})", min_value=0, max_value=scored.rows - 1,
                                      value=0, key="expl_row_number"))
        elif how == "id":
            c1, c2 = st.columns(2)
            id_column = c1.selectbox("ID column", list(scored.columns), key="expl_id_column")
            id_value = c2.text_input("Value", key="expl_id_value", placeholder="e.g. 12345")
            if id_value.strip():
                row = find_rows(ws.con, scored, "id", value=id_value.strip(), column=id_column, limit=1)[0]
        else:
            found = find_rows(ws.con, scored, how, threshold=scored.threshold, limit=10)
            row = st.selectbox("Row", found, key=f"expl_pick_{how}", format_func=lambda r: f"test row {r:,}") \
                if found else None
    except QuarryError as exc:
        ui.show_error(exc)
    if row is not None:
        try:
            before = explain_row(ws.con, run, scored, row, class_index=class_index)
        except QuarryError as exc:
            ui.show_error(exc)
            st.stop()
        wf_col, facts_col = st.columns([3, 1], gap="large")
        wf_col.plotly_chart(explain_charts.waterfall_figure(before), key="expl_waterfall")
        facts_col.metric("Prediction", f"{before.prediction:.4g}")
        facts_col.caption(f"Actual: {md(before.label)}" + (f" · predicted class: {md(before.predicted)}"
                                                       if before.predicted is not None else ""))

        st.markdown("**What if?** Change this row's feature values (the model's inputs, after the recipe).")
        order = [f for f, _ in sorted(before.contributions, key=lambda c: -abs(c[1]))]
        edited: dict = dict(before.values)
        def value_input(box, i: int, f: str) -> object:
            """An input for feature f holding this row's value, of the kind the model takes."""
            value, key, label = before.values.get(f), f"expl_wi_{row}_{i}", md(f)  # labels are Markdown
            if f in run.categorical:
                known = run.categorical[f]
                options = [None, *known, *([value] if value is not None and value not in known else [])]
                return box.selectbox(label, options, index=options.index(value), key=key,
                                     format_func=lambda v: "(missing)" if v is None else
                                     str(v) + ("" if v in known else " (not seen in training)"))
            if isinstance(value, bool):
                return box.checkbox(label, value=value, key=key)
            if isinstance(value, int):
                return box.number_input(label, value=value, step=1, key=key)
            if isinstance(value, float) and not math.isnan(value):
                return box.number_input(label, value=value, key=key, format="%g")
            return box.text_input(label, value="" if value is None else str(value), key=key) or None

        with st.form(f"expl_what_if_{row}"):
            cols = st.columns(3)
            for i, f in enumerate(order[:12]):  # the features that matter most for this row first
                edited[f] = value_input(cols[i % 3], i, f)
            if len(order) > 12:
                with st.expander(f"The other {len(order) - 12} features"):
                    rest = st.columns(3)
                    for i, f in enumerate(order[12:], start=12):
                        edited[f] = value_input(rest[i % 3], i, f)
            submitted = st.form_submit_button("Predict", icon=":material/science:")
        if submitted:
            try:
                after = what_if(run, edited, class_index=class_index)
            except QuarryError as exc:
                ui.show_error(exc)
            else:
                change = after.prediction - before.prediction
                st.metric("What-if prediction", f"{after.prediction:.4g}", delta=f"{change:+.4g}")
                st.plotly_chart(explain_charts.what_if_figure(before, after), key="expl_what_if_compare")
                st.plotly_chart(explain_charts.waterfall_figure(after), key="expl_what_if_waterfall")

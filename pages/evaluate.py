"""Evaluate: a run's metrics over its whole test split — threshold, curves, calibration, slices, fairness, model."""
import streamlit as st

from core import ui
from core.errors import QuarryError
from core.evaluate import charts as eval_charts
from core.evaluate import metrics as evaluate
from core.evaluate import slices
from core.fmt import human_seconds, md
from core.model import charts

ui.page_guard()

st.title("Evaluate")
ws = ui.workspace()
run, scored = ui.run_and_test_split("eval_run")
try:
    ev = ui.evaluation(scored)
except QuarryError as exc:
    ui.show_error(exc)
    st.stop()
stamp = ui.stamp(scored)
split = run.info.get("split") or {}
st.caption(f"{run.task} · {md(run.target)} on {md(scored.dataset)} · test split: {scored.rows:,} rows "
           f"({split.get('kind', 'random')} split, {split.get('test', 0):.0%} test) · every figure is computed over "
           "all test rows" + (f" except: {md(ev.sample_note)}" if ev.sample_note else "")
           + (f" · scored in {human_seconds(scored.seconds)}" if scored.seconds else ""))
if scored.changed_since_training:
    st.warning("The dataset's files changed since this run was trained: the test split is drawn from the data as it "
               "is now, so these figures can differ from the run's.", icon=":material/warning:")

HEADLINE = {"binary": [("auc", "ROC AUC"), ("average_precision", "Average precision"), ("logloss", "Log loss"),
                       ("brier", "Brier score"), ("base_rate", "Positive rate")],
            "multiclass": [("accuracy", "Accuracy"), ("macro_f1", "Macro F1"), ("micro_f1", "Micro F1"),
                           ("logloss", "Log loss")],
            "regression": [("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²"), ("mape", "MAPE")]}
shown = [(k, label) for k, label in HEADLINE[run.task] if k in ev.metrics]
for col, (k, label) in zip(st.columns(len(shown)), shown, strict=True):
    value = ev.metrics.get(k)
    col.metric(label, "—" if value is None else (f"{value:.2%}" if k in ("base_rate", "mape") else f"{value:.4g}"))

user_columns = ui.slice_columns(run, scored)
threshold = None
if run.task == "binary":
    tabs = st.tabs(["Threshold", "Curves", "Calibration & lift", "Slices", "Fairness", "Model"],
                   key="eval_tabs_binary")  # keyed: the open tab survives reruns
    key = f"eval_threshold_{run.run_id}"
    if key not in st.session_state:
        st.session_state[key] = round(scored.threshold, 4)
    with tabs[0]:
        threshold = st.slider("Decision threshold", 0.0, 1.0, step=0.0001, format="%.4f", key=key,
                              help="Rows scored at or above it are predicted positive.")
        at = ui.at_threshold(scored, stamp, threshold)
        cm_col, stats_col = st.columns([3, 2], gap="large")
        labels = [str(c) for c in scored.classes]
        cm_col.plotly_chart(eval_charts.confusion_figure(labels, [[at["tn"], at["fp"]], [at["fn"], at["tp"]]]),
                            key="eval_confusion")
        with stats_col:
            st.markdown(f"**At threshold {threshold:.4f}** (all {scored.rows:,} test rows)")
            st.dataframe({"measure": ["precision", "recall (TPR)", "F1", "accuracy", "specificity", "FPR",
                                      "predicted positive"],
                          "value": [ui.cell(at.get(k)) for k in ("precision", "recall", "f1", "accuracy",
                                                                   "specificity", "fpr", "selection_rate")]},
                         hide_index=True, width="stretch", key="eval_at_threshold")
        st.markdown("**Suggested thresholds**")
        c1, c2, c3, c4 = st.columns(4)
        cost_fp = c1.number_input("Cost of a false positive", min_value=0.0, value=1.0, step=1.0, key="eval_cost_fp")
        cost_fn = c2.number_input("Cost of a false negative", min_value=0.0, value=1.0, step=1.0, key="eval_cost_fn",
                                  help="E.g. 20 when a missed positive costs twenty times a false alarm.")
        want_p = c3.number_input("Target precision", min_value=0.0, max_value=1.0, value=None, step=0.05,
                                 key="eval_target_precision", placeholder="e.g. 0.9")
        want_r = c4.number_input("Target recall", min_value=0.0, max_value=1.0, value=None, step=0.05,
                                 key="eval_target_recall", placeholder="e.g. 0.8")
        try:
            found = ui.suggestions(scored, stamp, cost_fp, cost_fn, want_p, want_r)
        except QuarryError as exc:
            ui.show_error(exc)
            found = {}
        names = {"max_f1": "Best F1", "min_cost": "Lowest cost", "precision": "Target precision",
                 "recall": "Target recall"}
        for name, s in found.items():
            row = st.columns([2, 5, 1], vertical_alignment="center")
            row[0].markdown(f"**{names.get(name, name)}**")
            if s.get("threshold") is None:
                row[1].caption(s.get("why", "Not reachable."))
                continue
            row[1].caption(f"{s['threshold']:.4f} — precision {ui.cell(s.get('precision'))}, recall "
                           f"{ui.cell(s.get('recall'))}, F1 {ui.cell(s.get('f1'))}. {s.get('why', '')}")
            row[2].button("Use", key=f"eval_use_{name}", on_click=st.session_state.__setitem__,
                          args=(key, round(float(s["threshold"]), 4)))
    with tabs[1]:
        roc_col, pr_col = st.columns(2)
        roc_col.plotly_chart(eval_charts.roc_figure(ev, threshold), key="eval_roc")
        pr_col.plotly_chart(eval_charts.pr_figure(ev, threshold), key="eval_pr")
        st.plotly_chart(eval_charts.score_distribution_figure(ev, threshold), key="eval_scores")
    with tabs[2]:
        st.plotly_chart(eval_charts.calibration_figure(ev), key="eval_calibration")
        gain_col, lift_col = st.columns(2)
        gain_col.plotly_chart(eval_charts.gain_figure(ev), key="eval_gain")
        lift_col.plotly_chart(eval_charts.lift_figure(ev), key="eval_lift")
    slice_tab, fair_tab, model_tab = tabs[3], tabs[4], tabs[5]
elif run.task == "multiclass":
    tabs = st.tabs(["Classes", "Slices", "Fairness", "Model"], key="eval_tabs_multiclass")
    with tabs[0]:
        normalize = st.toggle("Share of each actual class", key="eval_cm_normalize",
                              help="Rows sum to 100 %: the diagonal is each class's recall.")
        cm = ev.curves["confusion"]
        st.plotly_chart(eval_charts.confusion_figure(cm["labels"], cm["matrix"], normalize=normalize),
                        key="eval_confusion")
        st.plotly_chart(eval_charts.per_class_figure(ev), key="eval_per_class")
        st.dataframe(ev.curves["per_class"], hide_index=True, width="stretch", key="eval_per_class_table")
    slice_tab, fair_tab, model_tab = tabs[1], tabs[2], tabs[3]
else:
    tabs = st.tabs(["Errors", "Slices", "Fairness", "Model"], key="eval_tabs_regression")
    with tabs[0]:
        st.plotly_chart(eval_charts.density_figure(ev), key="eval_density")
        res_col, vs_col = st.columns(2)
        res_col.plotly_chart(eval_charts.residuals_figure(ev), key="eval_residuals")
        vs_col.plotly_chart(eval_charts.residual_vs_pred_figure(ev), key="eval_residual_vs_pred")
        if ev.metrics.get("mape") is not None and ev.metrics.get("mape_rows") != scored.rows:
            st.caption(f"MAPE over the {ev.metrics.get('mape_rows', 0):,} test rows whose actual value is not 0.")
    slice_tab, fair_tab, model_tab = tabs[1], tabs[2], tabs[3]

with slice_tab:
    c1, c2, c3 = st.columns([3, 2, 1])
    column = c1.selectbox("Slice by", user_columns, key="eval_slice_column",
                          help="Text and boolean columns: their 20 most frequent values; numbers and times: "
                               "equal-count bins.")
    choices = slices.slice_metrics(run.task)
    metric = c2.selectbox("Metric", choices, key="eval_slice_metric")
    bins = c3.number_input("Bins", min_value=2, max_value=50, value=10, key="eval_slice_bins")
    if column:
        try:
            table = ui.slices(scored, stamp, column, metric, threshold, int(bins))
        except QuarryError as exc:
            ui.show_error(exc)
        else:
            st.plotly_chart(eval_charts.slices_figure(table), key="eval_slices")
            st.dataframe(table.rows, hide_index=True, width="stretch", key="eval_slices_table")
            st.caption(f"Worst first. Overall {metric}: {ui.cell(table.overall.get('value'))}; 95 % confidence "
                       "intervals" + (f". {md(table.note)}" if table.note else "."))

with fair_tab:
    c1, c2 = st.columns([3, 1])
    sensitive = c1.selectbox("Sensitive column", user_columns, key="eval_fair_column",
                             help="Groups by this column's values (or bins) and compares the model's behaviour.")
    fair_bins = c2.number_input("Bins", min_value=2, max_value=50, value=5, key="eval_fair_bins")
    if sensitive:
        try:
            f = ui.fairness(scored, stamp, sensitive, threshold, int(fair_bins))
        except QuarryError as exc:
            ui.show_error(exc)
        else:
            summary = {k.replace("_", " "): v for k, v in f["summary"].items() if v is not None}
            st.dataframe({"between groups": list(summary), "value": [f"{v:.4g}" for v in summary.values()]},
                         hide_index=True, key="eval_fair_summary")
            measures = [k for k in (f["groups"][0] if f["groups"] else {}) if k not in ("group", "count")]
            if measures:
                measure = st.selectbox("Measure", measures, key="eval_fair_measure")
                st.plotly_chart(eval_charts.fairness_figure(f, measure), key="eval_fairness")
            st.dataframe(f["groups"], hide_index=True, width="stretch", key="eval_fair_table")
            for note in f.get("notes") or []:
                st.caption(md(note))
            if run.task == "binary":
                st.caption("Demographic parity difference: the largest gap between groups in the share predicted "
                           "positive; equal opportunity difference: the largest gap in recall (TPR). 0 is parity.")

with model_tab:
    report = evaluate.model_report(run)
    curve = charts.learning_curve(run.curve, best=run.best_iteration)
    if curve is not None:
        st.plotly_chart(curve, key="eval_curve")
    st.plotly_chart(eval_charts.baselines_figure(report), key="eval_baselines")
    st.dataframe(ui.metrics_table(run.info.get("metrics"), run.info.get("baselines")), hide_index=True,
                 width="stretch", key="eval_baselines_table")
    gain_col, split_col = st.columns(2)
    for col, by in ((gain_col, "gain"), (split_col, "split")):
        fig = charts.importance(run.importance, by=by)
        if fig is not None:
            col.plotly_chart(fig, key=f"eval_importance_{by}")
st.page_link("pages/explain.py", label="Explain this model (SHAP, what-if)", icon=":material/psychology:",
             query_params={"run": run.run_id})

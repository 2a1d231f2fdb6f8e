"""Plotly figures of a model's evaluation (core.evaluate results): pure functions of aggregates, never of raw rows.

Every function returns a figure; where there is nothing to draw (a curve undefined for the test
split, a chart of another task) the figure says why in its middle. No trace has more than MAX_POINTS
points: curves are thinned, histograms are bounded by their bins.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.charts import ACCENT, LAYOUT, MUTED, PALETTE, _fig, _thin
from core.errors import QuarryError
from core.evaluate.metrics import Evaluation
from core.evaluate.slices import HIGHER_IS_BETTER, SliceTable
from core.fmt import chart_text
from core.model.charts import importance, learning_curve

MAX_POINTS = 2_000
GUIDE = dict(color="#999", dash="dash", width=1)  # reference lines: the diagonal, a random model, zero
MARK = "#C0392B"  # the chosen threshold
SQUARE = 420  # height of square plots (ROC, PR, calibration, density)
METRIC_WORDS = {"auc": "AUC", "average_precision": "average precision", "logloss": "log loss", "brier": "Brier score",
                "accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1",
                "positive_rate": "share predicted positive", "macro_recall": "macro recall", "macro_f1": "macro F1",
                "rmse": "RMSE", "mae": "MAE", "r2": "R²", "mean_residual": "mean residual (actual - predicted)",
                "selection_rate": "selection rate (share predicted positive)", "tpr": "true positive rate",
                "fpr": "false positive rate", "mean_pred": "mean prediction", "mean_actual": "mean actual value"}
HIGHER = {"auc", "average_precision", "accuracy", "precision", "recall", "f1", "macro_f1", "r2", "macro_recall"}
LOWER = {"logloss", "brier", "rmse", "mae"}


def _words(metric: str) -> str:
    return METRIC_WORDS.get(metric, metric)


def _empty(title: str, message: str) -> go.Figure:
    """A figure with nothing to plot and a sentence saying why."""
    fig = _fig(title, "", "")
    fig.add_annotation(text=chart_text(message), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=13, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _label(value: str) -> str:
    """A class or group value as a tick, legend or hover label (plain text)."""
    return "(empty)" if value == "" else chart_text(value)


def _pick(values: list, keep: list[int]) -> list:
    return [values[i] for i in keep]


def _nearest(thresholds: list, threshold: float | None) -> int | None:
    """The index of the curve point whose threshold is nearest `threshold`."""
    if threshold is None or not thresholds:
        return None
    return min(range(len(thresholds)), key=lambda i: abs(thresholds[i] - threshold))


def _binary_points(ev: Evaluation) -> dict | None:
    return ev.curves.get("points") if ev.task == "binary" else None


def _square(fig: go.Figure) -> go.Figure:
    fig.update_layout(height=SQUARE, legend=dict(orientation="h", y=-0.18, x=0))
    fig.update_xaxes(range=[-0.01, 1.01], constrain="domain")
    fig.update_yaxes(range=[-0.01, 1.01], scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


# ----------------------------------------------------------------------------------------------
# Binary


def roc_figure(ev: Evaluation, threshold: float | None = None) -> go.Figure:
    """The ROC curve (from the origin), the diagonal of a random model, and the point of `threshold`
    (the run's threshold when None) marked at the nearest curve point."""
    p, auc = _binary_points(ev), ev.metrics.get("auc")
    if not p or auc is None:
        return _empty("ROC curve", "The ROC curve needs a binary run with both classes in the test split.")
    fpr, tpr = [0.0, *p["fpr"]], [0.0, *p["tpr"]]
    text = ["above every score", *(f"{t:.4f}" for t in p["threshold"])]
    keep = _thin(len(fpr), MAX_POINTS)
    fig = _fig(f"ROC curve (AUC {auc:.3f})", "false positive rate (share of negatives flagged)",
               "true positive rate (share of positives caught)")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=GUIDE, name="random model (AUC 0.5)", hoverinfo="skip")
    fig.add_scatter(x=_pick(fpr, keep), y=_pick(tpr, keep), text=_pick(text, keep), mode="lines", name="model",
                    line=dict(color=ACCENT, width=2.5),
                    hovertemplate="threshold %{text}<br>FPR %{x:.3f} · TPR %{y:.3f}<extra></extra>")
    _mark(fig, p, threshold if threshold is not None else ev.metrics.get("threshold"), "fpr", "tpr")
    return _square(fig)


def _mark(fig: go.Figure, p: dict, threshold: float | None, x: str, y: str) -> None:
    i = _nearest(p["threshold"], threshold)
    if i is None or p[x][i] is None or p[y][i] is None:
        return
    fig.add_scatter(x=[p[x][i]], y=[p[y][i]], mode="markers", name=f"threshold {threshold:.3g}",
                    marker=dict(color=MARK, size=11, symbol="circle-open", line=dict(width=3)),
                    hovertemplate=(f"threshold {p['threshold'][i]:.4f}<br>{x} %{{x:.3f}} · {y} %{{y:.3f}}"
                                   "<extra></extra>"))


def pr_figure(ev: Evaluation, threshold: float | None = None) -> go.Figure:
    """Precision against recall over every threshold, the base rate (a random model) as a line."""
    p, ap = _binary_points(ev), ev.metrics.get("average_precision")
    if not p or ap is None:
        return _empty("Precision-recall curve", "The precision-recall curve needs a binary run with both classes "
                                                "in the test split.")
    keep = _thin(len(p["recall"]), MAX_POINTS)
    fig = _fig(f"Precision-recall curve (average precision {ap:.3f})", "recall (share of positives caught)",
               "precision (positives among flagged)")
    base = ev.metrics.get("base_rate")
    if base is not None:
        fig.add_scatter(x=[0, 1], y=[base, base], mode="lines", line=GUIDE, name=f"random model ({base:.1%} positive)",
                        hoverinfo="skip")
    fig.add_scatter(x=_pick(p["recall"], keep), y=_pick(p["precision"], keep),
                    text=[f"{t:.4f}" for t in _pick(p["threshold"], keep)], mode="lines", name="model",
                    line=dict(color=ACCENT, width=2.5),
                    hovertemplate="threshold %{text}<br>recall %{x:.3f} · precision %{y:.3f}<extra></extra>")
    _mark(fig, p, threshold if threshold is not None else ev.metrics.get("threshold"), "recall", "precision")
    return _square(fig)


def calibration_figure(ev: Evaluation) -> go.Figure:
    """Observed positive rate against mean predicted probability per score bin, with 95 % Wilson intervals."""
    c = ev.curves.get("calibration") if ev.task == "binary" else None
    if not c or not c.get("count"):
        return _empty("Calibration", "Calibration is drawn for binary runs.")
    fig = _fig(f"Calibration ({len(c['count'])} equal-count score bins)", "mean predicted probability",
               "observed positive rate")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=GUIDE, name="perfectly calibrated", hoverinfo="skip")
    obs = c["observed"]
    fig.add_scatter(x=c["mean_pred"], y=obs, mode="lines+markers", name="model", line=dict(color=ACCENT, width=2),
                    marker=dict(size=8),
                    error_y=dict(type="data", symmetric=False, color=ACCENT, thickness=1.2,
                                 array=[(h - o) if h is not None else 0 for h, o in zip(c["hi"], obs, strict=True)],
                                 arrayminus=[(o - lo) if lo is not None else 0 for lo, o in zip(c["lo"], obs,
                                                                                               strict=True)]),
                    customdata=list(zip(c["count"], c["lo"], c["hi"], strict=True)),
                    hovertemplate=("predicted %{x:.3f} · observed %{y:.3f}<br>95%% interval %{customdata[1]:.3f}–"
                                   "%{customdata[2]:.3f}<br>%{customdata[0]:,} rows<extra></extra>"))
    fig = _square(fig)
    # Zoomed on the bins: with a rare positive class every bin sits near 0 and a [0, 1] square hides them all
    top = max([*c["mean_pred"], *(h for h in c["hi"] if h is not None), *(o for o in obs if o is not None)])
    if top < 0.5:
        edge = min(1.0, top * 1.1)
        fig.update_xaxes(range=[0, edge])
        fig.update_yaxes(range=[0, edge])
        fig.update_layout(title_text=f"{fig.layout.title.text} — zoomed to 0–{edge:.2g}")
    return fig


def gain_figure(ev: Evaluation) -> go.Figure:
    """Cumulative gain: the share of positives among the top x % of rows by score, against random and perfect."""
    g = ev.curves.get("gain") if ev.task == "binary" else None
    if not g or any(v is None for v in g["gain"]):
        return _empty("Cumulative gain", "The gain chart needs a binary run with positives in the test split.")
    x = [100 * f for f in g["fraction"]]
    fig = _fig("Cumulative gain", "% of rows, highest scores first", "% of positives captured")
    fig.add_scatter(x=[0, 100], y=[0, 100], mode="lines", line=GUIDE, name="random order", hoverinfo="skip")
    base = ev.metrics.get("base_rate")
    if base:
        fig.add_scatter(x=[0, 100 * base, 100], y=[0, 100, 100], mode="lines", name="perfect model",
                        line=dict(color=MUTED, width=1.5), hoverinfo="skip")
    fig.add_scatter(x=[0, *x], y=[0, *(100 * v for v in g["gain"])], mode="lines", name="model",
                    line=dict(color=ACCENT, width=2.5),
                    hovertemplate="top %{x:.0f}% of rows: %{y:.1f}% of positives<extra></extra>")
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0), height=360)
    return fig


def lift_figure(ev: Evaluation) -> go.Figure:
    """Lift: how many times the base rate the positive share is among the top x % of rows."""
    g = ev.curves.get("gain") if ev.task == "binary" else None
    if not g or any(v is None for v in g["lift"]):
        return _empty("Lift", "The lift chart needs a binary run with positives in the test split.")
    x = [100 * f for f in g["fraction"]]
    fig = _fig("Cumulative lift", "% of rows, highest scores first", "lift (× the base rate)")
    fig.add_scatter(x=[0, 100], y=[1, 1], mode="lines", line=GUIDE, name="random order (1×)", hoverinfo="skip")
    fig.add_scatter(x=x, y=g["lift"], mode="lines", name="model", line=dict(color=ACCENT, width=2.5),
                    hovertemplate="top %{x:.0f}% of rows: %{y:.2f}× the base rate<extra></extra>")
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0), height=360)
    return fig


def score_distribution_figure(ev: Evaluation, threshold: float | None = None) -> go.Figure:
    """Per actual class, the share of its rows in each probability bin; binary: the threshold as a line.

    Binary: the probability of the positive class; multiclass: the probability the model gave each
    row's own class."""
    s = ev.curves.get("scores")
    if not s or ev.task not in ("binary", "multiclass"):
        return _empty("Score distribution", "Score distributions are drawn for classification runs.")
    edges = s["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    width = edges[1] - edges[0]
    if ev.task == "binary":
        labels = list(s["counts"])
        x_title = f"predicted probability of {labels[-1]}" if labels else "predicted probability"
    else:
        x_title = "probability given to the row's own class"
    fig = _fig("Scores by actual class", x_title, "% of the class's rows")
    for k, (label, counts) in enumerate(s["counts"].items()):
        total = sum(counts)
        if not total:
            continue
        fig.add_bar(x=centers, y=[100 * c / total for c in counts], width=width, name=f"{_label(label)} ({total:,})",
                    marker_color=PALETTE[k % len(PALETTE)], opacity=0.6, customdata=counts,
                    hovertemplate=(f"{_label(label)}: %{{y:.1f}}% (%{{customdata:,}} rows) at %{{x:.2f}}"
                                   "<extra></extra>"))
    t = threshold if threshold is not None else (ev.metrics.get("threshold") if ev.task == "binary" else None)
    if t is not None:
        fig.add_vline(x=t, line=dict(color=MARK, dash="dot", width=2),
                      annotation=dict(text=f"threshold {t:.3g}", font=dict(size=11, color=MARK)))
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", y=-0.25, x=0), height=360)
    fig.update_xaxes(range=[0, 1])
    return fig


# ----------------------------------------------------------------------------------------------
# Classification: confusion matrix, per-class scores


def confusion_figure(labels: list, matrix: list[list[int]], normalize: bool = False) -> go.Figure:
    """The confusion matrix (rows actual, columns predicted) with the count in each cell; `normalize`
    colours each row by its share of the actual class (recall on the diagonal)."""
    names = [_label(str(v)) for v in labels]
    if not names or not matrix:
        return _empty("Confusion matrix", "There are no rows to count.")
    totals = [sum(row) for row in matrix]
    shares = [[(c / t if t else None) for c in row] for row, t in zip(matrix, totals, strict=True)]
    z = shares if normalize else matrix
    text = [[f"{c:,}" + (f"<br>{s:.0%}" if normalize and s is not None else "") for c, s in zip(row, srow, strict=True)]
            for row, srow in zip(matrix, shares, strict=True)]
    custom = [[[c, (s if s is not None else float("nan"))] for c, s in zip(row, srow, strict=True)]
              for row, srow in zip(matrix, shares, strict=True)]
    title = "Confusion matrix" + (" (colour: share of each actual class)" if normalize else " (counts)")
    fig = _fig(title, "predicted class", "actual class")
    fig.add_heatmap(z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale="Teal", customdata=custom,
                    zmin=0, zmax=1 if normalize else None, colorbar=dict(thickness=12),
                    hovertemplate=("actual %{y} · predicted %{x}: %{customdata[0]:,} rows "
                                   "(%{customdata[1]:.1%} of actual %{y})<extra></extra>"))
    size = max(320, 40 * len(names) + 140)
    fig.update_layout(height=size)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", side="bottom", tickangle=-30 if len(names) > 6 else 0)
    return fig


def per_class_figure(ev: Evaluation) -> go.Figure:
    """Precision, recall and F1 of each class (multiclass), support and one-vs-rest AUC in the hover."""
    per = ev.curves.get("per_class") if ev.task == "multiclass" else None
    if not per:
        return _empty("Per class", "Per-class scores are drawn for multiclass runs.")
    names = [_label(r["class"]) for r in per]
    custom = [[r["support"], r["auc"] if r.get("auc") is not None else float("nan")] for r in per]
    fig = _fig("Precision, recall and F1 per class", "class", "score")
    for k, m in enumerate(("precision", "recall", "f1")):
        fig.add_bar(x=names, y=[r[m] for r in per], name=_words(m), marker_color=PALETTE[k], customdata=custom,
                    hovertemplate=(f"%{{x}} · {_words(m)} %{{y:.3f}}<br>%{{customdata[0]:,}} rows · one-vs-rest AUC "
                                   "%{customdata[1]:.3f}<extra></extra>"))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.12, x=1, xanchor="right"), height=360)
    fig.update_yaxes(range=[0, 1])
    fig.update_xaxes(type="category")
    return fig


# ----------------------------------------------------------------------------------------------
# Regression


def _centers(edges: list[float]) -> list[float]:
    return [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _log_heatmap(fig: go.Figure, h: dict, x_name: str, y_name: str) -> None:
    """A 2D histogram as a heatmap coloured by log10(rows); empty cells left blank."""
    counts = h["counts"]
    z = [[math.log10(c) if c else None for c in row] for row in counts]
    top = max((max(row) for row in counts), default=0)
    ticks = list(range(0, int(math.log10(top)) + 1)) if top else [0]
    fig.add_heatmap(z=z, x=_centers(h["x_edges"]), y=_centers(h["y_edges"]), customdata=counts, colorscale="Teal",
                    zmin=0, colorbar=dict(thickness=12, title="rows", tickvals=ticks,
                                          ticktext=[f"{10 ** t:,}" for t in ticks]),
                    hovertemplate=f"{x_name} %{{x:.4g}} · {y_name} %{{y:.4g}}: %{{customdata:,}} rows<extra></extra>")


def _outside(n: int) -> str:
    return f" ({n:,} rows outside not shown)" if n else ""


def density_figure(ev: Evaluation) -> go.Figure:
    """Predicted against actual values as a 2D histogram (log colour), with the diagonal of perfect predictions."""
    h = ev.curves.get("density") if ev.task == "regression" else None
    if not h:
        return _empty("Predicted vs actual", "Predicted vs actual is drawn for regression runs.")
    fig = _fig("Predicted vs actual" + _outside(h["outside"]), "actual value", "predicted value")
    _log_heatmap(fig, h, "actual", "predicted")
    lo, hi = h["x_edges"][0], h["x_edges"][-1]
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=GUIDE, name="perfect prediction", hoverinfo="skip")
    fig.update_layout(height=SQUARE, showlegend=False)
    fig.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def residuals_figure(ev: Evaluation) -> go.Figure:
    """The distribution of residuals (actual - predicted), tails beyond the 0.5th/99.5th percentiles counted apart."""
    r = ev.curves.get("residuals") if ev.task == "regression" else None
    if not r:
        return _empty("Residuals", "Residuals are drawn for regression runs.")
    edges = r["edges"]
    outside = [f"{r['below']:,} below" if r["below"] else "", f"{r['above']:,} above" if r["above"] else ""]
    outside = [o for o in outside if o]
    title = "Residuals (actual - predicted)" + (f" ({' · '.join(outside)} not shown)" if outside else "")
    fig = _fig(title, "residual (actual - predicted)", "rows")
    fig.add_bar(x=_centers(edges), y=r["counts"], width=edges[1] - edges[0], marker_color=ACCENT,
                hovertemplate="%{x:,.4g}: %{y:,} rows<extra></extra>")
    fig.add_vline(x=0, line=GUIDE)
    return fig


def residual_vs_pred_figure(ev: Evaluation) -> go.Figure:
    """Residuals against predictions as a 2D histogram (log colour), zero as a line: a trend means bias."""
    h = ev.curves.get("residual_vs_pred") if ev.task == "regression" else None
    if not h:
        return _empty("Residuals vs predicted", "Residuals are drawn for regression runs.")
    fig = _fig("Residuals vs predicted" + _outside(h["outside"]), "predicted value", "residual (actual - predicted)")
    _log_heatmap(fig, h, "predicted", "residual")
    fig.add_hline(y=0, line=GUIDE)
    fig.update_layout(height=380)
    return fig


# ----------------------------------------------------------------------------------------------
# Slices and fairness


def _bars_by_group(fig: go.Figure, names: list[str], values: list, counts: list[int], lo: list | None = None,
                   hi: list | None = None, what: str = "") -> None:
    """Horizontal bars, the first group at the top, with optional asymmetric interval whiskers."""
    error = None
    if lo is not None and hi is not None:
        error = dict(type="data", symmetric=False, color="#555", thickness=1.2,
                     array=[(h - v) if h is not None else 0 for v, h in zip(values, hi, strict=True)][::-1],
                     arrayminus=[(v - a) if a is not None else 0 for v, a in zip(values, lo, strict=True)][::-1])
    ci = ([f"95% interval {a:.4g}–{b:.4g}<br>" if a is not None and b is not None else ""
           for a, b in zip(lo, hi, strict=True)] if lo is not None and hi is not None else [""] * len(values))
    fig.add_bar(x=values[::-1], y=names[::-1], orientation="h", marker_color=ACCENT, error_x=error,
                customdata=list(zip(counts, ci, strict=True))[::-1],
                hovertemplate=(f"%{{y}}: {what} %{{x:.4g}}<br>%{{customdata[1]}}%{{customdata[0]:,}} rows"
                               "<extra></extra>"))
    fig.update_layout(height=max(240, 26 * len(names) + 110), showlegend=False)
    fig.update_yaxes(type="category")


def slices_figure(table: SliceTable) -> go.Figure:
    """The slice metric per group (worst at the top) with 95 % intervals, the overall value as a line."""
    rows = [r for r in table.rows if r["value"] is not None]
    title = f"{_words(table.metric)} by {table.column}"
    if not rows:
        return _empty(title, f"No group of {table.column} has a defined {_words(table.metric)}.")
    undefined = len(table.rows) - len(rows)
    better = HIGHER_IS_BETTER.get(table.metric)
    direction = "" if better is None else (" (higher is better)" if better else " (lower is better)")
    fig = _fig(title + ", worst first" + (f" ({undefined} without a value)" if undefined else ""),
               _words(table.metric) + direction, table.column)
    _bars_by_group(fig, [_label(r["group"]) for r in rows], [r["value"] for r in rows], [r["count"] for r in rows],
                   [r["lo"] for r in rows], [r["hi"] for r in rows], _words(table.metric))
    overall = table.overall.get("value")
    if overall is not None:
        fig.add_vline(x=overall, line=dict(color=MARK, dash="dot", width=2),
                      annotation=dict(text=f"overall {overall:.4g}", font=dict(size=11, color=MARK)))
    return fig


FAIRNESS_MEASURES = {"binary": ("selection_rate", "tpr", "fpr", "precision", "accuracy"),
                     "multiclass": ("accuracy", "macro_recall"), "regression": ("mae", "mean_pred", "mean_actual")}


def fairness_figure(f: dict, measure: str) -> go.Figure:
    """One fairness measure per group of the column (core.slices.fairness), the overall value as a line."""
    groups = f.get("groups") or []
    known = [k for k in (groups[0] if groups else {}) if k not in ("group", "count")]
    if measure not in known:
        raise QuarryError(f"Unknown fairness measure {measure!r}.", f"Pick one of: {', '.join(known) or 'none'}.")
    rows = [g for g in groups if g.get(measure) is not None]
    title = f"{_words(measure)} by {f.get('column')}"
    if not rows:
        return _empty(title, f"No group has a defined {_words(measure)}.")
    fig = _fig(title, _words(measure), str(f.get("column") or ""))
    _bars_by_group(fig, [_label(g["group"]) for g in rows], [g[measure] for g in rows], [g["count"] for g in rows],
                   what=_words(measure))
    overall = (f.get("overall") or {}).get(measure)
    if overall is not None:
        fig.add_vline(x=overall, line=dict(color=MARK, dash="dot", width=2),
                      annotation=dict(text=f"all rows {overall:.4g}", font=dict(size=11, color=MARK)))
    return fig


# ----------------------------------------------------------------------------------------------
# Training report


def learning_curve_figure(report: dict) -> go.Figure:
    """The training metric per boosting iteration on train and valid, the best iteration marked."""
    curve = report.get("curve") or {}
    fig = learning_curve(curve, curve.get("metric"), curve.get("best_iteration"))
    return fig if fig is not None else _empty("Learning curve", "The run recorded no learning curve.")


def importance_figure(report: dict, kind: str = "gain") -> go.Figure:
    """Feature importance by total gain or by number of splits."""
    if kind not in ("gain", "split"):
        raise QuarryError(f"Unknown importance kind {kind!r}.", "Pick one of: gain, split.")
    fig = importance(report.get("importance") or {}, by=kind)
    if fig is None:
        return _empty("Feature importance", "The run recorded no feature importance.")
    fig.update_yaxes(title_text="feature")
    return fig


BASELINE_COLORS = {"model": ACCENT, "prior": MUTED, "linear": "#D9822B"}
BASELINE_NAMES = {"model": "LightGBM", "prior": "prior", "linear": "linear"}
BASELINE_HOVER = {"model": "the LightGBM model", "prior": "the prior (train class shares or mean)",
                  "linear": "a linear model on the non-text features"}


def baselines_figure(report: dict) -> go.Figure:
    """The model against its baselines, one panel per metric (each says whether higher or lower is better)."""
    rows = report.get("baselines") or []
    metrics = []
    for r in rows:
        metrics += [k for k, v in r.items() if k != "model" and k not in metrics and isinstance(v, (int, float))]
    split = report.get("baselines_split", "test")
    if not rows or not metrics:
        return _empty("Model vs baselines", "The run recorded no baseline scores.")
    fig = make_subplots(rows=1, cols=len(metrics), horizontal_spacing=0.1)
    for j, m in enumerate(metrics, start=1):
        have = [r for r in rows if r.get(m) is not None]
        fig.add_bar(x=[BASELINE_NAMES.get(r["model"], r["model"]) for r in have], y=[r[m] for r in have],
                    marker_color=[BASELINE_COLORS.get(r["model"], "#6C5B7B") for r in have], row=1, col=j,
                    customdata=[BASELINE_HOVER.get(r["model"], r["model"]) for r in have], showlegend=False,
                    hovertemplate=f"%{{customdata}}: {_words(m)} %{{y:.4g}}<extra></extra>")
        fig.update_xaxes(title_text="model", row=1, col=j)
        fig.update_yaxes(title_text=_words(m) + (" ↑" if m in HIGHER else " ↓" if m in LOWER else ""), row=1, col=j)
    fig.update_layout(**{**LAYOUT, "height": 360, "margin": dict(l=10, r=10, t=70, b=10)},
                      title=dict(text=f"Model vs baselines on the {split} split (↑ higher is better, ↓ lower)",
                                 x=0, font=dict(size=15)))
    return fig

"""Plotly figures built from core results: pure functions of aggregates, never of raw rows."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from core.correlate import Correlations
from core.fmt import chart_text
from core.missingness import MissingPatterns
from core.profile import ColumnProfile, Profile
from core.target import TargetAnalysis, TargetBreakdown

ACCENT = "#2F6F73"
MUTED = "#B8C4C8"
LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), height=320,
              font=dict(size=13), bargap=0.05)


def _fig(title: str, x_title: str, y_title: str) -> go.Figure:
    """An empty figure in the house layout; the titles are plain text (they often hold column names)."""
    fig = go.Figure()
    fig.update_layout(title=dict(text=chart_text(title), x=0, font=dict(size=15)), xaxis_title=chart_text(x_title),
                      yaxis_title=chart_text(y_title), **LAYOUT)
    return fig


def histogram(col: ColumnProfile) -> go.Figure | None:
    """Bins between the robust bounds; values outside them are named in the title."""
    h = col.histogram
    if h is None or not h.counts:
        return None
    centers = [(a + b) / 2 for a, b in zip(h.edges[:-1], h.edges[1:], strict=True)]
    widths = [b - a for a, b in zip(h.edges[:-1], h.edges[1:], strict=True)]
    outside = []
    if h.below:
        outside.append(f"{h.below:,} below {h.edges[0]:,.4g}")
    if h.above:
        outside.append(f"{h.above:,} above {h.edges[-1]:,.4g}")
    title = f"Distribution of {col.name}" + (f" ({' · '.join(outside)} not shown)" if outside else "")
    fig = _fig(title, col.name, "rows")
    fig.add_bar(x=centers, y=list(h.counts), width=widths, marker_color=ACCENT,
                hovertemplate="%{x:,.4g}: %{y:,} rows<extra></extra>")
    return fig


def top_values(col: ColumnProfile) -> go.Figure | None:
    """The most frequent values as horizontal bars, with 'other' for the rest."""
    if not col.top:
        return None
    labels = [("(empty)" if v == "" else chart_text(v)) for v, _ in col.top]
    counts = [n for _, n in col.top]
    colors = [ACCENT] * len(labels)
    if col.other:
        labels.append("(other values)")
        counts.append(col.other)
        colors.append(MUTED)
    fig = _fig(f"Most frequent values of {col.name}", "rows", "")
    fig.add_bar(x=counts[::-1], y=labels[::-1], orientation="h", marker_color=colors[::-1],
                hovertemplate="%{y}: %{x:,} rows<extra></extra>")
    fig.update_layout(height=max(220, 28 * len(labels) + 80))
    fig.update_yaxes(type="category")
    return fig


def over_time(col: ColumnProfile) -> go.Figure | None:
    """Rows per day/week/month/year."""
    t = col.over_time
    if t is None or not t.counts:
        return None
    fig = _fig(f"Rows per {t.unit} of {col.name}", t.unit, "rows")
    fig.add_bar(x=list(t.periods), y=list(t.counts), marker_color=ACCENT,
                hovertemplate="%{x}: %{y:,} rows<extra></extra>")
    return fig


def missing(p: Profile, limit: int = 30) -> go.Figure | None:
    """Missing values per column (the `limit` worst), as a share of rows."""
    cols = sorted((c for c in p.columns if c.missing), key=lambda c: -c.missing)[:limit]
    if not cols:
        return None
    fig = _fig(f"Missing values ({len(cols)} column{'s' if len(cols) > 1 else ''} with any)", "% of rows", "")
    fig.add_bar(x=[c.missing_pct for c in cols][::-1], y=[chart_text(c.name) for c in cols][::-1], orientation="h",
                marker_color=ACCENT, customdata=[c.missing for c in cols][::-1],
                hovertemplate="%{y}: %{x:.1f}% (%{customdata:,} rows)<extra></extra>")
    fig.update_layout(height=max(220, 24 * len(cols) + 90))
    fig.update_yaxes(type="category")
    return fig


def heatmap(c: Correlations) -> go.Figure:
    """A labelled correlation heatmap; each cell shows its value."""
    names = {"pearson": "Pearson correlation", "spearman": "Spearman rank correlation", "cramers_v": "Cramér's V"}
    return _matrix(names[c.method], c.columns, c.matrix, 0.0 if c.method == "cramers_v" else -1.0)


def nullity(m: MissingPatterns) -> go.Figure | None:
    """How columns go missing together: the correlation of their missing indicators."""
    if len(m.columns) < 2:
        return None
    return _matrix("Missing together (correlation of missing indicators)", m.columns, m.matrix, -1.0)


def _matrix(title: str, columns: tuple[str, ...], matrix: tuple, lo: float) -> go.Figure:
    z = [[v if v is not None else None for v in row] for row in matrix]
    text = [["" if v is None else f"{v:.2f}" for v in row] for row in matrix]
    fig = _fig(title, "", "")
    names = [chart_text(c) for c in columns]
    fig.add_heatmap(z=z, x=names, y=names, zmin=lo, zmax=1.0, text=text,
                    texttemplate="%{text}", colorscale="RdBu" if lo < 0 else "Teal", reversescale=lo < 0,
                    hovertemplate="%{y} × %{x}: %{z:.3f}<extra></extra>", colorbar=dict(thickness=12))
    size = max(320, 36 * len(columns) + 140)
    fig.update_layout(height=size)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-40)
    return fig


METRIC_NAMES = {"auc": "univariate AUC", "mutual_info": "mutual information (nats)", "pearson": "|Pearson r|",
                "eta": "correlation ratio η", "correlation": "correlation"}


def feature_strengths(t: TargetAnalysis, limit: int = 30) -> go.Figure | None:
    """The features most related to the target (the `limit` strongest), one bar each, labelled by measure."""
    rel = [f for f in t.features if f.score is not None][:limit]
    if not rel:
        return None
    fig = _fig(f"Features most related to {t.target} ({t.task})", "strength", "")
    fig.add_bar(x=[f.score for f in rel][::-1], y=[chart_text(f.feature) for f in rel][::-1], orientation="h",
                marker_color=ACCENT, customdata=[METRIC_NAMES.get(f.metric, f.metric) for f in rel][::-1],
                hovertemplate="%{y}: %{x:.3f} (%{customdata})<extra></extra>")
    fig.update_layout(height=max(240, 24 * len(rel) + 90))
    fig.update_yaxes(type="category")
    return fig


def target_breakdown(b: TargetBreakdown) -> go.Figure:
    """Rows per bin of a feature (bars) and the target in each bin (line: positive rate or mean)."""
    fig = _fig(f"{b.target} across {b.feature}", b.feature, "rows")
    labels = [chart_text(v) for v in b.labels]
    fig.add_bar(x=labels, y=list(b.rows), marker_color=MUTED, name="rows",
                hovertemplate="%{x}: %{y:,} rows<extra></extra>")
    if b.task == "binary":
        line, label = [100 * r for r in b.positive_rate], f"% {b.target} = {b.positive}"
    elif b.task == "regression":
        line, label = list(b.mean), f"mean {b.target}"
    else:
        line, label = [100 * s[0] for s in b.shares], f"% {b.target} = {b.classes[0]}" if b.classes else ""
    label = chart_text(label)
    fig.add_scatter(x=labels, y=line, yaxis="y2", mode="lines+markers", name=label,
                    line=dict(color=ACCENT, width=3), hovertemplate="%{x}: %{y:,.3g}<extra></extra>")
    share = b.task != "regression"
    fig.update_layout(yaxis2=dict(title=label, overlaying="y", side="right", showgrid=False,
                                  range=[0, 100] if share else None, ticksuffix="%" if share else ""),
                      legend=dict(orientation="h", y=-0.25), height=380)
    fig.update_xaxes(type="category")
    return fig


# ----------------------------------------------------------------------------------------------
# Training runs: learning curves, feature importance, runs compared

PALETTE = (ACCENT, "#D9822B", "#6C5B7B", "#3A7CA5", "#8C9A3B")  # up to 5 runs compared
CURVE_POINTS = 500


def _thin(n: int, limit: int) -> list[int]:
    """At most `limit` evenly spaced indices of n points, always the first and the last."""
    if n <= limit:
        return list(range(n))
    step = (n - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def _curve_points(curve: dict | Sequence[dict]) -> tuple[list[int], list, list]:
    """(iterations, train values, valid values) of a run's curve.json or a job's progress lines."""
    if isinstance(curve, dict):
        train, valid = list(curve.get("train") or []), list(curve.get("valid") or [])
        n = max(len(train), len(valid))
        return list(range(1, n + 1)), train + [None] * (n - len(train)), valid + [None] * (n - len(valid))
    lines = [p for p in curve if "iteration" in p]
    return [p["iteration"] for p in lines], [p.get("train") for p in lines], [p.get("valid") for p in lines]


def learning_curve(curve: dict | Sequence[dict], metric: str | None = None, best: int | None = None,
                   limit: int = CURVE_POINTS) -> go.Figure | None:
    """The metric on train and valid per boosting iteration (at most `limit` points), the best iteration marked.

    `curve` is a run's curve.json ({"metric", "train", "valid"}) or a training job's progress lines
    ({"iteration", "train", "valid", ...}).
    """
    x, train, valid = _curve_points(curve)
    if not x:
        return None
    metric = metric or (curve.get("metric") if isinstance(curve, dict) else None)
    keep = _thin(len(x), limit)
    fig = _fig(f"Learning curve ({metric})" if metric else "Learning curve", "boosting iteration",
               metric or "the task's default metric")
    for name, values, color in (("train", train, MUTED), ("valid", valid, ACCENT)):
        if any(v is not None for v in values):
            fig.add_scatter(x=[x[i] for i in keep], y=[values[i] for i in keep], name=name, mode="lines",
                            line=dict(color=color, width=2.5),
                            hovertemplate=f"{name} · iteration %{{x}}: %{{y:.5g}}<extra></extra>")
    if best:
        fig.add_vline(x=best, line=dict(color="#888", dash="dot", width=1),
                      annotation=dict(text=f"best {best}", font=dict(size=11, color="#666")))
    fig.update_layout(legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    return fig


def importance(imp: dict, by: str = "gain", limit: int = 30) -> go.Figure | None:
    """The features with the highest importance `by` 'gain' (total gain of their splits) or 'split' (times used)."""
    names, values = list(imp.get("feature") or []), list(imp.get(by) or [])
    if not names or len(values) != len(names):
        return None
    order = sorted(range(len(names)), key=lambda i: (-values[i], names[i]))[:limit]
    words = {"gain": "total gain", "split": "splits"}
    shown = f"top {len(order)} of {len(names)}" if len(names) > len(order) else f"{len(names)} features"
    fig = _fig(f"Importance by {words.get(by, by)} ({shown})", words.get(by, by), "")
    fig.add_bar(x=[values[i] for i in order][::-1], y=[chart_text(names[i]) for i in order][::-1], orientation="h",
                marker_color=ACCENT if by == "gain" else "#3A7CA5",
                hovertemplate="%{y}: %{x:,.4g}<extra></extra>")
    fig.update_layout(height=max(240, 22 * len(order) + 90))
    fig.update_yaxes(type="category")
    return fig


def compare_curves(curves: dict[str, dict], limit: int = CURVE_POINTS) -> go.Figure | None:
    """Several runs' learning curves overlaid: valid solid, train dotted, one colour per run."""
    if not curves:
        return None
    metrics = {c.get("metric") for c in curves.values()} - {None}
    metric = metrics.pop() if len(metrics) == 1 else "first metric of each run"
    fig = _fig(f"Learning curves ({metric})", "boosting iteration", metric if len(curves) else "")
    for k, (run_label, curve) in enumerate(curves.items()):
        label = chart_text(run_label)  # run names
        x, train, valid = _curve_points(curve)
        keep = _thin(len(x), limit)
        color = PALETTE[k % len(PALETTE)]
        for part, values, dash in (("valid", valid, "solid"), ("train", train, "dot")):
            if any(v is not None for v in values):
                fig.add_scatter(x=[x[i] for i in keep], y=[values[i] for i in keep], mode="lines",
                                name=f"{label} · {part}", legendgroup=label, line=dict(color=color, dash=dash, width=2),
                                hovertemplate=f"{label} · {part} · iteration %{{x}}: %{{y:.5g}}<extra></extra>")
    fig.update_layout(height=380, legend=dict(orientation="h", y=-0.2))
    return fig


# ----------------------------------------------------------------------------------------------
# Parameter searches: the value of each trial


def trial_values(trials: Sequence[dict], metric: str | None = None, height: int = 320) -> go.Figure | None:
    """Each trial's value by trial number (lower is better), the best so far as a step line, pruned trials marked.

    `trials` are {"number", "state", "value"} (run.json's tuning.trials, or core.ui.search_progress).
    A pruned trial is a grey cross at the value it was stopped at when known (a job's progress lines
    carry Optuna's last reported value), else along the top of the complete ones (run.json keeps none).
    """
    if not trials:
        return None

    def complete(t: dict) -> bool:
        return t.get("state") == "complete" and t.get("value") is not None

    done = sorted(filter(complete, trials), key=lambda t: t["number"])
    other = [t for t in trials if not complete(t)]
    last = max(t["number"] for t in trials)
    fig = _fig(f"Search: valid {metric} by trial" if metric else "Search: each trial's value on the valid split",
               "trial number", f"valid {metric or 'value'} (lower is better)")
    if done:
        best, running = [], float("inf")
        for t in done:
            running = min(running, t["value"])
            best.append(running)
        # The line runs on to the last trial, over pruned ones at the end.
        fig.add_scatter(x=[t["number"] for t in done] + [last], y=best + [running], name="best so far", mode="lines",
                        line=dict(color=MUTED, width=2, shape="hv"),
                        hovertemplate="best after trial %{x}: %{y:.5g}<extra></extra>")
        fig.add_scatter(x=[t["number"] for t in done], y=[t["value"] for t in done], name="complete",
                        mode="markers", marker=dict(color=ACCENT, size=9),
                        hovertemplate="trial %{x}: %{y:.5g}<extra></extra>")
    if other:
        top = max((t["value"] for t in trials if t.get("value") is not None), default=0.0)
        y = [top if t.get("value") is None else t["value"] for t in other]
        said = [(t.get("state") or "pruned") + (", no value kept" if t.get("value") is None else "") for t in other]
        fig.add_scatter(x=[t["number"] for t in other], y=y, name="pruned", mode="markers",
                        marker=dict(color="#999", size=9, symbol="x"), customdata=said,
                        hovertemplate="trial %{x}: %{customdata}<extra></extra>")
    fig.update_layout(height=height, legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))  # clear of the title
    # Whole trial numbers only, and half a trial of room on each side so no marker sits on the axis.
    fig.update_xaxes(range=[-0.5, last + 0.5], tick0=0, dtick=max(1, -(-(last + 1) // 10)))
    return fig

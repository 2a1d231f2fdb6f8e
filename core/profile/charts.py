"""The profile's figures: histograms, top values, values over time, missing values, correlations, target."""
from __future__ import annotations

import plotly.graph_objects as go

from core.charts import ACCENT, MUTED, _fig
from core.fmt import chart_text
from core.profile.correlate import Correlations
from core.profile.missingness import MissingPatterns
from core.profile.scan import ColumnProfile, Profile
from core.profile.target import TargetAnalysis, TargetBreakdown


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

"""Quarry's chart style: the house colours and layout, and an empty figure with escaped titles.

The figures themselves live with their stage: core/profile/charts.py, core/model/charts.py,
core/evaluate/charts.py, core/explain/charts.py (pure functions of aggregates, never of raw rows).
"""
from __future__ import annotations

import plotly.graph_objects as go

from core.fmt import chart_text

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


PALETTE = (ACCENT, "#D9822B", "#6C5B7B", "#3A7CA5", "#8C9A3B")  # up to 5 runs compared


def _thin(n: int, limit: int) -> list[int]:
    """At most `limit` evenly spaced indices of n points, always the first and the last."""
    if n <= limit:
        return list(range(n))
    step = (n - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})

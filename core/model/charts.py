"""Training's figures: learning curves, feature importance, compared runs, a search's trials."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from core.charts import ACCENT, MUTED, PALETTE, _fig, _thin
from core.fmt import chart_text

CURVE_POINTS = 500


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

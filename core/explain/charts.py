"""Plotly figures of model explanations (core.explain): pure functions of its results, WebGL for point clouds.

Point clouds are thinned to a fixed number of points with a fixed seed, so a figure of the same
explanation is the same figure, and a 200,000-row sample still draws at once.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import plotly.graph_objects as go

from core.charts import ACCENT, MUTED, PALETTE, _fig
from core.explain.local import LocalExplanation
from core.explain.shap import ShapSample, global_importance
from core.fmt import chart_text

LOW, HIGH = "#008bfb", "#ff0051"  # feature value low -> high; also SHAP down / up in waterfalls
VALUE_SCALE = [[0.0, LOW], [0.5, "#b84fd0"], [1.0, HIGH]]
BEESWARM_POINTS = 1_000
DEPENDENCE_POINTS = 5_000
JITTER_BINS = 50
MISSING = "#C9CFD2"
OTHER = "(other categories)"
CATEGORY_COLOURS = 8  # categories coloured one by one in a dependence plot; the rest are 'other'


def _thin(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """At most `limit` of n row indices, in order, drawn with a fixed seed."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, np.datetime64):
        return "missing" if np.isnat(value) else str(value.astype("datetime64[s]")).replace("T", " ")
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return f"{float(value):,.4g}"
    return str(value)


def _value_text(code: float, kind: str) -> str:
    """A model input value as a person reads it (times from epoch seconds, true/false from 1/0)."""
    if code != code:
        return "missing"
    if kind == "temporal":
        return _text(np.datetime64(int(round(code * 1e6)), "us"))
    if kind == "boolean":
        return "true" if code else "false"
    return _text(float(code))


def _percentile(values: np.ndarray) -> np.ndarray:
    """Each value's rank among the known values as 0..1 (NaN stays NaN): colour that outliers cannot wash out."""
    out = np.full(len(values), np.nan)
    ok = ~np.isnan(values)
    known = np.sort(values[ok])
    if len(known) == 0:
        return out
    if known[0] == known[-1]:
        out[ok] = 0.5
        return out
    lo = np.searchsorted(known, values[ok], side="left")
    hi = np.searchsorted(known, values[ok], side="right")
    out[ok] = (lo + hi - 1) / 2 / (len(known) - 1)
    return out


def _as_float(values) -> np.ndarray:
    """Numbers (datetime64 as seconds) as float with NaN for missing."""
    a = np.asarray(values)
    if np.issubdtype(a.dtype, np.datetime64):
        out = a.astype("datetime64[us]").astype(np.int64).astype(np.float64) / 1e6
        out[np.isnat(a)] = np.nan
        return out
    return a.astype(np.float64)


def _class_words(task: str, target: str, explained: object) -> str:
    return f"{target or 'target'} = {explained}" if task in ("binary", "multiclass") else ""


def importance_figure(pairs: list[tuple[str, float]], top: int = 20, units: str = "log-odds") -> go.Figure | None:
    """Mean |SHAP| per feature (core.explain.global_importance), the `top` largest as horizontal bars."""
    if not pairs:
        return None
    shown = pairs[:top]
    words = f"top {len(shown)} of {len(pairs)}" if len(pairs) > len(shown) else f"{len(pairs)} features"
    fig = _fig(f"Mean |SHAP value| per feature ({words})", f"mean |SHAP value| ({units})", "")
    fig.add_bar(x=[v for _, v in shown][::-1], y=[chart_text(f) for f, _ in shown][::-1], orientation="h",
                marker_color=ACCENT,
                hovertemplate="%{y}: moves the prediction by %{x:.4g} on average<extra></extra>")
    fig.update_layout(height=max(240, 22 * len(shown) + 90))
    fig.update_yaxes(type="category")
    return fig


def beeswarm_figure(s: ShapSample, class_index: int | None = None, top: int = 15,
                    max_points: int = BEESWARM_POINTS) -> go.Figure | None:
    """Every sampled row's SHAP value per feature (the `top` most important), coloured by the feature's value.

    Rows spread vertically by how many rows share a SHAP value (density jitter). Colour is the value's
    percentile within the sample (blue low, red high); missing values and categories are grey.
    """
    if not s.n or not s.features:
        return None
    k = (0 if class_index is None else int(class_index)) if s.task == "multiclass" else None
    order = [s.features.index(f) for f, _ in global_importance(s, k)[:top]]
    values = s.class_values(k)
    idx = _thin(s.n, max_points)
    rng = np.random.default_rng(1)
    coloured = {"x": [], "y": [], "c": [], "text": []}
    grey = {"x": [], "y": [], "text": []}
    for r, j in enumerate(order):
        y0 = len(order) - 1 - r  # the most important feature on top
        v = values[idx, j]
        lo, hi = float(v.min()), float(v.max())
        bins = np.clip(((v - lo) / (hi - lo) * JITTER_BINS).astype(int), 0, JITTER_BINS - 1) if hi > lo \
            else np.zeros(len(v), int)
        counts = np.bincount(bins, minlength=JITTER_BINS)
        spread = 0.4 * counts[bins] / counts.max()
        y = y0 + spread * rng.uniform(-1, 1, len(v))
        name, kind = s.features[j], (s.kinds[j] if s.kinds else "numeric")
        raw = s.x[idx, j]
        if kind == "categorical":
            labels = s.categories.get(name, [])
            texts = [_text(labels[int(c)] if c == c and 0 <= c < len(labels) else None) for c in raw]
            colour = np.full(len(v), np.nan)
        else:
            texts = [_value_text(c, kind) for c in raw]
            colour = _percentile(s.x[:, j])[idx]
        texts = [chart_text(f"{name} = {t}") for t in texts]
        missing = np.isnan(colour)
        grey["x"].extend(v[missing].tolist())
        grey["y"].extend(y[missing].tolist())
        grey["text"].extend(t for t, m in zip(texts, missing, strict=True) if m)
        coloured["x"].extend(v[~missing].tolist())
        coloured["y"].extend(y[~missing].tolist())
        coloured["c"].extend(colour[~missing].tolist())
        coloured["text"].extend(t for t, m in zip(texts, missing, strict=True) if not m)
    what = f" for {_class_words(s.task, s.target, s.classes[k])}" if k is not None else ""
    fig = _fig(f"How each feature moves the prediction{what} ({len(idx):,} of {s.n:,} sampled rows)",
               f"SHAP value ({s.units}): pushes the prediction down ← → up", "")
    hover = "%{text}<br>SHAP %{x:.4g}<extra></extra>"
    if grey["x"]:
        fig.add_trace(go.Scattergl(x=grey["x"], y=grey["y"], text=grey["text"], mode="markers",
                                   name="missing or category", marker=dict(color=MISSING, size=4),
                                   hovertemplate=hover))
    if coloured["x"]:
        fig.add_trace(go.Scattergl(
            x=coloured["x"], y=coloured["y"], text=coloured["text"], mode="markers", name="feature value",
            marker=dict(color=coloured["c"], colorscale=VALUE_SCALE, cmin=0, cmax=1, size=4, opacity=0.8,
                        colorbar=dict(title=dict(text="feature value", side="right"), tickvals=[0, 1],
                                      ticktext=["low", "high"], thickness=12, len=0.6)),
            hovertemplate=hover))
    fig.add_vline(x=0, line=dict(color="#888", width=1))
    fig.update_layout(height=max(300, 34 * len(order) + 110), showlegend=False)
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=[chart_text(s.features[j]) for j in order][::-1],
                     range=[-0.6, len(order) - 0.4], showgrid=False, zeroline=False)
    return fig


def dependence_figure(d: dict, max_points: int = DEPENDENCE_POINTS) -> go.Figure:
    """A feature's SHAP value against its value (core.effects.dependence), coloured by the interaction feature."""
    feature, shap = d["feature"], np.asarray(d["shap"], dtype=np.float64)
    n = len(shap)
    idx = _thin(n, max_points)
    x_all = d["x"]
    color_feature = d.get("color_feature")
    cls = f" for {d.get('class')}" if d.get("class") is not None and d.get("units") == "log-odds" else ""
    title = f"SHAP value of {feature}{cls} by its value"
    if len(idx) < n:
        title += f" ({len(idx):,} of {n:,} rows)"
    fig = _fig(title, feature, f"SHAP value of {feature} ({d.get('units', 'raw score')})")
    if d.get("categorical"):
        labels = ["missing" if x_all[i] is None else str(x_all[i]) for i in idx]
        counts = Counter(labels)
        cats = sorted((c for c in counts if c != "missing"), key=lambda c: (-counts[c], c))
        cats += ["missing"] if "missing" in counts else []
        pos = {c: i for i, c in enumerate(cats)}
        x = np.array([pos[c] for c in labels], dtype=np.float64) + np.random.default_rng(2).uniform(-0.3, 0.3, len(idx))
        shown_x = [chart_text(v) for v in labels]
        fig.update_xaxes(tickvals=list(range(len(cats))), ticktext=[chart_text(c) for c in cats],
                         range=[-0.6, len(cats) - 0.4])
    else:
        raw = np.asarray(x_all)[idx]
        keep = ~np.isnan(_as_float(raw))
        if not keep.all():
            fig.update_layout(title_text=chart_text(title + f" · {int((~keep).sum()):,} missing not shown"))
        idx, x = idx[keep], raw[keep]
        shown_x = [chart_text(_text(v)) for v in x]
    y = shap[idx]
    colour = d.get("color")
    # Names and values below are labels, hover and legend texts: plain text (Plotly renders a subset of HTML)
    name, colour_name = chart_text(feature), chart_text(color_feature)
    base = dict(mode="markers", hovertemplate=f"{name} = %{{customdata[0]}}<br>SHAP %{{y:.4g}}"
                + (f"<br>{colour_name} = %{{customdata[1]}}" if color_feature else "") + "<extra></extra>")
    if colour is None:
        fig.add_trace(go.Scattergl(x=x, y=y, customdata=[[a, ""] for a in shown_x], name=name,
                                   marker=dict(color=ACCENT, size=5, opacity=0.7), **base))
        fig.update_layout(showlegend=False)
    elif d.get("color_categorical"):
        labels = ["missing" if colour[i] is None else chart_text(colour[i]) for i in idx]
        counts = Counter(labels)
        named = [c for c, _ in counts.most_common(CATEGORY_COLOURS)]
        groups = [lab if lab in named else OTHER for lab in labels]
        for k, c in enumerate(named + ([OTHER] if len(counts) > len(named) else [])):
            members = np.array([i for i, g in enumerate(groups) if g == c], dtype=np.int64)
            col = MISSING if c == "missing" else "#888888" if c == OTHER else PALETTE[k % len(PALETTE)]
            fig.add_trace(go.Scattergl(x=x[members], y=y[members], name=c,
                                       customdata=[[shown_x[i], labels[i]] for i in members],
                                       marker=dict(color=col, size=5, opacity=0.75), **base))
        fig.update_layout(legend=dict(title=dict(text=colour_name)))
    else:
        raw_colour = np.asarray(colour)
        values = _as_float(raw_colour)
        known = ~np.isnan(values)
        ranked = raw_colour[known][np.argsort(values[known], kind="stable")]
        ticks = [chart_text(_text(ranked[int(q * (len(ranked) - 1))])) for q in (0, 0.5, 1)] if len(ranked) \
            else ["", "", ""]
        pct = _percentile(values)[idx]
        texts = [chart_text(_text(v)) for v in raw_colour[idx]]
        missing = np.isnan(pct)
        if missing.any():
            fig.add_trace(go.Scattergl(x=x[missing], y=y[missing], name=f"{colour_name} missing",
                                       customdata=[[shown_x[i], "missing"] for i in np.flatnonzero(missing)],
                                       marker=dict(color=MISSING, size=5), **base))
        fig.add_trace(go.Scattergl(
            x=x[~missing], y=y[~missing], name=colour_name,
            customdata=[[shown_x[i], texts[i]] for i in np.flatnonzero(~missing)],
            marker=dict(color=pct[~missing], colorscale=VALUE_SCALE, cmin=0, cmax=1, size=5, opacity=0.8,
                        colorbar=dict(title=dict(text=colour_name, side="right"), tickvals=[0, 0.5, 1],
                                      ticktext=ticks, thickness=12)),
            **base))
        fig.update_layout(showlegend=False)
    fig.add_hline(y=0, line=dict(color="#888", width=1))
    fig.update_layout(height=400)
    return fig


def pdp_figure(p: dict) -> go.Figure:
    """Partial dependence (bold) over individual rows' curves (thin), from core.effects.partial_dependence."""
    feature, task_scale = p["feature"], p.get("scale", "value")
    x = [chart_text(v) for v in p["labels"]] if p.get("categorical") or p.get("kind") == "temporal" \
        else list(p["grid"])
    if task_scale == "probability":
        y_title = f"P({p.get('target') or 'target'} = {p.get('class')})"
    else:
        y_title = f"predicted {p.get('target') or 'value'}"
    ice = p.get("ice") or []
    title = f"Partial dependence on {feature}" + (f" (thin lines: {len(ice)} single rows)" if ice else "")
    fig = _fig(title, feature, y_title)
    if ice:
        xs, ys = [], []
        for curve in ice:
            xs.extend(x + [None])
            ys.extend(list(curve) + [None])
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", name="single rows (ICE)",
                                   line=dict(color=MUTED, width=1), opacity=0.5, hoverinfo="skip"))
    fig.add_scatter(x=x, y=list(p["pdp"]), mode="lines+markers", name="average (PDP)",
                    line=dict(color=ACCENT, width=4), marker=dict(size=7),
                    hovertemplate=chart_text(f"{feature} = ") + f"%{{x}}<br>average {chart_text(y_title)}: "
                                  "%{y:.4g}<extra></extra>")
    if task_scale == "probability":
        fig.update_yaxes(tickformat=".0%")
    if p.get("categorical"):
        fig.update_xaxes(type="category")
    fig.update_layout(height=380, legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    return fig


def _prediction_words(e: LocalExplanation) -> str:
    if e.task in ("binary", "multiclass"):
        return f"P({_class_words(e.task, e.target, e.explained)}) = {e.prediction:.1%}"
    return f"predicted {e.target or 'value'} = {e.prediction:,.4g}"


def _scale_words(e: LocalExplanation) -> str:
    return "raw score (log-odds)" if e.task in ("binary", "multiclass") else f"prediction ({e.target or 'value'})"


def waterfall_figure(local: LocalExplanation, max_features: int = 12) -> go.Figure:
    """From the expected raw score to this row's raw score, one bar per feature (largest first); the
    smallest contributions grouped into 'N other features'."""
    ranked = sorted(local.contributions, key=lambda p: -abs(p[1]))
    shown, rest = ranked[:max_features], ranked[max_features:]
    labels = ["average prediction (base)"]
    values, measures = [local.base], ["absolute"]
    for f, v in shown:
        labels.append(chart_text(f"{f} = {_text(local.values.get(f))}"))
        values.append(v)
        measures.append("relative")
    if rest:
        labels.append(f"{len(rest)} other features")
        values.append(sum(v for _, v in rest))
        measures.append("relative")
    labels.append("this row" if local.row is not None else "this what-if row")
    values.append(local.raw)
    measures.append("total")
    who = f"Test row {local.row}" if local.row is not None else "What-if"
    actual = f" · actual {local.label}" if local.label is not None else ""
    fig = _fig(f"{who}: {_prediction_words(local)}{actual}", _scale_words(local), "")
    fig.add_trace(go.Waterfall(
        orientation="h", y=labels, x=values, measure=measures, base=None,
        increasing=dict(marker=dict(color=HIGH)), decreasing=dict(marker=dict(color=LOW)),
        totals=dict(marker=dict(color=ACCENT)), connector=dict(line=dict(color="#BBB", width=1)),
        text=[f"{v:+.3g}" if m == "relative" else f"{v:.3g}" for v, m in zip(values, measures, strict=True)],
        textposition="outside", hovertemplate="%{y}: %{x:.4g}<extra></extra>"))
    ends = np.cumsum([local.base, *values[1:-1]])  # where each bar ends; bars start at the previous end (or 0)
    # Zoomed on where the bars end (SHAP's own waterfall does the same): the base bar, drawn from 0, is cut short
    lo, hi = float(ends.min()), float(ends.max())
    pad = 0.18 * (hi - lo or 1.0)  # room for the numbers written outside the bars
    fig.update_xaxes(range=[lo - pad, hi + pad])
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(height=max(300, 28 * len(labels) + 100), showlegend=False)
    return fig


def what_if_figure(before: LocalExplanation, after: LocalExplanation, max_features: int = 12) -> go.Figure:
    """Each feature's contribution before and after a what-if change, side by side; changed features marked."""
    b, a = dict(before.contributions), dict(after.contributions)
    names = sorted(b, key=lambda f: -max(abs(b[f]), abs(a.get(f, 0.0))))[:max_features]
    changed = {f for f in b if _text(before.values.get(f)) != _text(after.values.get(f))}
    labels = [chart_text(f"● {f}" if f in changed else f) for f in names][::-1]
    if before.task in ("binary", "multiclass"):
        change = f"{before.prediction:.1%} → {after.prediction:.1%}"
        head = f"P({_class_words(after.task, after.target, after.explained)}): {change}"
    else:
        head = f"predicted {after.target or 'value'}: {before.prediction:,.4g} → {after.prediction:,.4g}"
    units = "log-odds" if before.task != "regression" else f"{before.target or 'target'} units"
    fig = _fig(f"What-if: {head} (● changed)", f"SHAP contribution ({units})", "")
    for name, source, colour in (("after", after, ACCENT), ("before", before, MUTED)):  # drawn bottom-up
        contrib = dict(source.contributions)
        fig.add_bar(y=labels, x=[contrib.get(f, 0.0) for f in names][::-1], orientation="h", name=name,
                    marker_color=colour,
                    customdata=[chart_text(_text(source.values.get(f))) for f in names][::-1],
                    hovertemplate=f"{name}: %{{y}} = %{{customdata}}<br>contribution %{{x:+.4g}}<extra></extra>")
    fig.add_vline(x=0, line=dict(color="#888", width=1))
    fig.update_yaxes(type="category")
    fig.update_layout(barmode="group", height=max(320, 36 * len(names) + 140),
                      legend=dict(orientation="h", traceorder="reversed", yanchor="top", y=-0.22, x=0))
    return fig

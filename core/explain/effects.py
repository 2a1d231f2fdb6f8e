"""How one feature moves a run's model, over the SHAP sample of core.explain: its SHAP values against its values
(dependence, coloured by the feature that best explains their spread), and partial dependence with individual
conditional expectation (ICE) curves.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime
from datetime import time as dtime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.explain.shap import ExplainError, ShapSample, check_class_index, explained_class, predict
from core.model.runs import Run

INTERACTION_ROWS = 10_000  # rows used to pick the colouring feature of a dependence plot


# ----------------------------------------------------------------------------------------------
# Dependence


def _feature_index(features: list[str], feature: str) -> int:
    if feature not in features:
        shown = ", ".join(features[:20]) + ("…" if len(features) > 20 else "")
        raise ExplainError(f"{feature!r} is not a feature of this model.", f"Features: {shown}.")
    return features.index(feature)


def _raw_column(s: ShapSample, j: int) -> np.ndarray | list:
    """Feature j's values as a person reads them: numbers (NaN missing), times, or category labels (None missing)."""
    kind = s.kinds[j] if s.kinds else "numeric"
    if kind == "categorical":
        name = s.features[j]
        if name in s.rows.column_names:
            return pc.cast(s.rows.column(name), pa.string()).to_pylist()
        labels = list(s.categories.get(name, []))
        return [labels[int(c)] if c == c and 0 <= c < len(labels) else None for c in s.x[:, j]]
    if kind == "temporal":
        return _epoch_to_datetime64(s.x[:, j])
    return s.x[:, j].copy()


def _epoch_to_datetime64(seconds: np.ndarray) -> np.ndarray:
    out = np.full(seconds.shape, np.datetime64("NaT"), dtype="datetime64[us]")
    ok = np.isfinite(seconds)
    out[ok] = np.round(seconds[ok] * 1e6).astype(np.int64).astype("datetime64[us]")
    return out


def _interaction(x: np.ndarray, j: int, shap_j: np.ndarray) -> int | None:
    """The feature that best explains the spread of feature j's SHAP at a given value of j.

    As shap.approximate_interactions: order the rows by feature j, cut them into runs of rows of
    about equal j, and add up over the runs the |correlation| of j's SHAP with each other feature.
    """
    n, f = x.shape
    if f < 2 or n < 3:
        return None
    pick = np.unique(np.linspace(0, n - 1, min(n, INTERACTION_ROWS)).astype(np.int64))
    order = pick[np.argsort(x[pick, j], kind="stable")]
    xs, vs = x[order], shap_j[order]
    step = max(min(len(order) // 10, 50), 1)
    score = np.zeros(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, len(order), step):
            xb, vb = xs[start:start + step], vs[start:start + step, None]
            ok = ~np.isnan(xb)
            count = ok.sum(axis=0)
            usable = count >= 3
            if not usable.any():
                continue
            denom = np.maximum(count, 1)
            mx = np.where(ok, xb, 0).sum(axis=0) / denom
            mv = np.where(ok, vb, 0).sum(axis=0) / denom
            dx, dv = np.where(ok, xb - mx, 0), np.where(ok, vb - mv, 0)
            corr = (dx * dv).sum(axis=0) / np.sqrt((dx * dx).sum(axis=0) * (dv * dv).sum(axis=0))
            score += np.where(usable & np.isfinite(corr), np.abs(corr), 0)
    score[j] = -1
    best = int(np.argmax(score))
    return best if score[best] > 0 else None


def dependence(s: ShapSample, feature: str, *, interaction: str | None = "auto",
               class_index: int | None = None) -> dict:
    """A feature's SHAP value against its value for every sampled row, coloured by another feature.

    Returns
    -------
    dict
        ``feature``; ``x``: the feature's values (float array with NaN missing, datetime64 for times, or
        a list of category labels with None missing); ``shap``: its SHAP values; ``color`` and
        ``color_feature``: the colouring feature's values and name (None without); ``categorical``;
        ``kind``; ``units`` (of SHAP); ``class`` (the class explained, None for regression).
        ``interaction="auto"`` picks the colouring feature as shap.approximate_interactions does.
    """
    j = _feature_index(s.features, feature)
    values = s.class_values(class_index)[:, j]
    other: int | None = None
    if interaction == "auto":
        other = _interaction(s.x, j, values)
    elif interaction is not None:
        other = _feature_index(s.features, interaction)
    kind = s.kinds[j] if s.kinds else "numeric"
    return {"feature": feature, "x": _raw_column(s, j), "shap": values.copy(),
            "color": None if other is None else _raw_column(s, other),
            "color_feature": None if other is None else s.features[other],
            "color_categorical": other is not None and bool(s.kinds) and s.kinds[other] == "categorical",
            "categorical": kind == "categorical", "kind": kind, "units": s.units,
            "class": explained_class(s.task, s.classes, class_index if s.task == "multiclass" else None)}


# ----------------------------------------------------------------------------------------------
# Partial dependence


def _label(value: object, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if kind == "temporal":
        return _iso(float(value))
    if kind == "boolean":
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _iso(seconds: float) -> str:
    dt = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    return dt.date().isoformat() if dt.time() == dtime() else dt.isoformat()


def _grid(s: ShapSample, j: int, size: int) -> tuple[list, list[float]]:
    """(grid values as shown, the same as model input codes) for feature j."""
    col = s.x[:, j]
    kind = s.kinds[j] if s.kinds else "numeric"
    known = col[~np.isnan(col)]
    if kind == "categorical":
        labels = list(s.categories.get(s.features[j], []))
        codes, counts = np.unique(known.astype(np.int64), return_counts=True)
        ranked = [int(c) for c, _ in sorted(zip(codes, counts, strict=True), key=lambda p: (-p[1], p[0]))
                  if 0 <= c < len(labels)][:size]
        return [labels[c] for c in ranked], [float(c) for c in ranked]
    known = known[np.isfinite(known)]
    if not len(known):
        return [], []
    distinct = np.unique(known)
    if len(distinct) <= size:
        points = distinct
    else:
        # Between the 5th and 95th percentiles, as sklearn's partial_dependence: the tails are too thin to trust
        points = np.unique(np.quantile(known, np.linspace(0.05, 0.95, size), method="inverted_cdf"))
    return [float(v) for v in points], [float(v) for v in points]


def partial_dependence(run: Run, s: ShapSample, feature: str, *, grid: int = 20, ice_rows: int = 100,
                       pdp_rows: int = 2_000, class_index: int | None = None) -> dict:
    """Partial dependence and individual conditional expectation of one feature over the sample.

    Each of up to `pdp_rows` sample rows (evenly spread over the sample) is predicted with the feature
    set to every grid value; the PDP is their mean per grid value, ICE the curves of up to `ice_rows`
    of them. Classification: probability of the class (binary: the positive class; multiclass:
    `class_index`, default 0). Regression: the predicted value.

    Returns
    -------
    dict
        ``feature``, ``grid`` (numbers, or category labels), ``labels`` (text per grid value),
        ``pdp`` (list of floats), ``ice`` (ice rows × grid lists), ``ice_rows`` (their test row
        numbers), ``categorical``, ``kind``, ``scale`` ('probability' or 'value'), ``class``.
    """
    if grid < 2 or pdp_rows < 1 or ice_rows < 0:
        raise ExplainError(f"Partial dependence needs a grid of at least 2 values and at least 1 row. Got grid={grid}, "
                           f"pdp_rows={pdp_rows}, ice_rows={ice_rows}.", "Use the defaults (20, 2,000, 100).")
    j = _feature_index(s.features, feature)
    kind = s.kinds[j] if s.kinds else "numeric"
    k = check_class_index(run.classes, class_index, 0) if run.task == "multiclass" else None
    shown, codes = _grid(s, j, grid)
    take = np.unique(np.linspace(0, s.n - 1, min(pdp_rows, s.n)).astype(np.int64)) if s.n else np.array([], int)
    ice_at = np.unique(np.linspace(0, len(take) - 1, min(ice_rows, len(take))).astype(np.int64)) \
        if len(take) and ice_rows else np.array([], np.int64)
    preds = np.zeros((len(take), len(codes)))
    x = s.x[take].copy()
    for g, code in enumerate(codes if len(take) else []):  # one grid value at a time: memory of pdp_rows rows
        x[:, j] = code
        out = predict(run, x)
        preds[:, g] = out[:, k] if k is not None else out
    row_numbers = s.rows.column("__row").to_numpy() if "__row" in s.rows.column_names else np.arange(s.n)
    return {"feature": feature, "grid": shown, "labels": [_label(v, kind) for v in shown],
            "pdp": preds.mean(axis=0).tolist() if len(take) else [float("nan")] * len(codes),
            "ice": preds[ice_at].tolist(), "ice_rows": [int(row_numbers[take[i]]) for i in ice_at],
            "categorical": kind == "categorical", "kind": kind,
            "scale": "value" if run.task == "regression" else "probability",
            "class": explained_class(run.task, run.classes, k), "target": run.target}

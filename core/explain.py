"""Why a run's model predicts what it does: SHAP values, dependence, partial dependence, single rows, what-if.

Every SHAP value here is LightGBM's own exact TreeSHAP (``booster.predict(x, pred_contrib=True)``) at the
run's best iteration, in raw score units: log-odds for classification, the prediction for regression
(the link's scale for objectives such as poisson). For each row the values add up with the expected value
(``base``) to the model's raw score.

Global views work on a **stratified sample of the run's scored test split** (core.holdout): each class in
its test proportion (regression: ten equal-count bins of the target), drawn in DuckDB by a hash of the
test row number and a seed, so the same request gives the same rows. The sample, its model matrix and its
SHAP values are kept in the run's evaluation folder as one Parquet file per (rows, seed),
``shap-<rows>-<seed>.parquet`` (SHAP as list columns, the expected value in the file's metadata); a new
scored file (another size or time) makes it again.

Local views (one test row, or a row typed in for a what-if) compute SHAP on the fly. A what-if row is
encoded exactly as training encoded rows (core.train.FeatureSpec): numbers as DOUBLE, true/false as
1/0, times as epoch seconds, text as the index of the label among the run's training categories (an
unseen label is missing).
"""
from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import holdout
from core import recipe as R
from core.atomic import atomic_path
from core.engine import quote_ident, translate
from core.errors import QuarryError
from core.runs import Run
from core.settings import Settings
from core.train import FeatureSpec

DEFAULT_ROWS = 10_000
MAX_ROWS = 200_000
BATCH_ROWS = 2_048
REGRESSION_BINS = 10
MAX_SHAP_CELLS = 250_000_000  # SHAP values held at once (2 GB of float64): rows × classes × (features + 1)
INTERACTION_ROWS = 10_000  # rows used to pick the colouring feature of a dependence plot
FORMAT = "quarry.shap"
VERSION = 1
META_KEY = b"quarry.shap"
X_COLUMN, SHAP_COLUMN = "__explain_x", "__explain_shap"


class ExplainError(QuarryError):
    """An explanation that cannot be made: a bad feature, row or sample size."""


# ----------------------------------------------------------------------------------------------
# What an explanation is


@dataclass(frozen=True)
class ShapSample:
    """SHAP values of a stratified sample of a run's test rows.

    ``rows`` holds every column of the scored file for the sampled rows, in sample order (by test
    row number); ``x`` the model input of those rows; ``values`` SHAP in raw score units, (n, F) for
    binary and regression, (n, K, F) for multiclass; ``base`` the expected raw score, shape () or (K,).
    ``kinds`` are the features' kinds and ``categories`` the categorical features' training labels
    in code order (as the run has them), so the sample can be read without the run.
    """

    run_id: str
    task: str
    features: list[str]
    classes: list | None
    rows: pa.Table
    x: np.ndarray
    values: np.ndarray
    base: np.ndarray
    test_rows: int
    seconds: float
    cached: bool
    kinds: list[str] = field(default_factory=list)
    categories: dict[str, list] = field(default_factory=dict)
    target: str = ""

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def class_values(self, class_index: int | None = None) -> np.ndarray:
        """(n, F) SHAP values of one class (multiclass; default class 0); binary and regression ignore it."""
        if self.values.ndim == 2:
            return self.values
        return self.values[:, _class_index(self.classes, class_index, 0), :]

    def class_base(self, class_index: int | None = None) -> float:
        """The expected raw score of one class (multiclass; default class 0), else the only one."""
        if self.base.ndim == 0:
            return float(self.base)
        return float(self.base[_class_index(self.classes, class_index, 0)])

    @property
    def units(self) -> str:
        """What SHAP values are measured in, for axis titles."""
        return "log-odds" if self.task in ("binary", "multiclass") else f"{self.target or 'target'} units"


@dataclass(frozen=True)
class LocalExplanation:
    """One row's explanation: each feature's contribution from the expected raw score to the row's raw score.

    ``prediction`` is the probability of the explained class (classification) or the predicted value
    (regression). ``explained`` is the class value explained (binary: the positive class).
    """

    row: int | None
    values: dict
    contributions: list[tuple[str, float]]
    base: float
    raw: float
    prediction: float
    label: object | None
    predicted: object | None
    class_index: int | None
    task: str = ""
    target: str = ""
    explained: object | None = None

    def to_json(self) -> dict:
        from core.fmt import jsonable

        return jsonable({"row": self.row, "values": self.values, "contributions": self.contributions,
                         "base": self.base, "raw": self.raw, "prediction": self.prediction, "label": self.label,
                         "predicted": self.predicted, "class_index": self.class_index, "task": self.task,
                         "target": self.target, "explained": self.explained})


def _class_index(classes: list | None, class_index: int | None, default: int) -> int:
    k = default if class_index is None else class_index
    count = len(classes or [])
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < count:
        raise ExplainError(f"The class index must be a whole number in [0, {count - 1}]. Got {class_index!r}.",
                           f"Classes: {', '.join(map(str, classes or []))}.")
    return int(k)


# ----------------------------------------------------------------------------------------------
# SHAP itself


def _num_iteration(run: Run) -> int | None:
    """The run's best iteration, as scoring (core.holdout) uses it; None for every tree."""
    best = run.best_iteration
    return best if best is not None and best < run.booster.current_iteration() else None


def contributions(run: Run, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact TreeSHAP of the rows of model input `x` at the run's best iteration.

    Parameters
    ----------
    run
        The run whose model explains.
    x
        (n, F) float64 model input, encoded as in training (core.train.FeatureSpec).

    Returns
    -------
    (values, base)
        values: (n, F) for binary and regression, (n, K, F) for multiclass, in raw score units;
        base: the expected raw score, shape () or (K,). ``values.sum(-1) + base`` is the raw score.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(run.features):
        raise ExplainError(f"The model input must have {len(run.features)} columns (one per feature). "
                           f"Got shape {x.shape}.", "Encode rows with the run's FeatureSpec.")
    rows = x if len(x) else np.full((1, x.shape[1]), np.nan)
    out = np.asarray(run.booster.predict(np.ascontiguousarray(rows), pred_contrib=True,
                                         num_iteration=_num_iteration(run)), dtype=np.float64)
    f = x.shape[1]
    if run.task == "multiclass":
        out = out.reshape(len(rows), -1, f + 1)
        values, base = out[:, :, :f], out[0, :, f].copy()
    else:
        values, base = out[:, :f], np.asarray(out[0, f])
    return (values[:0] if not len(x) else np.ascontiguousarray(values)), base


def _predict(run: Run, x: np.ndarray) -> np.ndarray:
    """The model's prediction: P(class 1) (binary), (n, K) probabilities (multiclass), values (regression)."""
    out = np.asarray(run.booster.predict(np.ascontiguousarray(x, dtype=np.float64),
                                         num_iteration=_num_iteration(run)), dtype=np.float64)
    return out.reshape(len(x), -1) if run.task == "multiclass" else out


def _check_size(run: Run, n: int) -> None:
    k = max(len(run.classes), 1) if run.task == "multiclass" else 1
    cells = n * k * (len(run.features) + 1)
    if cells > MAX_SHAP_CELLS:
        most = MAX_SHAP_CELLS // (k * (len(run.features) + 1))
        raise ExplainError(f"SHAP values for {n:,} rows × {k} class(es) × {len(run.features)} features need about "
                           f"{cells * 8 / 2**30:.1f} GB of memory.", f"Ask for at most {most:,} rows.")


def _encode_arrow(spec: FeatureSpec, table: pa.Table) -> np.ndarray:
    """Model input from an Arrow table holding the feature columns, through the spec's own SQL and matrix."""
    con = duckdb.connect()
    try:
        con.register("explain_rows", table)
        return spec.matrix(con.sql(f"SELECT {spec.select_sql()} FROM explain_rows").to_arrow_table())
    finally:
        con.close()


def estimate_seconds(run: Run, scored: holdout.Scored, n: int) -> float:
    """About how long SHAP of `n` test rows takes: pred_contrib timed on up to 512 real rows, scaled to n."""
    spec = holdout.feature_spec(run)
    try:
        batch = next(pq.ParquetFile(scored.path).iter_batches(batch_size=512, columns=run.features), None)
    except (OSError, pa.ArrowException) as exc:
        raise ExplainError(f"The scored test split of run {run.run_id!r} cannot be read: {exc}.",
                           "Open the run's evaluation again to rebuild it.") from None
    if batch is None or not batch.num_rows:
        return 0.0
    x = _encode_arrow(spec, pa.Table.from_batches([batch]))
    m = min(64, len(x))  # a small batch first: a large model must not make the estimate itself slow
    started = time.perf_counter()
    contributions(run, x[:m])
    took = time.perf_counter() - started
    if took < 0.05 and len(x) > m:
        m = len(x)
        started = time.perf_counter()
        contributions(run, x)
        took = time.perf_counter() - started
    return took / m * max(int(n), 0)


# ----------------------------------------------------------------------------------------------
# The stratified sample


def _quotas(counts: dict[int, int], total: int) -> dict[int, int]:
    """Rows per stratum for `total` rows in proportion to `counts` (largest remainder, ties by stratum)."""
    rows = sum(counts.values())
    exact = {k: total * c / rows for k, c in counts.items()}
    out = {k: int(math.floor(v)) for k, v in exact.items()}
    for k in sorted(counts, key=lambda k: (-(exact[k] - out[k]), k))[:total - sum(out.values())]:
        out[k] += 1
    return out


def _case(values: dict[int, str], default: str) -> str:
    return "CASE __stratum " + " ".join(f"WHEN {k} THEN {v}" for k, v in values.items()) + f" ELSE {default} END"


def _stratum_sql(cur: duckdb.DuckDBPyConnection, scored: holdout.Scored) -> str:
    """SQL giving each scored row its stratum: the class code, or one of ten equal-count bins of the target."""
    if scored.task != "regression":
        return "coalesce(CAST(__label AS BIGINT), -1)"
    qs = [k / REGRESSION_BINS for k in range(1, REGRESSION_BINS)]
    edges = cur.sql(f"SELECT quantile_cont(__label, {qs!r}) FROM {scored.table} "
                    "WHERE __label IS NOT NULL AND NOT isnan(__label)").fetchall()[0][0]
    if not edges:
        return "-1"
    cases = " ".join(f"WHEN __label < {float(e)!r} THEN {k}" for k, e in enumerate(edges) if math.isfinite(e))
    return f"CASE WHEN __label IS NULL OR isnan(__label) THEN -1 {cases} ELSE {len(edges)} END"


def _sample_sql(cur: duckdb.DuckDBPyConnection, scored: holdout.Scored, spec: FeatureSpec, n: int,
                seed: int) -> tuple[str, int, str]:
    """(the query of the sample rows: every scored column, then the features as __f0..; their count; the same
    query without the hash bound).

    Within each stratum the rows with the smallest hash(__row, seed) are taken. Rows whose hash is
    above a per-stratum bound are dropped before the window sort, so a large split is not sorted
    whole; the bound leaves ample spare rows, and the query is run again without it if ever short.
    """
    stratum = _stratum_sql(cur, scored)
    counts = dict(cur.sql(f"SELECT {stratum} AS s, count(*) FROM {scored.table} GROUP BY ALL").fetchall())
    total = min(n, sum(counts.values()))
    quotas = {int(k): q for k, q in _quotas(counts, total).items() if q > 0}
    bounds = {}
    for k, q in quotas.items():
        share = (q + 4 * math.sqrt(q) + 32) / counts[k]
        bounds[k] = "TRUE" if share >= 1 else f"__h < {int(share * 2**64)}::UBIGINT"

    def sql(prefilter: bool) -> str:
        keep = _case(bounds, "FALSE") if prefilter else _case({k: "TRUE" for k in quotas}, "FALSE")
        return (f"WITH h AS (SELECT *, {stratum} AS __stratum, hash(__row, {int(seed)}::BIGINT) AS __h "
                f"FROM {scored.table}), "
                f"kept AS (SELECT *, row_number() OVER (PARTITION BY __stratum ORDER BY __h, __row) AS __rank "
                f"FROM h WHERE {keep}), "
                f"picked AS (SELECT * EXCLUDE (__stratum, __h, __rank) FROM kept "
                f"WHERE __rank <= {_case({k: str(q) for k, q in quotas.items()}, '0')}) "
                f"SELECT *, {spec.select_sql()} FROM picked ORDER BY __row")

    return sql(True), total, sql(False)


def _draw(cur: duckdb.DuckDBPyConnection, scored: holdout.Scored, spec: FeatureSpec, n: int,
          seed: int) -> tuple[pa.Table, np.ndarray]:
    """(the sample's scored columns, its model input)."""
    quick, total, full = _sample_sql(cur, scored, spec, n, seed)
    table = cur.sql(quick).to_arrow_table()
    if table.num_rows < total:  # a stratum ran short of rows under the hash bound: take it without
        table = cur.sql(full).to_arrow_table()
    m = table.num_columns - len(spec.names)
    return table.select(list(range(m))), spec.matrix(table.select(list(range(m, table.num_columns))))


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _cache_path(settings: Settings, run: Run, n: int, seed: int) -> Path:
    return holdout.folder(settings, run.run_id) / f"shap-{n}-{seed}.parquet"


def _meta(run: Run, scored: holdout.Scored, n: int, seed: int) -> dict:
    return {"format": FORMAT, "version": VERSION, "run_id": run.run_id, "rows": n, "seed": int(seed),
            "scored": _stat(scored.path), "features": run.features, "num_iteration": _num_iteration(run)}


def _cached_meta(path: Path, want: dict) -> dict | None:
    """The cache file's metadata when it was made for `want` (same run, rows, seed, scored file), else None."""
    try:
        meta = json.loads((pq.read_schema(path).metadata or {}).get(META_KEY, b"{}"))
    except (OSError, ValueError, pa.ArrowException):
        return None
    return meta if {k: meta.get(k) for k in want} == want else None


def _read_cache(path: Path, want: dict) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray, dict] | None:
    meta = _cached_meta(path, want)
    if meta is None:
        return None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException):
        return None
    f = len(want["features"])
    n = table.num_rows

    def matrix(name: str) -> np.ndarray:
        return table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(n, -1)

    x, flat = matrix(X_COLUMN), matrix(SHAP_COLUMN)
    values = flat.reshape(n, -1, f) if meta.get("classes") else flat.reshape(n, f)
    base = np.asarray(meta["base"], dtype=np.float64)
    return table.drop_columns([X_COLUMN, SHAP_COLUMN]).replace_schema_metadata(None), x, values, base, meta


def _write_cache(path: Path, rows: pa.Table, x: np.ndarray, values: np.ndarray, base: np.ndarray,
                 meta: dict) -> None:
    n, f = x.shape

    def column(a: np.ndarray) -> pa.Array:
        flat = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float64()), flat.size // n if n else f)

    table = rows.append_column(X_COLUMN, column(x)).append_column(SHAP_COLUMN, column(values))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def is_cached(settings: Settings, run: Run, scored: holdout.Scored, n: int = DEFAULT_ROWS, *, seed: int = 0) -> bool:
    """Whether shap_sample(..., n, seed=seed) would be read from the cache (reads the cache file's footer only)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_ROWS:
        return False
    n = min(int(n), scored.rows)
    try:
        want = _meta(run, scored, n, seed)
    except OSError:
        return False
    return _cached_meta(_cache_path(settings, run, n, seed), want) is not None


def shap_sample(settings: Settings, con: duckdb.DuckDBPyConnection, run: Run, scored: holdout.Scored,
                n: int = DEFAULT_ROWS, *, seed: int = 0, progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None, refresh: bool = False) -> ShapSample:
    """SHAP values of a stratified sample of min(n, test rows) rows of the run's scored test split.

    Parameters
    ----------
    settings, con
        Where the cache lives; the connection the sample is drawn with (a cursor of it).
    run, scored
        The run and its scored test split (core.holdout.scored_test).
    n
        Rows wanted, 1 .. MAX_ROWS; the whole split when it has fewer.
    seed
        Which sample: the same seed gives the same rows.
    progress, should_stop
        ``progress(rows done, rows)`` after each batch of SHAP; ``should_stop()`` True between batches
        stops with QuarryError and keeps nothing.
    refresh
        Compute again even when a cached sample fits.

    Returns
    -------
    ShapSample
        From the cache (``cached=True``, ``seconds`` as it took when computed) when one was made from
        the same scored file, else computed and cached.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_ROWS:
        raise ExplainError(f"The number of rows to explain must be a whole number in [1, {MAX_ROWS:,}]. Got {n!r}.",
                           f"{DEFAULT_ROWS:,} rows give stable global views in seconds.")
    if scored.run_id != run.run_id:
        raise ExplainError(f"The scored test split is of run {scored.run_id!r}, not {run.run_id!r}.",
                           "Score the run's own test split (core.holdout.scored_test).")
    n = min(int(n), scored.rows)
    _check_size(run, n)
    spec = holdout.feature_spec(run)
    path = _cache_path(settings, run, n, seed)
    want = _meta(run, scored, n, seed)
    common = dict(run_id=run.run_id, task=run.task, features=run.features, classes=run.classes or None,
                  test_rows=scored.rows, kinds=list(spec.kinds), categories=run.categorical, target=run.target)
    hit = None if refresh else _read_cache(path, want)
    if hit is not None:
        rows, x, values, base, meta = hit
        return ShapSample(rows=rows, x=x, values=values, base=base, seconds=float(meta.get("seconds") or 0.0),
                          cached=True, **common)
    cur = con.cursor()
    try:
        rows, x = _draw(cur, scored, spec, n, seed)
    except duckdb.Error as exc:
        raise translate(exc, "Drawing the rows to explain") from None
    finally:
        cur.close()
    started = time.perf_counter()
    parts, base = [], None
    if progress:
        progress(0, len(x))
    for start in range(0, len(x), BATCH_ROWS):
        if should_stop is not None and should_stop():
            raise ExplainError("Computing SHAP values was cancelled.", "Start it again when you are ready.")
        values, base = contributions(run, x[start:start + BATCH_ROWS])
        parts.append(values)
        if progress:
            progress(min(start + BATCH_ROWS, len(x)), len(x))
    seconds = time.perf_counter() - started
    if base is None:  # no rows (cannot happen for a scored split, which has some)
        values, base = contributions(run, x)
    else:
        values = np.concatenate(parts)
    meta = {**want, "seconds": seconds, "base": base.tolist(), "classes": run.task == "multiclass"}
    _write_cache(path, rows, x, values, base, meta)
    return ShapSample(rows=rows, x=x, values=values, base=base, seconds=seconds, cached=False, **common)


# ----------------------------------------------------------------------------------------------
# Global views


def global_importance(s: ShapSample, class_index: int | None = None) -> list[tuple[str, float]]:
    """Mean |SHAP| per feature, largest first (ties by name); multiclass without a class: summed over classes."""
    if s.values.ndim == 3 and class_index is None:
        score = np.abs(s.values).mean(axis=0).sum(axis=0) if s.n else np.zeros(len(s.features))
    else:
        values = s.class_values(class_index)
        score = np.abs(values).mean(axis=0) if s.n else np.zeros(len(s.features))
    return sorted(((f, float(v)) for f, v in zip(s.features, score, strict=True)), key=lambda p: (-p[1], p[0]))


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
            "class": _explained_class(s.task, s.classes, class_index if s.task == "multiclass" else None)}


def _explained_class(task: str, classes: list | None, class_index: int | None) -> object | None:
    if task == "binary":
        return (classes or [None, None])[1]
    if task == "multiclass":
        return (classes or [])[_class_index(classes, class_index, 0)]
    return None


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
    k = _class_index(run.classes, class_index, 0) if run.task == "multiclass" else None
    shown, codes = _grid(s, j, grid)
    take = np.unique(np.linspace(0, s.n - 1, min(pdp_rows, s.n)).astype(np.int64)) if s.n else np.array([], int)
    ice_at = np.unique(np.linspace(0, len(take) - 1, min(ice_rows, len(take))).astype(np.int64)) \
        if len(take) and ice_rows else np.array([], np.int64)
    preds = np.zeros((len(take), len(codes)))
    x = s.x[take].copy()
    for g, code in enumerate(codes if len(take) else []):  # one grid value at a time: memory of pdp_rows rows
        x[:, j] = code
        out = _predict(run, x)
        preds[:, g] = out[:, k] if k is not None else out
    row_numbers = s.rows.column("__row").to_numpy() if "__row" in s.rows.column_names else np.arange(s.n)
    return {"feature": feature, "grid": shown, "labels": [_label(v, kind) for v in shown],
            "pdp": preds.mean(axis=0).tolist() if len(take) else [float("nan")] * len(codes),
            "ice": preds[ice_at].tolist(), "ice_rows": [int(row_numbers[take[i]]) for i in ice_at],
            "categorical": kind == "categorical", "kind": kind,
            "scale": "value" if run.task == "regression" else "probability",
            "class": _explained_class(run.task, run.classes, k), "target": run.target}


# ----------------------------------------------------------------------------------------------
# One row


def _display(value: object) -> object:
    """A value as a person reads it: times as ISO text, decimals as floats, NaN as None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _local(run: Run, x: np.ndarray, values: dict, row: int | None, label: object | None,
           class_index: int | None) -> LocalExplanation:
    shap, base = contributions(run, x)
    pred = _predict(run, x)[0]
    if run.task == "multiclass":
        k = _class_index(run.classes, class_index, int(np.argmax(pred)))
        contrib, b, prediction = shap[0, k], float(base[k]), float(pred[k])
        predicted = run.classes[int(np.argmax(pred))]
    else:
        k, contrib, b = None, shap[0], float(base)
        prediction = float(pred)
        predicted = (run.classes[1] if prediction >= run.threshold else run.classes[0]) \
            if run.task == "binary" else None
    pairs = [(f, float(v)) for f, v in zip(run.features, contrib, strict=True)]
    return LocalExplanation(row=row, values=values, contributions=pairs, base=b, raw=b + float(contrib.sum()),
                            prediction=prediction, label=label, predicted=predicted, class_index=k,
                            task=run.task, target=run.target, explained=_explained_class(run.task, run.classes, k))


def explain_row(con: duckdb.DuckDBPyConnection, run: Run, scored: holdout.Scored, row: int, *,
                class_index: int | None = None) -> LocalExplanation:
    """SHAP of one test row (``__row = row`` of the scored file), computed on the fly.

    Multiclass explains `class_index`, by default the predicted class.
    """
    row = _row_number(scored, row)
    spec = holdout.feature_spec(run)
    cur = con.cursor()
    try:
        table = cur.sql(f"SELECT *, {spec.select_sql()} FROM {scored.table} WHERE __row = $row",
                        params={"row": row}).to_arrow_table()
    except duckdb.Error as exc:
        raise translate(exc, f"Reading test row {row}") from None
    finally:
        cur.close()
    if not table.num_rows:
        raise ExplainError(f"Test row {row} is not in the scored test split.", "Open the run's evaluation again.")
    m = table.num_columns - len(spec.names)
    x = spec.matrix(table.select(list(range(m, table.num_columns))).slice(0, 1))
    record = table.select(list(range(m))).slice(0, 1).to_pylist()[0]
    values = {f: _display(record.get(f)) for f in run.features}
    if run.target in record:
        label = _display(record[run.target])
    else:
        code = record.get("__label")
        label = None if code is None else (code if run.task == "regression" else run.classes[int(code)])
    return _local(run, x, values, row, label, class_index)


def _row_number(scored: holdout.Scored, row: object) -> int:
    try:
        number = int(row)  # type: ignore[arg-type]
        ok = not isinstance(row, bool) and number == row
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= number < scored.rows:
        raise ExplainError(f"The test row number must be a whole number in [0, {scored.rows - 1:,}]. Got {row!r}.",
                           "Test rows are numbered from 0 in the scored test split.")
    return number


def _epoch(value: object, feature: str) -> float:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ExplainError(f"{feature}: {value!r} is not a date or time.",
                               "Write it like 2024-03-14 or 2024-03-14T15:30:00.") from None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if isinstance(value, np.datetime64):
        return float(value.astype("datetime64[us]").astype(np.int64)) / 1e6
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return float(value)  # already epoch seconds
    raise ExplainError(f"{feature}: {value!r} is not a date or time.", "Give an ISO date or time.")


def _as_label(value: object) -> str:
    """A category as DuckDB's CAST(... AS VARCHAR) writes it (what training compared labels with)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | dtime):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _number(value: object, feature: str, kind: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        text = value.strip().lower()
        if kind == "boolean" and text in ("true", "false", "t", "f", "yes", "no", "y", "n", "1", "0"):
            return 1.0 if text in ("true", "t", "yes", "y", "1") else 0.0
        try:
            return float(text)
        except ValueError:
            raise ExplainError(f"{feature}: {value!r} is not {'true or false' if kind == 'boolean' else 'a number'}.",
                               "Enter a number, or leave it empty for missing.") from None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ExplainError(f"{feature}: {value!r} is not a number.", "Enter a number, or leave it empty.") from None


def encode_row(features: list[str], kinds: list[str], categories: Mapping[str, list], values: Mapping) -> np.ndarray:
    """One row given as feature -> raw value, as a (1, F) model input encoded like core.train.FeatureSpec.

    Missing features and None are missing (NaN); unseen category labels are missing too.
    """
    out = np.full((1, len(features)), np.nan)
    for i, (name, kind) in enumerate(zip(features, kinds, strict=True)):
        value = values.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if kind == "categorical":
            labels = [str(c) for c in categories.get(name, [])]
            label = _as_label(value)
            out[0, i] = labels.index(label) if label in labels else np.nan
        elif kind == "temporal":
            out[0, i] = _epoch(value, name)
        else:
            out[0, i] = _number(value, name, kind)
    return out


def what_if(run: Run, values: dict, *, class_index: int | None = None) -> LocalExplanation:
    """SHAP of a row given as feature -> raw value (numbers, true/false, category labels, ISO dates, None).

    Features not given are missing; keys that are not features (the target, an id) are ignored.
    Multiclass explains `class_index`, by default the predicted class.
    """
    spec = holdout.feature_spec(run)
    x = encode_row(run.features, list(spec.kinds), run.categorical, values)
    shown = {f: _display(values.get(f)) for f in run.features}
    return _local(run, x, shown, None, None, class_index)


# ----------------------------------------------------------------------------------------------
# Finding rows to explain

HOWS = ("number", "id", "confident_wrong", "near_threshold")


def find_rows(con: duckdb.DuckDBPyConnection, scored: holdout.Scored, how: str, *, value=None,
              column: str | None = None, threshold: float | None = None, limit: int = 10) -> list[int]:
    """Test row numbers worth explaining.

    ``how``: 'number' (the row `value`, checked in range); 'id' (rows whose `column` equals `value`, cast
    to the column's type); 'confident_wrong' (binary: wrong at the threshold, furthest from the true
    label first; multiclass: wrong, most probable predicted class first; regression: largest
    |residual|); 'near_threshold' (binary: closest to the threshold; multiclass: smallest margin
    between the two most probable classes). Ties go to the lower row number.
    """
    if how not in HOWS:
        raise ExplainError(f"Rows can be found by {', '.join(HOWS)}. Got {how!r}.", "Pick one of them.")
    if how == "number":
        return [_row_number(scored, value)]
    limit = max(int(limit), 1)
    params: dict = {}
    if how == "id":
        if column not in scored.columns:
            shown = ", ".join(list(scored.columns)[:20]) + ("…" if len(scored.columns) > 20 else "")
            raise ExplainError(f"{column!r} is not a column of the test rows.", f"Columns: {shown}.")
        col, typ = quote_ident(column), scored.columns[column]
        if value is None:
            where = f"{col} IS NULL"
        else:
            params["v"] = value if isinstance(value, str | int | float | bool) else str(value)
            where = f"{col} = TRY_CAST($v AS {typ})"
        sql = f"SELECT __row FROM {scored.table} WHERE {where} ORDER BY __row LIMIT {limit}"
        if value is not None:
            sql = (f"SELECT TRY_CAST($v AS {typ}) IS NULL AS bad, (SELECT list(__row ORDER BY __row) FROM "
                   f"({sql})) AS found")
    else:
        sql = _ranked_sql(scored, how, scored.threshold if threshold is None else float(threshold), limit)
    cur = con.cursor()
    try:
        got = cur.sql(sql, params=params or None).fetchall()
    except duckdb.Error as exc:
        raise translate(exc, "Finding test rows") from None
    finally:
        cur.close()
    if how == "id":
        if value is not None:
            bad, found = got[0]
            if bad:
                raise ExplainError(f"{value!r} is not a valid {typ} value for {column!r}.",
                                   f"Give a value of the column's type ({typ}).")
            rows = list(found or [])
        else:
            rows = [r for (r,) in got]
        if not rows:
            raise ExplainError(f"No test row has {column} = {value!r}.",
                               "The row may be in the train or valid split, or the value is spelled differently.")
        return [int(r) for r in rows]
    return [int(r) for (r,) in got]


def _ranked_sql(scored: holdout.Scored, how: str, threshold: float, limit: int) -> str:
    t = scored.table
    if how == "near_threshold":
        if scored.task == "regression":
            raise ExplainError("Rows near the decision threshold exist only for a classifier.",
                               "For a regression run, look at the rows with the largest errors.")
        if scored.task == "binary":
            order = f"abs(__score - {threshold!r})"
        else:
            probs = ", ".join(scored.prob_columns)
            order = f"(list_sort([{probs}], 'DESC')[1] - list_sort([{probs}], 'DESC')[2])"
        return f"SELECT __row FROM {t} ORDER BY {order} ASC, __row LIMIT {limit}"
    if scored.task == "binary":
        wrong = f"(__score >= {threshold!r}) <> (__label = 1)"
        return (f"SELECT __row FROM {t} WHERE __label IS NOT NULL AND {wrong} "
                f"ORDER BY abs(__score - __label) DESC, __row LIMIT {limit}")
    if scored.task == "multiclass":
        return (f"SELECT __row FROM {t} WHERE __label IS NOT NULL AND __pred <> __label "
                f"ORDER BY greatest({', '.join(scored.prob_columns)}) DESC, __row LIMIT {limit}")
    return (f"SELECT __row FROM {t} WHERE __label IS NOT NULL AND NOT isnan(__label) "
            f"ORDER BY abs(__pred - __label) DESC, __row LIMIT {limit}")


# ----------------------------------------------------------------------------------------------
# Where a feature came from

ROW_KINDS = ("filter", "deduplicate", "select", "drop")  # steps that keep or drop, but change no value


def _param_summary(step: R.Step) -> str:
    def short(v: object) -> str:
        if isinstance(v, list | tuple):
            return ", ".join(map(str, v[:6])) + (f" and {len(v) - 6} more" if len(v) > 6 else "")
        return str(v)

    return "; ".join(f"{k} {short(v)}" for k, v in step.params.items() if v not in (None, "", [], ()))


def _step_label(i: int, step: R.Step, text: str) -> str:
    name = f" '{step.name}'" if step.name else ""
    return f"step {i + 1}{name} ({step.kind}): {text}"


def _columns_named(step: R.Step) -> list[str]:
    """The column names a step's parameters give: its input columns and the names of columns it makes."""
    out: list[str] = []
    try:
        declared = {p.name: p.type for p in R.kind_of(step, 0).params}
    except QuarryError:
        declared = {}
    for key, v in step.params.items():
        if declared.get(key) in ("column", "columns") or key in ("name", "to"):
            out.extend([v] if isinstance(v, str) else [c for c in v or [] if isinstance(c, str)])
    return out


def recipe_links(run: Run, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, str]:
    """Model feature -> the recipe step that made or last changed it ("step 3 (transform): ..."); {} without one.

    With a connection that has the run's dataset, the recipe is compiled over it and each step's own
    description is used, and a feature is linked to the last step whose SQL makes it (a new column,
    or ``<expression> AS feature``). Without one (or if the dataset no longer fits), the steps'
    parameters are read: the last step naming the feature, or a column it is derived from
    (``col_bin``, ``col=label``), is linked, described by its parameters.
    """
    if run.recipe is None or not run.recipe.steps:
        return {}
    if con is not None:
        try:
            return _compiled_links(con, run)
        except (QuarryError, duckdb.Error):
            pass
    links: dict[str, str] = {}
    for i, step in enumerate(run.recipe.steps):
        if step.kind in ROW_KINDS:
            continue
        named = _columns_named(step)
        for f in run.features:
            if f in named or any(f.startswith(c + "_") or f.startswith(c + "=") for c in named):
                links[f] = _step_label(i, step, _param_summary(step))
    return links


def _compiled_links(con: duckdb.DuckDBPyConnection, run: Run) -> dict[str, str]:
    cur = con.cursor()
    try:
        source = R.source_sql(run.info.get("dataset") or "")
        compiled = R.compile_recipe(cur, run.recipe, source)
        before = [c.name for c in R.compile_recipe(cur, R.Recipe(), source).columns]
    finally:
        cur.close()
    links: dict[str, str] = {}
    for i, (step, done) in enumerate(zip(run.recipe.steps, compiled.steps, strict=True)):
        after = [c.name for c in done.columns]
        for f in run.features:
            if f not in after:
                continue
            identity = re.compile(rf'(?:\w+\.)?{re.escape(quote_ident(f))}\s+AS\s+{re.escape(quote_ident(f))}')
            made = f not in before or re.search(rf"AS\s+{re.escape(quote_ident(f))}", identity.sub("", done.sql))
            if made and step.kind not in ROW_KINDS:
                links[f] = _step_label(i, step, done.description)
        before = after
    return links

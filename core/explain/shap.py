"""Why a run's model predicts what it does: SHAP values of a stratified sample of its test split, and their
global importance.

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

Dependence and partial dependence over the sample are in core.effects, single rows and what-ifs in
core.local, the recipe step behind each feature in core.lineage.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.atomic import atomic_path
from core.data.engine import translate
from core.errors import QuarryError
from core.evaluate import holdout
from core.model.encoding import FeatureSpec, num_iteration
from core.model.runs import Run
from core.settings import Settings

DEFAULT_ROWS = 10_000
MAX_ROWS = 200_000
BATCH_ROWS = 2_048
REGRESSION_BINS = 10
MAX_SHAP_CELLS = 250_000_000  # SHAP values held at once (2 GB of float64): rows × classes × (features + 1)
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
        return self.values[:, check_class_index(self.classes, class_index, 0), :]

    def class_base(self, class_index: int | None = None) -> float:
        """The expected raw score of one class (multiclass; default class 0), else the only one."""
        if self.base.ndim == 0:
            return float(self.base)
        return float(self.base[check_class_index(self.classes, class_index, 0)])

    @property
    def units(self) -> str:
        """What SHAP values are measured in, for axis titles."""
        return "log-odds" if self.task in ("binary", "multiclass") else f"{self.target or 'target'} units"


def check_class_index(classes: list | None, class_index: int | None, default: int) -> int:
    """The class to explain: `class_index` (`default` when None), checked against `classes`."""
    k = default if class_index is None else class_index
    count = len(classes or [])
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < count:
        raise ExplainError(f"The class index must be a whole number in [0, {count - 1}]. Got {class_index!r}.",
                           f"Classes: {', '.join(map(str, classes or []))}.")
    return int(k)


def explained_class(task: str, classes: list | None, class_index: int | None) -> object | None:
    """The class value explained: binary the positive class, multiclass the chosen one, else None."""
    if task == "binary":
        return (classes or [None, None])[1]
    if task == "multiclass":
        return (classes or [])[check_class_index(classes, class_index, 0)]
    return None


# ----------------------------------------------------------------------------------------------
# SHAP itself


def contributions(run: Run, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact TreeSHAP of the rows of model input `x` at the run's best iteration.

    Parameters
    ----------
    run
        The run whose model explains.
    x
        (n, F) float64 model input, encoded as in training (core.model.encoding.FeatureSpec).

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
                                         num_iteration=num_iteration(run)), dtype=np.float64)
    f = x.shape[1]
    if run.task == "multiclass":
        out = out.reshape(len(rows), -1, f + 1)
        values, base = out[:, :, :f], out[0, :, f].copy()
    else:
        values, base = out[:, :f], np.asarray(out[0, f])
    return (values[:0] if not len(x) else np.ascontiguousarray(values)), base


def predict(run: Run, x: np.ndarray) -> np.ndarray:
    """The model's prediction: P(class 1) (binary), (n, K) probabilities (multiclass), values (regression)."""
    out = np.asarray(run.booster.predict(np.ascontiguousarray(x, dtype=np.float64),
                                         num_iteration=num_iteration(run)), dtype=np.float64)
    return out.reshape(len(x), -1) if run.task == "multiclass" else out


def _check_size(run: Run, n: int) -> None:
    k = max(len(run.classes), 1) if run.task == "multiclass" else 1
    cells = n * k * (len(run.features) + 1)
    if cells > MAX_SHAP_CELLS:
        most = MAX_SHAP_CELLS // (k * (len(run.features) + 1))
        raise ExplainError(f"SHAP values for {n:,} rows × {k} class(es) × {len(run.features)} features need about "
                           f"{cells * 8 / 2**30:.1f} GB of memory.", f"Ask for at most {most:,} rows.")


_PER_ROW: dict[tuple, float] = {}


def seconds_per_row(run: Run, scored: holdout.Scored) -> float:
    """pred_contrib's seconds per row for this run, timed once on up to 512 real test rows (then kept per run
    and scored file, so every estimate on a page is from the same measurement)."""
    key = (run.run_id, str(scored.path), scored.rows)
    if key in _PER_ROW:
        return _PER_ROW[key]
    spec = holdout.feature_spec(run)
    try:
        batch = next(pq.ParquetFile(scored.path).iter_batches(batch_size=512, columns=run.features), None)
    except (OSError, pa.ArrowException) as exc:
        raise ExplainError(f"The scored test split of run {run.run_id!r} cannot be read: {exc}.",
                           "Open the run's evaluation again to rebuild it.") from None
    if batch is None or not batch.num_rows:
        return 0.0
    x = spec.encode(batch)
    m = min(64, len(x))  # a small batch first: a large model must not make the estimate itself slow
    started = time.perf_counter()
    contributions(run, x[:m])
    took = time.perf_counter() - started
    if took < 0.05 and len(x) > m:
        m = len(x)
        started = time.perf_counter()
        contributions(run, x)
        took = time.perf_counter() - started
    _PER_ROW[key] = took / m
    return _PER_ROW[key]


def estimate_seconds(run: Run, scored: holdout.Scored, n: int) -> float:
    """About how long SHAP of `n` test rows takes: seconds_per_row scaled to n."""
    return seconds_per_row(run, scored) * max(int(n), 0)


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
            "scored": _stat(scored.path), "features": run.features, "num_iteration": num_iteration(run)}


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

"""Batch scoring out of core: a saved run's recipe and model applied to a whole dataset, written as Parquet.

The run's fitted recipe is compiled over the dataset (the same SQL as at training time) and DuckDB
streams the result as Arrow batches; each batch is encoded the way the model was trained (see
``encode_features``), predicted by LightGBM and appended to the output file. Memory holds one batch
at a time, whatever the dataset's size. The file appears only when complete (a temporary name in
the same folder, then a rename).

Everything that can be checked is checked before any work (``check_inputs``): a dataset that lacks
a column the recipe or the model needs, or has it with a type the model cannot take, is refused with
the column, the expected and the found type.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import audit, auth
from core import recipe as R
from core.engine import count_rows, quote_ident, translate
from core.errors import QuarryError
from core.profile import NUMERIC, column_kind
from core.runs import Run
from core.settings import Settings

BATCH_ROWS = 65_536
PARQUET_EXT = (".parquet", ".pq")


class ScoreError(QuarryError):
    """A dataset that cannot be scored with a run: a missing column, a wrong type, a bad output path."""


@dataclass(frozen=True)
class ScoreResult:
    """What scoring wrote: rows, seconds taken, and the Parquet file."""

    rows: int
    seconds: float
    out: Path

    def to_json(self) -> dict:
        return {"rows": self.rows, "seconds": self.seconds, "out": str(self.out)}


# ----------------------------------------------------------------------------------------------
# Types the model takes


def _group(duck_type: str) -> str:
    """'number', 'text', 'boolean', 'temporal' or 'other' for a DuckDB type."""
    kind = column_kind(duck_type)
    if kind in NUMERIC:
        return "number"
    if kind == "string" or duck_type.upper().startswith("ENUM"):
        return "text"
    return kind if kind in ("boolean", "temporal") else "other"


GROUP_WORDS = {"number": "a number", "text": "text (VARCHAR)", "boolean": "a boolean",
               "temporal": "a date or timestamp"}


def _category_group(categories: list) -> str:
    if all(isinstance(c, bool) for c in categories) and categories:
        return "boolean"
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in categories) and categories:
        return "number"
    return "text"


KIND_GROUPS = {"numeric": "number", "categorical": "text", "boolean": "boolean", "temporal": "temporal"}


def _expected(run: Run, feature: str) -> tuple[set[str], str]:
    """The type groups a feature may have, and how to say so.

    run.json's "feature_kinds" (numeric / categorical / boolean / temporal per feature, as training
    wrote them) say it exactly; without them the contract tells: a categorical feature has the type
    of its categories, any other is a number, a boolean or a time.
    """
    kinds = run.info.get("feature_kinds")
    kind = kinds[run.features.index(feature)] if isinstance(kinds, list) and len(kinds) == len(run.features) else None
    if kind in KIND_GROUPS:
        return {KIND_GROUPS[kind]}, f"{GROUP_WORDS[KIND_GROUPS[kind]]} (a {kind} feature in training)"
    categories = run.categorical.get(feature)
    if categories is not None:
        group = _category_group(categories)
        return {group}, f"{GROUP_WORDS[group]}, a categorical feature"
    return {"number", "boolean", "temporal"}, "a number, boolean, date or timestamp"


def _compile(con: duckdb.DuckDBPyConnection, run: Run, table: str) -> R.Compiled:
    """The run's recipe (or none: the raw rows) compiled over the dataset; errors name the dataset and the step."""
    recipe = run.recipe or R.Recipe()
    try:
        return R.compile_recipe(con, recipe, R.source_sql(table))
    except R.RecipeError as exc:
        raise ScoreError(f"The dataset {table!r} does not fit the recipe of run {run.run_id!r}: {exc.message}",
                         "Score a dataset with the same columns and types as the training data "
                         f"({run.info.get('dataset')!r}).") from None


def _prepare(con: duckdb.DuckDBPyConnection, run: Run, table: str, keep: Sequence[str]) -> R.Compiled:
    compiled = _compile(con, run, table)
    types = {c.name: c.type for c in compiled.columns}
    for feature in run.features:
        groups, expected = _expected(run, feature)
        if feature not in types:
            raise ScoreError(f"The dataset {table!r} lacks the column {feature!r} that run {run.run_id!r} needs "
                             f"(expected {expected}).",
                             f"Score a dataset with the training data's columns ({run.info.get('dataset')!r}).")
        if _group(types[feature]) not in groups:
            raise ScoreError(f"The column {feature!r} of {table!r} is {types[feature]}; run {run.run_id!r} "
                             f"expects {expected}.",
                             "Cast the column to the training type, or score a dataset like the training data.")
    outputs = set(_prediction_names(run))
    for name in keep:
        if name in outputs:
            raise ScoreError(f"The column {name!r} to keep has the name of a prediction column.",
                             f"Do not keep it; the predictions are {', '.join(sorted(outputs))}.")
        if name not in types:
            raise ScoreError(f"The column {name!r} to keep is not among the scored rows' columns.",
                             f"Keep columns of the dataset{' that the recipe keeps' if run.recipe else ''}: "
                             f"{', '.join(list(types)[:20])}{'…' if len(types) > 20 else ''}.")
    booster = run.booster
    if booster.num_feature() != len(run.features):
        raise ScoreError(f"The model of run {run.run_id!r} takes {booster.num_feature()} features but run.json "
                         f"lists {len(run.features)}.", "The run folder is damaged; train the run again.")
    if run.task == "multiclass" and booster.num_model_per_iteration() != len(run.classes):
        raise ScoreError(f"The model of run {run.run_id!r} predicts {booster.num_model_per_iteration()} classes but "
                         f"run.json lists {len(run.classes)}.", "The run folder is damaged; train the run again.")
    return compiled


def check_inputs(con: duckdb.DuckDBPyConnection, run: Run, table: str, *, keep: Sequence[str] = ()) -> None:
    """Raise ScoreError, before any work, if `table` cannot be scored with `run`.

    The recipe must compile over the dataset (every column a step names exists, with a type it takes);
    every model feature must then exist with a type the model takes; the `keep` columns must exist.
    """
    _prepare(con, run, table, keep)


# ----------------------------------------------------------------------------------------------
# Encoding (the run folder contract) and predicting


def _as_float(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 values with null as NaN."""
    # safe=False: integers beyond 2**53 round like numpy's astype(float) instead of raising
    floats = pc.fill_null(pc.cast(values, pa.float64(), safe=False), np.nan)
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)


def _codes(values: pa.Array | pa.ChunkedArray, categories: list) -> np.ndarray:
    """The index of each value in the training categories; unseen or missing values are NaN."""
    if not categories:
        return np.full(len(values), np.nan)
    group = _category_group(categories)
    if group == "text":
        typ, value_set = pa.large_string(), pa.array([str(c) for c in categories], pa.large_string())
    elif group == "boolean":
        typ, value_set = pa.bool_(), pa.array(categories, pa.bool_())
    else:
        typ, value_set = pa.float64(), pa.array([float(c) for c in categories], pa.float64())
    if pa.types.is_dictionary(values.type):
        values = pc.cast(values, values.type.value_type)
    index = pc.index_in(pc.cast(values, typ), value_set=value_set, skip_nulls=True)
    return _as_float(index)


def _seconds(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Dates and timestamps as seconds since 1970-01-01 UTC (float), as DuckDB's epoch() gives them."""
    t = values.type
    if pa.types.is_date32(t):
        return _as_float(pc.cast(values, pa.int32())) * 86_400.0
    if pa.types.is_date64(t):
        return _as_float(pc.cast(values, pa.int64())) / 1e3
    per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
    raw = _as_float(pc.cast(values, pa.int64()))
    return raw if per_second == 1.0 else raw / per_second


def encode_column(values: pa.Array | pa.ChunkedArray, categories: list | None = None) -> np.ndarray:
    """One feature as the model takes it (float64): category codes, 0/1, epoch seconds or the number.

    Scoring converts times and numbers in SQL first (``feature_sql``), exactly as training does; this
    also takes them raw from Arrow, with the same result.
    """
    if categories is not None:
        return _codes(values, categories)
    t = values.type
    if pa.types.is_dictionary(t):
        t = t.value_type
        values = pc.cast(values, t)
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return _seconds(values)
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _as_float(values)
    raise ScoreError(f"A column of Arrow type {t} cannot be a model feature.",
                     "Cast it to a number, boolean, date or timestamp.")


def feature_sql(run: Run, types: Mapping[str, str]) -> list[str]:
    """Per feature, the SQL that brings it to the model's input (the run folder contract), as ``__f<i>``:
    text categories as VARCHAR, dates and timestamps as DOUBLE epoch seconds, the rest as DOUBLE."""
    out = []
    for i, name in enumerate(run.features):
        q = quote_ident(name)
        categories = run.categorical.get(name)
        if categories is not None:
            expr = f"CAST({q} AS VARCHAR)" if _category_group(categories) == "text" else q
        elif _group(types[name]) == "temporal":
            expr = f"CAST(epoch({q}) AS DOUBLE)"
        else:
            expr = f"CAST({q} AS DOUBLE)"
        out.append(f"{expr} AS __f{i}")
    return out


def encode_features(batch: pa.RecordBatch | pa.Table, features: Sequence[str],
                    categorical: Mapping[str, list] | None = None) -> np.ndarray:
    """The model input for a batch of rows: a float64 matrix, one column per feature in model order.

    Per the run folder contract: a categorical column becomes the index of its value in its category
    list (unseen or missing: NaN); booleans 0/1; dates and timestamps epoch seconds; numbers float64;
    missing values NaN.
    """
    categorical = categorical or {}
    x = np.empty((batch.num_rows, len(features)), dtype=np.float64, order="F")
    for j, name in enumerate(features):
        x[:, j] = encode_column(batch.column(name), categorical.get(name))
    return x


def _prediction_names(run: Run) -> list[str]:
    if run.task == "binary":
        return ["score", "prediction"]
    if run.task == "multiclass":
        return [*(f"prob_{c}" for c in run.classes), "prediction"]
    return ["prediction"]


def _prediction_fields(run: Run) -> list[pa.Field]:
    if run.task == "binary":
        return [pa.field("score", pa.float64()), pa.field("prediction", pa.int8())]
    if run.task == "multiclass":
        return [*(pa.field(f"prob_{c}", pa.float64()) for c in run.classes),
                pa.field("prediction", pa.array(run.classes).type)]
    return [pa.field("prediction", pa.float64())]


def _num_iteration(run: Run) -> int | None:
    """Trees to use: up to the run's best iteration when the saved model holds more (LightGBM's 1-based count)."""
    best = run.best_iteration
    return best if best is not None and best < run.booster.current_iteration() else None


def predict(run: Run, x: np.ndarray, *, threads: int | None = None) -> list[pa.Array]:
    """Prediction columns for encoded rows: binary score + 0/1 prediction (score >= threshold), multiclass
    prob_<class>... + the predicted class, regression the prediction."""
    kwargs = {"num_threads": threads} if threads else {}
    raw = run.booster.predict(x, num_iteration=_num_iteration(run), **kwargs)
    if run.task == "binary":
        return [pa.array(raw, pa.float64()), pa.array((raw >= run.threshold).astype(np.int8), pa.int8())]
    if run.task == "multiclass":
        probs = np.asarray(raw).reshape(len(x), len(run.classes))
        best = pa.array(np.argmax(probs, axis=1))
        return [*(pa.array(probs[:, k], pa.float64()) for k in range(probs.shape[1])),
                pa.array(run.classes).take(best)]
    return [pa.array(raw, pa.float64())]


# ----------------------------------------------------------------------------------------------
# Scoring


def _check_out(out: Path) -> Path:
    out = Path(out).expanduser().resolve()
    if out.suffix.lower() not in PARQUET_EXT:
        raise ScoreError(f"The output file must end in .parquet. Got {out.name}.", "Name it e.g. scores.parquet.")
    if not out.parent.is_dir():
        raise ScoreError(f"The folder {out.parent} does not exist.", "Create it first or pick another path.")
    return out


def score(settings: Settings, con: duckdb.DuckDBPyConnection, run: Run, table: str, out: Path, *,
          keep: Sequence[str] = (), batch_size: int = BATCH_ROWS,
          progress: Callable[[int, int], None] | None = None) -> ScoreResult:
    """Score every row of `table` with `run` and write the predictions to the Parquet file `out`.

    Parameters
    ----------
    run
        A saved run (``core.runs.load_run``): its recipe, feature encoding and model are applied.
    table
        A registered dataset (a view name of `con`) with the training data's columns.
    keep
        Columns to copy into the output next to the predictions (IDs), as the recipe outputs them.
    batch_size
        Rows per Arrow batch: memory holds about one batch of the kept and feature columns.
    progress
        Called after each batch with (rows done, rows of the dataset); a filtering recipe may score fewer.

    The output has the `keep` columns, then: binary ``score`` (probability of the positive class,
    ``classes[1]``) and ``prediction`` (1 when score >= the run's threshold, 0.5 unless run.json sets
    "threshold"); multiclass ``prob_<class>`` per class and ``prediction`` (the class value);
    regression ``prediction``.
    """
    auth.require("score")
    started = time.perf_counter()
    out = _check_out(out)
    audit.record(settings, "score", run=run.run_id, dataset=table, out=str(out))
    keep = list(dict.fromkeys(keep))
    if batch_size < 1:
        raise ScoreError(f"The batch size must be at least 1. Got {batch_size}.", "Use the default.")
    compiled = _prepare(con, run, table, keep)
    types = {c.name: c.type for c in compiled.columns}
    kept = [f"{quote_ident(k)} AS __k{i}" for i, k in enumerate(keep)]
    sql = f"SELECT {', '.join([*kept, *feature_sql(run, types)])} FROM ({compiled.sql}) AS scored"
    inputs = [f"__f{i}" for i in range(len(run.features))]
    codes = {f"__f{i}": run.categorical[f] for i, f in enumerate(run.features) if f in run.categorical}
    fields = _prediction_fields(run)
    tmp = out.with_name(f".{out.name}.partial")
    cur = con.cursor()
    rows = 0
    try:
        total = count_rows(cur.table(quote_ident(table))) if progress else 0
        reader = cur.sql(sql, params=compiled.params or None).to_arrow_reader(batch_size)
        schema = pa.schema([reader.schema.field(f"__k{i}").with_name(k) for i, k in enumerate(keep)] + fields,
                           metadata={"quarry.run_id": run.run_id, "quarry.dataset": table})
        if progress:
            progress(0, total)
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in reader:
                if not batch.num_rows:
                    continue
                x = encode_features(batch, inputs, codes)
                predicted = predict(run, x, threads=settings.threads)
                writer.write_batch(pa.RecordBatch.from_arrays(
                    [batch.column(f"__k{i}") for i in range(len(keep))] + predicted, schema=schema))
                rows += batch.num_rows
                if progress:
                    progress(rows, max(total, rows))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except duckdb.Error as exc:
        raise translate(exc, "Scoring") from None
    finally:
        tmp.unlink(missing_ok=True)
        cur.close()
    return ScoreResult(rows=rows, seconds=time.perf_counter() - started, out=out)

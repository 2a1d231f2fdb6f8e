"""Batch scoring out of core: a saved run's recipe and model applied to a whole dataset, written as Parquet.

The run's fitted recipe is compiled over the dataset (the same SQL as at training time) and DuckDB
streams the result as Arrow batches; each batch is encoded by the one encoder training used
(core.model.encoding.FeatureSpec), predicted by LightGBM and appended to the output file. Memory holds one batch
at a time, whatever the dataset's size. The file appears only when complete (a temporary name in
the same folder, then a rename).

Everything that can be checked is checked before any work (``check_inputs``): a dataset that lacks
a column the recipe or the model needs, or has it with a type the model cannot take, is refused with
the column, the expected and the found type.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core import atomic, audit, auth
from core.data.engine import count_rows, quote_ident, translate
from core.data.types import NUMERIC, column_kind
from core.errors import QuarryError
from core.features import recipe as R
from core.model.encoding import FeatureSpec, category_group, num_iteration
from core.model.runs import Run
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
        group = category_group(categories)
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


def predict(run: Run, x: np.ndarray, *, threads: int | None = None) -> list[pa.Array]:
    """Prediction columns for encoded rows: binary score + 0/1 prediction (score >= threshold), multiclass
    prob_<class>... + the predicted class, regression the prediction."""
    kwargs = {"num_threads": threads} if threads else {}
    raw = run.booster.predict(x, num_iteration=num_iteration(run), **kwargs)
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
    spec = FeatureSpec.for_run(run, types)  # the one encoder (core.model.encoding), as in training
    kept = [f"{quote_ident(k)} AS __k{i}" for i, k in enumerate(keep)]
    sql = f"SELECT {', '.join([spec.select_sql(), *kept])} FROM ({compiled.sql}) AS scored"
    fields = _prediction_fields(run)
    cur = con.cursor()
    rows = 0
    try:
        total = count_rows(cur.table(quote_ident(table))) if progress else 0
        reader = cur.sql(sql, params=compiled.params or None).to_arrow_reader(batch_size)
        schema = pa.schema([reader.schema.field(f"__k{i}").with_name(k) for i, k in enumerate(keep)] + fields,
                           metadata={"quarry.run_id": run.run_id, "quarry.dataset": table})
        if progress:
            progress(0, total)
        with atomic.atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in reader:
                if not batch.num_rows:
                    continue
                x = spec.matrix(batch)
                predicted = predict(run, x, threads=settings.threads)
                writer.write_batch(pa.RecordBatch.from_arrays(
                    [batch.column(f"__k{i}") for i in range(len(keep))] + predicted, schema=schema))
                rows += batch.num_rows
                if progress:
                    progress(rows, max(total, rows))
    except duckdb.Error as exc:
        raise translate(exc, "Scoring") from None
    finally:
        cur.close()
    return ScoreResult(rows=rows, seconds=time.perf_counter() - started, out=out)

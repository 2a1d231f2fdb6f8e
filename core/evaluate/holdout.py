"""A run's test split, rebuilt from its dataset and scored once, kept in the workspace for evaluation and SHAP.

The test rows are drawn again exactly as training drew them: the run's recipe compiled in its
training form over the dataset, the run's split (kind, fractions, seed) over that, ``__split =
'test'``. DuckDB streams them as Arrow batches; each batch is encoded as the model was trained
(core.model.encoding.FeatureSpec), predicted, and appended to one Parquet file, so memory holds one batch
whatever the split's size. Evaluation (core.evaluate) and explanation (core.explain) then query that
file with DuckDB.

``workspace/evaluations/<run_id>/scored.parquet`` holds every column of the test rows as the recipe
outputs them (the target and every feature included), then:

    __row     BIGINT   0 .. rows - 1, the row's number in this file ("test row N")
    __label   DOUBLE   classification: the class code (index into run.classes; binary 1 = classes[1],
                       the positive class); regression: the target value
    __score   DOUBLE   binary: P(classes[1])
    __p0 ..   DOUBLE   multiclass: P(classes[k]) for each class code k
    __pred    INTEGER  multiclass: the most probable class code;  DOUBLE  regression: the prediction

``scored.json`` beside it says which run and which dataset files (fingerprint) it was made from; a
changed dataset or a damaged file makes it again. Both are written whole or not at all.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.atomic import atomic_path, write_text
from core.data import catalog as cat
from core.data.engine import quote_ident, quote_literal, translate
from core.errors import QuarryError
from core.features import recipe as R
from core.model.encoding import FeatureSpec, Labels, label_sql, num_iteration
from core.model.runs import Run, cache_dir
from core.model.splits import SPLIT_COLUMN, SplitConfig, split_sql
from core.settings import Settings

FORMAT = "quarry.scored"
VERSION = 1
BATCH_ROWS = 65_536
RESERVED = ("__row", "__label", "__score", "__pred")  # and __p0, __p1, ... for multiclass


class HoldoutError(QuarryError):
    """A test split that cannot be rebuilt: no test rows, a dataset that no longer fits the run."""


@dataclass(frozen=True)
class Scored:
    """A run's scored test split (see the module docstring for the file's columns)."""

    path: Path
    run_id: str
    task: str
    classes: list | None  # class values in code order; None for regression
    threshold: float  # binary decision threshold of the run (0.5 unless run.json sets one)
    rows: int
    features: list[str]
    columns: dict[str, str]  # the test rows' own columns (not the __ ones): name -> DuckDB type
    target: str
    dataset: str
    changed_since_training: bool  # the dataset's files differ from the ones the run was trained on
    seconds: float = 0.0  # time taken to make it (0 when read from the cache)

    @property
    def table(self) -> str:
        """The file as a DuckDB table expression."""
        return f"read_parquet({quote_literal(str(self.path))})"

    @property
    def prob_columns(self) -> list[str]:
        """The probability columns: ['__score'] (binary), ['__p0', ...] (multiclass), [] (regression)."""
        if self.task == "binary":
            return ["__score"]
        if self.task == "multiclass":
            return [f"__p{k}" for k in range(len(self.classes or []))]
        return []

    def to_json(self) -> dict:
        return {"path": str(self.path), "run_id": self.run_id, "task": self.task, "classes": self.classes,
                "threshold": self.threshold, "rows": self.rows, "features": self.features, "target": self.target,
                "dataset": self.dataset, "changed_since_training": self.changed_since_training,
                "seconds": self.seconds}


def folder(settings: Settings, run_id: str) -> Path:
    """Where a run's evaluation and explanation caches live (removed with the run)."""
    return cache_dir(settings, run_id)


def feature_spec(run: Run) -> FeatureSpec:
    """How the run's model input is made from rows that have its feature columns (as in training)."""
    try:
        return FeatureSpec.for_run(run)
    except QuarryError as exc:
        raise HoldoutError(exc.message, exc.hint) from None


def test_sql(con: duckdb.DuckDBPyConnection, run: Run) -> tuple[str, dict]:
    """The run's test rows (every column the recipe outputs, without ``__split``) and the query's parameters."""
    dataset = run.info.get("dataset")
    source, params = R.source_sql(dataset), {}
    if run.recipe is not None:
        try:
            compiled = R.compile_recipe(con, run.recipe, source, training=True)
        except R.RecipeError as exc:
            raise HoldoutError(f"The dataset {dataset!r} no longer fits the recipe of run {run.run_id!r}: "
                               f"{exc.message}", "Evaluate a run trained on the data as it is now.") from None
        source, params = compiled.sql, compiled.params
    try:
        split = SplitConfig(**(run.info.get("split") or {}))
        query = split_sql(con, source, params, split, run.target)
    except QuarryError as exc:
        raise HoldoutError(f"The test split of run {run.run_id!r} cannot be drawn again: {exc.message}",
                           exc.hint) from None
    except duckdb.Error as exc:
        raise translate(exc, f"Reading the dataset {dataset!r}") from None
    return f"SELECT * EXCLUDE ({SPLIT_COLUMN}) FROM ({query}) WHERE {SPLIT_COLUMN} = 'test'", params


def _meta_path(out: Path) -> Path:
    return out.with_name("scored.json")


def _fingerprint(settings: Settings, dataset: str) -> str:
    try:
        return cat.fingerprint(cat.Catalog(settings).get(dataset), settings)
    except QuarryError as exc:
        raise HoldoutError(f"The dataset {dataset!r} of this run cannot be read: {exc.message}",
                           "Register it again under the same name to evaluate the run.") from None


def _cached(run: Run, path: Path, fingerprint: str) -> dict | None:
    try:
        meta = json.loads(_meta_path(path).read_text(encoding="utf-8"))
        rows = pq.read_metadata(path).num_rows
    except (OSError, ValueError):
        return None
    if (meta.get("format"), meta.get("version"), meta.get("run_id"), meta.get("fingerprint"), meta.get("rows")) != (
            FORMAT, VERSION, run.run_id, fingerprint, rows):
        return None
    return meta


def _prediction_arrays(run: Run, booster, x: np.ndarray, trees: int | None) -> list[tuple[str, pa.Array]]:
    raw = booster.predict(x, num_iteration=trees)
    if run.task == "binary":
        return [("__score", pa.array(raw, pa.float64()))]
    if run.task == "multiclass":
        probs = np.asarray(raw).reshape(len(x), len(run.classes))
        return [*((f"__p{k}", pa.array(probs[:, k], pa.float64())) for k in range(probs.shape[1])),
                ("__pred", pa.array(probs.argmax(axis=1).astype(np.int32), pa.int32()))]
    return [("__pred", pa.array(raw, pa.float64()))]


def scored_test(settings: Settings, con: duckdb.DuckDBPyConnection, run: Run, *,
                progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None, refresh: bool = False) -> Scored:
    """The run's scored test split: from the cache when it was made from the dataset's current files,
    else rebuilt (see the module docstring).

    ``progress(rows done, test rows at training time)`` after each batch; ``should_stop()`` True between
    batches stops with QuarryError and keeps nothing.
    """
    started = time.perf_counter()
    dataset = run.info.get("dataset")
    if run.info.get("source_path"):  # trained on a path, never registered: its view, made again here
        try:
            found = cat.view_of_path(con, settings, run.info["source_path"], dataset)
        except QuarryError as exc:
            raise HoldoutError(f"The data of run {run.run_id!r} ({run.info['source_path']}) cannot be read: "
                               f"{exc.message}", exc.hint) from None
        fingerprint = cat.fingerprint(found, settings)
    else:
        fingerprint = _fingerprint(settings, dataset)
    out = folder(settings, run.run_id) / "scored.parquet"
    spec = feature_spec(run)
    if run.task not in ("binary", "multiclass", "regression"):
        raise HoldoutError(f"Run {run.run_id!r} has an unknown task {run.task!r}.", "Train the run again.")
    changed = bool(run.info.get("fingerprint")) and run.info.get("fingerprint") != fingerprint
    meta = None if refresh else _cached(run, out, fingerprint)
    cur = con.cursor()
    try:
        if meta is None:
            meta = _write(settings, cur, run, spec, out, fingerprint, progress, should_stop)
        columns = {n: t for n, t, *_ in cur.sql(f"DESCRIBE SELECT * FROM read_parquet({quote_literal(str(out))})")
                   .fetchall() if not n.startswith("__")}
    except duckdb.Error as exc:
        raise translate(exc, "Reading the scored test split") from None
    finally:
        cur.close()
    return Scored(path=out, run_id=run.run_id, task=run.task, classes=run.classes or None, threshold=run.threshold,
                  rows=int(meta["rows"]), features=run.features, columns=columns, target=run.target,
                  dataset=dataset, changed_since_training=changed,
                  seconds=time.perf_counter() - started if meta.get("fresh") else 0.0)


def _write(settings: Settings, cur: duckdb.DuckDBPyConnection, run: Run, spec: FeatureSpec, out: Path,
           fingerprint: str, progress: Callable[[int, int], None] | None,
           should_stop: Callable[[], bool] | None) -> dict:
    sql, params = test_sql(cur, run)
    user = [n for n, *_ in cur.sql(f"DESCRIBE ({sql})", params=params or None).fetchall()]
    clash = [n for n in user if n in RESERVED or (n.startswith("__p") and n[3:].isdigit())]
    if clash:
        raise HoldoutError(f"The test rows have a column named {clash[0]!r}, a name evaluation keeps for itself.",
                           "Rename that column in the recipe or the data.")
    n_user = len(user)
    select = (f"SELECT *, {spec.select_sql()}, {label_sql(run.target, run.task)} AS __label "
              f"FROM ({sql}) AS {quote_ident('test rows')}")
    labels = Labels(run.task, run.classes or None)
    booster = run.booster
    trees = num_iteration(run)
    expected = int((run.info.get("rows") or {}).get("test") or 0)
    done = 0
    if progress:
        progress(0, expected)
    with atomic_path(out) as tmp:
        writer = None
        try:
            for batch in cur.sql(select, params=params or None).to_arrow_reader(BATCH_ROWS):
                if should_stop is not None and should_stop():
                    raise QuarryError("Scoring the test split was cancelled.", "Open the page again to start over.")
                if not batch.num_rows:
                    continue
                features = pa.RecordBatch.from_arrays([batch.column(n_user + i) for i in range(len(spec.names))],
                                                      names=[f"__f{i}" for i in range(len(spec.names))])
                x = spec.matrix(features)
                y = labels(batch.column(n_user + len(spec.names)))
                cols = [(name, batch.column(i)) for i, name in enumerate(user)]
                cols += [("__row", pa.array(np.arange(done, done + batch.num_rows, dtype=np.int64))),
                         ("__label", pa.array(y, pa.float64())),
                         *_prediction_arrays(run, booster, x, trees)]
                table = pa.table(dict(cols))
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=BATCH_ROWS)
                done += batch.num_rows
                if progress:
                    progress(done, max(expected, done))
            if writer is None:
                raise HoldoutError(f"Run {run.run_id!r} has no test rows to evaluate.",
                                   "Train with a test fraction above 0 (the Train page's split settings).")
        finally:
            if writer is not None:
                writer.close()
    meta = {"format": FORMAT, "version": VERSION, "run_id": run.run_id, "dataset": run.info.get("dataset"),
            "fingerprint": fingerprint, "rows": done}
    write_text(_meta_path(out), json.dumps(meta))
    return {**meta, "fresh": True}

"""The ONE encoder from rows to the model's input matrix, used by training, holdout evaluation, SHAP,
what-if and batch scoring — so the model always sees a row the same way.

Two steps. ``select_sql`` brings each feature to its canonical type in DuckDB (numbers and booleans as
DOUBLE, dates and times as epoch seconds, text categories as VARCHAR); ``matrix`` turns a batch of that
query's output into a float64 (rows, features) matrix, a categorical feature as the index of its value
in the training categories (unseen or missing: NaN, LightGBM's missing value). ``encode`` does both
for rows already in Arrow. ``Labels`` and ``label_sql`` do the same for the target; ``num_iteration`` is the
number of trees every prediction uses.

The run folder contract (README, "Runs") says the same in words; runs without per-feature kinds (older
or made elsewhere) get them from the categories and the column types (``FeatureSpec.for_run``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.data.engine import quote_ident
from core.data.types import NUMERIC, column_kind
from core.errors import QuarryError

if TYPE_CHECKING:
    from core.model.runs import Run

KINDS = ("numeric", "boolean", "temporal", "categorical")


def category_group(categories: list) -> str:
    """'text', 'number' or 'boolean': what a categorical feature's values are (the categories say it)."""
    if categories and all(isinstance(c, bool) for c in categories):
        return "boolean"
    if categories and all(isinstance(c, int | float) and not isinstance(c, bool) for c in categories):
        return "number"
    return "text"


def kind_of_type(duck_type: str) -> str:
    """The feature kind of a non-categorical column of this DuckDB type ('other' when it cannot be one)."""
    kind = column_kind(duck_type)
    if kind in NUMERIC:
        return "numeric"
    return kind if kind in ("boolean", "temporal") else "other"


@dataclass(frozen=True)
class FeatureSpec:
    """How the model's input matrix is made from a query's rows: the feature columns in order, each
    one's kind ('numeric', 'boolean', 'temporal' or 'categorical') and the categories of the
    categorical ones (code i is categories[i]; anything else -> NaN, LightGBM's missing).

    Every path makes the same matrix: ``SELECT {spec.select_sql()} FROM (...)``, then ``spec.matrix(batch)``.
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    categories: dict[str, list] = field(default_factory=dict)

    @classmethod
    def for_run(cls, run: Run, types: Mapping[str, str] | None = None) -> FeatureSpec:
        """The spec a run was trained with: run.json's per-feature kinds, or, for runs without them, the
        categories (categorical) and the column `types` (DuckDB types by name) of the rows to encode."""
        kinds = run.info.get("feature_kinds")
        if not (isinstance(kinds, list) and len(kinds) == len(run.features) and all(k in KINDS for k in kinds)):
            if types is None:
                raise QuarryError(f"run.json of run {run.run_id!r} lacks the kind of each feature.",
                                  "The run folder is damaged or too old; train the run again.")
            kinds = ["categorical" if f in run.categorical else kind_of_type(types[f]) for f in run.features]
        return cls(tuple(run.features), tuple(kinds), dict(run.categorical))

    def _group(self, name: str) -> str:
        return category_group(self.categories.get(name, []))

    def select_sql(self) -> str:
        """The SELECT list giving the features in order as __f0, __f1...: numbers as DOUBLE, text as VARCHAR."""
        out = []
        for i, (name, kind) in enumerate(zip(self.names, self.kinds, strict=True)):
            q = quote_ident(name)
            if kind == "categorical":
                expr = {"text": f"CAST({q} AS VARCHAR)", "number": f"CAST({q} AS DOUBLE)"}.get(self._group(name), q)
            elif kind == "temporal":
                expr = f"CAST(epoch({q}) AS DOUBLE)"
            else:
                expr = f"CAST({q} AS DOUBLE)"
            out.append(f"{expr} AS __f{i}")
        return ", ".join(out)

    @cached_property
    def _value_sets(self) -> dict[int, pa.Array]:
        out = {}
        for i, (name, kind) in enumerate(zip(self.names, self.kinds, strict=True)):
            if kind != "categorical":
                continue
            values, group = self.categories.get(name, []), self._group(name)
            out[i] = (pa.array([float(c) for c in values], pa.float64()) if group == "number" else
                      pa.array(values, pa.bool_()) if group == "boolean" else
                      pa.array([str(c) for c in values], pa.string()))
        return out

    def column(self, i: int, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Feature i's values (a column of select_sql's output) as float64, missing and unseen as NaN."""
        if i in self._value_sets:
            value_set = self._value_sets[i]
            if pa.types.is_dictionary(values.type):
                values = pc.cast(values, values.type.value_type)
            values = pc.index_in(pc.cast(values, value_set.type), value_set=value_set, skip_nulls=True)
        values = pc.fill_null(pc.cast(values, pa.float64()), np.nan)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)

    def matrix(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        """The first len(names) columns of a batch of select_sql's output, as a float64 (rows, features) matrix."""
        out = np.empty((batch.num_rows, len(self.names)), dtype=np.float64, order="F")
        for i in range(len(self.names)):
            out[:, i] = self.column(i, batch.column(i))
        return out

    def encode(self, rows: pa.Table | pa.RecordBatch) -> np.ndarray:
        """The matrix of rows already in Arrow that hold the feature columns: through select_sql, as in DuckDB."""
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        con = duckdb.connect()
        try:
            con.register("rows_to_encode", table)
            try:
                return self.matrix(con.sql(f"SELECT {self.select_sql()} FROM rows_to_encode").to_arrow_table())
            except duckdb.Error as exc:
                raise QuarryError(f"These rows cannot be encoded as the model's input: {str(exc).splitlines()[0]}",
                                  "Each feature must be a number, boolean, date or timestamp, or text for a "
                                  "categorical feature.") from None
        finally:
            con.close()

    @property
    def categorical(self) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == "categorical"]


class Labels:
    """Target values -> what LightGBM learns: class codes (sorted classes) or float values."""

    def __init__(self, task: str, classes: list | None) -> None:
        self.task, self.classes = task, classes

    def __call__(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if self.task == "regression":
            return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        codes = pc.index_in(values, value_set=pa.array(self.classes, values.type))
        return pc.cast(codes, pa.float64()).to_numpy(zero_copy_only=False)




def label_sql(target: str, task: str) -> str:
    y = quote_ident(target)
    return f"CAST({y} AS DOUBLE)" if task == "regression" else y


def num_iteration(run: Run) -> int | None:
    """Trees every prediction uses: up to the run's best iteration when the saved model holds more
    (LightGBM's 1-based count); None for all of them."""
    best = run.best_iteration
    return best if best is not None and best < run.booster.current_iteration() else None

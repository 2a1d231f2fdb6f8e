"""One row's explanation: SHAP of a test row or of a row typed in for a what-if, computed on the fly with
core.explain, and the test rows worth explaining.

A what-if row is encoded exactly as training encoded rows (core.model.encoding.FeatureSpec): numbers as DOUBLE,
true/false as 1/0, times as epoch seconds, text as the index of the label among the run's training categories (an unseen
label is missing).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa

from core.data.engine import quote_ident, translate
from core.evaluate import holdout
from core.explain.shap import ExplainError, check_class_index, contributions, explained_class, predict
from core.model.encoding import FeatureSpec
from core.model.runs import Run


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
    pred = predict(run, x)[0]
    if run.task == "multiclass":
        k = check_class_index(run.classes, class_index, int(np.argmax(pred)))
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
                            task=run.task, target=run.target, explained=explained_class(run.task, run.classes, k))


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


def encode_row(spec: FeatureSpec, values: Mapping) -> np.ndarray:
    """One row given as feature -> raw value (as typed in the what-if form), as a (1, F) model input.

    Each value is read as its feature's canonical value (a number, epoch seconds, a category label) and
    encoded by the run's FeatureSpec.matrix, like every other row. Missing features and None are missing
    (NaN); unseen category labels are missing too.
    """
    columns = []
    for i, (name, kind) in enumerate(zip(spec.names, spec.kinds, strict=True)):
        value = values.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = None
        elif kind == "categorical":
            labels = spec.categories.get(name, [])
            label = _as_label(value)
            value = next((c for c in labels if str(c) == label), None)
        elif kind == "temporal":
            value = _epoch(value, name)
        else:
            value = _number(value, name, kind)
        columns.append(pa.array([value], spec._value_sets[i].type if i in spec._value_sets else pa.float64()))
    return spec.matrix(pa.table(columns, names=[f"__f{i}" for i in range(len(columns))]))


def what_if(run: Run, values: dict, *, class_index: int | None = None) -> LocalExplanation:
    """SHAP of a row given as feature -> raw value (numbers, true/false, category labels, ISO dates, None).

    Features not given are missing; keys that are not features (the target, an id) are ignored.
    Multiclass explains `class_index`, by default the predicted class.
    """
    x = encode_row(holdout.feature_spec(run), values)
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

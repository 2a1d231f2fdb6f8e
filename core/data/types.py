"""The vocabulary every stage shares: a column's kind from its DuckDB type, and the learning tasks.

Defined once here (the profile, recipes, splits, training, scoring and evaluation all read it), so that
a column is numeric, temporal or categorical in the same way everywhere.
"""
from __future__ import annotations

INTEGER_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                           "UINTEGER", "UBIGINT", "UHUGEINT"})
FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL"})
TEMPORAL_PREFIXES = ("DATE", "TIMESTAMP")
NUMERIC = ("integer", "float", "decimal")  # the kinds that are numbers

TASKS = ("binary", "multiclass", "regression")
MAX_CLASSES = 50  # a target with more distinct values than this is not a classification target


def column_kind(duck_type: str) -> str:
    """'integer', 'float', 'decimal', 'string', 'boolean', 'temporal' or 'other' for a DuckDB type."""
    t = duck_type.upper()
    if t in INTEGER_TYPES:
        return "integer"
    if t in FLOAT_TYPES:
        return "float"
    if t.startswith("DECIMAL"):
        return "decimal"
    if t == "VARCHAR":
        return "string"
    if t == "BOOLEAN":
        return "boolean"
    if t.startswith(TEMPORAL_PREFIXES):
        return "temporal"
    return "other"

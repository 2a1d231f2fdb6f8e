"""Missing-value patterns over the full data: which columns are missing together, and how often.

Two aggregate queries, whatever the row count: one GROUP BY over a per-row bitmask of missing
flags (bit i set when column i is missing) gives the commonest patterns; one row of
``count_if`` aggregates gives every column's and every pair's missing counts, from which the
nullity correlation (Pearson correlation of the 0/1 missing indicators) follows exactly.
A value is missing when it is NULL, or NaN in a float column (±Inf are values).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import duckdb

from core.data.engine import quote_ident, translate
from core.errors import QuarryError
from core.fmt import jsonable
from core.profile.scan import ColumnProfile, Profile

# The pattern of a row is one BIGINT with a bit per column; bit 63 is the sign, so 62 columns at most.
MAX_COLUMNS = 62


@dataclass(frozen=True)
class MissingPatterns:
    """Missing-together patterns and the nullity correlation of the columns that have missing values.

    ``patterns`` holds (columns missing together, rows), most rows first; the empty tuple stands
    for the rows where none of ``columns`` is missing. ``matrix[i][j]`` is the Pearson correlation
    of columns i and j's missing indicators, None where a column is never or always missing.
    """

    table: str
    columns: tuple[str, ...]
    missing: tuple[int, ...]
    patterns: tuple[tuple[tuple[str, ...], int], ...]
    pattern_count: int
    matrix: tuple[tuple[float | None, ...], ...]
    rows: int
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return jsonable(asdict(self))


def missing_sql(column: ColumnProfile) -> str:
    """SQL that is true where the column's value is missing (NULL; NaN too in a float column); never NULL."""
    q = quote_ident(column.name)
    if column.kind != "float":
        return f"({q} IS NULL)"
    # NaN = non-finite but not ±Inf. Not isnan(): DuckDB answers it from Parquet statistics, which leave NaN out.
    return f"({q} IS NULL OR (NOT isfinite({q}) AND {q} <> 'inf'::DOUBLE AND {q} <> '-inf'::DOUBLE))"


def missing_count(column: ColumnProfile) -> int:
    """Missing values per the profile: NULLs, plus NaN for float columns."""
    return column.missing + (column.nan or 0)


def _pick(profile: Profile, max_columns: int) -> list[ColumnProfile]:
    """The `max_columns` columns with most missing values, in table order."""
    missing = [c for c in profile.columns if missing_count(c) > 0]
    keep = {c.name for c in sorted(missing, key=lambda c: -missing_count(c))[:max_columns]}
    return [c for c in missing if c.name in keep]


def _nullity(n: int, a: int, b: int, ab: int) -> float | None:
    """Pearson correlation of two 0/1 indicators from their counts of ones (a, b), of both (ab) and of rows (n)."""
    spread = a * (n - a) * b * (n - b)
    return (n * ab - a * b) / math.sqrt(spread) if spread else None


def missing_patterns(con: duckdb.DuckDBPyConnection, table: str, profile: Profile, max_columns: int = 30,
                     top: int = 20) -> MissingPatterns:
    """Which columns are missing together, counted over the full data in two aggregate queries.

    Parameters
    ----------
    table
        A registered dataset (a view name); `profile` is its profile, which says which columns have
        missing values.
    max_columns
        Consider the columns with most missing values, at most this many (1 to 62).
    top
        Return the `top` commonest patterns.

    Returns
    -------
    MissingPatterns
        Empty (no columns, no patterns) when no column has a missing value.
    """
    if not 1 <= max_columns <= MAX_COLUMNS:
        raise QuarryError(f"max_columns must be between 1 and {MAX_COLUMNS}. Got {max_columns}.",
                          "Pick fewer columns: patterns over more are too many to read anyway.")
    if top < 1:
        raise QuarryError(f"top must be at least 1. Got {top}.", "Ask for the commonest patterns, e.g. top=20.")
    cols = _pick(profile, max_columns)
    shown = sum(missing_count(c) > 0 for c in profile.columns)
    if not cols:
        return MissingPatterns(table, (), (), (), 0, (), profile.rows, ("No column has missing values.",))
    flags = [missing_sql(c) for c in cols]
    src = quote_ident(table)
    mask = " | ".join(f"({f}::BIGINT << {i})" for i, f in enumerate(flags))
    patterns_sql = (f"SELECT mask, count(*) AS n, count(*) OVER () AS patterns FROM (SELECT {mask} AS mask FROM {src}) "
                    f"GROUP BY mask ORDER BY n DESC, mask LIMIT {int(top)}")
    k = len(cols)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    counts = ["count(*)", *(f"count_if(m{i})" for i in range(k)), *(f"count_if(m{i} AND m{j})" for i, j in pairs)]
    matrix_sql = (f"SELECT {', '.join(counts)} FROM (SELECT {', '.join(f'{f} AS m{i}' for i, f in enumerate(flags))} "
                  f"FROM {src})")
    cur = con.cursor()
    try:
        found = cur.execute(patterns_sql).fetchall()
        totals = [int(v) for v in cur.execute(matrix_sql).fetchall()[0]]
    except duckdb.Error as exc:
        raise translate(exc, f"Counting missing-value patterns of {table!r}") from None
    finally:
        cur.close()

    n, ones = totals[0], totals[1:k + 1]
    both = dict(zip(pairs, totals[k + 1:], strict=True))
    matrix = [[None] * k for _ in range(k)]
    for i in range(k):
        matrix[i][i] = 1.0 if 0 < ones[i] < n else None
    for (i, j), ab in both.items():
        matrix[i][j] = matrix[j][i] = _nullity(n, ones[i], ones[j], ab)
    names = tuple(c.name for c in cols)
    patterns = tuple((tuple(name for i, name in enumerate(names) if mask >> i & 1), int(rows))
                     for mask, rows, _ in found)
    notes = () if shown <= k else (f"{shown} columns have missing values; the {k} with most are compared.",)
    return MissingPatterns(table, names, tuple(ones), patterns, int(found[0][2]) if found else 0,
                           tuple(tuple(row) for row in matrix), n, notes)

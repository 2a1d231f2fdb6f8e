"""Correlations between columns: Pearson and Spearman for numbers, Cramér's V for categories.

Pairs grow with the square of the column count, so this is the one part of a profile computed
on a bounded random sample (DuckDB reservoir sampling, repeatable); the result carries the
sample size and the page says so. Only the sampled columns come into Python.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pandas as pd
from scipy.stats.contingency import association

from core.data.engine import quote_ident, translate
from core.errors import QuarryError

SAMPLE_ROWS = 100_000
MAX_COLUMNS = 40
MAX_CATEGORIES = 50
METHODS = ("pearson", "spearman", "cramers_v")


@dataclass(frozen=True)
class Correlations:
    """A symmetric matrix of association between `columns` (None where it is undefined)."""

    method: str
    columns: tuple[str, ...]
    matrix: tuple[tuple[float | None, ...], ...]
    sample_rows: int
    total_rows: int

    @property
    def sampled(self) -> bool:
        return self.sample_rows < self.total_rows

    def to_json(self) -> dict:
        return asdict(self)


def _check(method: str, columns: list[str]) -> None:
    if method not in METHODS:
        raise QuarryError(f"Unknown correlation method {method!r}.", f"Use one of: {', '.join(METHODS)}.")
    if not 2 <= len(columns) <= MAX_COLUMNS:
        raise QuarryError(f"Correlations need 2 to {MAX_COLUMNS} columns. Got {len(columns)}.",
                          "Pick the columns to compare.")


def sample(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: int = SAMPLE_ROWS,
           seed: int = 42) -> tuple[pd.DataFrame, int]:
    """(a repeatable random sample of at most `rows` rows of `columns`, the table's row count)."""
    cur = con.cursor()
    try:
        src = quote_ident(table)
        total = int(cur.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0])
        cols = ", ".join(quote_ident(c) for c in columns)
        bounded = f"SELECT {cols} FROM {src} USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE ({int(seed)})"
        frame = cur.sql(bounded).df()  # at most `rows` rows: the reservoir sample
    except duckdb.Error as exc:
        raise translate(exc, f"Sampling {table!r}") from None
    finally:
        cur.close()
    return frame, total


def _matrix(values: np.ndarray) -> tuple[tuple[float | None, ...], ...]:
    return tuple(tuple(None if not np.isfinite(v) else float(v) for v in row) for row in values)


def cramers_v(frame: pd.DataFrame) -> np.ndarray:
    """Cramér's V for every pair of columns (rows missing in either column are left out)."""
    n = frame.shape[1]
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            pair = frame.iloc[:, [i, j]].dropna()
            table = pd.crosstab(pair.iloc[:, 0], pair.iloc[:, 1]).to_numpy()
            v = association(table, method="cramer") if min(table.shape) > 1 else np.nan
            out[i, j] = out[j, i] = v
    return out


def correlations(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], method: str = "pearson",
                 rows: int = SAMPLE_ROWS, seed: int = 42) -> Correlations:
    """Pairwise association between `columns` of a dataset, on a repeatable sample of at most `rows` rows.

    Parameters
    ----------
    method
        ``pearson`` or ``spearman`` (numeric columns; pairwise-complete rows, NaN and ±Inf left out),
        or ``cramers_v`` (any columns with at most 50 distinct values in the sample).
    """
    _check(method, columns)
    frame, total = sample(con, table, columns, rows, seed)
    if method == "cramers_v":
        wide = [c for c in columns if frame[c].nunique(dropna=True) > MAX_CATEGORIES]
        if wide:
            raise QuarryError(f"Cramér's V compares categories; {', '.join(wide)} has more than "
                              f"{MAX_CATEGORIES} distinct values.", "Leave such columns out, or bin them first.")
        values = cramers_v(frame.astype("object"))
    else:
        bad = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c]) or frame[c].dtype == bool]
        if bad:
            raise QuarryError(f"{method.title()} correlation needs numeric columns; {', '.join(bad)} is not.",
                              "Use Cramér's V for categorical columns.")
        numbers = frame.astype("float64").replace([np.inf, -np.inf], np.nan)
        values = numbers.corr(method=method, min_periods=3).to_numpy()
    return Correlations(method, tuple(columns), _matrix(values), min(len(frame), total), total)

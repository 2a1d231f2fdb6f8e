"""Shared helpers for recipe tests: run steps on a table, and compare compiled SQL with snapshot files."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa

from core.features import recipe as R

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "recipes"


def table(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> str:
    """Make `data` a table of the connection (recipes read registered datasets the same way)."""
    con.register(f"_{name}_arrow", data)
    con.sql(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM "_{name}_arrow"')
    return name


def run(con: duckdb.DuckDBPyConnection, steps: list[R.Step], source: str, *, fit_on: str | None = None,
        training: bool = False) -> tuple[pa.Table, R.Compiled, R.Recipe]:
    """Fit the steps on `fit_on` (default: the source table), apply them to `source`; (output, compiled, recipe)."""
    recipe = R.Recipe(steps=tuple(steps))
    if not recipe.fitted:
        recipe = R.fit(con, recipe, fit_on or source)
    compiled = R.compile_recipe(con, recipe, R.source_sql(source), training=training)
    return con.sql(compiled.sql, params=compiled.params).to_arrow_table(), compiled, recipe


def snapshot(name: str, sql: str) -> None:
    """The compiled SQL must equal tests/snapshots/recipes/NAME.sql (written when missing or UPDATE_SNAPSHOTS=1),
    so a change in generated SQL shows in review."""
    path = SNAPSHOTS / f"{name}.sql"
    text = sql.strip() + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"compiled SQL changed for {name}; run with UPDATE_SNAPSHOTS=1 if intended"

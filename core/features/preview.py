"""A recipe's live preview: before/after columns on a bounded sample, and a summary of each new column.

The preview runs the recipe's compiled query over a repeatable random sample of the dataset (the
page says so), so it answers fast whatever the size; steps that look across rows (group aggregates,
lags, rolling windows) see only the sampled rows there, and the page says that too.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import duckdb
import pyarrow as pa

from core.data import sandbox, sqlworker
from core.data.catalog import Catalog
from core.data.engine import quote_ident, translate
from core.features import recipe as R

SAMPLE_ROWS = 10_000
SHOW_ROWS = 100
CROSS_ROW_KINDS = {"group_aggregate", "lag", "rolling", "deduplicate"}


@dataclass(frozen=True)
class ColumnSummary:
    """One output column that the recipe added or changed, summarised over the preview sample."""

    name: str
    type: str
    status: str  # 'new' or 'changed type' or 'changed'
    missing: int
    distinct: int
    low: object
    high: object
    mean: float | None


@dataclass(frozen=True)
class Preview:
    compiled: R.Compiled
    before: tuple[R.Column, ...]
    sample_rows: int  # rows fed in (the sample)
    rows_out: int  # rows coming out of the recipe
    total_rows: int  # rows of the whole dataset
    head: pa.Table  # the first SHOW_ROWS output rows
    summaries: tuple[ColumnSummary, ...]
    notes: tuple[str, ...]


def preview(con: duckdb.DuckDBPyConnection, recipe: R.Recipe, table: str, rows: int = SAMPLE_ROWS) -> Preview:
    """Run `recipe` (fitted) on a repeatable sample of `rows` rows of `table`; raises RecipeError naming a bad step."""
    cur = con.cursor()
    try:
        total = int(cur.sql(f"SELECT count(*) FROM {quote_ident(table)}").fetchall()[0][0])
        source = R.source_sql(table, sample_rows=rows if total > rows else None)
        before = R.compile_recipe(cur, R.Recipe(), source).columns
        compiled = R.compile_recipe(cur, recipe, source)
        try:
            out = cur.sql(f"SELECT * FROM ({compiled.sql}) LIMIT {SHOW_ROWS}", params=compiled.params).to_arrow_table()
            rows_out = int(cur.sql(f"SELECT count(*) FROM ({compiled.sql})", params=compiled.params).fetchall()[0][0])
            summaries = _summaries(cur, compiled, before, _touched(recipe))
        except duckdb.Error as exc:
            raise translate(exc, "Running the recipe on the sample") from None
    finally:
        cur.close()
    notes = []
    if total > rows:
        notes.append(f"Preview on a repeatable random sample of {rows:,} of {total:,} rows.")
    if any(s.kind in CROSS_ROW_KINDS for s in recipe.steps) and total > rows:
        notes.append("Steps that look across rows (group aggregates, lags, rolling windows, deduplication) see "
                     "only the sampled rows here; on the full data they see every row.")
    return Preview(compiled=compiled, before=before, sample_rows=min(rows, total), rows_out=rows_out,
                   total_rows=total, head=out, summaries=summaries, notes=tuple(notes))


def to_json(p: Preview) -> dict:
    """A preview without its rows as JSON-ready values (the sandbox sends it across a process boundary)."""
    cols = lambda cs: [[c.name, c.type] for c in cs]  # noqa: E731
    return {"compiled": {"sql": p.compiled.sql, "params": p.compiled.params, "columns": cols(p.compiled.columns),
                         "steps": [{"sql": t.sql, "description": t.description, "columns": cols(t.columns)}
                                   for t in p.compiled.steps]},
            "before": cols(p.before), "sample_rows": p.sample_rows, "rows_out": p.rows_out,
            "total_rows": p.total_rows, "summaries": [asdict(c) for c in p.summaries], "notes": list(p.notes)}


def from_json(doc: dict, head: pa.Table) -> Preview:
    """The preview `to_json` made, with its first rows."""
    cols = lambda cs: tuple(R.Column(n, t) for n, t in cs)  # noqa: E731
    c = doc["compiled"]
    compiled = R.Compiled(sql=c["sql"], params=c["params"], columns=cols(c["columns"]),
                          steps=tuple(R.CompiledStep(t["sql"], t["description"], cols(t["columns"]))
                                      for t in c["steps"]))
    return Preview(compiled=compiled, before=cols(doc["before"]), sample_rows=int(doc["sample_rows"]),
                   rows_out=int(doc["rows_out"]), total_rows=int(doc["total_rows"]), head=head,
                   summaries=tuple(ColumnSummary(**s) for s in doc["summaries"]), notes=tuple(doc["notes"]))


def _touched(recipe: R.Recipe) -> set[str]:
    """Columns some step names as its input (they may have been transformed in place)."""
    kinds = R.kinds()
    out: set[str] = set()
    for s in recipe.steps:
        for p in kinds[s.kind].params if s.kind in kinds else ():
            value = s.params.get(p.name)
            if p.type == "column" and isinstance(value, str):
                out.add(value)
            elif p.type == "columns" and isinstance(value, list):
                out.update(v for v in value if isinstance(v, str))
    return out


def _summaries(cur: duckdb.DuckDBPyConnection, compiled: R.Compiled, before: tuple[R.Column, ...],
               touched: set[str]) -> tuple[ColumnSummary, ...]:
    """Missing, distinct, range and mean of each new, retyped or transformed column: one aggregate query."""
    old = {c.name: c.type for c in before}

    def status(c: R.Column) -> str | None:
        if c.name not in old:
            return "new"
        return "changed type" if old[c.name] != c.type else "input of a step" if c.name in touched else None

    changed = [(c, status(c)) for c in compiled.columns if status(c)]
    if not changed:
        return ()
    parts = []
    for i, (c, _) in enumerate(changed):
        q = quote_ident(c.name)
        numeric = c.kind in ("integer", "float", "decimal", "boolean")
        x = f"{q}::DOUBLE" if numeric else f"{q}::VARCHAR"
        parts += [f"count(*) - count({q}) AS m{i}", f"approx_count_distinct({q}) AS d{i}",
                  f"min({x}) AS lo{i}", f"max({x}) AS hi{i}", f"avg({x}) AS mu{i}" if numeric else f"NULL AS mu{i}"]
    row = cur.sql(f"SELECT {', '.join(parts)} FROM ({compiled.sql})", params=compiled.params).fetchall()[0]
    out = []
    for i, (c, status) in enumerate(changed):
        m, d, lo, hi, mu = row[5 * i: 5 * i + 5]
        out.append(ColumnSummary(c.name, c.type, status, int(m), int(d), lo, hi, mu))
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# The Features page's fit and preview run in the sandbox process (core.data.sqlworker), like user SQL:
# they run a user's recipe expressions, under the same time and memory limits.


@sqlworker.operation("recipe_fit")
def _op_fit(con_for: Callable, args: dict) -> tuple[dict, None]:
    fitted = R.fit(con_for({args["table"]}), R.loads(args["recipe"]), args["table"])
    return {"recipe": fitted.dumps()}, None


@sqlworker.operation("recipe_preview")
def _op_preview(con_for: Callable, args: dict) -> tuple[dict, pa.Table]:
    found = preview(con_for({args["table"]}), R.loads(args["recipe"]), args["table"])
    return {"preview": to_json(found)}, found.head


def fit_in_sandbox(catalog: Catalog, recipe_json: str, table: str) -> str:
    """A recipe (JSON text) fitted on every row of `table`, its user expressions run in the sandbox."""
    what = "Fitting the recipe"
    return sqlworker.value(sandbox.box(catalog), "recipe_fit", {"recipe": recipe_json, "table": table,
                                                                "what": what}, what)["recipe"]


def preview_in_sandbox(catalog: Catalog, fitted_json: str, table: str) -> Preview:
    """The Features page's preview of a fitted recipe on a sample of `table`, run in the sandbox."""
    what = "Running the recipe on the sample"
    head, header = sqlworker.table(sandbox.box(catalog), "recipe_preview",
                                   {"recipe": fitted_json, "table": table, "what": what}, what)
    return from_json(header["preview"], head)

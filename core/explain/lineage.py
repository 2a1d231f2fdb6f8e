"""Where a model feature came from: the recipe step (core.recipe) that made or last changed it, for the labels
of the explain page.
"""
from __future__ import annotations

import re

import duckdb

from core.data.engine import quote_ident
from core.errors import QuarryError
from core.features import recipe as R
from core.model.runs import Run

ROW_KINDS = ("filter", "deduplicate", "select", "drop")  # steps that keep or drop, but change no value


def _param_summary(step: R.Step) -> str:
    def short(v: object) -> str:
        if isinstance(v, list | tuple):
            return ", ".join(map(str, v[:6])) + (f" and {len(v) - 6} more" if len(v) > 6 else "")
        return str(v)

    return "; ".join(f"{k} {short(v)}" for k, v in step.params.items() if v not in (None, "", [], ()))


def _step_label(i: int, step: R.Step, text: str) -> str:
    name = f" '{step.name}'" if step.name else ""
    return f"step {i + 1}{name} ({step.kind}): {text}"


def _columns_named(step: R.Step) -> list[str]:
    """The column names a step's parameters give: its input columns and the names of columns it makes."""
    out: list[str] = []
    try:
        declared = {p.name: p.type for p in R.kind_of(step, 0).params}
    except QuarryError:
        declared = {}
    for key, v in step.params.items():
        if declared.get(key) in ("column", "columns") or key in ("name", "to"):
            out.extend([v] if isinstance(v, str) else [c for c in v or [] if isinstance(c, str)])
    return out


def recipe_links(run: Run, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, str]:
    """Model feature -> the recipe step that made or last changed it ("step 3 (transform): ..."); {} without one.

    With a connection that has the run's dataset, the recipe is compiled over it and each step's own
    description is used, and a feature is linked to the last step whose SQL makes it (a new column,
    or ``<expression> AS feature``). Without one (or if the dataset no longer fits), the steps'
    parameters are read: the last step naming the feature, or a column it is derived from
    (``col_bin``, ``col=label``), is linked, described by its parameters.
    """
    if run.recipe is None or not run.recipe.steps:
        return {}
    if con is not None:
        try:
            return _compiled_links(con, run)
        except (QuarryError, duckdb.Error):
            pass
    links: dict[str, str] = {}
    for i, step in enumerate(run.recipe.steps):
        if step.kind in ROW_KINDS:
            continue
        named = _columns_named(step)
        for f in run.features:
            if f in named or any(f.startswith(c + "_") or f.startswith(c + "=") for c in named):
                links[f] = _step_label(i, step, _param_summary(step))
    return links


def _compiled_links(con: duckdb.DuckDBPyConnection, run: Run) -> dict[str, str]:
    cur = con.cursor()
    try:
        source = R.source_sql(run.info.get("dataset") or "")
        compiled = R.compile_recipe(cur, run.recipe, source)
        before = [c.name for c in R.compile_recipe(cur, R.Recipe(), source).columns]
    finally:
        cur.close()
    links: dict[str, str] = {}
    for i, (step, done) in enumerate(zip(run.recipe.steps, compiled.steps, strict=True)):
        after = [c.name for c in done.columns]
        for f in run.features:
            if f not in after:
                continue
            identity = re.compile(rf'(?:\w+\.)?{re.escape(quote_ident(f))}\s+AS\s+{re.escape(quote_ident(f))}')
            made = f not in before or re.search(rf"AS\s+{re.escape(quote_ident(f))}", identity.sub("", done.sql))
            if made and step.kind not in ROW_KINDS:
                links[f] = _step_label(i, step, done.description)
        before = after
    return links

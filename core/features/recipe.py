"""Feature recipes: ordered, named steps compiled to one DuckDB query, fitted once, applied anywhere.

A recipe is a list of steps; each step has a kind (``impute``, ``one_hot``, ``lag``...), parameters
and, for stateful kinds, the statistics it was **fitted** with (means, category lists, bin edges).
Every kind has one small compile function (found through ``KINDS``) that turns a step into a
``SELECT`` over the previous step's output, binding its values as parameters, with a plain-English
description. The whole recipe becomes one query of chained CTEs::

    WITH s0 AS (SELECT * FROM source), s1 AS (<step 1 over s0>), ... SELECT * FROM sN

so preview, materialisation, training and scoring all run the exact same SQL, out of core. Fitted
values live in the recipe's JSON: applying it next month reproduces the training-time transform.

Kinds live in ``core/features/steps/`` (one module per family) and register themselves here with ``kind()``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import duckdb

from core.data import sqlcheck
from core.data.engine import quote_ident, quote_literal, translate
from core.data.types import column_kind
from core.errors import QuarryError

FORMAT = "quarry.recipe"
VERSION = 1
PARAM_TYPES = ("column", "columns", "int", "float", "choice", "text", "bool", "expression", "value")


class RecipeError(QuarryError):
    """A recipe that cannot be read, compiled or applied; the message names the step."""


# ----------------------------------------------------------------------------------------------
# What a recipe is


@dataclass(frozen=True)
class Step:
    """One step: its kind, its parameters, an optional name, and what fitting found (stateful kinds)."""

    kind: str
    params: dict = field(default_factory=dict)
    name: str = ""
    fitted: dict | None = None

    def title(self, index: int) -> str:
        return f"Step {index + 1}" + (f" '{self.name}'" if self.name else "") + f" ({self.kind})"


@dataclass(frozen=True)
class Recipe:
    """Steps in order. ``fitted_on`` says which data the stateful steps were fitted on."""

    steps: tuple[Step, ...] = ()
    name: str = ""
    fitted_on: dict | None = None

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "fitted_on": self.fitted_on,
                "steps": [asdict(s) for s in self.steps]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)

    @property
    def fitted(self) -> bool:
        """Whether every stateful step carries its fitted values."""
        registry = kinds()
        return all(s.fitted is not None for s in self.steps if s.kind in registry and registry[s.kind].fit)

    def with_steps(self, steps: Iterable[Step]) -> Recipe:
        return replace(self, steps=tuple(steps), fitted_on=None)


def loads(text: str) -> Recipe:
    """A recipe from its JSON text; malformed or unknown content raises RecipeError saying where."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RecipeError(f"The recipe is not valid JSON: {exc}.",
                          "Check the file, or save the recipe again.") from None
    return from_json(doc)


def from_json(doc: object) -> Recipe:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RecipeError("This is not a Quarry recipe (no \"format\": \"quarry.recipe\").",
                          "Save recipes from the Features page or with `python -m core features`.")
    if doc.get("version") != VERSION:
        raise RecipeError(f"Recipe format version {doc.get('version')!r} is not supported; this Quarry reads "
                          f"version {VERSION}.", "Save the recipe again with this version of Quarry.")
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise RecipeError("The recipe has no list of steps.", 'Give it "steps": [...].')
    out = []
    for i, s in enumerate(steps):
        if not isinstance(s, dict) or not isinstance(s.get("kind"), str) or not isinstance(s.get("params", {}), dict):
            raise RecipeError(f"Step {i + 1} is malformed: it needs a \"kind\" and a \"params\" object.",
                              'Each step looks like {"kind": "impute", "params": {...}}.')
        step = Step(kind=s["kind"], params=s.get("params", {}), name=str(s.get("name") or ""), fitted=s.get("fitted"))
        kind_of(step, i)
        out.append(step)
    return Recipe(steps=tuple(out), name=str(doc.get("name") or ""), fitted_on=doc.get("fitted_on"))


# ----------------------------------------------------------------------------------------------
# Step kinds: declared parameters, one compile function, an optional fit function


@dataclass(frozen=True)
class Param:
    """A step parameter, declared once: the page builds its form from these and `check` validates them.

    ``type``: 'column' / 'columns' (names of the step's input columns, limited to ``kinds`` when set),
    'int', 'float', 'choice' (one of ``choices``), 'text', 'bool', 'expression' (an SQL expression,
    checked like the SQL page), 'value' (any JSON value).
    """

    name: str
    type: str
    label: str
    default: Any = None
    required: bool = True
    choices: tuple = ()
    kinds: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


@dataclass(frozen=True)
class Column:
    """A column of a step's input: its name, DuckDB type and kind (core.data.types.column_kind)."""

    name: str
    type: str

    @property
    def kind(self) -> str:
        return column_kind(self.type)


class Context:
    """What a compile or fit function gets: the step, its checked parameters, its input, a parameter binder."""

    def __init__(self, index: int, step: Step, params: dict, source: str, columns: tuple[Column, ...],
                 training: bool, bound: dict):
        self.index, self.step, self.params, self.source = index, step, params, source
        self.columns, self.training, self._bound = columns, training, bound
        self.fitted = step.fitted or {}

    def bind(self, value: object) -> str:
        """A named parameter ($p3_0) holding `value`, for the SQL."""
        name = f"p{self.index}_{sum(1 for k in self._bound if k.startswith(f'p{self.index}_'))}"
        self._bound[name] = value
        return f"${name}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def fail(self, message: str, hint: str = "") -> RecipeError:
        return RecipeError(f"{self.step.title(self.index)}: {message}", hint or "Edit this step.")


@dataclass(frozen=True)
class Kind:
    """A step kind. ``compile(ctx) -> (SELECT over ctx.source, description)``; ``fit(con, ctx, input_sql,
    params) -> fitted values`` for stateful kinds, where input_sql is the step's input over training rows."""

    kind: str
    label: str
    family: str
    params: tuple[Param, ...]
    compile: Callable[[Context], tuple[str, str]]
    fit: Callable[[duckdb.DuckDBPyConnection, Context, str, dict], dict] | None = None
    help: str = ""


KINDS: dict[str, Kind] = {}


def kind(k: Kind) -> Kind:
    """Register a step kind (used by the modules in core/steps)."""
    KINDS[k.kind] = k
    return k


def kind_of(step: Step, index: int) -> Kind:
    _load_kinds()
    k = KINDS.get(step.kind)
    if k is None:
        raise RecipeError(f"{step.title(index)}: no compile rule for step kind {step.kind!r}.",
                          f"Known kinds: {', '.join(sorted(KINDS))}.")
    return k


def _load_kinds() -> None:
    if not KINDS:
        import core.features.steps  # noqa: F401  (registers every kind)


def kinds() -> dict[str, Kind]:
    _load_kinds()
    return KINDS


# ----------------------------------------------------------------------------------------------
# Checking parameters against the step's input

def check_expression(expr: str, columns: Iterable[str], what: str) -> str:
    """An SQL expression over the step's columns only, checked on DuckDB's parse tree (core.sqlcheck): one
    row-level expression of deterministic built-in scalar functions; no subquery, no ``*``, no aggregate, no
    function that reads files, settings or state (quoted or schema-qualified names included)."""
    sqlcheck.check_expression(expr, what, RecipeError)
    return expr.strip()


def _check_value(ctx_title: str, p: Param, value: object, columns: dict[str, Column]) -> object:
    def fail(message: str, hint: str) -> RecipeError:
        return RecipeError(f"{ctx_title}: {p.label} {message}", hint)

    if p.type in ("column", "columns"):
        names = [value] if p.type == "column" else value
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise fail(f"must be {'a column name' if p.type == 'column' else 'a list of column names'}.",
                       "Pick from the step's input columns.")
        if p.type == "columns" and p.required and not names:
            raise fail("needs at least one column.", "Pick one or more columns.")
        for n in names:
            if n not in columns:
                raise fail(f"names the column {n!r}, which does not exist at this step.",
                           f"Columns here: {', '.join(list(columns)[:20])}{'…' if len(columns) > 20 else ''}.")
            if p.kinds and columns[n].kind not in p.kinds:
                raise fail(f"needs {' or '.join(p.kinds)} columns; {n!r} is {columns[n].type}.",
                           "Cast it first, or pick another column.")
        return value if p.type == "column" else list(names)
    if p.type in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or (p.type == "int" and
                                                                              not float(value).is_integer()):
            raise fail(f"must be {'a whole number' if p.type == 'int' else 'a number'}. Got {value!r}.",
                       "Enter a number.")
        if (p.minimum is not None and value < p.minimum) or (p.maximum is not None and value > p.maximum):
            def b(v: float) -> str:
                return str(int(v)) if float(v).is_integer() else str(v)

            bounds = (f"in [{b(p.minimum)}, {b(p.maximum)}]" if p.minimum is not None and p.maximum is not None
                      else f"at least {b(p.minimum)}" if p.minimum is not None else f"at most {b(p.maximum)}")
            raise fail(f"must be {bounds}. Got {value}.", "Enter a number in range.")
        return int(value) if p.type == "int" else float(value)
    if p.type == "choice":
        if value not in p.choices:
            raise fail(f"must be one of {', '.join(map(str, p.choices))}. Got {value!r}.", "Pick one of them.")
        return value
    if p.type == "bool":
        if not isinstance(value, bool):
            raise fail(f"must be true or false. Got {value!r}.", "Tick or untick it.")
        return value
    if p.type == "text":
        if not isinstance(value, str) or (p.required and not value.strip()):
            raise fail("must be some text.", "Fill it in.")
        return value
    if p.type == "expression":
        return check_expression(value if isinstance(value, str) else "", columns, f"{ctx_title}: {p.label}")
    return value


def check_params(step: Step, index: int, columns: tuple[Column, ...]) -> dict:
    """The step's parameters checked against its kind and its input columns (defaults filled in)."""
    k = kind_of(step, index)
    by_name = {c.name: c for c in columns}
    known = {p.name for p in k.params}
    unknown = set(step.params) - known
    if unknown:
        raise RecipeError(f"{step.title(index)}: unknown parameter(s) {', '.join(sorted(unknown))}.",
                          f"{k.label} takes: {', '.join(sorted(known)) or 'no parameters'}.")
    out = {}
    for p in k.params:
        if p.name not in step.params or step.params[p.name] is None:
            if p.required and p.default is None:
                raise RecipeError(f"{step.title(index)}: {p.label} is required.", f"Set {p.label}.")
            out[p.name] = p.default
            continue
        out[p.name] = _check_value(step.title(index), p, step.params[p.name], by_name)
    return out


# ----------------------------------------------------------------------------------------------
# Compiling


@dataclass(frozen=True)
class CompiledStep:
    sql: str
    description: str
    columns: tuple[Column, ...]  # the step's output


@dataclass(frozen=True)
class Compiled:
    """A whole recipe as one query over `source`, its bound parameters, and each step's SQL and description."""

    sql: str
    params: dict
    steps: tuple[CompiledStep, ...]
    columns: tuple[Column, ...]

    def inline(self) -> str:
        """The query with every parameter written in as a literal: one self-contained SQL text to export."""
        return inline(self.sql, self.params)


def literal(value: object) -> str:
    """An SQL literal for a bound value (only for exporting a recipe as text)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value!r}::DOUBLE" if value == value and abs(value) != float("inf") else f"'{value}'::DOUBLE"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "MAP {" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return quote_literal(str(value))


def inline(sql: str, params: dict) -> str:
    return re.sub(r"\$(p\d+_\d+)\b", lambda m: literal(params[m.group(1)]), sql)


def _describe(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> tuple[Column, ...]:
    rel = con.sql(f"DESCRIBE {sql}", params=params or None)
    return tuple(Column(n, t) for n, t, *_ in rel.fetchall())


def source_sql(table: str, sample_rows: int | None = None, where: str | None = None) -> str:
    """The rows a recipe starts from: a registered dataset, optionally filtered, optionally a repeatable sample."""
    sql = f"SELECT * FROM {quote_ident(table)}"
    if where:
        sql += f" WHERE {where}"
    if sample_rows:
        sql = f"SELECT * FROM ({sql}) USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE (42)"
    return sql


def compile_recipe(con: duckdb.DuckDBPyConnection, recipe: Recipe, source: str, *, training: bool = False,
                   upto: int | None = None) -> Compiled:
    """Compile the steps (the first `upto`, or all) into one query over the rows of `source` (SQL).

    Each step is checked against the columns its input really has (DuckDB binds the query so far);
    an error names the step. ``training=True`` compiles steps that behave differently on the rows
    they were fitted on (out-of-fold target encoding) in their training form.
    """
    cur = con.cursor()
    try:
        bound: dict = {}
        ctes = [f"s0 AS ({source})"]
        try:
            columns = _describe(cur, f"({source})", {})
        except duckdb.Error as exc:
            raise translate(exc, "Reading the recipe's input") from None
        compiled = []
        for i, step in enumerate(recipe.steps[:upto] if upto is not None else recipe.steps):
            k = kind_of(step, i)
            params = check_params(step, i, columns)
            if k.fit and step.fitted is None:
                raise RecipeError(f"{step.title(i)} is not fitted yet.",
                                  "Fit the recipe on training data first (Features page: Fit, or the train command).")
            ctx = Context(i, step, params, f"s{i}", columns, training, bound)
            sql, description = k.compile(ctx)
            ctes.append(f"s{i + 1} AS ({sql})")
            query = "WITH " + ", ".join(ctes) + f" SELECT * FROM s{i + 1}"
            try:
                columns = _describe(cur, f"({query})", bound)
            except duckdb.Error as exc:
                msg = str(exc).splitlines()[0]
                raise RecipeError(f"{step.title(i)} does not compile: {msg}",
                                  "Check the step's columns and types (a cast step may be needed).") from None
            compiled.append(CompiledStep(sql=sql, description=description, columns=columns))
        query = "WITH " + ", ".join(ctes) + f" SELECT * FROM s{len(compiled)}"
        return Compiled(sql=query, params=dict(bound), steps=tuple(compiled), columns=columns)
    finally:
        cur.close()


def fit(con: duckdb.DuckDBPyConnection, recipe: Recipe, table: str, *, where: str | None = None,
        fitted_on: dict | None = None) -> Recipe:
    """Fit every stateful step, in order, on the rows of `table` (those matching `where`, when given).

    Each step is fitted on the output of the steps before it, already fitted, so statistics are
    those of the data the step will really see. Returns a new recipe carrying the fitted values.
    """
    if where:
        where = check_expression(where, (), "The condition for the training rows")
    source = source_sql(table, where=where)
    steps = list(recipe.steps)
    cur = con.cursor()
    try:
        for i, step in enumerate(steps):
            k = kind_of(step, i)
            if not k.fit:
                continue
            before = compile_recipe(cur, recipe.with_steps(steps[:i]), source, training=True)
            params = check_params(step, i, before.columns)
            bound = dict(before.params)
            ctx = Context(i, step, params, "fit_input", before.columns, True, bound)
            try:
                fitted = k.fit(cur, ctx, before.sql, bound)
            except duckdb.Error as exc:
                raise RecipeError(f"{step.title(i)} could not be fitted: {str(exc).splitlines()[0]}",
                                  "Check the step's columns and types.") from None
            steps[i] = replace(step, fitted=fitted)
    finally:
        cur.close()
    return Recipe(steps=tuple(steps), name=recipe.name,
                  fitted_on=fitted_on or {"dataset": table, "where": where})


def fit_rows(con: duckdb.DuckDBPyConnection, input_sql: str, bound: dict, select: str) -> dict:
    """Run one aggregate `select` over a step's fitting input; {column: value} (for fit functions)."""
    rel = con.sql(f"SELECT {select} FROM ({input_sql}) AS fit_input", params=bound or None)
    return dict(zip(rel.columns, rel.fetchall()[0], strict=True))

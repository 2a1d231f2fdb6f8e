"""Streamlit glue: the cached connection, the active dataset, cached queries, error display.

The only module in core/ that imports streamlit. Pages call these helpers and core's verbs.
"""
from __future__ import annotations

import hmac
import os
import runpy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import streamlit as st

from core import catalog as cat
from core import correlate, engine, features, materialize, profile_store, recipe, report, sandbox, target
from core import insights as ins
from core import profile as prof
from core.errors import QuarryError
from core.settings import REPO_ROOT, Settings, load_settings

DATASET_KEY = "dataset"
_router = threading.local()


@contextmanager
def routed() -> Iterator[None]:
    """Mark the page run by app.py's router (see page_guard)."""
    _router.active = True
    try:
        yield
    finally:
        _router.active = False


def page_guard() -> None:
    """Make sure a page runs inside app.py's router.

    On a fresh server, Streamlit runs a deep link such as /data straight from the pages/ folder
    (its legacy multipage mode) until some session has called st.navigation; that would skip the
    router, the sidebar and the password gate. Such a run executes the router instead.
    """
    if not getattr(_router, "active", False):
        runpy.run_path(str(REPO_ROOT / "app.py"), run_name="__main__")
        st.stop()


def show_error(exc: QuarryError) -> None:
    """What was wrong, in red; what to do, underneath."""
    st.error(exc.message, icon=":material/error:")
    if exc.hint:
        st.caption(exc.hint)


@contextmanager
def errors_shown() -> Iterator[None]:
    """Run a block; a QuarryError inside it is shown on the page instead of crashing the app."""
    try:
        yield
    except QuarryError as exc:
        show_error(exc)


@st.cache_resource(show_spinner=False)
def _connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    return engine.connect(settings)


@dataclass(frozen=True)
class Workspace:
    """What a page needs: settings, the shared DuckDB connection and the catalog."""

    settings: Settings
    con: duckdb.DuckDBPyConnection
    catalog: cat.Catalog

    def version(self) -> tuple:
        """Identity of the catalog's contents, part of every cache key (re-registering invalidates)."""
        return tuple((d.name, d.source, d.registered_at) for d in self.catalog.list())


def workspace() -> Workspace:
    """Settings, connection and catalog, with DuckDB's views brought in step with the catalog."""
    settings = load_settings()
    con = _connect(settings)
    catalog = cat.Catalog(settings)
    cat.sync_views(con, catalog.list())
    return Workspace(settings, con, catalog)


def settings_ok() -> bool:
    """Check the settings once per run; a bad environment variable is shown, not a crash."""
    try:
        load_settings()
        return True
    except QuarryError as exc:
        show_error(exc)
        return False


def active_dataset(ws: Workspace) -> str | None:
    """The dataset picked in the sidebar (also shareable as ?dataset=NAME in the URL)."""
    names = ws.catalog.names()
    name = st.session_state.get(DATASET_KEY) or st.query_params.get(DATASET_KEY)
    return name if name in names else None


def set_active_dataset(name: str) -> None:
    """Make `name` the active dataset; the sidebar picker takes it up on the next run (call st.rerun())."""
    st.session_state[DATASET_KEY] = name
    st.session_state["dataset_pending"] = name
    st.query_params[DATASET_KEY] = name


def sidebar_dataset_picker() -> None:
    """The sidebar's dataset selector, shown on every page."""
    try:
        ws = workspace()
    except QuarryError as exc:
        with st.sidebar:
            show_error(exc)
        return
    names = ws.catalog.names()
    with st.sidebar:
        if not names:
            st.caption("No datasets yet: register one on the Data page.")
            return
        # A widget's value can only be set before it is drawn: apply a change made by a page now.
        pending = st.session_state.pop("dataset_pending", None)
        if pending in names or st.session_state.get("sidebar_dataset") not in names:
            st.session_state["sidebar_dataset"] = pending if pending in names else (active_dataset(ws) or names[0])
        picked = st.selectbox("Dataset", names, key="sidebar_dataset",
                              help="The dataset every page works on. Register more on the Data page.")
        st.session_state[DATASET_KEY] = picked
        if st.query_params.get(DATASET_KEY) != picked:
            st.query_params[DATASET_KEY] = picked


def signed_in() -> bool:
    """True when no password is set (QUARRY_PASSWORD) or this browser session has given it."""
    return not os.environ.get("QUARRY_PASSWORD", "") or bool(st.session_state.get("auth_ok"))


def password_form() -> None:
    """Ask for QUARRY_PASSWORD; on success, rerun into the page that was asked for."""
    password = os.environ.get("QUARRY_PASSWORD", "")
    st.title("Quarry")
    typed = st.text_input("Password", type="password", key="auth_password")
    if typed and hmac.compare_digest(typed.encode(), password.encode()):
        st.session_state["auth_ok"] = True
        st.rerun()
    if typed:
        st.error("Wrong password.")
    st.caption("This Quarry server asks for a password (set by QUARRY_PASSWORD).")


# ----------------------------------------------------------------------------------------------
# Cached calls: keyed by small tuples (names, SQL text, catalog version), never by DataFrames


@st.cache_data(show_spinner=False, ttl=600, max_entries=64)
def describe(name: str, version: tuple) -> cat.DatasetInfo:
    ws = workspace()
    return cat.describe(ws.con, ws.catalog.get(name), ws.settings)


@st.cache_data(show_spinner=False, ttl=600, max_entries=256)
def row_count(name: str, where: str, version: tuple) -> int:
    """Rows matching a filter: counted once per filter, whatever the sort or the page."""
    ws = workspace()
    return engine.count_rows_where(ws.con, name, where, ws.settings.sql_time_limit_s)


@st.cache_data(show_spinner=False, ttl=600, max_entries=256)
def preview(name: str, columns: tuple[str, ...], where: str, order_by: str | None, descending: bool,
            offset: int, limit: int, version: tuple) -> engine.Page:
    ws = workspace()
    return engine.preview(ws.con, name, columns=columns, where=where, order_by=order_by, descending=descending,
                          offset=offset, limit=limit, total=row_count(name, where, version),
                          time_limit_s=ws.settings.sql_time_limit_s)


def profile(name: str, exact: bool, *, run: bool = False,
            progress: prof.Progress | None = None) -> tuple[prof.Profile | None, bool]:
    """(profile, from_workspace): the kept profile of the current files, or a new one when `run`.

    Without `run`, nothing is computed: (None, False) when no profile of these files is kept yet.
    With `run`, the dataset is profiled again and the result kept.
    """
    ws = workspace()
    return profile_store.load_or_profile(ws.con, ws.catalog.get(name), ws.settings, exact=exact, progress=progress,
                                         refresh=run, compute=run)


def _kept_profile(ws: Workspace, name: str, exact: bool) -> prof.Profile:
    p, _ = profile_store.load_or_profile(ws.con, ws.catalog.get(name), ws.settings, exact=exact, compute=False)
    if p is None:
        raise QuarryError(f"{name} has no profile of its current files yet.", "Press “Profile the full data” first.")
    return p


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def insights(name: str, exact: bool, target_column: str | None, stamp: tuple) -> ins.Insights:
    """Alerts, missing patterns and target analysis of the kept profile; `stamp` = (catalog version, profile time)."""
    ws = workspace()
    return ins.insights(ws.con, _kept_profile(ws, name, exact), fmt=ws.catalog.get(name).format,
                        target_column=target_column)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=64)
def target_breakdown(name: str, exact: bool, target_column: str, feature: str, stamp: tuple) -> target.TargetBreakdown:
    ws = workspace()
    return target.target_by_feature(ws.con, name, _kept_profile(ws, name, exact), target_column, feature)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=8)
def report_html(name: str, exact: bool, target_column: str | None, stamp: tuple) -> str:
    """The self-contained HTML report of the kept profile (built when the download is clicked)."""
    ws = workspace()
    found = insights(name, exact, target_column, stamp)
    return report.profile_html(_kept_profile(ws, name, exact), dataset=name, alerts=found.alerts,
                               target=found.target, patterns=found.patterns)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def fitted_recipe(name: str, recipe_json: str, version: tuple) -> str:
    """The recipe (JSON text) fitted on every row of the dataset: its stateful steps' statistics."""
    ws = workspace()
    return recipe.fit(ws.con, recipe.loads(recipe_json), name).dumps()


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def recipe_preview(name: str, fitted_json: str, version: tuple) -> features.Preview:
    ws = workspace()
    return features.preview(ws.con, recipe.loads(fitted_json), name)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=64)
def correlations(name: str, columns: tuple[str, ...], method: str, version: tuple) -> correlate.Correlations:
    ws = workspace()
    return correlate.correlations(ws.con, name, list(columns), method)


def export(sql: str, fmt: str) -> bytes:
    """A query's result as CSV or Parquet bytes, built only when the download is clicked."""
    ws = workspace()
    return sandbox.export_query(ws.con, sql, ws.settings, fmt)[0]


@st.cache_data(show_spinner=False, ttl=600, max_entries=256)
def run_query(sql: str, offset: int, limit: int, version: tuple) -> sandbox.QueryPage:
    ws = workspace()
    return sandbox.run_query(ws.con, sql, ws.settings, offset=offset, limit=limit)


def _parse_value(text: str) -> object:
    """A value typed in a form: a number when it reads as one, else the text."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def step_form(k: recipe.Kind, columns: tuple[recipe.Column, ...], current: dict, key: str) -> dict:
    """Widgets for a step kind's declared parameters (inside a form); the values entered, as step params.

    Column pickers offer only the step's input columns of the kinds the parameter accepts.
    """
    out: dict = {}
    for p in k.params:
        value, wkey = current.get(p.name, p.default), f"{key}_{p.name}"
        label = p.label + ("" if p.required else " (optional)")
        names = [c.name for c in columns if not p.kinds or c.kind in p.kinds]
        if p.type == "column":
            options = names if p.required else [None, *names]
            out[p.name] = st.selectbox(label, options, index=options.index(value) if value in options else 0,
                                       key=wkey, help=p.help or None,
                                       format_func=lambda v: "(none)" if v is None else v)
        elif p.type == "columns":
            out[p.name] = st.multiselect(label, names, default=[v for v in value or [] if v in names], key=wkey,
                                         help=p.help or None)
        elif p.type in ("int", "float"):
            cast = int if p.type == "int" else float
            start = cast(value) if value is not None else cast(p.minimum or 0)
            out[p.name] = st.number_input(label, value=start, key=wkey, help=p.help or None,
                                          min_value=cast(p.minimum) if p.minimum is not None else None,
                                          max_value=cast(p.maximum) if p.maximum is not None else None,
                                          step=1 if p.type == "int" else None)
        elif p.type == "choice":
            options = list(p.choices) if p.required else [None, *p.choices]
            out[p.name] = st.selectbox(label, options, index=options.index(value) if value in options else 0,
                                       key=wkey, help=p.help or None,
                                       format_func=lambda v: "(none)" if v is None else str(v))
        elif p.type == "value" and p.choices:  # several of a fixed list
            out[p.name] = st.multiselect(label, list(p.choices), default=[v for v in value or [] if v in p.choices],
                                         key=wkey, help=p.help or None)
        elif p.type == "bool":
            out[p.name] = st.checkbox(label, value=bool(value), key=wkey, help=p.help or None)
        elif p.type == "expression":
            out[p.name] = st.text_area(label, value=value or "", key=wkey, help=p.help or None, height=80) or None
        else:  # text, value
            text = st.text_input(label, value="" if value is None else str(value), key=wkey, help=p.help or None)
            out[p.name] = (_parse_value(text) if p.type == "value" else text) if text != "" else None
    return {n: v for n, v in out.items() if v is not None and v != []}


def materialize_recipe(name: str, fitted: recipe.Recipe, out_name: str,
                       progress: Callable[[float], None]) -> cat.Dataset:
    """Write the recipe applied to all of `name` to the workspace and register it as `out_name`."""
    ws = workspace()
    return materialize.save_as_dataset(ws.settings, ws.con, ws.catalog, fitted, name, out_name, progress=progress)


def short(value: object) -> str:
    """A value for a summary cell: numbers to 4 significant digits, text cut at 24 characters."""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.4g}"
    text = "" if value is None else str(value)
    return text if len(text) <= 24 else text[:23] + "…"

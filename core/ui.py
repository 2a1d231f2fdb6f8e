"""Streamlit glue: the cached connection, the active dataset, cached queries, error display.

The only module in core/ that imports streamlit. Pages call these helpers and core's verbs.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import runpy
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core import audit, auth, jobs
from core.data import catalog as cat
from core.data import engine, sandbox
from core.errors import QuarryError
from core.evaluate import holdout, thresholds
from core.evaluate import metrics as evaluate
from core.evaluate import slices as slicing
from core.explain import shap as explain
from core.features import materialize, recipe
from core.features import preview as features
from core.fmt import human_seconds, md
from core.model import runs, score
from core.profile import correlate, report, target
from core.profile import insights as ins
from core.profile import scan as prof
from core.profile import store as profile_store
from core.settings import REPO_ROOT, Settings, load_settings
from core.workspace import Workspace, open_workspace

DATASET_KEY = "dataset"
_router = threading.local()


@contextmanager
def routed() -> Iterator[None]:
    """Mark the page run by app.py's router (see page_guard); a QuarryError a page lets out (a damaged catalog,
    say) is shown on that page instead of Streamlit's error box."""
    _router.active = True
    try:
        yield
    except QuarryError as exc:
        show_error(exc)
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
    """What was wrong, in red; what to do, underneath (both plain text: they often quote names and paths)."""
    st.error(md(exc.message), icon=":material/error:")
    if exc.hint:
        st.caption(md(exc.hint))


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


def workspace() -> Workspace:
    """Settings, this server's cached connection and the catalog, with DuckDB's views in step (core.workspace)."""
    settings = load_settings()
    return open_workspace(settings, _connect(settings))


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


def active_dataset_or_stop(ws: Workspace) -> str:
    """The active dataset; without one, say how to register one and stop the page; when its files are gone or
    unreadable, say so and stop (the other datasets, and the other pages, keep working)."""
    name = active_dataset(ws)
    if name is None:
        st.info("No dataset yet: register one on the Data page first.", icon=":material/info:")
        st.stop()
    if describe_shown(ws, name) is None:
        st.stop()
    return name


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


# ----------------------------------------------------------------------------------------------
# Sign-in and roles: the Streamlit side of core.auth (who is signed in, the forms, the page guards)

IDENTITY_KEY = "auth_identity"
ANONYMOUS = auth.Identity("anonymous", None, "none")  # a session not signed in: may do nothing
# Pages that need more than the viewer role, by URL path: the core.auth action each one is for.
PAGE_ACTIONS = {"features": "features", "train": "train", "score": "score", "sql": "sql"}
_LOG = logging.getLogger("quarry.auth")


def _session_identity() -> auth.Identity | None:
    """core.auth's resolver: the identity of the Streamlit session this thread runs (None outside a session)."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return None
    return st.session_state.get(IDENTITY_KEY) or ANONYMOUS


auth.set_resolver(_session_identity)


def oidc_providers() -> list[str | None]:
    """The OpenID Connect providers of ``[auth]`` in secrets.toml: [None] for one unnamed provider, else the
    names of the ``[auth.NAME]`` sections; [] when there is no [auth] section."""
    try:
        section = st.secrets.get("auth")
    except (FileNotFoundError, KeyError):  # no secrets.toml: StreamlitSecretNotFoundError is a FileNotFoundError
        return []
    if not section:
        return []
    if "client_id" in section:
        return [None]
    return [name for name, value in section.items() if hasattr(value, "keys") and "client_id" in value]


def client_address() -> str:
    """The client the sign-in throttle counts: its IP address ('local' for this machine)."""
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else "local"  # None on loopback (and not a str under AppTest)


def _cookies() -> dict[str, str]:
    """The browser's cookies (from the WebSocket handshake); {} where there is no browser (AppTest)."""
    found = st.context.cookies
    return {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, Mapping) else {}


def _browser_key() -> str | None:
    token = auth.xsrf_token(_cookies().get(auth.XSRF_COOKIE))
    return auth.browser_key(token) if token else None


def audit_event(action: str, who: str | None = None, **details: object) -> None:
    """Append to the workspace's audit log (who defaults to this session's identity)."""
    try:
        audit.record(load_settings(), action, who=who, **details)
    except QuarryError as exc:  # bad settings are shown elsewhere; the event still reaches the server log
        _LOG.warning("audit %s by %s %s not written: %s", action, who, details, exc.message)


def _ungated() -> str | None:
    """Why files would be served without sign-in in this server (None: they are not)."""
    if not (oidc_providers() or os.environ.get("QUARRY_PASSWORD")):
        return None
    if not st.get_option("server.enableXsrfProtection"):
        return "server.enableXsrfProtection is off, so the download gate cannot tell signed-in browsers apart."
    if _cookies() and not auth.gate_installed():
        return "this server was started with `streamlit run app.py`, without the download gate."
    return None


def signed_in_as() -> auth.Identity | None:
    """Who this session is signed in as (role None: signed in, but no access); None before sign-in.

    OpenID Connect (st.user) first, then the shared password, else local single-user mode (no password and no
    [auth]): the OS user as an admin. The identity is kept in the session, where core.auth.current() finds it,
    and this browser is (re)granted the files Quarry serves (core.auth.MediaGate).
    """
    try:
        providers, password = oidc_providers(), os.environ.get("QUARRY_PASSWORD", "")
        before = st.session_state.get(IDENTITY_KEY) or ANONYMOUS
        found = None
        if providers and st.user.is_logged_in:
            email = str(st.user.get("email") or "")
            found = auth.Identity(email or str(st.user.get("sub") or "unknown"), auth.role_for(email), "oidc")
        elif password and st.session_state.get("auth_ok"):
            found = auth.Identity(auth.PASSWORD_USER, auth.password_role(), "password")
        elif not providers and not password:
            found = auth.Identity(auth.os_user(), "admin", "local")
    except QuarryError as exc:
        show_error(exc)
        st.stop()
    st.session_state[IDENTITY_KEY] = found or ANONYMOUS
    if found and found.method == "oidc" and before.name != found.name:
        audit_event("signin.success" if found.role else "signin.refused", who=found.name, method="oidc",
                    role=found.role, client=client_address())
    key = _browser_key()
    if key and found and found.role:
        auth.grant_browser(key, found)
    return found


def gate(pages: list, who: auth.Identity | None) -> auth.Identity:
    """app.py's gate: `who` (signed_in_as()) when it has a role; otherwise the sign-in page (or the refusal),
    and stop. Also refuses to run a server that would serve files without sign-in."""
    why = _ungated()
    if why:
        st.navigation(pages, position="hidden")
        st.error(f"Quarry will not run this way: {why}", icon=":material/lock:")
        st.caption("Start it with `streamlit run core/server.py` (see README, “Security”).")
        st.stop()
    if who is None or who.role is None:
        st.navigation(pages, position="hidden")  # no page links before sign-in; the URL's page opens after it
        sign_in_page(who)
        st.stop()
    return who


def page_visibility(url_path: str, who: auth.Identity | None) -> str:
    """'hidden' for a page the role may not use (its URL still opens, to say so), else 'visible'."""
    action = PAGE_ACTIONS.get(url_path)
    return "hidden" if who is not None and action and not who.can(action) else "visible"


def allowed(action: str) -> bool:
    """Whether this session's role may do `action` (core.auth.ACTIONS), e.g. to disable a button."""
    return auth.current().can(action)


def require_role(action: str) -> auth.Identity:
    """A page's guard: this session's identity when its role may do `action`; else the refusal alone, and stop."""
    who = auth.current()
    if not who.can(action):
        st.error(auth.refusal(who.role, action), icon=":material/lock:")
        st.stop()
    return who


def guard_page(url_path: str) -> None:
    """The router's guard for the page being opened (pages guard themselves too, with require_role)."""
    if url_path in PAGE_ACTIONS:
        require_role(PAGE_ACTIONS[url_path])


def sign_out(who: auth.Identity) -> None:
    key = _browser_key()
    if key:
        auth.revoke_browser(key)
    audit_event("signout", who=who.name, method=who.method)
    st.session_state.pop("auth_ok", None)
    st.session_state[IDENTITY_KEY] = ANONYMOUS
    if who.method == "oidc":
        st.logout()
    st.rerun()


def sidebar_user(who: auth.Identity) -> None:
    """Who is signed in, their role, and a sign-out button (not in local single-user mode)."""
    if who.method == "local":
        return
    with st.sidebar:
        st.caption(f"Signed in as **{md(who.name)}** ({who.role})")
        if st.button("Sign out", key="auth_signout_sidebar", icon=":material/logout:"):
            sign_out(who)


def sign_in_page(who: auth.Identity | None) -> None:
    """The page before sign-in: OpenID Connect buttons, the password; or, signed in without a role, the refusal."""
    st.title("Quarry")
    if who is not None:
        st.error(f"{md(who.name)} has no access to this Quarry server.", icon=":material/block:")
        st.caption("An admin gives access by adding your email or its domain to QUARRY_VIEWERS, QUARRY_ANALYSTS "
                   "or QUARRY_ADMINS.")
        if st.button("Sign out", key="auth_signout"):
            sign_out(who)
        return
    for provider in oidc_providers():
        label = "Sign in" if provider is None else f"Sign in with {provider.replace('_', ' ').title()}"
        if st.button(label, key=f"auth_login_{provider or 'oidc'}", type="primary", icon=":material/login:"):
            st.login(provider) if provider else st.login()
    if os.environ.get("QUARRY_PASSWORD", ""):
        password_form()


def _throttled_text(verdict: auth.Verdict) -> str:
    if verdict.locked:
        return (f"Sign-in is locked for this address after {verdict.failures} wrong passwords: try again in "
                f"{human_seconds(verdict.wait_s)}.")
    return f"Too many wrong passwords: wait {human_seconds(verdict.wait_s)} before the next try."


def _try_password() -> None:
    """The password field's on_change: one try per entry, throttled per client (core.auth.Throttle)."""
    typed = st.session_state.get("auth_password") or ""
    st.session_state["auth_password"] = ""  # the next Enter is a new try
    if not typed:
        return
    client, throttle = client_address(), auth.throttle()
    verdict = throttle.check(client)
    if not verdict.allowed:  # refused without looking at the password
        audit_event("signin.throttled", who="unknown", method="password", client=client, locked=verdict.locked,
                    wait_s=round(verdict.wait_s, 1))
        st.session_state["auth_message"] = (_throttled_text(verdict), None)
        return
    if hmac.compare_digest(typed.encode(), os.environ.get("QUARRY_PASSWORD", "").encode()):
        throttle.succeeded(client)
        st.session_state["auth_ok"] = True
        st.session_state.pop("auth_message", None)
        audit_event("signin.success", who=auth.PASSWORD_USER, method="password", client=client)
        return
    verdict = throttle.failed(client)
    audit_event("signin.lockout" if verdict.locked else "signin.failure", who="unknown", method="password",
                client=client, failures=verdict.failures)
    st.session_state["auth_message"] = (
        "Wrong password.", _throttled_text(verdict) if verdict.locked or verdict.wait_s else None)


def password_form() -> None:
    """Ask for QUARRY_PASSWORD; a right one opens the page that was asked for (in the same run)."""
    st.text_input("Password", type="password", key="auth_password", on_change=_try_password)
    message = st.session_state.pop("auth_message", None)
    if message:
        st.error(message[0])
        if message[1]:
            st.warning(message[1], icon=":material/hourglass:")
    st.caption("This Quarry server asks for a password (set by QUARRY_PASSWORD).")


def signed_in() -> bool:
    """True when this session may open pages (kept for callers of the old gate; see gate())."""
    who = signed_in_as()
    return who is not None and who.role is not None


# ----------------------------------------------------------------------------------------------
# Cached calls: keyed by small tuples (names, SQL text, catalog version), never by DataFrames


@st.cache_data(show_spinner=False, ttl=600, max_entries=64)
def describe(name: str, version: tuple) -> cat.DatasetInfo:
    ws = workspace()
    return cat.describe(ws.con, ws.catalog.get(name), ws.settings)


def describe_shown(ws: Workspace, name: str) -> cat.DatasetInfo | None:
    """describe(name), or None with the reason shown (its files are gone, unreadable or damaged)."""
    try:
        return describe(name, ws.version())
    except QuarryError as exc:
        show_error(exc)
        return None


@st.cache_data(show_spinner=False, ttl=600, max_entries=256)
def row_count(name: str, where: str, version: tuple) -> int:
    """Rows matching a filter: counted once per filter, whatever the sort or the page."""
    return sandbox.count_rows_where(workspace().catalog, name, where)


@st.cache_data(show_spinner=False, ttl=600, max_entries=256)
def preview(name: str, columns: tuple[str, ...], where: str, order_by: str | None, descending: bool,
            offset: int, limit: int, version: tuple) -> engine.Page:
    return sandbox.preview(workspace().catalog, name, columns=columns, where=where, order_by=order_by,
                           descending=descending, offset=offset, limit=limit, total=row_count(name, where, version))


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
    return features.fit_in_sandbox(workspace().catalog, recipe_json, name)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def recipe_preview(name: str, fitted_json: str, version: tuple) -> features.Preview:
    return features.preview_in_sandbox(workspace().catalog, fitted_json, name)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=64)
def correlations(name: str, columns: tuple[str, ...], method: str, version: tuple) -> correlate.Correlations:
    ws = workspace()
    return correlate.correlations(ws.con, name, list(columns), method)


def export(sql: str, fmt: str) -> bytes:
    """A query's result as CSV or Parquet bytes, built only when the download is clicked."""
    return sandbox.export_query(workspace().catalog, sql, fmt)[0]


@st.cache_data(show_spinner=False, ttl=600, max_entries=256)
def run_query(sql: str, offset: int, limit: int, version: tuple) -> sandbox.QueryPage:
    return sandbox.run_query(workspace().catalog, sql, offset=offset, limit=limit)


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


# ----------------------------------------------------------------------------------------------
# Train, Runs and Score pages: training jobs, run tables, scoring into the workspace

TRAIN_JOB_KEY = "train_job"


def parse_params(text: str) -> dict:
    """Extra LightGBM parameters as typed: a JSON object, or NAME=VALUE lines ('#' starts a comment).

    Only the syntax is checked here; core.train.check_params checks the names and values.
    """
    text = (text or "").strip()
    if not text:
        return {}
    if text[0] in "{[":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise QuarryError(f"The LightGBM parameters are not valid JSON: {exc.msg} (line {exc.lineno}, column "
                              f"{exc.colno}).", 'Write a JSON object such as {"num_leaves": 31}, or NAME=VALUE '
                              "lines.") from None
        if not isinstance(doc, dict):
            raise QuarryError(f"The LightGBM parameters must be a JSON object. Got a {type(doc).__name__}.",
                              'Write them as {"num_leaves": 31, "learning_rate": 0.1}.')
        return doc
    out: dict = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep or not key or not value:
            raise QuarryError(f"Line {number} of the LightGBM parameters is not NAME=VALUE. Got {line!r}.",
                              "Write one parameter per line, e.g. num_leaves=31, or a JSON object.")
        if key in out:
            raise QuarryError(f"The LightGBM parameter {key!r} is given twice (lines with {key}=).", "Give it once.")
        out[key] = {"true": True, "false": False}.get(value.lower(), _parse_value(value))
    return out


def followed_job() -> str | None:
    """The training job this page follows: the URL's ?job= first (a reload, a shared link), then this session's.

    The id is as given (anyone can type a URL): jobs.get checks it before any disk access, and the page shows
    why a bad one is refused, then forgets it."""
    return st.query_params.get("job") or st.session_state.get(TRAIN_JOB_KEY)


def follow_job(job_id: str | None) -> None:
    """Follow `job_id` (None: none) in this session and in the URL, so a reload or another tab reattaches.

    A malformed id raises jobs.JobIdError: it never reaches the session or the URL."""
    if job_id:
        st.session_state[TRAIN_JOB_KEY] = jobs.check_job_id(job_id)
        if st.query_params.get("job") != job_id:
            st.query_params["job"] = job_id
    else:
        st.session_state.pop(TRAIN_JOB_KEY, None)
        st.query_params.pop("job", None)


@dataclass(frozen=True)
class JobProgress:
    """Where a training job stands: boosting iterations done of the most, seconds so far, an estimate of the rest."""

    iteration: int
    total: int | None
    elapsed_s: float
    eta_s: float | None
    train: float | None
    valid: float | None

    @property
    def share(self) -> float:
        return min(1.0, self.iteration / self.total) if self.total else 0.0


def job_progress(job: jobs.Job, now: float | None = None) -> JobProgress:
    """Progress from a training job's last lines; the ETA is time per iteration x iterations left.

    Time per iteration is measured between the first and the last reported iteration, so the time
    spent reading the data before the first one does not inflate it (elapsed / iteration when there
    is only one). With early stopping the ETA is an upper bound.
    """
    lines = [p for p in job.progress if "iteration" in p]
    started = datetime.fromisoformat(job.started_at).timestamp()
    elapsed = max(0.0, (now or time.time()) - started) if job.state == "running" else \
        float(job.last.get("t", started)) - started
    if not lines:
        return JobProgress(0, None, elapsed, None, None, None)
    first, last = lines[0], lines[-1]
    iteration, total = int(last["iteration"]), int(last.get("total") or 0) or None
    if iteration > int(first["iteration"]):
        per = (float(last["elapsed"]) - float(first["elapsed"])) / (iteration - int(first["iteration"]))
    else:
        per = float(last.get("elapsed") or 0) / max(iteration, 1)
    eta = per * (total - iteration) if total and job.state == "running" else None
    return JobProgress(iteration, total, elapsed, eta, last.get("train"), last.get("valid"))


def job_label(job: jobs.Job) -> str:
    """'is_fraud on transactions · running 120/1000 · 14:02 UTC' for a picker."""
    p = job_progress(job)
    done = f" {p.iteration:,}/{p.total:,}" if job.state == "running" and p.total else ""
    return f"{job.title or job.job_id} · {job.state}{done} · started {job.started_at[:16].replace('T', ' ')} UTC"


def jobs_table(found: list[jobs.Job]) -> dict:
    """Training jobs as table columns: started, title, state, iterations, run, job id."""
    progress = [job_progress(j) for j in found]
    return {"started (UTC)": [j.started_at[:19].replace("T", " ") for j in found],
            "title": [j.title for j in found], "state": [j.state for j in found],
            "iterations": [f"{p.iteration:,}/{p.total:,}" if p.total else "" for p in progress],
            "run": [(j.result or {}).get("run_id", "") for j in found], "job": [j.job_id for j in found]}


def cell(value: object) -> str:
    """Any run.json value as short text for a table cell."""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return text if len(text) <= 80 else text[:79] + "…"
    return "" if value is None else str(value)


def metrics_table(metrics: dict, baselines: dict) -> dict:
    """The model's valid and test metrics beside each baseline's, one row per metric."""
    parts = {"model (valid)": (metrics or {}).get("valid") or {}, "model (test)": (metrics or {}).get("test") or {}}
    parts.update({f"{name} baseline": values or {} for name, values in (baselines or {}).items()})
    names = list(dict.fromkeys(k for values in parts.values() for k in values))
    return {"metric": names, **{head: [cell(values.get(m)) for m in names] for head, values in parts.items()}}


def run_labels(found: list) -> dict[str, str]:
    """run id -> 'name · dataset · 2025-03-14 15:30' for pickers (RunSummary rows)."""
    return {r.run_id: f"{r.name} · {r.dataset} · {r.created_at[:16].replace('T', ' ')}" for r in found}


def runs_table(found: list) -> dict:
    """Runs (RunSummary rows) as table columns."""
    return {"name": [r.name for r in found], "created (UTC)": [r.created_at[:19].replace("T", " ") for r in found],
            "dataset": [r.dataset for r in found], "target": [r.target for r in found],
            "task": [r.task for r in found], "device": [r.device for r in found],
            "metric": [r.metric or "" for r in found], "valid": [r.valid_metric for r in found],
            "test": [r.test_metric for r in found], "tags": [", ".join(r.tags) for r in found],
            "run id": [r.run_id for r in found]}


def run_facets(found: list) -> tuple[list[str], list[str], list[str]]:
    """The datasets, tasks and tags that occur among runs, for filters."""
    return (sorted({r.dataset for r in found}), sorted({r.task for r in found}),
            sorted({t for r in found for t in r.tags}))


def leakage_lines(info: dict) -> list[str]:
    """The leakage guard's findings of a run (run.json or a training job's result), one sentence each, escaped."""
    from core.model.leakage import leakage_sentence

    target = info.get("target") or "the target"
    return [("Kept although it looks leaky: " if leak.get("kept") else "Left out as probable leakage: ")
            + md(leakage_sentence(leak, target)) + "." for leak in info.get("leakage") or []]


def leakage_note(info: dict) -> None:
    """Say under a run which features the leakage guard left out (or the user kept), with the evidence."""
    lines = leakage_lines(info)
    if lines:
        st.warning("\n\n".join(lines), icon=":material/policy:")


def run_setup(run: runs.Run) -> dict:
    """How a run was made, as (what, value) rows."""
    from core.model.splits import SplitConfig  # here: only the Runs page needs it

    info = run.info
    device = info.get("device") or {}
    timings = info.get("timings") or {}
    try:
        split = SplitConfig(**info["split"]).describe() if info.get("split") else ""
    except (QuarryError, TypeError):
        split = cell(info.get("split"))
    excluded = info.get("excluded") or {}
    # st.table renders Markdown in its cells: the names in them are the user's
    left_out = ", ".join(md(c) for c in list(excluded)[:5]) + (f" and {len(excluded) - 5:,} more"
                                                               if len(excluded) > 5 else "")
    rows = [("dataset", md(info.get("dataset") or "")), ("target", md(info.get("target") or "")),
            ("task", info.get("task")),
            ("features", f"{len(run.features):,}" + (f" (left out: {left_out})" if excluded else "")),
            ("recipe", md(info["recipe_name"]) if info.get("recipe_name") else ("yes" if run.recipe else "none")),
            ("split", md(split)), ("rows", ", ".join(f"{k} {v:,}" for k, v in (info.get("rows") or {}).items())),
            ("device", f"{device.get('used', '')} (asked: {device.get('requested', '')}; {device.get('reason', '')})"),
            ("data path", {"memory": "in memory", "sequence": "Parquet batches (over the memory budget)"}.get(
                info.get("data_path"), cell(info.get("data_path")))),
            ("rounds", f"best iteration {info.get('best_iteration')} of at most {info.get('num_boost_round')}"),
            ("timings", " · ".join(f"{k.removesuffix('_s')} {human_seconds(v)}" for k, v in timings.items()
                                   if isinstance(v, int | float))),
            ("created (UTC)", str(info.get("created_at", ""))[:19].replace("T", " ")), ("run id", run.run_id)]
    return {"": [k for k, _ in rows], "value": [cell(v) for _, v in rows]}


@dataclass(frozen=True)
class Comparison:
    """Runs side by side (core.runs.compare_runs) as tables, and each run's learning curve."""

    labels: list[str]
    metrics: dict
    params: dict
    setup: dict
    curves: dict[str, dict]


def compare(settings: Settings, ids: list[str]) -> Comparison:
    """Tables of the runs' metrics and of the parameters and set-up that differ; their curves by label."""
    found = runs.compare_runs(settings, ids)
    labels = [f"{r['name']} ({r['run_id'][-6:]})" for r in found["runs"]]

    def table(section: dict, first: str) -> dict:
        return {first: list(section), **{label: [cell(v[i]) for v in section.values()]
                                         for i, label in enumerate(labels)}}

    metric_rows = {f"{m} ({part})": values for part in ("valid", "test")
                   for m, values in found["metrics"][part].items()}
    curves = {label: runs.load_run(settings, r["run_id"]).curve for label, r in zip(labels, found["runs"], strict=True)}
    return Comparison(labels, table(metric_rows, "metric"), table(found["params"], "parameter"),
                      table(found["setup"], "set-up"), curves)


def check_scoring(run_id: str, dataset: str, keep: tuple[str, ...]) -> runs.Run:
    """The run, once core.score.check_inputs has found that `dataset` can be scored with it (else ScoreError)."""
    ws = workspace()
    run = runs.load_run(ws.settings, run_id)
    score.check_inputs(ws.con, run, dataset, keep=keep)
    return run


def score_to_dataset(run_id: str, dataset: str, keep: tuple[str, ...], out_name: str,
                     progress: Callable[[int, int], None]) -> tuple[score.ScoreResult, cat.Dataset]:
    """Score every row of `dataset` with the run into the workspace (datasets/NAME.parquet) and register it."""
    ws = workspace()
    path = cat.new_dataset_path(ws.catalog, out_name)
    run = check_scoring(run_id, dataset, keep)  # before anything is written
    result = score.score(ws.settings, ws.con, run, dataset, path, keep=keep, progress=progress)
    return result, cat.register_written(ws.con, ws.catalog, path, out_name)


# ----------------------------------------------------------------------------------------------
# Parameter searches (core.tune) and cross-validation: live progress of a search job, run.json's tables


@dataclass(frozen=True)
class SearchProgress:
    """Where a search job stands: trials finished of the most, the best value so far, an estimate of the rest."""

    done: int
    total: int
    complete: int
    pruned: int
    best: float | None
    elapsed_s: float
    eta_s: float | None
    trials: tuple[dict, ...]  # {"number", "state", "value"} per finished trial, for charts.trial_values

    @property
    def share(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def search_of(params: dict) -> dict:
    """A training job's search budget ({"n_trials", "timeout_s"}), or {} when it trains once."""
    found = params.get("tune") or {}
    return found if found.get("n_trials") else {}


def search_progress(job: jobs.Job, now: float | None = None) -> SearchProgress:
    """Progress of a search job from its per-trial lines; the ETA is mean seconds per trial x trials left.

    With a time budget no trial starts after it, so the estimate is at most the budget left plus one
    trial. The refit of the best parameters comes after and is not counted.
    """
    budget = search_of(job.params)
    lines = [p for p in job.progress if "trial" in p]
    started = datetime.fromisoformat(job.started_at).timestamp()
    elapsed = max(0.0, (now or time.time()) - started) if job.state == "running" else \
        float(job.last.get("t", started)) - started
    total = int(lines[-1].get("trials") or 0) if lines else int(budget.get("n_trials") or 0)
    trials = tuple({"number": int(p["trial"]) - 1, "state": p.get("trial_state") or "complete",
                    "value": p.get("value")} for p in lines)
    done = len(lines)
    eta = None
    if job.state == "running" and done and total > done:
        eta = float(lines[-1].get("elapsed") or 0) / done * (total - done)
        if budget.get("timeout_s"):
            eta = min(eta, max(0.0, float(budget["timeout_s"]) - float(lines[-1].get("elapsed") or 0))
                      + eta / (total - done))
    return SearchProgress(done=done, total=total, complete=sum(t["state"] == "complete" for t in trials),
                          pruned=sum(t["state"] == "pruned" for t in trials),
                          best=lines[-1].get("best") if lines else None, elapsed_s=elapsed, eta_s=eta, trials=trials)


def train_jobs_table(found: list[jobs.Job]) -> dict:
    """jobs_table with a progress column that reads 'trial 3/20' for searches and '120/1000' for single runs."""
    table = jobs_table(found)
    progress = table.pop("iterations")
    for i, job in enumerate(found):
        if search_of(job.params):
            s = search_progress(job)
            progress[i] = f"trial {s.done:,}/{s.total:,}" if s.total else ""
    keys = list(table)
    at = keys.index("state") + 1
    return {**{k: table[k] for k in keys[:at]}, "progress": progress, **{k: table[k] for k in keys[at:]}}


def trials_table(tuning: dict) -> dict:
    """A search's trials as table columns, best first (pruned and failed trials last): number, state, value,
    seconds, iterations, then each searched parameter."""
    trials = sorted(tuning.get("trials") or [], key=lambda t: (t.get("value") is None, t.get("value") or 0.0,
                                                               t.get("number", 0)))
    searched = list(dict.fromkeys(k for t in trials for k in (t.get("params") or {})))
    table = {"number": [t.get("number") for t in trials], "state": [t.get("state", "") for t in trials],
             "value": [t.get("value") for t in trials],
             "seconds": [round(float(t.get("seconds") or 0.0), 2) for t in trials],
             "iterations": [t.get("iterations") for t in trials]}
    for name in searched:
        values = [(t.get("params") or {}).get(name) for t in trials]
        numeric = all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values)
        table[name] = [float(f"{v:.4g}") if isinstance(v, float) else v for v in values] if numeric \
            else [cell(v) for v in values]
    return table


def best_params_table(tuning: dict) -> dict:
    """The best trial's parameters as (parameter, value) rows."""
    best = tuning.get("best_params") or {}
    return {"parameter": list(best), "value": [cell(v) if not isinstance(v, float) else f"{v:.6g}"
                                               for v in best.values()]}


def search_summary(tuning: dict) -> str:
    """'3 trials (3 complete, 0 pruned) · best logloss 0.4521 (trial 2) · lower is better'."""
    trials = tuning.get("trials") or []
    states = [t.get("state") for t in trials]
    complete = [t for t in trials if t.get("state") == "complete" and t.get("value") is not None]
    best = min(complete, key=lambda t: t["value"]) if complete else None
    metric = tuning.get("metric") or "value"
    parts = [f"{len(trials):,} trial{'s' if len(trials) != 1 else ''} ({states.count('complete'):,} complete, "
             f"{states.count('pruned'):,} pruned" + (f", {states.count('failed'):,} failed" if 'failed' in states
                                                      else "") + ")"]
    if tuning.get("best_value") is not None:
        parts.append(f"best valid {metric} {float(tuning['best_value']):.5g}"
                     + (f" (trial {best['number']})" if best else ""))
    parts.append("lower is better")
    return " · ".join(parts)


def _fold_metrics(fold: object) -> dict:
    """One fold's metrics from cv.per_fold: {metric: value}, nested under 'metrics' or 'valid' or not."""
    if not isinstance(fold, dict):
        return {}
    for key in ("metrics", "valid"):
        if isinstance(fold.get(key), dict):
            return fold[key]
    return fold


def cv_table(cv: dict) -> dict:
    """Cross-validation as table columns: metric, mean, std, then one column per fold."""
    folds = [_fold_metrics(f) for f in cv.get("per_fold") or []]
    mean, std = cv.get("mean") or {}, cv.get("std") or {}
    names = list(mean) or list(dict.fromkeys(k for f in folds for k, v in f.items()
                                             if isinstance(v, int | float) and k != "fold"))
    table = {"metric": names, "mean": [cell(mean.get(m)) for m in names], "std": [cell(std.get(m)) for m in names]}
    for i, f in enumerate(folds, start=1):
        table[f"fold {i}"] = [cell(f.get(m)) for m in names]
    return table


def cv_summary(cv: dict) -> str:
    """'5 folds · 120 rounds each · held-out rows 812, 790, 798, 805, 795'."""
    folds = cv.get("folds") or len(cv.get("per_fold") or [])
    parts = [f"{folds} folds"]
    if cv.get("rounds"):
        parts.append(f"{cv['rounds']:,} rounds each")
    if cv.get("rows"):
        parts.append("held-out rows " + ", ".join(f"{n:,}" for n in cv["rows"]))
    return " · ".join(parts)


# ----------------------------------------------------------------------------------------------
# Evaluate and Explain: a picked run, its scored test split, evaluation and SHAP sample (all cached on disk too)


def run_from_url(key: str, labels: dict[str, str]) -> None:
    """A link such as ``?run=ID`` picks that run in the run picker `key`, once (later picks are the user's).
    Call before the picker is drawn."""
    wanted = st.query_params.get("run")
    if wanted in labels and st.session_state.get(f"{key}_from_url") != wanted:
        st.session_state[key] = wanted
        st.session_state[f"{key}_from_url"] = wanted


def run_to_url(key: str, picked: str) -> None:
    """Keep the run picked in picker `key` in the URL, so the page's link opens it again."""
    if st.query_params.get("run") != picked:
        st.query_params["run"] = picked
        st.session_state[f"{key}_from_url"] = picked


def pick_run(key: str) -> runs.Run | None:
    """A run picker (``?run=ID`` picks that run, once, and follows the pick); None, with a message, when there
    are no runs. Shared by the Evaluate and Explain pages."""
    settings = workspace().settings
    try:
        saved = runs.list_runs(settings)
    except QuarryError as exc:
        show_error(exc)
        return None
    if not saved:
        st.info("No runs yet: train one on the Train page first.", icon=":material/info:")
        st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
        return None
    labels = run_labels(saved)
    run_from_url(key, labels)
    picked = st.selectbox("Run", list(labels), format_func=labels.get, key=key,
                          help="A saved run: its model is scored on its own test split.")
    run_to_url(key, picked)
    try:
        return runs.load_run(settings, picked)
    except QuarryError as exc:
        show_error(exc)
        return None


def scored_test(run: runs.Run) -> holdout.Scored:
    """The run's scored test split; the first time, with a progress bar while the test rows are scored."""
    ws = workspace()
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        text = f"Scoring the test split: {done:,} of {total:,} rows"
        share = min(done / total, 1.0) if total else 0.0
        if bar is None:
            bar = st.progress(share, text=text)
        else:
            bar.progress(share, text=text)

    try:
        return holdout.scored_test(ws.settings, ws.con, run, progress=progress)
    finally:
        if bar is not None:
            bar.empty()


def run_and_test_split(key: str) -> tuple[runs.Run, holdout.Scored]:
    """The picked run (see pick_run) and its scored test split; stops the page, with the reason shown, when
    there is no run or the split cannot be drawn."""
    run = pick_run(key)
    if run is None:
        st.stop()
    leakage_note(run.info)
    try:
        return run, scored_test(run)
    except QuarryError as exc:
        show_error(exc)
        st.stop()


def stamp(scored: holdout.Scored) -> tuple:
    """Identity of a scored test split file (path, size, modification time), part of the cache keys below."""
    st_ = scored.path.stat()
    return str(scored.path), st_.st_size, st_.st_mtime_ns


@st.cache_resource(show_spinner=False)
def _evaluation_connection(settings: Settings) -> duckdb.DuckDBPyConnection:
    return evaluate.connect(settings)


def _econ() -> duckdb.DuckDBPyConnection:
    """The connection evaluation queries run on (memory capped, see core.evaluate.connect)."""
    return _evaluation_connection(workspace().settings)


def evaluation(scored: holdout.Scored) -> evaluate.Evaluation:
    """The run's evaluation (computed once per scored file, kept in the workspace)."""
    return _evaluation(scored, stamp(scored))


@st.cache_resource(show_spinner="Evaluating the test split…", max_entries=8)
def _evaluation(scored: holdout.Scored, stamp: tuple) -> evaluate.Evaluation:
    ws = workspace()
    return evaluate.evaluate(ws.settings, _econ(), scored)


@st.cache_data(show_spinner=False, max_entries=256)
def at_threshold(_scored: holdout.Scored, stamp: tuple, threshold: float) -> dict:
    return thresholds.at_threshold(_econ(), _scored, threshold)


@st.cache_data(show_spinner="Looking for thresholds…", max_entries=64)
def suggestions(_scored: holdout.Scored, stamp: tuple, cost_fp: float, cost_fn: float,
                precision: float | None, recall: float | None) -> dict:
    ws = workspace()
    return thresholds.suggest_thresholds(ws.settings, _econ(), _scored, cost_fp=cost_fp, cost_fn=cost_fn,
                                         target_precision=precision, target_recall=recall)


@st.cache_resource(show_spinner="Computing the slices…", max_entries=32)
def slices(_scored: holdout.Scored, stamp: tuple, column: str, metric: str, threshold: float | None,
           bins: int) -> slicing.SliceTable:
    return slicing.slices(_econ(), _scored, column, metric=metric, threshold=threshold, bins=bins)


@st.cache_data(show_spinner="Comparing the groups…", max_entries=32)
def fairness(_scored: holdout.Scored, stamp: tuple, column: str, threshold: float | None, bins: int) -> dict:
    return slicing.fairness(_econ(), _scored, column, threshold=threshold, bins=bins)


def shap_sample(run: runs.Run, scored: holdout.Scored, n: int, seed: int,
                progress: Callable[[int, int], None] | None = None) -> explain.ShapSample:
    """The SHAP sample: computed (with progress) and kept in the workspace the first time, then read from there
    once per session and kept in memory."""
    ws = workspace()
    if not explain.is_cached(ws.settings, run, scored, n, seed=seed):
        return explain.shap_sample(ws.settings, ws.con, run, scored, n, seed=seed, progress=progress)
    return _kept_shap(run, scored, stamp(scored), n, seed)


@st.cache_resource(show_spinner="Reading the kept SHAP values…", max_entries=4)
def _kept_shap(_run: runs.Run, _scored: holdout.Scored, stamp: tuple, n: int, seed: int) -> explain.ShapSample:
    ws = workspace()
    return explain.shap_sample(ws.settings, ws.con, _run, _scored, n, seed=seed)


@st.cache_data(show_spinner=False, max_entries=64)
def shap_estimate(_run: runs.Run, _scored: holdout.Scored, stamp: tuple, n: int) -> float:
    return explain.estimate_seconds(_run, _scored, n)


def slice_columns(run: runs.Run, scored: holdout.Scored) -> list[str]:
    """Columns to slice or group the test rows by, likeliest first: the model's categorical features, its other
    features, the remaining columns; columns left out of training as ID-like last; never the target."""
    excluded = set(run.info.get("excluded") or {})
    order = [*run.categorical, *run.features, *scored.columns]
    ranked = [c for c in dict.fromkeys(order) if c in scored.columns and c != scored.target]
    return [c for c in ranked if c not in excluded] + [c for c in ranked if c in excluded]

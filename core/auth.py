"""Who is acting and what they may do: identities, roles from settings, and the sign-in throttle.

Three ways in (see README, "Security"):

- **OpenID Connect** (``[auth]`` in ``.streamlit/secrets.toml``, Streamlit's ``st.login``): the user's email
  gets the highest role among ``QUARRY_ADMINS``, ``QUARRY_ANALYSTS`` and ``QUARRY_VIEWERS`` that names it
  (the email itself, ``@domain`` or ``domain``); an email none of them names gets no access.
- **The shared password** (``QUARRY_PASSWORD``): the holder is "password user", an admin unless
  ``QUARRY_PASSWORD_ROLE`` says otherwise.
- **Neither**: local single-user mode; the OS user is an admin. The CLI is local and trusted too: it acts as
  the OS user, an admin.

The current identity is found through a resolver (core.ui installs one that reads the Streamlit session);
without one, or outside a session, it is the OS user as an admin. Nothing here imports streamlit.
"""
from __future__ import annotations

import getpass
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.errors import QuarryError

LOG = logging.getLogger("quarry.auth")

ROLES = ("viewer", "analyst", "admin")  # lowest first: each role may do all that the ones before it may
ROLE_SETTINGS = {"admin": "QUARRY_ADMINS", "analyst": "QUARRY_ANALYSTS", "viewer": "QUARRY_VIEWERS"}
PASSWORD_USER = "password user"

# What each action needs: the lowest role allowed, and the words for "Your role (viewer) cannot ...".
ACTIONS: dict[str, tuple[str, str]] = {
    "view": ("viewer", "open Quarry"),
    "register": ("analyst", "register or upload datasets"),
    "sql": ("analyst", "run SQL"),
    "features": ("analyst", "build feature recipes"),
    "train": ("analyst", "train models"),
    "score": ("analyst", "score datasets"),
    "delete_own_run": ("analyst", "delete runs"),
    "remove_dataset": ("admin", "remove datasets"),
    "delete_any_run": ("admin", "delete other people's runs"),
}


class AuthError(QuarryError):
    """A signed-in user whose role does not allow an action, or a setting about roles that is not valid."""


@dataclass(frozen=True)
class Identity:
    """Who is acting: a name (email, "password user" or the OS user), a role (None: no access) and how."""

    name: str
    role: str | None
    method: str  # "oidc" | "password" | "local" | "cli"

    def can(self, action: str) -> bool:
        return can(self.role, action)


# ----------------------------------------------------------------------------------------------
# Roles


def _entries(text: str) -> tuple[str, ...]:
    return tuple(e.strip().lower() for e in (text or "").split(",") if e.strip())


def role_rules(env: Mapping[str, str] | None = None) -> dict[str, tuple[str, ...]]:
    """role -> the emails and domains its setting lists (QUARRY_ADMINS, QUARRY_ANALYSTS, QUARRY_VIEWERS)."""
    env = os.environ if env is None else env
    rules = {role: _entries(env.get(name, "")) for role, name in ROLE_SETTINGS.items()}
    for role, entries in rules.items():
        for entry in entries:
            if entry.count("@") > 1 or entry.endswith("@") or " " in entry or "." not in entry.split("@")[-1]:
                raise AuthError(f"The setting {ROLE_SETTINGS[role]} must list emails or domains separated by commas "
                                f"(alice@example.com, @example.com or example.com). Got {entry!r}.",
                                f"Fix the environment variable {ROLE_SETTINGS[role]}.")
    return rules


def _matches(email: str, entry: str) -> bool:
    """An entry is a whole email, '@domain' or 'domain' (the email's domain exactly, not its subdomains)."""
    if "@" in entry and not entry.startswith("@"):
        return email == entry
    return email.rpartition("@")[2] == entry.lstrip("@")


def role_for(email: str | None, rules: dict[str, tuple[str, ...]] | None = None) -> str | None:
    """The highest role whose setting names `email` (its address or its domain); None when none does."""
    if not email or "@" not in email:
        return None
    email = email.strip().lower()
    rules = role_rules() if rules is None else rules
    for role in reversed(ROLES):  # highest first
        if any(_matches(email, entry) for entry in rules.get(role, ())):
            return role
    return None


def password_role(env: Mapping[str, str] | None = None) -> str:
    """The role of whoever gives QUARRY_PASSWORD: QUARRY_PASSWORD_ROLE, admin when unset."""
    env = os.environ if env is None else env
    role = env.get("QUARRY_PASSWORD_ROLE", "").strip().lower() or "admin"
    if role not in ROLES:
        raise AuthError(f"The setting QUARRY_PASSWORD_ROLE must be one of {', '.join(ROLES)}. Got {role!r}.",
                        "Fix or unset the environment variable QUARRY_PASSWORD_ROLE.")
    return role


def can(role: str | None, action: str) -> bool:
    """Whether `role` may do `action` (a key of ACTIONS); no role may do nothing."""
    if action not in ACTIONS:
        raise KeyError(f"No action named {action!r}; known: {', '.join(ACTIONS)}")
    return role in ROLES and ROLES.index(role) >= ROLES.index(ACTIONS[action][0])


def refusal(role: str | None, action: str) -> str:
    """'Your role (viewer) cannot train models; ask an admin.'"""
    return f"Your role ({role or 'none'}) cannot {ACTIONS[action][1]}; ask an admin."


# ----------------------------------------------------------------------------------------------
# The current identity


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. some containers)
        return f"uid {os.getuid()}"


def cli_identity() -> Identity:
    """The CLI and local mode: the OS user, an admin (whoever runs the process owns the files anyway)."""
    return Identity(os_user(), "admin", "cli")


_resolver: Callable[[], Identity | None] | None = None
_override = threading.local()


def set_resolver(resolver: Callable[[], Identity | None] | None) -> None:
    """Install how to find the current identity (core.ui: the Streamlit session's); None: none."""
    global _resolver
    _resolver = resolver


@contextmanager
def acting_as(identity: Identity) -> Iterator[Identity]:
    """Act as `identity` in this thread for a block (tests; code that acts for someone else)."""
    before = getattr(_override, "identity", None)
    _override.identity = identity
    try:
        yield identity
    finally:
        _override.identity = before


def current() -> Identity:
    """Who is acting now: an acting_as block's identity, else the resolver's, else the OS user (admin)."""
    found = getattr(_override, "identity", None)
    if found is None and _resolver is not None:
        found = _resolver()
    return found or cli_identity()


def who() -> str:
    """The current identity's name, as recorded in created_by fields and the audit log."""
    return current().name


def require(action: str, identity: Identity | None = None) -> Identity:
    """The identity (current by default) when it may do `action`; else AuthError with the refusal."""
    identity = identity or current()
    if not identity.can(action):
        raise AuthError(refusal(identity.role, action), "Ask an admin for a role that allows it.")
    return identity


def require_run_delete(owner: str | None, identity: Identity | None = None) -> Identity:
    """Analysts delete their own runs; admins anyone's."""
    identity = require("delete_own_run", identity)
    if owner and owner != identity.name and not identity.can("delete_any_run"):
        raise AuthError(refusal(identity.role, "delete_any_run"), f"This run was made by {owner}.")
    return identity


# ----------------------------------------------------------------------------------------------
# The sign-in throttle: per client, shared by every session of the server process


def _env_int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise AuthError(f"The setting {name} must be a whole number >= {minimum}. Got {raw!r}.",
                        f"Fix or unset the environment variable {name}.")
    return value


@dataclass(frozen=True)
class ThrottleConfig:
    """Free tries, then a delay that doubles with each failure (up to max_delay_s); locked after max_failures."""

    free_failures: int = 3
    max_failures: int = 10
    lockout_s: int = 900
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ThrottleConfig:
        """QUARRY_SIGNIN_FREE_FAILURES, QUARRY_SIGNIN_MAX_FAILURES, QUARRY_SIGNIN_LOCKOUT_S (README, Settings)."""
        env = os.environ if env is None else env
        free = _env_int(env, "QUARRY_SIGNIN_FREE_FAILURES", cls.free_failures, 0)
        most = _env_int(env, "QUARRY_SIGNIN_MAX_FAILURES", cls.max_failures, 1)
        return cls(free_failures=min(free, most), max_failures=most,
                   lockout_s=_env_int(env, "QUARRY_SIGNIN_LOCKOUT_S", cls.lockout_s, 1))

    def delay_after(self, failures: int) -> float:
        """Seconds to wait before the next try after `failures` failures in a row."""
        if failures <= self.free_failures:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2 ** (failures - self.free_failures - 1))


@dataclass(frozen=True)
class Verdict:
    """May this client try now? If not, for how many seconds more, and whether it is locked out."""

    allowed: bool
    wait_s: float
    locked: bool
    failures: int


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


@dataclass
class Throttle:
    """Failed sign-ins per client (an IP address): a growing delay between tries, then a lockout.

    A try during the delay or the lockout is refused without looking at the password. One success clears
    the client's record; so does a quiet period as long as the lockout. Thread-safe: one instance serves
    every session of the server process. `clock` is injectable for tests (monotonic seconds).
    """

    config: ThrottleConfig = field(default_factory=ThrottleConfig)
    clock: Callable[[], float] = time.monotonic
    _records: dict[str, _Record] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, client: str, now: float) -> _Record:
        rec = self._records.get(client)
        if rec and not rec.locked_until and rec.failures and now - rec.last_failure > self.config.lockout_s:
            rec = None  # forgiven after a quiet period
        if rec and rec.locked_until and now >= rec.locked_until:
            rec = None  # the lockout is over: start afresh
        if rec is None:
            rec = self._records[client] = _Record()
        return rec

    def _verdict(self, rec: _Record, now: float) -> Verdict:
        if rec.locked_until > now:
            return Verdict(False, rec.locked_until - now, True, rec.failures)
        ready = rec.last_failure + self.config.delay_after(rec.failures)
        return Verdict(now >= ready, max(0.0, ready - now), False, rec.failures)

    def check(self, client: str) -> Verdict:
        """Whether `client` may try a password now."""
        with self._lock:
            now = self.clock()
            return self._verdict(self._record(client, now), now)

    def failed(self, client: str) -> Verdict:
        """Count a wrong password; the verdict for the client's next try (locked after max_failures)."""
        with self._lock:
            now = self.clock()
            rec = self._record(client, now)
            rec.failures += 1
            rec.last_failure = now
            if rec.failures >= self.config.max_failures:
                rec.locked_until = now + self.config.lockout_s
                LOG.warning("sign-in locked for %s after %d wrong passwords (%d s)", client, rec.failures,
                            self.config.lockout_s)
            else:
                LOG.info("wrong password from %s (%d in a row)", client, rec.failures)
            return self._verdict(rec, now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._records.pop(client, None)

    def reset(self) -> None:
        """Forget every client (tests)."""
        with self._lock:
            self._records.clear()


_throttle: Throttle | None = None
_throttle_lock = threading.Lock()


def throttle() -> Throttle:
    """The server process's throttle (its settings read once, at first use)."""
    global _throttle
    with _throttle_lock:
        if _throttle is None:
            _throttle = Throttle(ThrottleConfig.from_env())
        return _throttle


def reset_throttle(new: Throttle | None = None) -> None:
    """Replace the process's throttle (tests; None: a fresh one from the settings at next use)."""
    global _throttle
    with _throttle_lock:
        _throttle = new


# ----------------------------------------------------------------------------------------------
# Browsers allowed to fetch what Quarry serves (downloads, reports, images under /media)


@dataclass(frozen=True)
class _Grant:
    identity: Identity
    until: float


GRANT_TTL_S = 12 * 3600  # refreshed on every script run of a signed-in session
_grants: dict[str, _Grant] = {}
_grants_lock = threading.Lock()


def browser_key(token: bytes | str) -> str:
    """A browser's key: a hash of its Streamlit XSRF token (the token itself is never kept)."""
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).hexdigest()


def grant_browser(key: str, identity: Identity, ttl_s: float = GRANT_TTL_S) -> None:
    """Let the browser with `key` fetch media while its session is signed in as `identity`."""
    with _grants_lock:
        _grants[key] = _Grant(identity, time.monotonic() + ttl_s)


def revoke_browser(key: str) -> None:
    with _grants_lock:
        _grants.pop(key, None)


def granted(key: str | None) -> Identity | None:
    """The identity a browser key was granted to, while the grant lasts; None otherwise."""
    if not key:
        return None
    with _grants_lock:
        grant = _grants.get(key)
        if grant is None:
            return None
        if grant.until < time.monotonic():
            _grants.pop(key, None)
            return None
        return grant.identity


def xsrf_token(cookie_value: str | None) -> bytes | None:
    """The raw token of a Streamlit ``_streamlit_xsrf`` cookie ('2|mask|masked token|time'); None if malformed.

    The cookie is re-masked on each page load, but its token stays the browser's for as long as the cookie lives.
    """
    parts = (cookie_value or "").strip("\"'").split("|")
    if len(parts) != 4 or parts[0] != "2":
        return None
    try:
        mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
    except ValueError:
        return None
    if len(mask) != 4 or not masked:
        return None
    return bytes(b ^ mask[i % 4] for i, b in enumerate(masked))


XSRF_COOKIE = "_streamlit_xsrf"
GATED_PREFIXES = ("media/", "_stcore/upload_file/")  # Streamlit's file routes, under server.baseUrlPath
_gate_installed = threading.Event()


def gate_installed() -> bool:
    """Whether this process serves Streamlit's file routes behind MediaGate (``streamlit run core/server.py``)."""
    return _gate_installed.is_set()


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
    return None


class MediaGate:
    """ASGI middleware: downloads, reports, images and uploads only for a browser whose session is signed in.

    Streamlit serves every file an app shows or offers for download at ``/media/<id>``, to anyone with the
    link. This gate answers 403 there (and on ``/_stcore/upload_file``) unless the request's XSRF cookie is
    that of a browser granted by a signed-in session (core.ui registers it on every script run and revokes
    it at sign-out). Installed by ``core/server.py`` through ``st.App(middleware=...)``.
    """

    def __init__(self, app: Callable, base_path: str | Callable[[], str] = "") -> None:
        self.app = app
        self.base_path = base_path
        _gate_installed.set()

    def _gated(self, path: str) -> bool:
        base = self.base_path() if callable(self.base_path) else self.base_path
        base = "/" + base.strip("/") + "/" if base.strip("/") else "/"
        return path.startswith(base) and path[len(base):].startswith(GATED_PREFIXES)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") == "http" and scope.get("method") != "OPTIONS" and self._gated(scope.get("path", "")):
            token = xsrf_token(_cookie(scope.get("headers") or [], XSRF_COOKIE))
            if granted(browser_key(token) if token else None) is None:
                LOG.warning("refused %s %s: no signed-in session for this browser", scope.get("method"),
                            scope.get("path"))
                body = b"Sign in to Quarry first: files are served only to a signed-in session.\n"
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"cache-control", b"no-store")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

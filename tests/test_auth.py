"""Sign-in and roles: role rules, the throttle (on an injected clock), the audit log, the media gate, and
the pages a password user of each role sees (AppTest)."""
from __future__ import annotations

import asyncio
import json
import re
import threading

import pytest
from streamlit.testing.v1 import AppTest

from core import audit, auth
from core.data import catalog as cat
from core.errors import QuarryError
from core.features import recipe as R
from core.features import store as recipe_store
from core.model import runs
from tests.conftest import REPO

APP = str(REPO / "app.py")
RULES = {"admin": ("boss@corp.com",), "analyst": ("@corp.com",), "viewer": ("partner.org", "eve@corp.com")}


@pytest.mark.parametrize("email, role", [
    ("boss@corp.com", "admin"),       # named as admin and in an analyst domain: the highest wins
    ("BOSS@Corp.com", "admin"),       # case does not matter
    ("ann@corp.com", "analyst"),      # '@corp.com' is a domain
    ("eve@corp.com", "analyst"),      # a viewer by name, an analyst by domain: the highest
    ("pat@partner.org", "viewer"),    # 'partner.org' is a domain too
    ("pat@sub.partner.org", None),    # not its subdomains
    ("mallory@corp.com.evil.io", None),
    ("", None),
    (None, None),
])
def test_role_for(email, role):
    assert auth.role_for(email, RULES) == role


def test_role_rules_from_the_environment():
    rules = auth.role_rules({"QUARRY_ADMINS": " boss@corp.com ,", "QUARRY_VIEWERS": "@partner.org"})
    assert rules == {"admin": ("boss@corp.com",), "analyst": (), "viewer": ("@partner.org",)}
    with pytest.raises(auth.AuthError, match="QUARRY_ANALYSTS must list emails or domains"):
        auth.role_rules({"QUARRY_ANALYSTS": "not a domain"})


def test_password_role():
    assert auth.password_role({}) == "admin"
    assert auth.password_role({"QUARRY_PASSWORD_ROLE": "Viewer"}) == "viewer"
    with pytest.raises(auth.AuthError, match="QUARRY_PASSWORD_ROLE must be one of viewer, analyst, admin"):
        auth.password_role({"QUARRY_PASSWORD_ROLE": "root"})


@pytest.mark.parametrize("role, allowed", [
    (None, set()),
    ("viewer", {"view"}),
    ("analyst", {"view", "register", "sql", "features", "train", "score", "delete_own_run"}),
    ("admin", set(auth.ACTIONS)),
])
def test_what_each_role_may_do(role, allowed):
    assert {a for a in auth.ACTIONS if auth.can(role, a)} == allowed


def test_refusal_and_require():
    viewer = auth.Identity("v@corp.com", "viewer", "oidc")
    assert auth.refusal("viewer", "train") == "Your role (viewer) cannot train models; ask an admin."
    with pytest.raises(auth.AuthError, match=r"Your role \(viewer\) cannot train models"):
        auth.require("train", viewer)
    analyst = auth.Identity("ann@corp.com", "analyst", "oidc")
    assert auth.require_run_delete("ann@corp.com", analyst) is analyst
    with pytest.raises(auth.AuthError, match="cannot delete other people's runs"):
        auth.require_run_delete("bob@corp.com", analyst)
    admin = auth.Identity("boss@corp.com", "admin", "oidc")
    assert auth.require_run_delete("bob@corp.com", admin) is admin


def test_outside_a_session_the_os_user_is_an_admin():
    assert auth.current() == auth.cli_identity() and auth.current().role == "admin"
    with auth.acting_as(auth.Identity("v@corp.com", "viewer", "oidc")):
        assert auth.who() == "v@corp.com"
    assert auth.who() == auth.os_user()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_delays_then_locks_then_forgives():
    clock = Clock()
    t = auth.Throttle(auth.ThrottleConfig(free_failures=2, max_failures=5, lockout_s=600), clock=clock)
    assert t.check("1.2.3.4").allowed
    assert t.failed("1.2.3.4") == auth.Verdict(True, 0.0, False, 1)
    assert t.failed("1.2.3.4").allowed                       # 2 free failures
    third = t.failed("1.2.3.4")
    assert (third.allowed, third.wait_s) == (False, 1.0)     # then 1 s, 2 s, 4 s ...
    assert not t.check("1.2.3.4").allowed
    assert t.check("5.6.7.8").allowed                        # per client
    clock.now += 1.0
    assert t.check("1.2.3.4").allowed
    assert t.failed("1.2.3.4").wait_s == 2.0
    clock.now += 2.0
    locked = t.failed("1.2.3.4")                             # the 5th: locked out for lockout_s
    assert (locked.allowed, locked.locked, locked.wait_s) == (False, True, 600.0)
    clock.now += 599
    assert t.check("1.2.3.4").locked
    clock.now += 1
    assert t.check("1.2.3.4") == auth.Verdict(True, 0.0, False, 0)   # the lockout is over: a fresh start


def test_throttle_success_clears_and_quiet_period_forgives():
    clock = Clock()
    t = auth.Throttle(auth.ThrottleConfig(free_failures=0, max_failures=9, lockout_s=60), clock=clock)
    t.failed("a")
    t.succeeded("a")
    assert t.check("a") == auth.Verdict(True, 0.0, False, 0)
    t.failed("b")
    clock.now += 61
    assert t.check("b").failures == 0


def test_throttle_is_shared_and_thread_safe():
    t = auth.Throttle(auth.ThrottleConfig(free_failures=1000, max_failures=10_000))
    threads = [threading.Thread(target=lambda: [t.failed("x") for _ in range(200)]) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.check("x").failures == 1600


def test_throttle_settings():
    cfg = auth.ThrottleConfig.from_env({"QUARRY_SIGNIN_MAX_FAILURES": "4", "QUARRY_SIGNIN_LOCKOUT_S": "30"})
    assert (cfg.free_failures, cfg.max_failures, cfg.lockout_s) == (3, 4, 30)
    with pytest.raises(auth.AuthError, match="QUARRY_SIGNIN_LOCKOUT_S must be a whole number >= 1. Got 'soon'"):
        auth.ThrottleConfig.from_env({"QUARRY_SIGNIN_LOCKOUT_S": "soon"})


def test_audit_log_appends_json_lines(settings):
    audit.record(settings, "sql.run", who="ann@corp.com", sql="SELECT 1")
    threads = [threading.Thread(target=audit.record, args=(settings, "x"), kwargs={"n": i}) for i in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lines = audit.path(settings).read_text().splitlines()
    assert len(lines) == 21 and all(json.loads(line) for line in lines)
    first = audit.read(settings)[0]
    assert {k: first[k] for k in ("who", "action", "sql")} == {"who": "ann@corp.com", "action": "sql.run",
                                                               "sql": "SELECT 1"}
    assert first["at"].endswith("+00:00")
    assert sorted(e["n"] for e in audit.read(settings)[1:]) == list(range(20))
    assert audit.read(settings)[-1]["who"] == auth.os_user()      # outside a session: the OS user


def test_core_verbs_check_roles_record_who_and_audit(settings, con, catalog, sample):
    viewer = auth.Identity("v@corp.com", "viewer", "oidc")
    analyst = auth.Identity("ann@corp.com", "analyst", "oidc")
    with auth.acting_as(viewer), pytest.raises(auth.AuthError, match="cannot register or upload datasets"):
        cat.register(con, catalog, str(sample))
    with auth.acting_as(analyst):
        d = cat.register(con, catalog, str(sample), name="sample")
        with pytest.raises(auth.AuthError, match=r"Your role \(analyst\) cannot remove datasets"):
            catalog.remove("sample")
        recipe_store.save(settings, R.Recipe(steps=()), "mine")
    assert d.created_by == "ann@corp.com" and catalog.get("sample").created_by == "ann@corp.com"
    assert json.loads((recipe_store.folder(settings) / "mine.json").read_text())["created_by"] == "ann@corp.com"
    assert recipe_store.load(settings, "mine").name == "mine"  # the extra field does not bother the reader
    catalog.remove("sample")  # the OS user (CLI) is an admin
    events = [(e["who"], e["action"]) for e in audit.read(settings)]
    assert events == [("ann@corp.com", "dataset.register"), (auth.os_user(), "dataset.remove")]


def test_deleting_a_run_checks_its_owner(settings, monkeypatch):
    monkeypatch.setattr(runs, "_folder", lambda s, run_id: settings.workspace / "runs" / run_id)
    folder = settings.workspace / "runs" / "r1"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"created_by": "bob@corp.com"}))
    with auth.acting_as(auth.Identity("ann@corp.com", "analyst", "oidc")), \
            pytest.raises(auth.AuthError, match="delete other people's runs"):
        runs.delete_run(settings, "r1")
    assert folder.exists()


def test_xsrf_token_decoding():
    from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

    token = bytes(range(16))
    assert auth.xsrf_token(generate_xsrf_token_string(token)) == token  # re-masked each time: same token
    assert auth.xsrf_token(generate_xsrf_token_string(token)) == token
    for bad in (None, "", "2|zz|00|1", "1|00|00|1", "2|0011|", "garbage"):
        assert auth.xsrf_token(bad) is None


def _asgi_get(gate: auth.MediaGate, path: str, cookie: str | None) -> int:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"cookie", f"_streamlit_xsrf={cookie}; other=1".encode())] if cookie else []
    asyncio.run(gate({"type": "http", "method": "GET", "path": path, "headers": headers}, receive, send))
    return sent[0]["status"]


def test_media_gate_serves_only_granted_browsers():
    from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data"})

    gate = auth.MediaGate(app, base_path="")
    assert auth.gate_installed()
    token = b"0123456789abcdef"
    cookie = generate_xsrf_token_string(token)
    assert _asgi_get(gate, "/media/abc.csv", None) == 403
    assert _asgi_get(gate, "/media/abc.csv", cookie) == 403
    assert _asgi_get(gate, "/_stcore/health", None) == 200          # the app shell stays public
    auth.grant_browser(auth.browser_key(token), auth.Identity("ann@corp.com", "analyst", "oidc"))
    try:
        assert _asgi_get(gate, "/media/abc.csv", generate_xsrf_token_string(token)) == 200
        assert _asgi_get(gate, "/media/abc.csv", generate_xsrf_token_string(b"another browser!")) == 403
        based = auth.MediaGate(app, base_path="/quarry/")
        assert _asgi_get(based, "/quarry/media/abc.csv", None) == 403
        assert _asgi_get(based, "/quarry/media/abc.csv", cookie) == 200
    finally:
        auth.revoke_browser(auth.browser_key(token))
    assert _asgi_get(gate, "/media/abc.csv", cookie) == 403


# ----------------------------------------------------------------------------------------------
# Pages (AppTest): the password form's throttle, and what each role sees


@pytest.fixture
def fresh_throttle():
    auth.reset_throttle(auth.Throttle(auth.ThrottleConfig(free_failures=2, max_failures=3, lockout_s=600)))
    yield
    auth.reset_throttle(None)


@pytest.fixture
def with_sample(settings, sample, con):
    cat.register(con, cat.Catalog(settings), str(sample), name="sample")


def signed_in(monkeypatch, role: str | None) -> AppTest:
    monkeypatch.setenv("QUARRY_PASSWORD", "s3cret")
    if role:
        monkeypatch.setenv("QUARRY_PASSWORD_ROLE", role)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="auth_password").input("s3cret").run()
    assert not at.exception, at.exception
    return at


def test_password_throttle_and_lockout_in_the_page(settings, monkeypatch, fresh_throttle):
    monkeypatch.setenv("QUARRY_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60).run()
    for wrong in ("a", "b"):
        at.text_input(key="auth_password").input(wrong).run()
        assert [e.value for e in at.error] == ["Wrong password."] and not at.warning
    at.text_input(key="auth_password").input("c").run()   # the 3rd: locked
    assert [e.value for e in at.error] == ["Wrong password."]
    assert re.fullmatch(r"Sign-in is locked for this address after 3 wrong passwords: try again in "
                        r"(10 min 0 s|9 min \d+ s)\.", at.warning[0].value)  # a loaded machine may take a second
    at.text_input(key="auth_password").input("s3cret").run()  # even the right password is refused now
    assert at.error[0].value.startswith("Sign-in is locked for this address") and not at.metric
    assert at.text_input(key="auth_password").value == ""
    actions = [(e["who"], e["action"], e["client"]) for e in audit.read(settings)]
    assert actions == [("unknown", "signin.failure", "local")] * 2 + [("unknown", "signin.lockout", "local"),
                                                                      ("unknown", "signin.throttled", "local")]


def test_a_right_password_is_logged(settings, with_sample, monkeypatch, fresh_throttle):
    at = signed_in(monkeypatch, None)
    assert {m.label: m.value for m in at.metric}["Rows"] == "1,000"
    assert "Signed in as **password user** (admin)" in [c.value for c in at.sidebar.caption]
    assert [(e["who"], e["action"]) for e in audit.read(settings)][-1] == ("password user", "signin.success")


@pytest.mark.parametrize("page, refusal", [
    ("train", "Your role (viewer) cannot train models; ask an admin."),
    ("sql", "Your role (viewer) cannot run SQL; ask an admin."),
    ("features", "Your role (viewer) cannot build feature recipes; ask an admin."),
    ("score", "Your role (viewer) cannot score datasets; ask an admin."),
])
def test_a_viewer_is_refused_analyst_pages(settings, with_sample, monkeypatch, fresh_throttle, page, refusal):
    at = signed_in(monkeypatch, "viewer")
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception
    assert [e.value for e in at.main.error] == [refusal]
    assert not at.title and not at.main.button and not at.main.text_input and not at.main.selectbox


def test_a_viewer_sees_data_but_cannot_change_it(settings, with_sample, monkeypatch, fresh_throttle):
    at = signed_in(monkeypatch, "viewer")
    at.switch_page("pages/data.py").run()
    assert {m.label: m.value for m in at.metric}["Rows"] == "1,000"
    assert at.button(key="data_register").disabled and at.button(key="data_remove").disabled
    at.switch_page("pages/profile.py").run()
    assert not at.exception and at.title[0].value == "Profile"


def test_an_analyst_trains_but_does_not_remove(settings, with_sample, monkeypatch, fresh_throttle):
    at = signed_in(monkeypatch, "analyst")
    at.switch_page("pages/train.py").run()
    assert not at.exception and not at.main.error and at.title[0].value == "Train"
    at.switch_page("pages/data.py").run()
    assert not at.button(key="data_register").disabled and at.button(key="data_remove").disabled


def test_a_bad_role_setting_is_shown(settings, monkeypatch):
    monkeypatch.setenv("QUARRY_PASSWORD", "s3cret")
    monkeypatch.setenv("QUARRY_PASSWORD_ROLE", "root")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="auth_password").input("s3cret").run()
    assert not at.exception and "QUARRY_PASSWORD_ROLE must be one of" in at.error[0].value


def test_quarry_errors_are_auth_errors():
    assert issubclass(auth.AuthError, QuarryError)

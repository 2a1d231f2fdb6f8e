"""Sign-in end to end in headless Chromium: downloads only for a signed-in browser, and OpenID Connect with
roles against a real provider (``oidc-provider-mock``) started by the test on a free loopback port.

Streamlit is started as in production, ``streamlit run core/server.py`` (app.py behind core.auth.MediaGate), with
``--secrets.files`` pointing at a secrets.toml written for the test (its ``[auth]`` section names the mock).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Page, expect

from tests import test_e2e_browser as e2e
from tests.test_e2e_browser import (
    REPO,
    START_TIMEOUT_S,
    _free_port,
    _healthy,
    _stop,
    assert_no_exception,
    open_page,
    register,
    run_streamlit,
    settle,
)

chromium_path, browser, page = e2e.chromium_path, e2e.browser, e2e.page  # the browser fixtures, shared

pytestmark = pytest.mark.browser
ANALYST, VIEWER, STRANGER = "ann@corp.test", "pat@partner.test", "eve@elsewhere.test"


def _status(url: str) -> int:
    """The HTTP status of a plain GET without any cookie."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_downloads_need_a_signed_in_browser(page: Page, chromium_path: Path, tmp_path: Path) -> None:
    """A SQL result's CSV link is refused without the browser's session (403), served to the signed-in browser."""
    pq.write_table(pa.table({"carrier": ["UA", "AA", "UA"], "n": [1, 2, 3]}), tmp_path / "small.parquet")
    with run_streamlit(tmp_path, QUARRY_PASSWORD="e2e-secret") as (url, _, log):
        open_page(page, f"{url}/data")
        password = page.get_by_label("Password", exact=True)
        password.fill("e2e-secret")
        password.press("Enter")
        expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible()
        register(page, "small.parquet")
        expect(page.get_by_text("Registered 'small'")).to_be_visible()
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="SQL", exact=True).click()  # same session
        settle(page)
        page.get_by_label("Query", exact=True).fill("SELECT carrier, sum(n) AS n FROM small GROUP BY 1 ORDER BY 1")
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.get_by_text("Rows 1–2 of 2")).to_be_visible()
        settle(page)
        with page.expect_download() as info:
            page.get_by_role("button", name="CSV", exact=True).click()
        download = info.value
        assert "/media/" in download.url
        assert Path(download.path()).read_text().splitlines() == ['"carrier","n"', '"AA",2', '"UA",4']
        assert _status(download.url) == 403                          # the link alone: refused
        assert page.request.get(download.url).status == 200          # the signed-in browser: served
        assert_no_exception(page, None)
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("Password", exact=True)).to_be_visible()
        assert page.request.get(download.url).status == 403          # signed out: refused again
        assert "refused GET /media/" in log.read_text(errors="replace")


def test_ungated_server_refuses_to_run_with_a_password(page: Page, chromium_path: Path, tmp_path: Path) -> None:
    """`streamlit run app.py` (no gate) with a password configured: Quarry says how to start it instead."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    env.update(QUARRY_DATA_ROOTS=str(tmp_path), QUARRY_PASSWORD="x")
    with _process([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                   "--server.headless", "true", "--server.address", "127.0.0.1"], env, tmp_path / "st.log"):
        _wait(f"http://127.0.0.1:{port}/_stcore/health")
        open_page(page, f"http://127.0.0.1:{port}/")
        expect(page.get_by_text("Quarry will not run this way")).to_be_visible()
        expect(page.get_by_label("Password", exact=True)).to_have_count(0)


# ----------------------------------------------------------------------------------------------
# OpenID Connect against oidc-provider-mock


@contextmanager
def _process(cmd: list[str], env: dict, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        _stop(proc)


def _wait(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    pytest.fail(f"{url} did not answer within {START_TIMEOUT_S} s", pytrace=False)


@pytest.fixture(scope="module")
def oidc_app(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The OpenID Connect provider and Quarry configured for it; Quarry's URL."""
    root = tmp_path_factory.mktemp("oidc")
    idp_port, port = _free_port(), _free_port()
    idp = f"http://127.0.0.1:{idp_port}"
    with _process([sys.executable, "-m", "oidc_provider_mock", "--port", str(idp_port)], dict(os.environ),
                  root / "idp.log"):
        _wait(f"{idp}/.well-known/openid-configuration")
        secrets = root / "secrets.toml"
        secrets.write_text(f"""[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "quarry-test-cookie-secret-0123456789abcdef"
client_id = "quarry-test"
client_secret = "quarry-test-secret"
server_metadata_url = "{idp}/.well-known/openid-configuration"
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
        env.update(QUARRY_DATA_ROOTS=str(root), QUARRY_WORKSPACE=str(root / "workspace"), PYTHONUNBUFFERED="1",
                   QUARRY_ANALYSTS=ANALYST, QUARRY_VIEWERS="@partner.test", QUARRY_ADMINS="boss@corp.test")
        cmd = [sys.executable, "-m", "streamlit", "run", "core/server.py", "--server.port", str(port),
               "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
               "--secrets.files", str(secrets)]
        with _process(cmd, env, root / "streamlit.log") as proc:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start:\n{(root / 'streamlit.log').read_text()[-3000:]}",
                                pytrace=False)
                time.sleep(0.25)
            yield url


def sign_in(page: Page, url: str, email: str) -> None:
    """Quarry's 'Sign in' button, then the provider's form: the email as the subject, Authorize."""
    open_page(page, url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/oauth2/authorize**")
    page.locator("input[name='sub']").fill(email)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(f"{url}/**")
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=60_000)
    settle(page)


def test_an_analyst_signs_in_and_trains(page: Page, oidc_app: str) -> None:
    sign_in(page, oidc_app, ANALYST)
    expect(page.get_by_text(f"Signed in as {ANALYST} (analyst)")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train", exact=True)).to_be_visible()
    open_page(page, f"{oidc_app}/train")
    expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible()
    expect(page.get_by_text("cannot train models")).to_have_count(0)
    assert_no_exception(page, None)


def test_a_viewer_cannot_reach_train_by_url(page: Page, oidc_app: str) -> None:
    sign_in(page, oidc_app, VIEWER)
    expect(page.get_by_text(f"Signed in as {VIEWER} (viewer)")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train", exact=True)).to_have_count(0)
    open_page(page, f"{oidc_app}/train")
    expect(page.get_by_text("Your role (viewer) cannot train models; ask an admin.")).to_be_visible()
    expect(page.get_by_role("heading", name="Train", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Start training")).to_have_count(0)
    open_page(page, f"{oidc_app}/runs")  # a page viewers may open
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    assert_no_exception(page, None)


def test_an_unknown_user_gets_no_access(page: Page, oidc_app: str) -> None:
    sign_in(page, oidc_app, STRANGER)
    expect(page.get_by_text(f"{STRANGER} has no access to this Quarry server.")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    open_page(page, f"{oidc_app}/data")
    expect(page.get_by_text(f"{STRANGER} has no access to this Quarry server.")).to_be_visible()
    expect(page.get_by_role("heading", name="Data", exact=True)).to_have_count(0)

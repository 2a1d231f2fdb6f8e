"""End to end in headless Chromium: a real Streamlit server on the flights demo, driven like a user.

One journey on one page session, because each step builds on the last: register the demo file on the
Data page, try a file that is not Parquet, filter the preview, then run a GROUP BY on the SQL page.
Expected counts are computed with DuckDB on the same file, never typed in by hand. A second test
opens a bookmarked /data on a fresh password-protected server: it must ask for the password first.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install chromium``); the test fails without it
unless QUARRY_SKIP_BROWSER=1. Screenshots go to tests/output/ (ignored by git), to look at after a run.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from core.data.demo import write_flights

REPO = Path(__file__).resolve().parent.parent
OUTPUT = Path(__file__).resolve().parent / "output"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
START_TIMEOUT_S = 60
WAIT_MS = 45_000  # generous, for a loaded CI machine; every wait is on an explicit condition
APP_CONNECTED = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
SCRIPT_DONE = "[data-testid='stApp'][data-test-script-state='notRunning']"
PATH_LABEL = "Parquet or CSV file, folder (hive partitions welcome) or glob"
FLIGHTS = "demo/flights.parquet"
BAD = "bad.parquet"
FILTER = "origin = 'JFK'"
SQL = "SELECT carrier, count(*) AS n FROM flights GROUP BY carrier ORDER BY n DESC"

pytestmark = pytest.mark.browser


@dataclass
class Server:
    url: str
    root: Path
    flights: Path
    proc: subprocess.Popen
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
            return resp.status == 200 and resp.read().decode().strip() == "ok"
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    """Checked first, so a machine without chromium fails in a second, not after starting the app."""
    if os.environ.get("QUARRY_SKIP_BROWSER") == "1":
        pytest.skip("QUARRY_SKIP_BROWSER=1: browser tests skipped")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium. "
                    "Install it with `sudo apt-get install -y chromium` "
                    "(or set QUARRY_SKIP_BROWSER=1 to skip these tests).", pytrace=False)
    return CHROMIUM


@contextmanager
def run_streamlit(root: Path, **env_extra: str) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`streamlit run core/server.py` (app.py behind the download gate) on a free port with `root` as data root;
    (url, process, log); always stopped."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}  # no password, no stray limits
    env.update(QUARRY_DATA_ROOTS=str(root), QUARRY_WORKSPACE=str(root / "workspace"), PYTHONUNBUFFERED="1",
               **env_extra)
    log = root / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "core/server.py", "--server.port", str(port),
           "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode} before answering on {url}:\n"
                            f"{log.read_text(errors='replace')[-4000:]}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer {url}/_stcore/health within {START_TIMEOUT_S} s:\n"
                            f"{log.read_text(errors='replace')[-4000:]}", pytrace=False)
            time.sleep(0.25)
        yield url, proc, log
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def server(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app over a temp data root holding the flights demo and a file that is not Parquet."""
    root = tmp_path_factory.mktemp("e2e_root")
    flights = write_flights(root / FLIGHTS).path
    (root / BAD).write_text("carrier,origin\nUA,JFK\nthis is CSV text, not Parquet\n")
    with run_streamlit(root) as (url, proc, log):
        yield Server(url, root, flights, proc, log)


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and page; uncaught JavaScript errors are kept in page.js_errors.

    When the test fails, what the page showed is saved as tests/output/failed_<test name>.png.
    """
    failed_before = request.session.testsfailed
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)  # expect() waits 5 s by default
    pg.js_errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        expect.set_options(timeout=5_000)
        if request.session.testsfailed > failed_before:  # the call's report is counted before teardown
            with suppress(Exception):
                screenshot(pg, f"failed_{request.node.name}.png")
        context.close()


def open_page(page: Page, url: str) -> None:
    """Load a page and wait until Streamlit is connected and its script has finished."""
    page.goto(url)
    page.wait_for_selector(APP_CONNECTED, timeout=60_000)
    settle(page)


def settle(page: Page) -> None:
    """Wait for the script run to finish (a condition shown before this call already holds)."""
    page.wait_for_selector(SCRIPT_DONE, timeout=WAIT_MS)
    page.wait_for_timeout(300)  # a short settle: reruns queued by widget commits start within this
    page.wait_for_selector(SCRIPT_DONE, timeout=WAIT_MS)


def assert_no_exception(page: Page, server: Server | None) -> None:
    """Streamlit shows an uncaught Python exception as an stException box: there must be none."""
    boxes = page.get_by_test_id("stException")
    log = server.logs() if server else ""
    assert boxes.count() == 0, f"exception on the page: {boxes.first.inner_text()}\nserver log:\n{log}"


def screenshot(page: Page, name: str) -> Path:
    """The whole page as tests/output/NAME. Streamlit scrolls inside its main block, so full_page alone
    stops at the viewport: the viewport is grown to the content's height for the shot, then restored."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / name
    size = page.viewport_size or {"width": 1400, "height": 900}
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
                           "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight), 0)")
    page.set_viewport_size({"width": size["width"], "height": min(max(size["height"], int(height) + 40), 4000)})
    try:
        page.wait_for_timeout(500)  # a short settle: the data grid redraws its canvas after a resize
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def open_register_expander(page: Page) -> None:
    """Show the register form: open before the first dataset, then folded in a 'Register a dataset' expander.

    An expander stuck half open (<details open> while Streamlit keeps its contents hidden and inert;
    seen on about 1 first load in 12 when the app flipped `expanded` between runs) is reported as a
    warning and the page reloaded, as a user would; the catalog is on disk and the URL names the dataset.
    """
    for _ in range(3):
        stuck = _try_open_register_expander(page)
        if stuck is None:
            wait_until_still(page, page.get_by_role("button", name="Register", exact=True))
            return
        warnings.warn(f"'Register a dataset' was stuck half open (<details open>, contents hidden): {stuck}; "
                      "reloading the page", stacklevel=3)
        open_page(page, page.url)
    pytest.fail("'Register a dataset' stayed stuck half open after 3 page loads")


def _try_open_register_expander(page: Page) -> str | None:
    """None once the path input shows; a description of the DOM if the expander is stuck half open.

    Acts only on a state that holds for two polls: while a run is being drawn, the expander can be
    replaced or briefly closed, and clicking an expander that is in fact open would close it.
    """
    details = page.get_by_test_id("stExpander").filter(has_text="Register a dataset").locator("details")
    box = page.get_by_label(PATH_LABEL, exact=True)
    started = time.monotonic()
    last, since = None, started
    history: list[str] = []
    while time.monotonic() - started < WAIT_MS / 1000:
        count = details.count()
        state = (count, details.first.get_attribute("open") is not None if count else None, box.is_visible())
        now = time.monotonic()
        if state != last:
            history.append(f"{now - started:.2f}s {state}")
            last, since = state, now
        elif state[2]:  # the form shows, plainly (no dataset yet) or in the open expander
            return None
        elif state == (1, False, False):
            details.locator("summary").click()
            history.append(f"{time.monotonic() - started:.2f}s clicked")
            last = None
        elif state == (1, True, False) and now - since > 2:
            return f"{expander_dom(page)} after {'; '.join(history)}"
        page.wait_for_timeout(150)
    pytest.fail("'Register a dataset' did not open; (count, open, input visible) over time: " + "; ".join(history))


def expander_dom(page: Page) -> str:
    """What the expanders look like in the DOM, for a report."""
    return page.evaluate("""() => JSON.stringify([...document.querySelectorAll('[data-testid=stExpander]')].map(e => {
        const d = e.querySelector('details'), c = e.querySelector('[data-testid=stExpanderDetails]');
        return {open: d && d.open, summary: d && d.querySelector('summary').innerText.replace(/\\n/g, ' | '),
                detailsHeight: d && Math.round(d.getBoundingClientRect().height),
                contentHeight: c && Math.round(c.getBoundingClientRect().height),
                script: document.querySelector('[data-testid=stApp]').getAttribute('data-test-script-state')};
    }))""")


def wait_until_still(page: Page, locator: Locator) -> None:
    """Wait until an element stops moving: an opening expander slides its contents in, and a click
    that lands mid-animation can miss the button (seen: 1 run in 10 registered nothing)."""
    expect(locator).to_be_visible()
    deadline = time.monotonic() + WAIT_MS / 1000
    last = None
    while time.monotonic() < deadline:
        box = locator.bounding_box()
        if box is not None and box == last:
            return
        last = box
        page.wait_for_timeout(150)
    pytest.fail(f"{locator} kept moving for {WAIT_MS / 1000:g} s")


def register(page: Page, text: str) -> None:
    """Type a path in the Data page's 'Register a dataset' expander, press Enter, then Register."""
    open_register_expander(page)
    box = page.get_by_label(PATH_LABEL, exact=True)
    box.fill(text)
    box.press("Enter")  # commit the value (Streamlit text inputs commit on Enter or blur)
    settle(page)
    expect(box).to_have_value(text)
    open_register_expander(page)  # in case the rerun folded the form away
    page.get_by_role("button", name="Register", exact=True).click()


def test_register_filter_and_query_in_the_browser(page: Page, server: Server) -> None:
    """Register, a bad file, a filter and a SQL query, checked against counts DuckDB gives on the file."""
    started = time.monotonic()
    with duckdb.connect() as con:  # the expected numbers, from the file itself
        con.execute(f"CREATE VIEW flights AS SELECT * FROM read_parquet('{server.flights}')")
        total = con.execute("SELECT count(*) FROM flights").fetchone()[0]
        jfk = con.execute(f"SELECT count(*) FROM flights WHERE {FILTER}").fetchone()[0]
        carriers = con.execute(f"SELECT count(*) FROM ({SQL})").fetchone()[0]
    assert total == 336_776 and 0 < jfk < total and carriers > 1
    first_page = min(50, total)

    # 1. Register the demo file: metrics, preview grid and caption, and the sidebar picker take it up.
    #    /data is this fresh server's first page: a deep link must still go through app.py's router.
    open_page(page, f"{server.url}/data")
    expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="SQL", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Data")).to_be_visible()
    register(page, FLIGHTS)
    caption = page.get_by_text(f"Rows 1–{first_page:,} of {total:,}")
    expect(caption).to_be_visible()
    expect(page.get_by_text("Registered 'flights'")).to_be_visible()
    expect(page.get_by_test_id("stMetricValue").filter(has_text=f"{total:,}")).to_be_visible()
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible()
    box = grid.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200, f"the preview grid is too small: {box}"
    expect(page.get_by_test_id("stSidebar").get_by_role("combobox", name="Dataset")).to_have_value("flights")
    settle(page)
    assert_no_exception(page, server)
    screenshot(page, "e2e_data.png")

    # 2. A file that is not Parquet: a clear error, and the page keeps working on flights.
    register(page, BAD)
    expect(page.get_by_text("is not a Parquet file")).to_be_visible()
    settle(page)
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text(BAD)
    expect(caption).to_be_visible()
    assert_no_exception(page, server)

    # 3. Filter the preview: the caption counts the JFK rows over the whole file.
    where = page.get_by_label("Filter", exact=True)
    where.fill(FILTER)
    where.press("Enter")
    expect(page.get_by_text(f"Rows 1–{min(50, jfk):,} of {jfk:,}")).to_be_visible()
    settle(page)
    assert_no_exception(page, server)

    # 4. SQL page (a fresh session: the catalog on disk is what carries the dataset over).
    open_page(page, f"{server.url}/sql")
    expect(page.get_by_role("heading", name="SQL")).to_be_visible()
    query = page.get_by_label("Query", exact=True)
    query.fill(SQL)
    # Clicking Run blurs the text area, which commits the new text before the click's rerun.
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text(f"Rows 1–{min(50, carriers):,} of {carriers:,}")).to_be_visible()
    settle(page)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    assert_no_exception(page, server)
    screenshot(page, "e2e_sql.png")

    assert not page.js_errors, f"JavaScript errors in the page: {page.js_errors}"  # type: ignore[attr-defined]
    assert server.proc.poll() is None, f"the server died:\n{server.logs()}"
    assert "Traceback" not in server.log.read_text(errors="replace"), f"errors in the server log:\n{server.logs()}"
    assert time.monotonic() - started < 120, "the browser journey took too long"


def test_deep_link_goes_through_the_router_and_password(page: Page, chromium_path: Path, tmp_path: Path) -> None:
    """A bookmarked /data on a freshly started, password-protected server must ask for the password.

    Streamlit runs a deep link straight from the pages/ folder until some session has called
    st.navigation; without ui.page_guard() that skipped app.py, its sidebar and its password gate.
    """
    with run_streamlit(tmp_path, QUARRY_PASSWORD="e2e-secret") as (url, _, _):
        open_page(page, f"{url}/data")
        expect(page.get_by_label("Password", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="Data", exact=True)).to_have_count(0)
        expect(page.get_by_text("Register a dataset")).to_have_count(0)
        expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # no page links before sign-in
        password = page.get_by_label("Password", exact=True)
        password.fill("e2e-secret")
        password.press("Enter")
        expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible()  # the bookmarked page
        expect(page.get_by_text("Register a dataset")).to_be_visible()
        expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="SQL", exact=True)).to_be_visible()
        settle(page)
        assert_no_exception(page, None)


def test_upload_a_small_csv(page: Page, chromium_path: Path, tmp_path: Path) -> None:
    """The upload tab copies a small file into the uploads folder and registers it."""
    csv = tmp_path / "small prices.csv"
    csv.write_text("item,price\napple,1.5\npear,2.25\nfig,3\n")
    root = tmp_path / "data"
    root.mkdir()
    with run_streamlit(root) as (url, _, _):
        open_page(page, f"{url}/data")
        page.get_by_role("tab", name="Upload a small file").click()
        page.locator("input[type='file']").set_input_files(str(csv))
        button = page.get_by_role("button", name="Register upload")
        expect(button).to_be_visible()
        button.click()
        expect(page.get_by_text("Uploaded 'small_prices'")).to_be_visible()
        expect(page.get_by_text("Rows 1–3 of 3")).to_be_visible()
        settle(page)
        assert_no_exception(page, None)
    assert (root / "uploads" / "small_prices.csv").read_text() == csv.read_text()  # a copy; the original stays


def test_profile_in_the_browser(page: Page, server: Server) -> None:
    """Profile the flights demo: statistics over all rows and a chart."""
    open_page(page, f"{server.url}/data")
    register(page, FLIGHTS)  # idempotent when the journey above already registered it
    expect(page.get_by_text("Rows 1–50 of 336,776")).to_be_visible()
    open_page(page, f"{server.url}/profile?dataset=flights")
    page.get_by_role("button", name="Profile the full data").click()
    expect(page.get_by_test_id("stMetricValue").filter(has_text="336,776")).to_be_visible()
    expect(page.get_by_text("Duplicate rows", exact=True)).to_be_visible()
    settle(page)
    screenshot(page, "e2e_profile.png")
    page.get_by_role("tab", name="Missing values").click()
    expect(page.get_by_text("Missing values (", exact=False).first).to_be_visible()  # the chart's title
    expect(page.get_by_text("Which columns are missing together")).to_be_visible()
    settle(page)
    screenshot(page, "e2e_profile_missing.png")
    page.get_by_role("tab", name="Alerts").click()
    expect(page.get_by_test_id("stDataFrame").locator("visible=true").first).to_be_visible()  # the alerts table
    settle(page)
    screenshot(page, "e2e_profile_alerts.png")
    page.get_by_role("tab", name="Column detail").click()
    expect(page.get_by_text("Distribution of year")).to_be_visible()  # histogram and top values of 'year'
    expect(page.get_by_text("Most frequent values of year")).to_be_visible()
    settle(page)
    screenshot(page, "e2e_profile_detail.png")
    # Picking another column reruns the page: the Column detail tab stays open (the tabs are keyed).
    choose(page, "Column", "dep_delay")
    expect(page.get_by_text("Distribution of dep_delay").first).to_be_visible()
    # A target: every column ranked by its relation to it, and the target across one of them.
    page.get_by_role("combobox", name="Target (optional)").click()
    page.keyboard.type("delayed")
    page.keyboard.press("Enter")
    settle(page)
    page.get_by_role("tab", name="Target", exact=True).click()
    expect(page.get_by_text("Features most related to delayed")).to_be_visible()
    expect(page.get_by_text("delayed across")).to_be_visible()
    settle(page)
    assert_no_exception(page, server)
    screenshot(page, "e2e_profile_target.png")


def choose(page: Page, label: str, text: str) -> None:
    """Pick an option of a select box or multiselect by typing it."""
    page.get_by_role("combobox", name=label).click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")


def test_features_in_the_browser(page: Page, server: Server) -> None:
    """Build a two-step recipe on flights, see its preview, write it out and register it."""
    open_page(page, f"{server.url}/data")
    register(page, FLIGHTS)
    open_page(page, f"{server.url}/features?dataset=flights")
    choose(page, "Kind", "Fill missing values")
    settle(page)
    choose(page, "Columns", "dep_delay")
    page.get_by_role("button", name="Add step").click()
    expect(page.get_by_text("(the median of the training rows)")).to_be_visible()
    choose(page, "Kind", "Combine two columns")
    settle(page)
    choose(page, "First column", "distance")
    choose(page, "Operation", "ratio")
    choose(page, "Second column", "air_time")
    page.get_by_role("button", name="Add step").click()
    expect(page.get_by_text("distance_ratio_air_time = distance / air_time")).to_be_visible()
    expect(page.get_by_text("10,000 rows in → 10,000 rows out")).to_be_visible()
    settle(page)
    screenshot(page, "e2e_features.png")
    page.get_by_role("tab", name="Write to Parquet").click()
    page.get_by_label("Dataset name").fill("flights_speed")
    page.get_by_role("button", name="Write and register").click()
    expect(page.get_by_text("Wrote and registered flights_speed")).to_be_visible()
    settle(page)
    assert_no_exception(page, server)


def test_train_evaluate_explain_in_the_browser(page: Page, server: Server) -> None:
    """Train on flights from the Train page, then evaluate the run (a suggested threshold applied with one
    click) and explain it (SHAP computed, a row's waterfall, a what-if)."""
    open_page(page, f"{server.url}/data")
    register(page, FLIGHTS)
    open_page(page, f"{server.url}/train?dataset=flights")
    target = page.get_by_role("combobox", name="Target", exact=True)
    target.click()
    page.keyboard.type("delayed")
    page.get_by_role("option", name="delayed", exact=True).click()
    page.get_by_role("spinbutton", name="Most boosting rounds").fill("30")
    page.get_by_role("spinbutton", name="Early stopping (0: off)").fill("0")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Training finished")).to_be_visible(timeout=180_000)
    settle(page)

    page.get_by_role("link", name="Evaluate it").click()
    expect(page.get_by_text("ROC AUC")).to_be_visible(timeout=120_000)  # the test split scored, then evaluated
    expect(page.get_by_text("At threshold 0.5000")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Use").first.click()  # the best-F1 threshold
    settle(page)
    expect(page.get_by_text("At threshold 0.5000")).to_have_count(0)
    expect(page.get_by_text("Confusion matrix (counts)")).to_be_visible()
    screenshot(page, "e2e_evaluate.png")
    page.get_by_role("tab", name="Curves").click()
    expect(page.get_by_text("ROC curve (AUC")).to_be_visible()
    settle(page)
    screenshot(page, "e2e_evaluate_curves.png")
    page.get_by_role("tab", name="Slices").click()
    expect(page.get_by_text("worst first").first).to_be_visible()
    settle(page)
    screenshot(page, "e2e_evaluate_slices.png")
    assert_no_exception(page, server)

    page.get_by_role("link", name="Explain this model (SHAP, what-if)").click()
    page.get_by_role("button", name="Compute SHAP values").click()
    expect(page.get_by_text("How each feature moves the prediction")).to_be_visible(timeout=120_000)
    settle(page)
    screenshot(page, "e2e_explain.png")
    page.get_by_role("tab", name="Local & what-if").click()
    expect(page.get_by_text("Test row 0:")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Predict").click()
    settle(page)
    expect(page.get_by_text("What-if prediction")).to_be_visible()
    settle(page)
    assert_no_exception(page, server)
    screenshot(page, "e2e_explain_local.png")

"""Load: N concurrent browser sessions on the flights demo while a run trains; no error, nothing lost.

Starts the app as in production (``streamlit run core/server.py``) over a fresh data root holding the flights
demo, starts a training run (a worker process, as the Train page does), then drives N headless-Chromium
contexts at once: each opens Home, Data, Profile (profiles the full data), SQL (runs a query) and Runs.
Prints the slowest page load, the app's peak RSS (the Streamlit process, and with its SQL and training
processes), any page error, and checks that the catalog and the run registry lost nothing. JSON last line.

usage: python bench/load_bench.py [--sessions 20]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from playwright.async_api import async_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peak(threading.Thread):
    """Samples the app's RSS (alone, and with every child process) every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.app = self.total = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                app = self.proc.memory_info().rss
                kids = sum(c.memory_info().rss for c in self.proc.children(recursive=True))
            except psutil.Error:
                continue
            self.app, self.total = max(self.app, app), max(self.total, app + kids)


async def _settle(page, timeout_ms: int = 180_000) -> None:
    await page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout_ms)
    await page.wait_for_timeout(300)
    await page.wait_for_selector(IDLE, timeout=timeout_ms)


async def session(browser, url: str, n: int, loads: list, errors: list) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()

    async def visit(path: str, action=None) -> None:
        started = time.perf_counter()
        await page.goto(f"{url}/{path}?dataset=flights", wait_until="commit", timeout=180_000)
        await _settle(page)
        if action is not None:
            await action()
            await page.wait_for_timeout(300)
            await _settle(page)
        loads.append((time.perf_counter() - started, f"session {n} {path or 'home'}"))
        for sel in ("[data-testid='stException']", "[data-testid='stAlertContentError']"):
            for el in await page.query_selector_all(sel):
                errors.append(f"session {n} {path}: {(await el.inner_text())[:200]}")

    async def run_sql() -> None:
        await page.locator("textarea").first.fill(f"SELECT origin, count(*) AS n, {n} AS session FROM flights "
                                                  "GROUP BY origin ORDER BY n DESC")
        await page.get_by_role("button", name="Run").click()

    async def profile() -> None:
        button = page.get_by_role("button", name="Profile the full data")
        if await button.count():
            await button.first.click()

    await asyncio.sleep(n * 1.0)  # sessions arrive a second apart, as people do
    try:
        for path, action in [("", None), ("data", None), ("profile", profile), ("sql", run_sql), ("runs", None)]:
            await visit(path, action)
    except Exception as exc:  # noqa: BLE001 - a load failure is a finding, reported with the session
        errors.append(f"session {n}: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        await context.close()


async def drive(url: str, sessions: int) -> tuple[list, list]:
    loads: list = []
    errors: list = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        await asyncio.gather(*(session(browser, url, i, loads, errors) for i in range(sessions)))
        await browser.close()
    return loads, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="quarry-load-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    env.update(QUARRY_DATA_ROOTS=str(root), QUARRY_WORKSPACE=str(root / "workspace"), PYTHONUNBUFFERED="1")
    py = sys.executable
    subprocess.run([py, "-m", "core", "demo", "--only", "flights", "--out-dir", str(root)], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    from core import jobs
    from core.data.catalog import Catalog
    from core.model import runs
    from core.settings import load_settings

    os.environ.update({k: v for k, v in env.items() if k.startswith("QUARRY_")})
    settings = load_settings()
    datasets_before = Catalog(settings).names()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "streamlit.log").open("wb")
    server = subprocess.Popen([py, "-m", "streamlit", "run", "core/server.py", "--server.port", str(port),
                               "--server.headless", "true", "--server.address", "127.0.0.1"],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        peak = Peak(server.pid)
        peak.start()
        job = jobs.start(settings, "train", "train", {"dataset": "flights", "target": "dep_delay",
                                                      "features": ["month", "day", "carrier", "origin", "dest",
                                                                   "distance", "hour"],
                                                      "num_boost_round": 200, "name": "load test run"},
                         title="load test run")
        started = time.perf_counter()
        loads, errors = asyncio.run(drive(url, a.sessions))
        wall = time.perf_counter() - started
        trained = jobs.wait(settings, job, timeout_s=600)
        peak.stop.set()
        peak.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    lost = sorted(set(datasets_before) - set(Catalog(settings).names()))
    run_ids = [r.run_id for r in runs.list_runs(settings)]
    loads.sort(reverse=True)
    out = {"sessions": a.sessions, "page_loads": len(loads), "wall_s": round(wall, 1),
           "slowest_s": round(loads[0][0], 2) if loads else None, "slowest": loads[0][1] if loads else None,
           "median_s": round(sorted(x for x, _ in loads)[len(loads) // 2], 2) if loads else None,
           "app_peak_rss_mib": peak.app >> 20, "app_and_children_peak_rss_mib": peak.total >> 20,
           "errors": errors, "training": trained.state, "runs": len(run_ids), "datasets_lost": lost}
    print(f"{a.sessions} sessions, {len(loads)} page loads in {wall:.1f} s; slowest {out['slowest_s']} s "
          f"({out['slowest']}), median {out['median_s']} s")
    print(f"app peak RSS {out['app_peak_rss_mib']} MiB ({out['app_and_children_peak_rss_mib']} MiB with its SQL and "
          f"training processes); training {trained.state}; runs {len(run_ids)}; datasets lost {lost or 'none'}")
    print(f"errors: {len(errors)}")
    for e in errors[:20]:
        print("  ", e)
    print(json.dumps(out))
    shutil.rmtree(root, ignore_errors=True)
    if errors or lost or trained.state != "done" or not run_ids:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Long work (training) in a worker process of its own, followed through files in the workspace.

A job is a folder ``workspace/jobs/<id>/`` holding ``job.json`` (what to run: a function named
``module:function`` and its JSON parameters), ``progress.jsonl`` (one JSON line per report, appended
by the worker), and, when it ends, ``result.json`` or ``error.json``. The worker is a separate
process in a session of its own (``python -m core.jobs DIR``), so a page rerun, a closed tab or a
second user neither stops nor duplicates it; any page can reattach by the job's id, and *Cancel*
sends SIGTERM to the worker's process group, which really stops it.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core import atomic
from core.errors import QuarryError
from core.settings import Settings

STATES = ("running", "done", "failed", "cancelled")


def folder(settings: Settings) -> Path:
    return settings.workspace / "jobs"


def _write(path: Path, doc: object) -> None:
    """Write JSON whole or not at all."""
    atomic.write_text(path, json.dumps(doc, default=str))


@dataclass(frozen=True)
class Job:
    """A job as seen from outside: its state, its reports so far, and how it ended."""

    job_id: str
    kind: str
    title: str
    started_at: str
    state: str
    progress: tuple[dict, ...] = ()
    result: dict | None = None
    error: dict | None = None
    params: dict = field(default_factory=dict)

    @property
    def last(self) -> dict:
        return self.progress[-1] if self.progress else {}


def start(settings: Settings, kind: str, target: str, params: dict, title: str = "") -> str:
    """Start `target` ('module:function', called as function(params, reporter)) in a worker process; its id."""
    job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    path = folder(settings) / job_id
    path.mkdir(parents=True)
    _write(path / "job.json", {"job_id": job_id, "kind": kind, "target": target, "params": params,
                               "title": title, "started_at": datetime.now(UTC).isoformat(timespec="seconds")})
    env = {**os.environ, "QUARRY_WORKSPACE": str(settings.workspace)}
    with open(path / "worker.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "core.jobs", str(path)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                cwd=Path(__file__).resolve().parent.parent)
    (path / "pid").write_text(str(proc.pid))
    return job_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child not yet reaped is a zombie: not running
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def get(settings: Settings, job_id: str) -> Job:
    path = folder(settings) / job_id
    try:
        spec = json.loads((path / "job.json").read_text())
    except (OSError, ValueError):
        raise QuarryError(f"There is no job {job_id!r}.", "It may have been cleaned up; start it again.") from None
    lines = []
    if (path / "progress.jsonl").exists():
        for line in (path / "progress.jsonl").read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass  # a line being written right now
    result = _read(path / "result.json")
    error = _read(path / "error.json")
    if result is not None:
        state = "done"
    elif (path / "cancelled").exists():
        state = "cancelled"
    elif error is not None:
        state = "failed"
    else:
        pid = int((path / "pid").read_text()) if (path / "pid").exists() else 0
        state = "running" if pid and _alive(pid) else "failed"
        if state == "failed":
            error = {"message": "The worker stopped before it finished (killed, or out of memory).",
                     "hint": f"See {path / 'worker.log'}."}
    return Job(job_id=job_id, kind=spec["kind"], title=spec.get("title", ""), started_at=spec["started_at"],
               state=state, progress=tuple(lines), result=result, error=error, params=spec.get("params", {}))


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def list_jobs(settings: Settings, kind: str | None = None) -> list[Job]:
    """Every job, newest first."""
    out = []
    for path in sorted(folder(settings).glob("*/job.json"), reverse=True):
        try:
            job = get(settings, path.parent.name)
        except QuarryError:
            continue
        if kind is None or job.kind == kind:
            out.append(job)
    return out


def cancel(settings: Settings, job_id: str) -> None:
    """Stop a running job: SIGTERM to its process group (the worker and anything it started)."""
    path = folder(settings) / job_id
    (path / "cancelled").touch()
    try:
        pid = int((path / "pid").read_text())
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except (OSError, ValueError):
        pass  # already gone


def wait(settings: Settings, job_id: str, timeout_s: float = 600.0) -> Job:
    """Block until the job ends (for the CLI and tests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get(settings, job_id)
        if job.state != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


class Reporter:
    """What a job's function gets: `report(**fields)` appends a progress line; `cancelled()` is never
    needed (SIGTERM ends the process), but the reporter flushes on every line so readers see it."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path / "progress.jsonl", "a", buffering=1)

    def report(self, **fields: object) -> None:
        self._fh.write(json.dumps({"t": round(time.time(), 3), **fields}, default=str) + "\n")


def _run(path: Path) -> int:
    spec = json.loads((path / "job.json").read_text())
    module, function = spec["target"].split(":")
    reporter = Reporter(path)
    try:
        result = getattr(importlib.import_module(module), function)(spec["params"], reporter)
        _write(path / "result.json", result if isinstance(result, dict) else {"result": result})
        return 0
    except QuarryError as exc:
        _write(path / "error.json", {"message": exc.message, "hint": exc.hint})
    except BaseException as exc:  # the worker must leave a readable reason whatever happens
        _write(path / "error.json", {"message": f"{type(exc).__name__}: {exc}", "hint": "See the worker log.",
                                     "traceback": traceback.format_exc()})
    return 1


if __name__ == "__main__":
    sys.exit(_run(Path(sys.argv[1])))

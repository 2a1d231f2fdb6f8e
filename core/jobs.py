"""Long work (training) in a worker process of its own, followed through files in the workspace.

A job is a folder ``workspace/jobs/<id>/`` holding ``job.json`` (what to run: the key of a function in
the fixed registry ``TARGETS`` and its JSON parameters), ``worker.json`` (the worker's pid and the
process's start time), ``progress.jsonl`` (one JSON line per report, appended by the worker), and,
when it ends, ``result.json`` or ``error.json``. The worker is a separate process in a session of its
own (``python -m core.jobs DIR``), so a page rerun, a closed tab or a second user neither stops nor
duplicates it; any page can reattach by the job's id, and *Cancel* sends SIGTERM to the worker's
process group, which really stops it.

Everything in a job folder may have been written by someone else, so nothing read from it is trusted:
a job id (from a URL, say) must match ``JOB_ID_RE`` and its folder must resolve inside
``workspace/jobs/`` before anything is read; the worker calls only a function of ``TARGETS`` (never a
name read from job.json); and a pid is signalled only when that process started at the recorded time
and runs this job's worker command line.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from core import atomic, audit, auth
from core.errors import QuarryError
from core.fmt import shown
from core.settings import Settings

STATES = ("running", "done", "failed", "cancelled")
# What start() makes: the UTC start time, then six hex digits ('20261203-174000-a1b2c3'). Nothing else is a job id.
JOB_ID_RE = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")
# The functions a worker may call, by the key job.json records: called as function(params, reporter).
TARGETS: dict[str, str] = {"train": "core.model.job:run"}
# Test-only functions (tests/job_targets.py), known only to a process whose environment sets TEST_TARGETS_ENV=1.
TEST_TARGETS: dict[str, str] = {"test.count": "tests.job_targets:count", "test.refuse": "tests.job_targets:refuse"}
TEST_TARGETS_ENV = "QUARRY_TEST_JOB_TARGETS"
STARTING_S = 10.0  # a worker this young may not show its command line yet
START_TIME_TOLERANCE_S = 0.005  # process start times tick in 1/100 s: two processes never fall this close


class JobError(QuarryError):
    """A job that does not exist, or whose id or target is refused."""


class JobIdError(JobError):
    """A job id that is not of the form start() makes (e.g. '../../demo'): refused before any disk access."""


class JobTargetError(JobError):
    """A job function that is not in the registry of job functions."""


def folder(settings: Settings) -> Path:
    return settings.workspace / "jobs"


def check_job_id(job_id: object) -> str:
    """`job_id` if it is a job id as start() makes them; else JobIdError (nothing on disk is touched)."""
    if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
        raise JobIdError(f"{shown(job_id)} is not a job id.",
                         "A job id is the time it started and six hex digits, like 20261203-174000-a1b2c3.")
    return job_id


def job_dir(settings: Settings, job_id: str) -> Path:
    """The folder of job `job_id`, resolved; a bad id or a folder that resolves outside workspace/jobs raises."""
    check_job_id(job_id)
    base = folder(settings).resolve()
    path = (base / job_id).resolve()
    if path.parent != base:  # a symlink planted in workspace/jobs
        raise JobIdError(f"The folder of job {job_id!r} is outside {base}.", "Remove the link from the jobs folder.")
    return path


def _no_job(job_id: str) -> JobError:
    return JobError(f"There is no job {job_id!r}.", "It may have been cleaned up; start it again.")


def targets() -> dict[str, str]:
    """The job functions a worker may call, by key: TARGETS, and TEST_TARGETS when the tests turned them on."""
    return {**TARGETS, **TEST_TARGETS} if os.environ.get(TEST_TARGETS_ENV) == "1" else dict(TARGETS)


def _check_target(key: object) -> str:
    known = targets()
    if not isinstance(key, str) or key not in known:
        raise JobTargetError(f"{shown(key)} is not a job function.",
                             f"A job runs one of the functions registered in core.jobs.TARGETS: {', '.join(known)}.")
    return key


def _function(key: object) -> Callable[[dict, Reporter], object]:
    """The registered function of `key` (never a module or function named by a file)."""
    module, function = targets()[_check_target(key)].split(":")
    return getattr(importlib.import_module(module), function)


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


def _command(path: Path) -> list[str]:
    """The worker's command line for the job folder `path`."""
    return [sys.executable, "-m", "core.jobs", str(path)]


def start(settings: Settings, kind: str, target: str, params: dict, title: str = "") -> str:
    """Start a registered job function in a worker process; the job's id.

    Parameters
    ----------
    kind
        What the job is for ("train"); list_jobs filters by it.
    target
        A key of ``TARGETS`` (e.g. "train"); the worker calls that function as ``function(params, reporter)``.
    params
        JSON parameters, written to job.json.
    """
    _check_target(target)
    if kind in auth.ACTIONS:  # e.g. "train": analysts and admins only
        auth.require(kind)
    params = {**params, "created_by": params.get("created_by") or auth.who()}  # the worker acts for them
    job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    path = job_dir(settings, job_id)
    path.mkdir(parents=True)
    _write(path / "job.json", {"job_id": job_id, "kind": kind, "target": target, "params": params,
                               "title": title, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "created_by": params["created_by"]})
    audit.record(settings, f"{kind}.start", job=job_id, title=title, dataset=params.get("dataset"),
                 target=params.get("target"))
    env = {**os.environ, "QUARRY_WORKSPACE": str(settings.workspace)}
    with open(path / "worker.log", "ab") as log:
        proc = subprocess.Popen(_command(path), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=Path(__file__).resolve().parent.parent)
    # The child is not reaped yet, so its pid cannot have been reused: its start time is the worker's.
    _write(path / "worker.json", {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time()})
    return job_id


def _alive(pid: int) -> bool:
    """Whether a process `pid` exists and is not a zombie (a finished child not yet reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def _worker(path: Path) -> psutil.Process | None:
    """The running worker of the job folder `path`, or None.

    A pid alone may name any process (a reused pid, a planted file), so the process must also have
    started at the time recorded in worker.json and run this folder's worker command line.
    """
    doc = _read(path / "worker.json") or {}
    pid, created = doc.get("pid"), doc.get("create_time")
    if type(pid) is not int or pid <= 1 or type(created) not in (int, float):
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > START_TIME_TOLERANCE_S or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = proc.cmdline()
        # Just after the start the kernel may show an empty command line for a moment (the exec settling): a
        # process that young, with this pid and start time, is the worker Quarry just started.
        starting = not cmdline and time.time() - proc.create_time() < STARTING_S
        if not starting and cmdline[-3:] != _command(path)[-3:]:
            return None
    except psutil.Error:  # gone, or another user's process
        return None
    return proc


def get(settings: Settings, job_id: str) -> Job:
    """A job's state, progress and outcome; JobIdError for a malformed id, JobError for an unknown one."""
    path = job_dir(settings, job_id)
    spec = _read(path / "job.json")
    if spec is None:
        raise _no_job(job_id)
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
        state = "running" if _worker(path) is not None else "failed"
        if state == "failed":
            error = {"message": "The worker stopped before it finished (killed, or out of memory).",
                     "hint": f"See {path / 'worker.log'}."}
    params = spec.get("params")
    return Job(job_id=job_id, kind=str(spec.get("kind", "")), title=str(spec.get("title", "")),
               started_at=str(spec.get("started_at", "")), state=state, progress=tuple(lines), result=result,
               error=error, params=params if isinstance(params, dict) else {})


def _read(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def list_jobs(settings: Settings, kind: str | None = None) -> list[Job]:
    """Every job, newest first (folders whose name is not a job id are skipped)."""
    out = []
    for path in sorted(folder(settings).glob("*/job.json"), reverse=True):
        if not JOB_ID_RE.fullmatch(path.parent.name):
            continue
        try:
            job = get(settings, path.parent.name)
        except QuarryError:
            continue
        if kind is None or job.kind == kind:
            out.append(job)
    return out


def cancel(settings: Settings, job_id: str) -> None:
    """Stop a running job: SIGTERM to its worker's process group (the worker and anything it started).

    Only a worker this job started is signalled (see ``_worker``); a job whose worker is gone is just
    marked cancelled.
    """
    path = job_dir(settings, job_id)
    if not (path / "job.json").is_file():
        raise _no_job(job_id)
    _write(path / "cancelled", {"at": datetime.now(UTC).isoformat(timespec="seconds")})  # never follows a link
    proc = _worker(path)
    if proc is None:
        return
    try:
        if os.getpgid(proc.pid) == proc.pid:  # the worker leads its own session and group (start_new_session)
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)  # psutil checks again that the pid was not reused
    except (OSError, psutil.Error):
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
    """The worker: call the registered function job.json names by key; leave result.json or error.json."""
    try:
        spec = _read(path / "job.json")
        if spec is None:
            raise JobError(f"The job file {path / 'job.json'} is missing or unreadable.", "Start the job again.")
        function = _function(spec.get("target"))  # refuses anything but a registered key, before calling anything
        params = spec.get("params")
        result = function(params if isinstance(params, dict) else {}, Reporter(path))
        _write(path / "result.json", result if isinstance(result, dict) else {"result": result})
        return 0
    except QuarryError as exc:
        _write(path / "error.json", {"message": exc.message, "hint": exc.hint})
    except BaseException as exc:  # the worker must leave a readable reason whatever happens
        _write(path / "error.json", {"message": f"{type(exc).__name__}: {exc}", "hint": "See the worker log.",
                                     "traceback": traceback.format_exc()})
    return 1


def main(argv: list[str]) -> int:
    """`python -m core.jobs DIR`: run the job in DIR, a job folder (its name a job id)."""
    if len(argv) != 1:
        print("usage: python -m core.jobs JOB_FOLDER", file=sys.stderr)
        return 2
    path = Path(argv[0]).resolve()
    try:
        check_job_id(path.name)
    except JobIdError as exc:
        print(f"{exc.message} {exc.hint}", file=sys.stderr)
        return 2
    return _run(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

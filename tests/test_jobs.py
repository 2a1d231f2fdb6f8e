"""Worker-process jobs: results, progress, cancel, failures, a killed worker, reattaching from anywhere; and
what a job folder may not make Quarry do: follow an id outside workspace/jobs, signal a process it did not
start, or call a function that is not registered."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from core import jobs
from tests.conftest import REPO, until

JOB_ID = "20261203-174000-a1b2c3"
BAD_IDS = ["../../demo", "../jobs/" + JOB_ID, JOB_ID + "/../../../demo", "/etc", "/tmp/" + JOB_ID, JOB_ID + "\n",
           JOB_ID + "\x00", "2026\x001203-174000-a1b2c3", "9" * 10_000, "", ".", "..", "nope",
           "20261203-174000-A1B2C3", "２０２６１２０３-174000-a1b2c3", " " + JOB_ID]


@pytest.fixture(autouse=True)
def test_targets(monkeypatch):
    """The test-only job functions (tests/job_targets.py) are known to this process and its workers."""
    monkeypatch.setenv(jobs.TEST_TARGETS_ENV, "1")


@pytest.fixture
def stranger():
    """A process Quarry did not start, in a session of its own (a target for a planted pid)."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def plant(path: Path, pid: int | None = None, create_time: float | None = None, target: str = "test.count") -> Path:
    """A hand-made job folder: job.json, and the old `pid` file and a worker.json naming `pid`."""
    path.mkdir(parents=True)
    (path / "job.json").write_text(json.dumps({"job_id": path.name, "kind": "test", "target": target,
                                               "params": {"n": 1}, "title": "planted",
                                               "started_at": "2026-12-03T17:40:00+00:00"}))
    if pid is not None:
        (path / "pid").write_text(str(pid))
        (path / "worker.json").write_text(json.dumps({"pid": pid, "create_time": create_time}))
    return path


def still_running(proc: subprocess.Popen) -> bool:
    time.sleep(0.3)  # a SIGTERM would have ended `sleep` by now
    return proc.poll() is None


def test_a_job_runs_in_another_process_and_reports(settings):
    job_id = jobs.start(settings, "test", "test.count", {"n": 5}, title="five")
    assert jobs.JOB_ID_RE.fullmatch(job_id)
    job = jobs.wait(settings, job_id, timeout_s=30)
    assert job.state == "done" and job.result == {"counted": 5} and job.title == "five"
    assert [p["step"] for p in job.progress] == [1, 2, 3, 4, 5]
    assert job.progress[0]["pid"] != os.getpid()
    assert [j.job_id for j in jobs.list_jobs(settings, kind="test")] == [job_id]
    assert json.loads((jobs.folder(settings) / job_id / "job.json").read_text())["target"] == "test.count"


def test_the_worker_is_recorded_by_pid_and_start_time(settings):
    job_id = jobs.start(settings, "test", "test.count", {"n": 1000, "sleep": 0.05})
    pid = until(lambda: jobs.get(settings, job_id).last.get("pid"), timeout=20.0)
    doc = json.loads((jobs.folder(settings) / job_id / "worker.json").read_text())
    assert doc == {"pid": pid, "create_time": psutil.Process(pid).create_time()}
    jobs.cancel(settings, job_id)
    until(lambda: not jobs._alive(pid), timeout=20.0)


def test_cancel_really_stops_the_worker(settings):
    job_id = jobs.start(settings, "test", "test.count", {"n": 1000, "sleep": 0.05})
    pid = until(lambda: jobs.get(settings, job_id).last.get("pid"), timeout=20.0)
    assert jobs.get(settings, job_id).state == "running"
    jobs.cancel(settings, job_id)
    until(lambda: not jobs._alive(pid), timeout=20.0)
    job = jobs.get(settings, job_id)
    assert job.state == "cancelled" and job.result is None and len(job.progress) < 1000


def test_a_failure_keeps_its_message(settings):
    job = jobs.wait(settings, jobs.start(settings, "test", "test.refuse", {}), timeout_s=30)
    assert job.state == "failed" and job.error == {"message": "The data has no column 'y'.",
                                                   "hint": "Pick another target."}


def test_a_killed_worker_reads_as_failed_not_running(settings):
    job_id = jobs.start(settings, "test", "test.count", {"n": 1000, "sleep": 0.05})
    pid = until(lambda: jobs.get(settings, job_id).last.get("pid"), timeout=20.0)
    os.kill(pid, signal.SIGKILL)  # out of memory, say
    until(lambda: not jobs._alive(pid), timeout=20.0)
    job = jobs.get(settings, job_id)
    assert job.state == "failed" and "stopped before it finished" in job.error["message"]


def test_unknown_job(settings):
    with pytest.raises(jobs.JobError, match="There is no job '20250101-000000-abcdef'"):
        jobs.get(settings, "20250101-000000-abcdef")
    with pytest.raises(jobs.JobError, match="There is no job"):
        jobs.cancel(settings, "20250101-000000-abcdef")
    assert not (jobs.folder(settings) / "20250101-000000-abcdef").exists()


# ---- Job ids are names, never paths


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda b: repr(b)[:30])
def test_a_bad_job_id_is_refused_before_touching_the_disk(settings, root, stranger, bad):
    demo = plant(root / "demo", stranger.pid, psutil.Process(stranger.pid).create_time())  # what ../../demo names
    jobs.folder(settings).mkdir(parents=True)  # as in any workspace that ran a job: ".." then resolves
    before = sorted(root.rglob("*"))
    for call in (jobs.get, jobs.cancel, jobs.wait, jobs.job_dir):
        with pytest.raises(jobs.JobIdError, match="is not a job id") as err:
            call(settings, bad)
        assert "20261203-174000-a1b2c3" in err.value.hint and len(err.value.message) < 80
    assert isinstance(err.value, jobs.QuarryError)
    assert not (demo / "cancelled").exists() and still_running(stranger)
    assert sorted(root.rglob("*")) == before  # nothing was made anywhere


def test_check_job_id_takes_exactly_what_start_makes(settings):
    assert jobs.check_job_id(JOB_ID) == JOB_ID
    for bad in (None, 20261203, b"20261203-174000-a1b2c3", *BAD_IDS):
        with pytest.raises(jobs.JobIdError):
            jobs.check_job_id(bad)


def test_a_job_folder_linked_outside_the_jobs_folder_is_refused(settings, root, stranger):
    demo = plant(root / "demo", stranger.pid, psutil.Process(stranger.pid).create_time())
    jobs.folder(settings).mkdir(parents=True)
    (jobs.folder(settings) / JOB_ID).symlink_to(demo, target_is_directory=True)
    for call in (jobs.get, jobs.cancel):
        with pytest.raises(jobs.JobIdError, match="is outside"):
            call(settings, JOB_ID)
    assert jobs.list_jobs(settings) == []
    assert not (demo / "cancelled").exists() and still_running(stranger)


def test_folders_that_are_not_jobs_are_not_listed(settings):
    plant(jobs.folder(settings) / JOB_ID)
    plant(jobs.folder(settings) / "planted")
    assert [j.job_id for j in jobs.list_jobs(settings)] == [JOB_ID]


# ---- Only a worker Quarry started is ever signalled


def test_a_planted_pid_is_never_signalled(settings, stranger):
    """A job folder naming another process, even with its true start time, neither runs nor stops it."""
    path = plant(jobs.folder(settings) / JOB_ID, stranger.pid, psutil.Process(stranger.pid).create_time())
    assert jobs.get(settings, JOB_ID).state == "failed"  # not "running": that process is not this job's worker
    jobs.cancel(settings, JOB_ID)
    assert still_running(stranger)
    assert jobs.get(settings, JOB_ID).state == "cancelled" and (path / "cancelled").exists()


@pytest.mark.parametrize("doc", [{"pid": "{pid}"}, {"pid": "{pid}", "create_time": 1.0},
                                 {"pid": "{pid}", "create_time": "x"}, {"pid": "{pid}", "create_time": None},
                                 {"pid": 0, "create_time": 1.0}, {"pid": -1, "create_time": 1.0}, {"pid": True}],
                         ids=str)
def test_a_worker_file_that_does_not_match_the_process_signals_nothing(settings, stranger, doc):
    path = plant(jobs.folder(settings) / JOB_ID)
    planted = {k: stranger.pid if v == "{pid}" else v for k, v in doc.items()}
    (path / "pid").write_text(str(stranger.pid))
    (path / "worker.json").write_text(json.dumps(planted))
    assert jobs.get(settings, JOB_ID).state == "failed"
    jobs.cancel(settings, JOB_ID)
    assert still_running(stranger)


def test_a_worker_whose_command_line_is_not_readable_yet_is_running_only_while_young(settings, stranger,
                                                                                      monkeypatch):
    """Just after the start /proc/PID/cmdline can read empty for a moment: a young process with the recorded pid
    and start time is the worker (the Train page once took such a job for dead); an old one is not."""
    plant(jobs.folder(settings) / JOB_ID, stranger.pid, psutil.Process(stranger.pid).create_time())
    monkeypatch.setattr(psutil.Process, "cmdline", lambda self: [])
    assert jobs.get(settings, JOB_ID).state == "running"
    monkeypatch.setattr(jobs, "STARTING_S", 0.0)
    assert jobs.get(settings, JOB_ID).state == "failed"
    jobs.cancel(settings, JOB_ID)
    assert still_running(stranger)


def test_a_recorded_worker_whose_pid_was_reused_is_not_signalled(settings, stranger):
    """The same pid, but a process started at another time: a different process."""
    path = plant(jobs.folder(settings) / JOB_ID)
    created = psutil.Process(stranger.pid).create_time()
    (path / "worker.json").write_text(json.dumps({"pid": stranger.pid, "create_time": created - 3600}))
    jobs.cancel(settings, JOB_ID)
    assert still_running(stranger)


# ---- The worker calls only registered functions


@pytest.mark.parametrize("target", ["os:system", "shutil:rmtree", "tests.job_targets:count", "core.model.job:run",
                                    "builtins:exec", None, 7, ["train"], "train\n", ""])
def test_the_worker_refuses_a_target_that_is_not_registered(settings, root, target):
    """job.json edited to name any function: the worker (a real one, test functions known) calls nothing."""
    canary = root / "canary"
    canary.mkdir()
    path = plant(jobs.folder(settings) / JOB_ID, target=target)
    (path / "job.json").write_text(json.dumps({**json.loads((path / "job.json").read_text()),
                                               "params": str(canary)}))  # what rmtree would delete
    worker = subprocess.run([sys.executable, "-m", "core.jobs", str(path)], cwd=REPO, timeout=60,
                            env={**os.environ, "QUARRY_WORKSPACE": str(settings.workspace)})
    assert worker.returncode == 1 and canary.is_dir()
    error = json.loads((path / "error.json").read_text())
    assert error["message"].endswith("is not a job function.") and "core.jobs.TARGETS" in error["hint"]
    assert not (path / "result.json").exists() and not (path / "progress.jsonl").exists()
    assert jobs.get(settings, JOB_ID).state == "failed"


def test_a_target_read_from_job_json_is_never_called(settings, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda *args: calls.append(args) or 0)
    path = plant(jobs.folder(settings) / JOB_ID, target="os:system")
    assert jobs._run(path) == 1
    assert calls == []
    assert json.loads((path / "error.json").read_text())["message"] == "'os:system' is not a job function."


def test_start_takes_only_registered_targets(settings, monkeypatch):
    with pytest.raises(jobs.JobTargetError, match="'tests.job_targets:count' is not a job function"):
        jobs.start(settings, "test", "tests.job_targets:count", {"n": 1})
    monkeypatch.delenv(jobs.TEST_TARGETS_ENV)  # outside the tests, the test functions do not exist
    with pytest.raises(jobs.JobTargetError, match="'test.count' is not a job function"):
        jobs.start(settings, "test", "test.count", {"n": 1})
    assert set(jobs.targets()) == {"train"}
    assert not jobs.folder(settings).exists() or not list(jobs.folder(settings).iterdir())


def test_the_worker_runs_only_in_a_job_folder(settings, root):
    assert jobs.main([str(root)]) == 2
    assert jobs.main([str(jobs.folder(settings) / "..")]) == 2
    assert not (root / "error.json").exists() and not (settings.workspace / "error.json").exists()

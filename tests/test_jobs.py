"""Worker-process jobs: results, progress, cancel, failures, a killed worker, reattaching from anywhere."""
from __future__ import annotations

import os
import signal

import pytest

from core import jobs
from tests.conftest import until


def test_a_job_runs_in_another_process_and_reports(settings):
    job_id = jobs.start(settings, "test", "tests.job_targets:count", {"n": 5}, title="five")
    job = jobs.wait(settings, job_id, timeout_s=30)
    assert job.state == "done" and job.result == {"counted": 5} and job.title == "five"
    assert [p["step"] for p in job.progress] == [1, 2, 3, 4, 5]
    assert job.progress[0]["pid"] != os.getpid()
    assert [j.job_id for j in jobs.list_jobs(settings, kind="test")] == [job_id]


def test_cancel_really_stops_the_worker(settings):
    job_id = jobs.start(settings, "test", "tests.job_targets:count", {"n": 1000, "sleep": 0.05})
    pid = until(lambda: jobs.get(settings, job_id).last.get("pid"), timeout=20.0)
    assert jobs.get(settings, job_id).state == "running"
    jobs.cancel(settings, job_id)
    until(lambda: not jobs._alive(pid), timeout=20.0)
    job = jobs.get(settings, job_id)
    assert job.state == "cancelled" and job.result is None and len(job.progress) < 1000


def test_a_failure_keeps_its_message(settings):
    job = jobs.wait(settings, jobs.start(settings, "test", "tests.job_targets:refuse", {}), timeout_s=30)
    assert job.state == "failed" and job.error == {"message": "The data has no column 'y'.",
                                                   "hint": "Pick another target."}


def test_a_killed_worker_reads_as_failed_not_running(settings):
    job_id = jobs.start(settings, "test", "tests.job_targets:count", {"n": 1000, "sleep": 0.05})
    pid = until(lambda: jobs.get(settings, job_id).last.get("pid"), timeout=20.0)
    os.kill(pid, signal.SIGKILL)  # out of memory, say
    until(lambda: not jobs._alive(pid), timeout=20.0)
    job = jobs.get(settings, job_id)
    assert job.state == "failed" and "stopped before it finished" in job.error["message"]


def test_unknown_job(settings):
    with pytest.raises(jobs.QuarryError, match="no job"):
        jobs.get(settings, "nope")

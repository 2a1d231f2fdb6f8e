"""Job functions for tests of core.jobs, run in a worker process.

They are registered in core.jobs.TEST_TARGETS under "test.*" keys, which a process knows only when its
environment sets QUARRY_TEST_JOB_TARGETS=1 (the tests' fixture does; a worker inherits it): a job names a
registry key, never a module to import.
"""
from __future__ import annotations

import os
import time

from core.errors import QuarryError


def count(params: dict, reporter) -> dict:
    for i in range(params["n"]):
        reporter.report(step=i + 1, of=params["n"], pid=os.getpid())
        time.sleep(params.get("sleep", 0.0))
    return {"counted": params["n"]}


def refuse(params: dict, reporter) -> dict:
    reporter.report(step=1)
    raise QuarryError("The data has no column 'y'.", "Pick another target.")

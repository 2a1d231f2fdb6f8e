"""Job functions for tests of core.jobs (run in a worker process by import path)."""
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

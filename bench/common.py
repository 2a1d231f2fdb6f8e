"""What the benchmarks share: peak RSS, one worker process per system, the synthetic data file."""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The synthetic transactions' label and the 12 features the training benches use (IDs and the time left out)
TRANSACTIONS_TARGET = "is_fraud"
TRANSACTIONS_FEATURES = ["hour", "customer_age", "account_age_days", "card_type", "merchant_category", "channel",
                         "country", "is_foreign", "amount", "distance_from_home_km", "velocity_24h", "device_score"]


def peak_rss_mib() -> float:
    """This process's peak resident memory, MiB.

    VmHWM belongs to this process image alone; ru_maxrss is carried over from the parent through
    fork and exec, so a worker would report at least the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(script: str, name: str, path: str, repeat: int, env: dict) -> dict:
    """Run `script --worker name` in a fresh process; its last stdout line is a JSON dict of figures."""
    proc = subprocess.run([sys.executable, script, "--worker", name, "--path", path, "--repeat", str(repeat)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_all(script: str, workers: dict, path: Path, repeat: int, env: dict) -> dict:
    """Every worker of a bench, each in its own process, in the order given: {name: figures}."""
    return {name: run_worker(script, name, str(path), repeat, env) for name in workers}


@contextmanager
def workspace_env() -> Iterator[dict]:
    """The environment for workers: this one, with a temporary Quarry workspace (removed afterwards)."""
    with tempfile.TemporaryDirectory() as ws:
        yield {**os.environ, "QUARRY_WORKSPACE": ws}


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(first run, median of all runs) of `fn`, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def transactions_file(rows: int) -> Path:
    """data/bench/transactions_ROWS.parquet, generated once (it takes ~0.9 s per million rows)."""
    sys.path.insert(0, str(REPO))
    from core.data import demo

    path = REPO / "data" / "bench" / f"transactions_{rows}.parquet"
    if not path.exists():
        print(f"generating {rows:,} synthetic rows into {path} (once) ...", flush=True)
        res = demo.write_transactions(path, rows=rows)
        print(f"  {res.seconds:.0f} s, {res.bytes / 2**30:.2f} GiB", flush=True)
    return path


def arguments(doc: str, workers: dict, rows: int, repeat: int):
    """The bench's arguments; in a worker process, run the worker, print its figures and return None."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rows", type=int, default=rows)
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--worker", choices=sorted(workers))
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(workers[args.worker](args.path, args.repeat)))
        return None
    return args

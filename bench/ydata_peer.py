"""Peer benchmark: ydata-profiling (minimal mode) on the first N rows of a Parquet file.

ydata-profiling pins its own pandas/numpy ranges, so it lives in a virtualenv of its own
(``data/bench/.ydata-venv``), never in the project's ``.venv``. Installing is one step (done once,
minutes); timing is another, run in that venv's python as a fresh process so its peak RSS is its own.

    python bench/ydata_peer.py PARQUET [--rows 1000000] [--install-only]

The last stdout line is one JSON object: {"system", "rows", "seconds", "peak_rss_mib", "version", ...}
or {"skipped": reason} when ydata-profiling cannot be installed. ``seconds`` and ``peak_rss_mib`` cover
``ProfileReport(df, minimal=True).get_description()``, the statistics (what Quarry's profile computes);
reading the slice into pandas (``read_s``) and ``to_json()`` (``to_json_s``, ``peak_rss_with_json_mib``)
are reported apart. The peak RSS includes the pandas frame (``rss_after_read_mib``).

This file imports only the standard library at top level: the worker runs under the other venv's python.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "data" / "bench" / ".ydata-venv"
# Pinned so figures are comparable between runs; the newest release at the time of writing.
YDATA_VERSION = "4.18.4"
# setuptools 81+ dropped pkg_resources, which ydata-profiling 4.18 still imports (profile_report.py).
REQUIREMENTS = (f"ydata-profiling=={YDATA_VERSION}", "setuptools<81", "pyarrow")
SYSTEM = "ydata-profiling minimal"
INSTALL_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 3600


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def installed_version(venv: Path = VENV) -> str | None:
    """The ydata-profiling version in `venv`, or None if the venv is missing or it does not import."""
    py = venv_python(venv)
    if not py.exists():
        return None
    # Importing, not only reading its metadata: an install can succeed and the import still fail.
    proc = subprocess.run([str(py), "-c", "import ydata_profiling; print(ydata_profiling.__version__)"],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def install(venv: Path = VENV, quiet: bool = True) -> str:
    """Create `venv` and install the pinned ydata-profiling into it (once); its version.

    Raises RuntimeError naming the failing step and pip's last line when it cannot be installed.
    """
    if installed_version(venv) == YDATA_VERSION:
        return YDATA_VERSION
    venv.parent.mkdir(parents=True, exist_ok=True)
    # The base interpreter, not the project's venv: `python -m venv` from inside a venv still bases
    # the new one on the base install, but say so explicitly.
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", str(venv)],
             [str(venv_python(venv)), "-m", "pip", "install", "--upgrade", "pip"],
             [str(venv_python(venv)), "-m", "pip", "install", *REQUIREMENTS]]
    for cmd in steps:
        if not quiet:
            print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines() or [f"exit {proc.returncode}"]
            raise RuntimeError(f"{' '.join(cmd[1:4])} failed: {tail[-1]}")
    version = installed_version(venv)
    if version is None:
        raise RuntimeError("ydata-profiling installed but `import ydata_profiling` fails in the venv")
    return version


def measure(parquet_path: str | Path, rows: int, venv: Path = VENV) -> dict:
    """Install if needed, then time ydata-profiling minimal on the first `rows` rows, in a fresh process."""
    try:
        install(venv)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        return {"system": SYSTEM, "rows": rows, "skipped": f"ydata-profiling could not be installed: {exc}"}
    cmd = [str(venv_python(venv)), str(Path(__file__).resolve()), str(parquet_path), "--rows", str(rows), "--worker"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"system": SYSTEM, "rows": rows, "error": f"ran past {RUN_TIMEOUT_S} s"}
    if proc.returncode != 0:
        return {"system": SYSTEM, "rows": rows,
                "error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB; as bench.common.peak_rss_mib, stdlib only."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(parquet_path: str, rows: int) -> dict:
    """Runs in the ydata venv: read the first `rows` rows with pyarrow, then profile them."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    batches, have = [], 0
    for batch in pq.ParquetFile(parquet_path).iter_batches(batch_size=min(rows, 262_144)):
        batches.append(batch.slice(0, rows - have))
        have += batches[-1].num_rows
        if have >= rows:
            break
    frame = pa.Table.from_batches(batches).to_pandas()
    read_s = time.perf_counter() - t0
    rss_after_read = _peak_rss_mib()

    import ydata_profiling
    from ydata_profiling import ProfileReport

    t0 = time.perf_counter()
    report = ProfileReport(frame, minimal=True, progress_bar=False)
    report.get_description()  # the statistics: the work Quarry's profile does
    describe_s = time.perf_counter() - t0
    rss_describe = _peak_rss_mib()
    t0 = time.perf_counter()
    # Serialising the description; it holds every column's full value counts (one entry per distinct
    # value), so on high-cardinality columns it costs more than the statistics themselves.
    text = report.to_json()
    json_s = time.perf_counter() - t0
    return {"system": SYSTEM, "rows": len(frame), "columns": frame.shape[1], "seconds": round(describe_s, 3),
            "peak_rss_mib": round(rss_describe, 1), "version": ydata_profiling.__version__,
            "read_s": round(read_s, 3), "rss_after_read_mib": round(rss_after_read, 1),
            "to_json_s": round(json_s, 3), "peak_rss_with_json_mib": round(_peak_rss_mib(), 1),
            "json_mib": round(len(text.encode()) / 2**20, 1), "python": sys.version.split()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parquet")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--install-only", action="store_true", help="create the venv and install, then stop")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.parquet, args.rows)))
        return
    if args.install_only:
        try:
            print(json.dumps({"installed": install(quiet=False), "venv": str(VENV)}))
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            print(json.dumps({"skipped": f"ydata-profiling could not be installed: {exc}"}))
        return
    print(json.dumps(measure(args.parquet, args.rows)))


if __name__ == "__main__":
    main()

"""Where demo files go, what writing one returns, and the atomic write they all use."""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import QuarryError
from core.settings import REPO_ROOT

DEMO_DIR = REPO_ROOT / "data" / "demo"
FLIGHTS_FILE = "flights.parquet"
TRANSACTIONS_FILE = "transactions.parquet"
DEFAULT_TRANSACTION_ROWS = 1_000_000

@dataclass(frozen=True)
class DemoResult:
    """A demo file that was written: where, how big, and how long it took."""

    path: Path
    rows: int
    columns: int
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the path as a string)."""
        return {**asdict(self), "path": str(self.path)}


# ---------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------


@contextmanager
def atomic_path(out: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``out``; move it onto ``out`` only if the block succeeds."""
    if out.is_dir():
        raise QuarryError(f"Cannot write the demo file: {out} is a folder.", "Give a file path ending in .parquet.")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so os.replace is a rename on one file system; a leading dot keeps folder scans
    # that look for *.parquet from picking up a file that is still being written.
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a data file is readable like any other
        os.replace(tmp, out)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def demo_result(out: Path, rows: int, columns: int, started: float) -> DemoResult:
    return DemoResult(
        path=out, rows=rows, columns=columns, bytes=out.stat().st_size, seconds=time.perf_counter() - started
    )



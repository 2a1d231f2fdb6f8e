"""Where demo files go, what writing one returns, and the atomic write they all use."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from core import atomic
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
    """core.atomic.atomic_path, refusing a folder with a message about demo files."""
    if out.is_dir():
        raise QuarryError(f"Cannot write the demo file: {out} is a folder.", "Give a file path ending in .parquet.")
    with atomic.atomic_path(out) as tmp:
        yield tmp


def demo_result(out: Path, rows: int, columns: int, started: float) -> DemoResult:
    return DemoResult(
        path=out, rows=rows, columns=columns, bytes=out.stat().st_size, seconds=time.perf_counter() - started
    )



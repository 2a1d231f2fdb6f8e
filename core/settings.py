"""Settings: data roots, workspace, DuckDB memory/thread limits and time limits, from the environment.

Every setting has an environment variable (documented in the README) and a default that works
on a fresh clone: data under ``data/`` of the repository, the workspace under ``data/workspace``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.errors import QuarryError

REPO_ROOT = Path(__file__).resolve().parent.parent
_MEMORY_RE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    """Where Quarry reads and writes, and the limits it runs under."""

    data_roots: tuple[Path, ...]
    workspace: Path
    temp_dir: Path
    memory_limit: str
    threads: int
    sql_time_limit_s: float
    download_max_rows: int
    train_memory_mb: float = 2048.0  # past this, training data goes through a lightgbm.Sequence

    @property
    def readable_roots(self) -> tuple[Path, ...]:
        """Folders DuckDB may read: the data roots plus the workspace (saved datasets live there)."""
        roots = list(self.data_roots)
        if not any(_is_within(self.workspace, r) for r in roots):
            roots.append(self.workspace)
        return tuple(roots)

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded files are stored: inside the first data root, so they can be registered."""
        return self.data_roots[0] / "uploads"

    @property
    def datasets_dir(self) -> Path:
        """Where datasets saved from SQL results are materialised."""
        return self.workspace / "datasets"

    def key(self) -> tuple:
        """A hashable identity, used to cache one DuckDB connection per configuration."""
        return (self.data_roots, self.workspace, self.temp_dir, self.memory_limit, self.threads)


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _env_number(name: str, default: float, kind: type, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise QuarryError(
            f"The setting {name} must be a {'whole ' if kind is int else ''}number >= {minimum}. Got {raw!r}.",
            f"Fix or unset the environment variable {name}.",
        )
    return value


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_bytes(text: str) -> int:
    """A size such as '4GB', '512MiB' or '1.5 GiB' in bytes (the forms QUARRY_MEMORY_LIMIT takes)."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise QuarryError(f"{text!r} is not a size like '4GB' or '512MiB'.", "Give a number and a unit.")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def default_memory_limit() -> str:
    """Half of this machine's RAM, leaving room for Python, the browser and the OS."""
    return f"{max(1, psutil.virtual_memory().total // 2 // 2**30)}GiB"


def load_settings() -> Settings:
    """Read settings from the environment (see README, 'Settings')."""
    roots_raw = os.environ.get("QUARRY_DATA_ROOTS", "").strip()
    roots = [Path(p).expanduser() for p in roots_raw.split(os.pathsep) if p.strip()] or [REPO_ROOT / "data"]
    roots = tuple(p.resolve() for p in roots)
    workspace = Path(os.environ.get("QUARRY_WORKSPACE") or roots[0] / "workspace").expanduser().resolve()
    temp_dir = Path(os.environ.get("QUARRY_TEMP_DIR") or workspace / "tmp").expanduser().resolve()
    memory = os.environ.get("QUARRY_MEMORY_LIMIT", "").strip() or default_memory_limit()
    if not _MEMORY_RE.match(memory):
        raise QuarryError(
            f"The setting QUARRY_MEMORY_LIMIT must be a size like '4GB' or '512MiB'. Got {memory!r}.",
            "Fix or unset the environment variable QUARRY_MEMORY_LIMIT.",
        )
    return Settings(
        data_roots=roots,
        workspace=workspace,
        temp_dir=temp_dir,
        memory_limit=memory.replace(" ", ""),
        threads=int(_env_number("QUARRY_THREADS", os.cpu_count() or 1, int, 1)),
        sql_time_limit_s=float(_env_number("QUARRY_SQL_TIME_LIMIT_S", 30.0, float, 0.1)),
        download_max_rows=int(_env_number("QUARRY_DOWNLOAD_MAX_ROWS", 1_000_000, int, 1)),
        train_memory_mb=float(_env_number("QUARRY_TRAIN_MEMORY_MB", 2048.0, float, 0.01)),
    )

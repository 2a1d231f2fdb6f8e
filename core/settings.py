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
    sql_memory_limit: str = "2GB"  # DuckDB's limit in a user query's process (see core.sqlworker)

    @property
    def sql_memory_cap_bytes(self) -> int:
        """A user query's process is killed past this resident memory: its DuckDB limit plus 25 % and 512 MiB
        for what DuckDB does not count (Python, Arrow buffers, allocations outside its buffer manager)."""
        return int(memory_bytes(self.sql_memory_limit) * 1.25) + 512 * 2**20

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


def _check_memory(name: str, value: str) -> str:
    if not _MEMORY_RE.match(value):
        raise QuarryError(f"The setting {name} must be a size like '4GB' or '512MiB'. Got {value!r}.",
                          f"Fix or unset the environment variable {name}.")
    return value.replace(" ", "")


def _check_temp_dir(path: Path) -> Path:
    """QUARRY_TEMP_DIR must be a folder Quarry can create and write (spill files go to a private folder in it)."""
    problem = None
    if path.exists() and not path.is_dir():
        problem = "is not a folder"
    elif not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot be created ({exc.strerror or exc})"
    if problem is None and not os.access(path, os.W_OK | os.X_OK):
        problem = "is not writable"
    if problem is None and str(path).startswith(("/proc", "/sys", "/dev")):
        problem = "is a system folder"
    if problem:
        raise QuarryError(f"The setting QUARRY_TEMP_DIR ({path}) {problem}.",
                          "Point QUARRY_TEMP_DIR at a writable folder for spill files, or unset it.")
    return path


def load_settings() -> Settings:
    """Read settings from the environment (see README, 'Settings')."""
    roots_raw = os.environ.get("QUARRY_DATA_ROOTS", "").strip()
    roots = [Path(p).expanduser() for p in roots_raw.split(os.pathsep) if p.strip()] or [REPO_ROOT / "data"]
    roots = tuple(p.resolve() for p in roots)
    workspace = Path(os.environ.get("QUARRY_WORKSPACE") or roots[0] / "workspace").expanduser().resolve()
    temp_dir = _check_temp_dir(Path(os.environ.get("QUARRY_TEMP_DIR") or workspace / "tmp").expanduser().resolve())
    memory = _check_memory("QUARRY_MEMORY_LIMIT",
                           os.environ.get("QUARRY_MEMORY_LIMIT", "").strip() or default_memory_limit())
    sql_memory = os.environ.get("QUARRY_SQL_MEMORY_LIMIT", "").strip()
    sql_memory = _check_memory("QUARRY_SQL_MEMORY_LIMIT", sql_memory) if sql_memory else \
        min(memory, "2GB", key=memory_bytes)
    return Settings(
        data_roots=roots,
        workspace=workspace,
        temp_dir=temp_dir,
        memory_limit=memory,
        threads=int(_env_number("QUARRY_THREADS", os.cpu_count() or 1, int, 1)),
        sql_time_limit_s=float(_env_number("QUARRY_SQL_TIME_LIMIT_S", 30.0, float, 0.1)),
        download_max_rows=int(_env_number("QUARRY_DOWNLOAD_MAX_ROWS", 1_000_000, int, 1)),
        train_memory_mb=float(_env_number("QUARRY_TRAIN_MEMORY_MB", 2048.0, float, 0.01)),
        sql_memory_limit=sql_memory,
    )

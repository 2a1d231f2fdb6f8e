"""Where a dataset's files are, and whether they can be read: paths under the data roots, globs,
folders, hive partitions, file checks (empty, not Parquet, truncated), discovery and uploads.

Everything here refuses a path outside the data roots before any file is opened.
"""
from __future__ import annotations

import glob as globlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from core import atomic
from core.errors import DatasetError, PathError
from core.settings import Settings

PARQUET_EXT = (".parquet", ".pq", ".parq")
CSV_EXT = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
HIVE_PART_RE = re.compile(r"^([^=/]+)=([^/]*)$")
MAGIC = b"PAR1"


@dataclass(frozen=True)
class Partition:
    """A hive partition key and the values seen in folder names."""

    key: str
    values: tuple[str, ...]


def _within(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _outside(path: str, settings: Settings) -> PathError:
    roots = ", ".join(str(r) for r in settings.readable_roots)
    return PathError(f"{path} is outside the data roots, so Quarry will not read it.",
                     f"Move or copy it under one of: {roots}; or add its folder to QUARRY_DATA_ROOTS.")


def _candidates(text: str, settings: Settings) -> list[Path]:
    p = Path(text).expanduser()
    if p.is_absolute():
        return [p]
    return [Path.cwd() / p, *(root / p for root in settings.data_roots)]


def resolve_files(text: str, settings: Settings) -> tuple[str, list[Path]]:
    """Resolve a file, folder or glob to (source for DuckDB, list of data files), inside the data roots.

    Relative paths are tried against the working directory, then against each data root.
    """
    text = text.strip()
    if not text:
        raise PathError("No path given.", "Type a file, folder or glob, e.g. demo/flights.parquet.")
    roots = settings.readable_roots
    if any(ch in text for ch in "*?["):
        for cand in _candidates(text, settings):
            matches = sorted(Path(m) for m in globlib.glob(str(cand), recursive=True) if Path(m).is_file())
            if matches:
                bad = [m for m in matches if not _within(m.resolve(), roots)]
                if bad:
                    raise _outside(str(bad[0]), settings)
                return os.path.abspath(cand), matches
        raise PathError(f"No files match {text}.", "Check the pattern; it is matched under the data roots.")
    found = next((c for c in _candidates(text, settings) if c.exists()), None)
    if found is None:
        raise PathError(f"No file or folder at {text}.",
                        "Check the spelling; relative paths are looked up under the data roots: "
                        + ", ".join(str(r) for r in settings.data_roots))
    real = found.resolve()
    if not _within(real, roots):
        raise _outside(str(real), settings)
    if real.is_dir():
        files = sorted(p for p in real.rglob("*") if p.is_file() and p.name.lower().endswith(PARQUET_EXT))
        if not files:
            files = sorted(p for p in real.rglob("*") if p.is_file() and p.name.lower().endswith(CSV_EXT))
            if not files:
                raise DatasetError(f"The folder {real} holds no Parquet or CSV files.",
                                   "Point at a folder of .parquet (or .csv) files, or at one file.")
            ext = next(e for e in CSV_EXT if files[0].name.lower().endswith(e))
            return str(real / "**" / f"*{ext}"), files
        return str(real / "**" / "*.parquet") if all(f.suffix == ".parquet" for f in files) else \
            str(real / "**" / "*"), files
    return str(real), [real]


def file_format(files: list[Path]) -> str:
    """'parquet' or 'csv' from the file names; anything else is refused with what is supported."""
    kinds = set()
    for f in files:
        low = f.name.lower()
        if low.endswith(PARQUET_EXT):
            kinds.add("parquet")
        elif low.endswith(CSV_EXT):
            kinds.add("csv")
        else:
            raise DatasetError(f"{f.name} is not a Parquet or CSV file.",
                               "Quarry reads .parquet/.pq files and .csv/.tsv(.gz) files.")
    if len(kinds) > 1:
        raise DatasetError("The files mix Parquet and CSV.", "Register the Parquet and the CSV files separately.")
    return kinds.pop()


def check_parquet_file(path: Path) -> None:
    """Cheap checks that name the problem before DuckDB does: empty, not Parquet, truncated."""
    size = path.stat().st_size
    if size == 0:
        raise DatasetError(f"{path.name} is empty (0 bytes).", "Re-export the file; an empty file holds no table.")
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(max(0, size - 4))
        tail = fh.read(4)
    if head != MAGIC:
        raise DatasetError(f"{path.name} is not a Parquet file (it does not start with the Parquet marker).",
                           "If it is CSV or another format, rename it with the right extension, "
                           "or convert it to Parquet.")
    if size < 12 or tail != MAGIC:
        raise DatasetError(f"{path.name} is a truncated or unfinished Parquet file (its footer is missing).",
                           "The copy or export was probably cut off: copy or export it again.")


def hive_partitions(files: list[Path]) -> tuple[Partition, ...]:
    """Hive keys and values from folder names like ``year=2024/month=01``."""
    seen: dict[str, set[str]] = {}
    for f in files:
        for part in f.parent.parts:
            m = HIVE_PART_RE.match(part)
            if m:
                seen.setdefault(m.group(1), set()).add(m.group(2))
    return tuple(Partition(k, tuple(sorted(v))) for k, v in seen.items())


def discover(settings: Settings, limit: int = 500) -> list[str]:
    """Parquet/CSV files and hive-partitioned folders under the data roots, for a picker (bounded walk)."""
    found: list[str] = []
    for root in settings.data_roots:
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and here / d != settings.workspace)
            if any(HIVE_PART_RE.match(d) for d in dirs):
                found.append(str(here))
                dirs[:] = []
                continue
            found += [str(here / f) for f in sorted(files)
                      if f.lower().endswith(PARQUET_EXT + CSV_EXT) and not f.startswith(".")]
            if len(found) >= limit:
                return found[:limit]
    return found


UPLOAD_STEM_MAX = 100  # characters kept of an upload's name: far below the 255 bytes file systems allow
# Names Windows reserves (a workspace may sit on a shared drive): stored with a prefix.
RESERVED_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def shown_name(filename: str, limit: int = 80) -> str:
    """A file name as a message may show it: control characters as '?', at most `limit` characters."""
    text = re.sub(r"[\x00-\x1f\x7f]", "?", filename)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split_ext(name: str) -> tuple[str, str]:
    """('flights', '.csv.gz') from 'flights.CSV.gz': the longest Parquet or CSV extension, lower case; '' if none."""
    ext = next((e for e in sorted(PARQUET_EXT + CSV_EXT, key=len, reverse=True) if name.lower().endswith(e)), "")
    return name[: len(name) - len(ext)], ext


def upload_name(filename: str) -> str:
    """The name an upload is stored under: ASCII letters, digits, '_' and '-' plus its lower-case extension.

    The browser sends any text: a path, '..', NUL and control characters, 300 characters, look-alike
    unicode. Only the part after the last slash counts, after NFKC folds look-alikes ('．parquet');
    every other character becomes '_'; the stem is cut to UPLOAD_STEM_MAX characters. A name that
    is not Parquet or CSV is refused.
    """
    base = re.split(r"[/\\]", unicodedata.normalize("NFKC", filename))[-1]
    stem, ext = _split_ext(base)
    if not ext:
        raise DatasetError(f"{shown_name(filename)!r} is not a Parquet or CSV file.",
                           "Upload a .parquet or .csv file; bigger files are registered from a path.")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:UPLOAD_STEM_MAX].rstrip("_-")
    stem = stem or "upload"
    if stem.upper() in RESERVED_NAMES:
        stem = f"upload_{stem}"
    return stem + ext


def save_upload(settings: Settings, filename: str, data: bytes) -> Path:
    """Store an uploaded file in the uploads folder (never over an existing file), atomically.

    The stored name comes from upload_name, so nothing is written outside the uploads folder.
    """
    safe = upload_name(filename)
    stem, ext = _split_ext(safe)
    folder = settings.uploads_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target, n = folder / safe, 2
        while target.exists() or target.is_symlink():
            target, n = folder / f"{stem}_{n}{ext}", n + 1
        atomic.write_bytes(target, data)
    except OSError as exc:
        raise DatasetError(f"The upload {shown_name(filename)!r} could not be stored in {folder} "
                           f"({exc.strerror or exc}).",
                           "Check free space and permissions of the uploads folder, or put the file under a "
                           "data root and register its path.") from None
    return target

"""Dataset catalog: register Parquet/CSV files, folders, globs and hive partitions as named datasets.

A dataset is a name plus a source (a file, a folder or a glob) under the data roots. The
catalog lives in the workspace as ``catalog.json`` (written atomically, under a file lock, so
the app and the CLI can both register); each dataset is a DuckDB view over its files, so a
dataset's name is a table name in SQL. Registering never touches the user's files.
"""
from __future__ import annotations

import fcntl
import glob as globlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core.engine import quote_ident, quote_literal, translate
from core.errors import DatasetError, PathError, QuarryError
from core.settings import Settings

PARQUET_EXT = (".parquet", ".pq", ".parq")
CSV_EXT = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
HIVE_PART_RE = re.compile(r"^([^=/]+)=([^/]*)$")
CATALOG_VERSION = 1
MAGIC = b"PAR1"


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its name (a SQL table name) and where its files are."""

    name: str
    source: str
    format: str  # "parquet" | "csv"
    hive: bool = False
    registered_at: str = ""

    def scan_sql(self) -> str:
        """The DuckDB table expression that reads this dataset's files."""
        if self.format == "csv":
            return f"read_csv({quote_literal(self.source)}, auto_detect = true)"
        return (f"read_parquet({quote_literal(self.source)}, hive_partitioning = {str(self.hive).lower()}, "
                "union_by_name = true)")

    def view_sql(self) -> str:
        return f"CREATE OR REPLACE VIEW {quote_ident(self.name)} AS SELECT * FROM {self.scan_sql()}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Partition:
    """A hive partition key and the values seen in folder names."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class DatasetInfo:
    """What the Data page and `datasets show` print about a dataset."""

    dataset: Dataset
    rows: int
    columns: tuple[Column, ...]
    files: int
    bytes: int
    partitions: tuple[Partition, ...] = field(default=())

    def to_json(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Paths: resolve what the user typed, refuse anything outside the data roots


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


def default_name(text: str) -> str:
    """A SQL-friendly dataset name from a path: 'demo/My Flights.parquet' -> 'my_flights'."""
    stem = Path(text.rstrip("/").split("*")[0].rstrip("/") or "dataset").name
    for ext in (*PARQUET_EXT, *CSV_EXT):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    slug = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_") or "dataset"
    return ("d_" + slug if slug[0].isdigit() else slug)[:63]


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise DatasetError(f"{name!r} cannot be a dataset name.",
                           "Use letters, digits and _, starting with a letter or _ (at most 63 characters); "
                           "the name is a table name in SQL.")
    return name


# ----------------------------------------------------------------------------------------------
# The catalog file


class Catalog:
    """The registered datasets of one workspace, persisted in ``catalog.json``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.workspace / "catalog.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.settings.workspace.mkdir(parents=True, exist_ok=True)
        with open(self.settings.workspace / "catalog.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Dataset]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text())
            return {d["name"]: Dataset(**d) for d in doc["datasets"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise QuarryError(f"The workspace catalog {self.path} is damaged ({exc}).",
                              "Restore it from a backup, or delete it and register the datasets again.") from None

    def _write(self, datasets: dict[str, Dataset]) -> None:
        doc = {"version": CATALOG_VERSION, "datasets": [asdict(d) for d in datasets.values()]}
        fd, tmp = tempfile.mkstemp(dir=self.settings.workspace, prefix=".catalog-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def list(self) -> list[Dataset]:
        return sorted(self._read().values(), key=lambda d: d.name)

    def names(self) -> list[str]:
        return [d.name for d in self.list()]

    def get(self, name: str) -> Dataset:
        datasets = self._read()
        if name not in datasets:
            known = ", ".join(sorted(datasets)) or "none yet"
            raise DatasetError(f"There is no dataset named {name!r}.",
                               f"Registered datasets: {known}. Register a file with 'datasets register PATH'.")
        return datasets[name]

    def add(self, dataset: Dataset, replace: bool = False) -> Dataset:
        """Persist a checked dataset; the same source twice returns the existing entry."""
        with self._locked():
            datasets = self._read()
            same = next((d for d in datasets.values() if d.source == dataset.source and d.format == dataset.format),
                        None)
            if same and not replace and same.name == dataset.name:
                return same
            if dataset.name in datasets and not replace:
                raise DatasetError(f"A dataset named {dataset.name!r} is already registered "
                                   f"({datasets[dataset.name].source}).",
                                   "Pick another name, or remove the existing dataset first.")
            datasets[dataset.name] = dataset
            self._write(datasets)
        return dataset

    def remove(self, name: str) -> Dataset:
        """Forget a dataset (its files stay where they are)."""
        with self._locked():
            datasets = self._read()
            if name not in datasets:
                self.get(name)  # raises the 'no dataset' message
            gone = datasets.pop(name)
            self._write(datasets)
        return gone

    def unique_name(self, base: str) -> str:
        taken = set(self.names())
        name, n = base, 2
        while name in taken:
            name = f"{base[:58]}_{n}"
            n += 1
        return name


# ----------------------------------------------------------------------------------------------
# Register, describe, and keep DuckDB's views in step with the catalog


def inspect_source(con: duckdb.DuckDBPyConnection, text: str, settings: Settings, name: str) -> Dataset:
    """Check a path and return an (unsaved) Dataset for it; every problem is a clear DatasetError."""
    source, files = resolve_files(text, settings)
    fmt = file_format(files)
    if fmt == "parquet":
        for f in files[:10_000]:
            check_parquet_file(f)
    elif all(f.stat().st_size == 0 for f in files):
        raise DatasetError(f"{files[0].name} is empty (0 bytes).", "Re-export the file; an empty file holds no table.")
    hive = bool(hive_partitions(files))
    dataset = Dataset(check_name(name), source, fmt, hive, datetime.now(UTC).isoformat(timespec="seconds"))
    cur = con.cursor()
    try:
        cols = cur.execute(f"DESCRIBE SELECT * FROM {dataset.scan_sql()}").fetchall()
    except duckdb.Error as exc:
        err = translate(exc, f"Reading {Path(source).name}")
        raise DatasetError(err.message, "Check that the file is complete and readable; "
                           "for CSV, check the delimiter and header.") from None
    finally:
        cur.close()
    if not cols:
        raise DatasetError(f"{Path(source).name} has no columns.", "Re-export the file with its columns.")
    return dataset


def register(con: duckdb.DuckDBPyConnection, catalog: Catalog, text: str, name: str | None = None,
             replace: bool = False) -> Dataset:
    """Register a file, folder or glob under the data roots as a named dataset.

    Parameters
    ----------
    text
        A path as the user typed it: absolute, or relative to the working directory or a data root.
    name
        The dataset's (table) name; derived from the path when None.
    replace
        Replace a dataset of the same name instead of refusing.
    """
    if name:
        check_name(name)
    else:
        name = default_name(text)
        existing = {d.name: d for d in catalog.list()}
        if name in existing and not replace:
            source, _ = resolve_files(text, catalog.settings)
            if existing[name].source != source:
                name = catalog.unique_name(name)
    dataset = catalog.add(inspect_source(con, text, catalog.settings, name), replace=replace)
    sync_views(con, [dataset], drop_others=False)
    return dataset


def sync_views(con: duckdb.DuckDBPyConnection, datasets: list[Dataset], drop_others: bool = True) -> None:
    """Make DuckDB's views match the catalog (another process may have registered since).

    Sessions share one database, so two may bring the same view in step at once; DuckDB then
    refuses the second write (a transaction conflict), which is fine: the first one did the work.
    """
    cur = con.cursor()
    try:
        current = {n: sql for n, sql in cur.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal AND schema_name = 'main'").fetchall()}
        wanted = {d.name: d for d in datasets}
        for name, d in wanted.items():
            if name not in current or f"read_{d.format}({quote_literal(d.source)}" not in current[name]:
                try:
                    cur.execute(d.view_sql())
                except duckdb.TransactionException:
                    pass
                except duckdb.Error:
                    # A file that went missing since registration: the view stays absent and
                    # describe() says why; other datasets still work.
                    _drop_view(cur, name)
        if drop_others:
            for name in set(current) - set(wanted):
                _drop_view(cur, name)
    finally:
        cur.close()


def _drop_view(cur: duckdb.DuckDBPyConnection, name: str) -> None:
    with suppress(duckdb.TransactionException):
        cur.execute(f"DROP VIEW IF EXISTS {quote_ident(name)}")


def fingerprint(dataset: Dataset, settings: Settings) -> str:
    """Identity of a dataset's current files (paths, sizes, modification times): a change shows."""
    _, files = resolve_files(dataset.source, settings)
    h = hashlib.sha256(f"{dataset.format}|{dataset.hive}|{dataset.source}".encode())
    for f in files:
        st = f.stat()
        h.update(f"|{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def describe(con: duckdb.DuckDBPyConnection, dataset: Dataset, settings: Settings) -> DatasetInfo:
    """Schema, row count (from Parquet metadata where possible), files, bytes and partitions."""
    try:
        _, files = resolve_files(dataset.source, settings)
    except QuarryError as exc:
        raise DatasetError(f"The files of dataset {dataset.name!r} cannot be read: {exc.message}",
                           "Put the files back, or remove the dataset and register it again.") from None
    sync_views(con, [dataset], drop_others=False)
    cur = con.cursor()
    try:
        table = quote_ident(dataset.name)
        cols = tuple(Column(n, t) for n, t, *_ in cur.execute(f"DESCRIBE {table}").fetchall())
        rows = int(cur.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    except duckdb.Error as exc:
        raise translate(exc, f"Reading dataset {dataset.name!r}") from None
    finally:
        cur.close()
    size = sum(f.stat().st_size for f in files)
    return DatasetInfo(dataset, rows, cols, len(files), size, hive_partitions(files) if dataset.hive else ())


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


def save_upload(settings: Settings, filename: str, data: bytes) -> Path:
    """Store an uploaded file in the uploads folder (never over an existing file), atomically."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name).lstrip(".") or "upload"
    if not safe.lower().endswith(PARQUET_EXT + CSV_EXT):
        raise DatasetError(f"{filename} is not a Parquet or CSV file.",
                           "Upload a .parquet or .csv file; bigger files are registered from a path.")
    folder = settings.uploads_dir
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / safe, 2
    while target.exists():
        stem, dot, ext = safe.partition(".")
        target, n = folder / f"{stem}_{n}{dot}{ext}", n + 1
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def register_upload(con: duckdb.DuckDBPyConnection, catalog: Catalog, filename: str, data: bytes,
                    name: str | None = None) -> Dataset:
    """Save an uploaded file and register it; a file that fails the checks is not kept."""
    path = save_upload(catalog.settings, filename, data)
    try:
        return register(con, catalog, str(path), name=name)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def resolve(con: duckdb.DuckDBPyConnection, catalog: Catalog, text: str) -> Dataset:
    """A registered name, or a path registered on the fly (not saved) under a derived name.

    This is how every command takes a dataset: ``flights`` or ``data/demo/flights.parquet``.
    """
    if NAME_RE.match(text) and text in catalog.names():
        dataset = catalog.get(text)
        sync_views(con, [dataset], drop_others=False)
        return dataset
    source, _ = resolve_files(text, catalog.settings)
    known = next((d for d in catalog.list() if d.source == source), None)
    if known:
        sync_views(con, [known], drop_others=False)
        return known
    dataset = inspect_source(con, text, catalog.settings, catalog.unique_name(default_name(text)))
    sync_views(con, [dataset], drop_others=False)
    return dataset

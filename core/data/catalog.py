"""Dataset catalog: register Parquet/CSV files, folders, globs and hive partitions as named datasets.

A dataset is a name plus a source (a file, a folder or a glob) under the data roots. The
catalog lives in the workspace as ``catalog.json`` (written atomically, under a file lock, so
the app and the CLI can both register); each dataset is a DuckDB view over its files, so a
dataset's name is a table name in SQL. Registering never touches the user's files.

A copy of the catalog as last written is kept beside it (``catalog.json.bak``). A catalog.json
that cannot be read or is damaged raises CatalogError and is never overwritten or repaired: the
user decides. A dataset whose files went away (check_files) fails on its own; the others work.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core import atomic, audit, auth
from core.data.engine import quote_ident, quote_literal, translate
from core.data.sources import (
    CSV_EXT,
    PARQUET_EXT,
    Partition,
    check_parquet_file,
    file_format,
    hive_partitions,
    resolve_files,
    save_upload,
)
from core.errors import DatasetError, PathError, QuarryError
from core.settings import Settings

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
CATALOG_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its name (a SQL table name) and where its files are."""

    name: str
    source: str
    format: str  # "parquet" | "csv"
    hive: bool = False
    registered_at: str = ""
    created_by: str = ""  # who registered it (core.auth.who(): an email, "password user" or the OS user)

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
# Names


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


class CatalogError(QuarryError):
    """The workspace's catalog.json cannot be read, is damaged, or cannot be saved."""


# Each Dataset field's JSON type, from its annotation ("str", "bool"): a field added later is checked too.
_FIELD_TYPES = {"str": str, "bool": bool, "int": int}
_REQUIRED = tuple(f.name for f in fields(Dataset) if f.default is MISSING and f.default_factory is MISSING)


def parse_catalog(text: bytes) -> dict[str, Dataset]:
    """The datasets in a catalog.json's text; anything but the shape Quarry writes raises ValueError saying what.

    Checked field by field, so a hand-edited or half-written catalog is refused with a reason instead of
    failing later on some page (a name that is not a table name, a 'hive' that is not true/false).
    """
    if not text.strip():
        raise ValueError("it is empty")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"it holds {_kind(doc)}, not an object with a 'datasets' list")
    version = doc.get("version", CATALOG_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"'version' is {_kind(version)}, not a number")
    if version > CATALOG_VERSION:
        raise ValueError(f"it was written by a newer Quarry (catalog version {version}; this one reads "
                         f"{CATALOG_VERSION})")
    entries = doc.get("datasets")
    if not isinstance(entries, list):
        raise ValueError("it has no 'datasets' list" if entries is None else
                         f"'datasets' is {_kind(entries)}, not a list")
    known = {f.name: _FIELD_TYPES.get(str(f.type), object) for f in fields(Dataset)}
    datasets: dict[str, Dataset] = {}
    for i, entry in enumerate(entries, start=1):
        where = f"dataset {i} of {len(entries)}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is {_kind(entry)}, not an object")
        missing = [k for k in _REQUIRED if k not in entry]
        if missing:
            raise ValueError(f"{where} has no {missing[0]!r}")
        for key, value in entry.items():
            if key not in known:
                raise ValueError(f"{where} has an unknown field {key!r}")
            want = known[key]
            if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
                raise ValueError(f"{where}: {key!r} is {_kind(value)}, not {_kind(want())}")
        name = entry["name"]
        if not NAME_RE.match(name):
            raise ValueError(f"{where}: {name[:70]!r} is not a dataset name")
        if entry["format"] not in ("parquet", "csv"):
            raise ValueError(f"{where} ({name}): format {entry['format'][:20]!r} is not 'parquet' or 'csv'")
        if not entry["source"].strip() or "\x00" in entry["source"]:
            raise ValueError(f"{where} ({name}): its source is not a path")
        if name in datasets:
            raise ValueError(f"the name {name!r} appears twice")
        datasets[name] = Dataset(**entry)
    return datasets


def _kind(value: object) -> str:
    """'a list', 'text', 'a number' ... for messages about JSON values."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return {"list": "a list", "dict": "an object"}.get(type(value).__name__, type(value).__name__)


class Catalog:
    """The registered datasets of one workspace, persisted in ``catalog.json``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.workspace / "catalog.json"
        # The catalog as Quarry last wrote it, kept beside it: what a damaged catalog.json is restored from.
        self.backup = settings.workspace / "catalog.json.bak"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.settings.workspace / "catalog.lock"
        try:
            self.settings.workspace.mkdir(parents=True, exist_ok=True)
            lock.touch()
        except OSError as exc:
            raise CatalogError(f"Quarry cannot write in the workspace {self.settings.workspace} "
                               f"({exc.strerror or exc}), so the catalog cannot change.",
                               "Check the folder's permissions and free space, or point QUARRY_WORKSPACE "
                               "at a writable folder.") from None
        with atomic.locked(lock):
            yield

    def _read(self) -> dict[str, Dataset]:
        """The datasets in catalog.json; a file that cannot be read or is damaged raises and is left as it is."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except IsADirectoryError:
            raise self._damaged("is a folder, not a file") from None
        except OSError as exc:
            raise self._damaged(f"cannot be read ({exc.strerror or exc})", unreadable=True) from None
        try:
            return parse_catalog(text)
        except ValueError as exc:
            raise self._damaged(f"is damaged ({exc})") from None

    def _damaged(self, what: str, unreadable: bool = False) -> CatalogError:
        """The error for a catalog.json Quarry cannot use: never repaired or overwritten, so the user decides."""
        fix = ("give the user running Quarry read access to it, or move it away to start with an empty catalog"
               if unreadable else "move it away (e.g. rename it catalog.json.old) to start with an empty catalog")
        hint = f"Quarry has not changed it: {fix}, then register the datasets again."
        try:
            kept = parse_catalog(self.backup.read_bytes())
        except (OSError, ValueError):
            kept = None
        if kept is not None:
            hint += (f" Or restore the copy Quarry kept of the catalog as it last wrote it ({len(kept)} dataset"
                     f"{'' if len(kept) == 1 else 's'}): copy {self.backup} over {self.path.name}.")
        return CatalogError(f"The catalog file {self.path} {what}.", hint)

    def _write(self, datasets: dict[str, Dataset]) -> None:
        doc = {"version": CATALOG_VERSION, "datasets": [asdict(d) for d in datasets.values()]}
        try:
            self._write_json(self.path, doc)
        except OSError as exc:
            raise CatalogError(f"Quarry could not save the catalog {self.path} ({exc.strerror or exc}); "
                               "it is as it was.",
                               "Check free space and permissions in the workspace folder, then try again.") from None
        # Best effort: the change is saved; a backup that cannot be written only means an older one stays.
        with suppress(OSError):
            self._write_json(self.backup, doc)

    def _write_json(self, path: Path, doc: dict) -> None:
        """Write `doc` to `path` whole or not at all (a temporary file renamed onto it)."""
        atomic.write_json(path, doc, indent=1)

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
        """Forget a dataset (its files stay where they are). Admins only (core.auth)."""
        auth.require("remove_dataset")
        with self._locked():
            datasets = self._read()
            if name not in datasets:
                self.get(name)  # raises the 'no dataset' message
            gone = datasets.pop(name)
            self._write(datasets)
        audit.record(self.settings, "dataset.remove", name=name, source=gone.source)
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


def inspect_source(con: duckdb.DuckDBPyConnection, text: str, settings: Settings, name: str, *,
                   resolved: tuple[str, list[Path]] | None = None) -> Dataset:
    """Check a path and return an (unsaved) Dataset for it; every problem is a clear DatasetError.

    `resolved` is resolve_files(text) when the caller already has it (a big folder is walked once).
    """
    source, files = resolved or resolve_files(text, settings)
    fmt = file_format(files)
    if fmt == "parquet":
        for f in files[:10_000]:
            check_parquet_file(f)
    elif all(f.stat().st_size == 0 for f in files):
        raise DatasetError(f"{files[0].name} is empty (0 bytes).", "Re-export the file; an empty file holds no table.")
    hive = bool(hive_partitions(files))
    dataset = Dataset(check_name(name), source, fmt, hive, datetime.now(UTC).isoformat(timespec="seconds"),
                      created_by=auth.who())
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
    auth.require("register")
    if name:
        check_name(name)
    resolved = resolve_files(text, catalog.settings)
    if not name:
        name = default_name(text)
        existing = {d.name: d for d in catalog.list()}
        if name in existing and not replace and existing[name].source != resolved[0]:
            name = catalog.unique_name(name)
    dataset = catalog.add(inspect_source(con, text, catalog.settings, name, resolved=resolved), replace=replace)
    sync_views(con, [dataset], drop_others=False)
    audit.record(catalog.settings, "dataset.register", name=dataset.name, source=dataset.source)
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


def _broken(dataset: Dataset, what: str) -> DatasetError:
    """The error for a registered dataset whose files were deleted, moved, cut short or made unreadable."""
    return DatasetError(f"The files of dataset {dataset.name!r} {what}.",
                        f"Put them back, or remove {dataset.name!r} on the Data page and register the files "
                        "again from where they are now; the other datasets are not affected.")


def check_files(dataset: Dataset, settings: Settings, *, open_files: bool = True) -> list[Path]:
    """A registered dataset's files as they are now; gone, unreadable or damaged files raise a DatasetError.

    `open_files=False` only finds them (no Parquet marker checks): for callers that run on every page.
    """
    try:
        _, files = resolve_files(dataset.source, settings)
        if dataset.format == "parquet" and open_files:
            for f in files[:10_000]:
                check_parquet_file(f)
    except PathError as exc:
        gone = exc.message.startswith(("No file or folder", "No files match"))
        what = exc.message.rstrip(".")
        raise _broken(dataset, f"are gone: {what}" if gone else f"cannot be read: {what}") from None
    except QuarryError as exc:
        raise _broken(dataset, f"cannot be read: {exc.message.rstrip('.')}") from None
    except OSError as exc:  # a folder or file made unreadable since registration
        raise _broken(dataset, f"cannot be read: {exc.filename or dataset.source}: {exc.strerror or exc}") from None
    return files


def fingerprint(dataset: Dataset, settings: Settings) -> str:
    """Identity of a dataset's current files (paths, sizes, modification times): a change shows."""
    files = check_files(dataset, settings, open_files=False)
    h = hashlib.sha256(f"{dataset.format}|{dataset.hive}|{dataset.source}".encode())
    try:
        for f in files:
            st = f.stat()
            h.update(f"|{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    except OSError as exc:  # deleted between the listing and now
        raise _broken(dataset, f"are gone: {exc.filename}: {exc.strerror}") from None
    return h.hexdigest()[:20]


def describe(con: duckdb.DuckDBPyConnection, dataset: Dataset, settings: Settings) -> DatasetInfo:
    """Schema, row count (from Parquet metadata where possible), files, bytes and partitions.

    Reads the files themselves, not the view: a view that could not be made (files gone) says nothing.
    """
    files = check_files(dataset, settings)
    sync_views(con, [dataset], drop_others=False)
    cur = con.cursor()
    try:
        scan = dataset.scan_sql()
        cols = tuple(Column(n, t) for n, t, *_ in cur.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall())
        rows = int(cur.execute(f"SELECT count(*) FROM {scan}").fetchall()[0][0])
    except (duckdb.IOException, duckdb.InvalidInputException) as exc:
        raise _broken(dataset, f"cannot be read: {str(exc).splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise translate(exc, f"Reading dataset {dataset.name!r}") from None
    finally:
        cur.close()
    try:
        size = sum(f.stat().st_size for f in files)
    except OSError as exc:
        raise _broken(dataset, f"are gone: {exc.filename}: {exc.strerror}") from None
    return DatasetInfo(dataset, rows, cols, len(files), size, hive_partitions(files) if dataset.hive else ())


def new_dataset_path(catalog: Catalog, name: str, error: type[QuarryError] = QuarryError) -> Path:
    """Where Quarry writes a dataset it will register as `name` (``<workspace>/datasets/NAME.parquet``), once
    the name is checked and free; a taken name raises `error` (the SQL page's callers expect QueryError)."""
    check_name(name)
    if name in catalog.names():
        raise error(f"A dataset named {name!r} already exists.", "Pick another name, or remove that one.")
    catalog.settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    return catalog.settings.datasets_dir / f"{name}.parquet"


def register_written(con: duckdb.DuckDBPyConnection, catalog: Catalog, path: Path, name: str | None) -> Dataset:
    """Register a file Quarry has just written (an upload, a saved result); if that fails, the file goes too."""
    try:
        return register(con, catalog, str(path), name=name)
    except BaseException:
        path.unlink(missing_ok=True)
        sync_views(con, catalog.list())
        raise


def register_upload(con: duckdb.DuckDBPyConnection, catalog: Catalog, filename: str, data: bytes,
                    name: str | None = None) -> Dataset:
    """Save an uploaded file and register it; a file that fails the checks is not kept."""
    return register_written(con, catalog, save_upload(catalog.settings, filename, data), name)


def view_of_path(con: duckdb.DuckDBPyConnection, settings: Settings, text: str, name: str) -> Dataset:
    """A path (file, folder, glob) as an unsaved dataset under `name`, its view made in `con` (a run trained on a
    path that was never registered reads it again this way)."""
    dataset = inspect_source(con, text, settings, name)
    sync_views(con, [dataset], drop_others=False)
    return dataset


def resolve(con: duckdb.DuckDBPyConnection, catalog: Catalog, text: str) -> Dataset:
    """A registered name, or a path registered on the fly (not saved) under a derived name.

    This is how every command takes a dataset: ``flights`` or ``data/demo/flights.parquet``.
    """
    if NAME_RE.match(text) and text in catalog.names():
        dataset = catalog.get(text)
        sync_views(con, [dataset], drop_others=False)
        return dataset
    resolved = resolve_files(text, catalog.settings)
    known = next((d for d in catalog.list() if d.source == resolved[0]), None)
    if known:
        sync_views(con, [known], drop_others=False)
        return known
    dataset = inspect_source(con, text, catalog.settings, catalog.unique_name(default_name(text)),
                             resolved=resolved)
    sync_views(con, [dataset], drop_others=False)
    return dataset

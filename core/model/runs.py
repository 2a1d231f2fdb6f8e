"""Training runs: one folder per run in the workspace, and a registry (a DuckDB file) to list and sort them.

A run lives in ``workspace/runs/<run_id>/``::

    run.json          what was trained, on what, how, and how well (format "quarry.run", version 1)
    model.txt         the LightGBM model in its text format (never a pickle)
    recipe.json       the fitted feature recipe (absent when the run used the raw dataset)
    curve.json        {"metric", "train": [...], "valid": [...]}
    importance.json   {"feature": [...], "gain": [...], "split": [...]}

The folders are the truth; ``workspace/runs.duckdb`` is an index over them that ``list_runs`` keeps in
step (it indexes complete folders it lacks and forgets rows whose folder is gone), so deleting the
file loses nothing. A run is written whole or not at all: everything goes into ``runs/.partial-<id>/``,
which is renamed to ``runs/<id>/`` in one step, and only then is the registry row added. A process
killed while saving leaves a ``.partial-*`` folder that no listing shows and that is removed once it
is an hour old.

The app and a training worker may both write: every registry operation opens the DuckDB file briefly
under an exclusive file lock (``runs.lock``), retrying a few times when another program holds the file.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb

from core import atomic, audit, auth
from core.data.types import TASKS
from core.errors import QuarryError
from core.features import recipe as R
from core.fmt import shown
from core.settings import Settings

FORMAT = "quarry.run"
VERSION = 1

# \A and \Z, not ^ and $: "$" also matches before a final newline, which would let "id\n" through.
RUN_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,79}\Z")
PARTIAL = ".partial-"
DELETING = ".deleting-"
STALE_PARTIAL_S = 3600.0  # a .partial-* folder this old belongs to a save that died: remove it
LOCK_TRIES = 8  # opening the DuckDB file while another program holds it: tries, first pause (doubling)
LOCK_PAUSE_S = 0.05
ORDER_COLUMNS = ("created_at", "name", "dataset", "target", "task", "device", "valid_metric", "test_metric")
TAG_MAX = 50
# The main metric of a run, per task, when run.json does not name one ("metric"): the first that was measured.
MAIN_METRICS = {
    "binary": ("auc", "roc_auc", "average_precision", "logloss", "binary_logloss", "accuracy"),
    "multiclass": ("logloss", "multi_logloss", "accuracy", "macro_f1", "f1_macro"),
    "regression": ("rmse", "l2", "mse", "mae", "l1", "r2"),
}
FILES = ("run.json", "model.txt", "recipe.json", "curve.json", "importance.json")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    name VARCHAR,
    created_at TIMESTAMP,
    dataset VARCHAR,
    target VARCHAR,
    task VARCHAR,
    device VARCHAR,
    metric VARCHAR,
    valid_metric DOUBLE,
    test_metric DOUBLE,
    tags VARCHAR[],
    status VARCHAR
)"""
_ROW_COLUMNS = ("run_id", "name", "created_at", "dataset", "target", "task", "device", "metric", "valid_metric",
                "test_metric", "tags", "status")


class RunError(QuarryError):
    """A run that does not exist, cannot be saved, or whose folder is damaged."""


class RunIdError(RunError):
    """A run id that is not one (e.g. '../x'), or whose folder resolves outside its place: refused before use."""


# ----------------------------------------------------------------------------------------------
# What a run is


@dataclass(frozen=True)
class RunSummary:
    """One row of the registry: enough to list, filter and sort runs."""

    run_id: str
    name: str
    created_at: str  # ISO 8601, UTC
    dataset: str
    target: str
    task: str
    device: str
    metric: str | None  # the main metric's name; valid_metric / test_metric are its values
    valid_metric: float | None
    test_metric: float | None
    tags: tuple[str, ...] = ()
    status: str = "complete"

    def to_json(self) -> dict:
        return {**asdict(self), "tags": list(self.tags)}


@dataclass(frozen=True)
class Run:
    """A saved run: its run.json, curve, importance and recipe; the model text is read when first asked for."""

    path: Path
    info: dict
    curve: dict
    importance: dict
    recipe_json: str | None = None
    recipe: R.Recipe | None = field(default=None, compare=False)

    @property
    def run_id(self) -> str:
        return self.info["run_id"]

    @property
    def name(self) -> str:
        return self.info.get("name") or self.run_id

    @property
    def task(self) -> str:
        return self.info["task"]

    @property
    def target(self) -> str:
        return self.info["target"]

    @property
    def features(self) -> list[str]:
        return list(self.info["features"])

    @property
    def categorical(self) -> dict[str, list]:
        return dict(self.info.get("categorical") or {})

    @property
    def classes(self) -> list:
        return list(self.info.get("classes") or [])

    @property
    def threshold(self) -> float:
        """The decision threshold of a binary run: run.json's "threshold", else 0.5."""
        value = self.info.get("threshold")
        return 0.5 if value is None else float(value)

    @property
    def best_iteration(self) -> int | None:
        value = self.info.get("best_iteration")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    @cached_property
    def model_text(self) -> str:
        """The LightGBM model text (model.txt), read on first use."""
        try:
            return (self.path / "model.txt").read_text(encoding="utf-8")
        except OSError as exc:
            raise RunError(f"The model of run {self.run_id!r} cannot be read ({exc.strerror}).",
                           f"The run folder {self.path} is damaged; train the run again.") from None

    @cached_property
    def booster(self) -> Any:
        """The model as a lightgbm.Booster, built from model.txt on first use."""
        import lightgbm as lgb

        try:
            return lgb.Booster(model_str=self.model_text)
        except lgb.basic.LightGBMError as exc:
            raise RunError(f"The model of run {self.run_id!r} cannot be loaded: {exc}.",
                           f"The file {self.path / 'model.txt'} is damaged; train the run again.") from None


# ----------------------------------------------------------------------------------------------
# Paths, ids, locks


def runs_dir(settings: Settings) -> Path:
    return settings.workspace / "runs"


def cache_dir(settings: Settings, run_id: str) -> Path:
    """Where a run's evaluation and explanation caches live (core.holdout, core.evaluate, core.explain);
    made again from the run and its dataset when missing, removed with the run. A bad run id raises RunIdError."""
    return _inside(settings.workspace / "evaluations", check_run_id(run_id))


def check_run_id(run_id: object) -> str:
    """`run_id` if it can be a run id (a name, never a path); else RunIdError (nothing on disk is touched)."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise RunIdError(f"{shown(run_id)} is not a run id.",
                         "A run id is 1 to 80 letters, digits, '-' or '_' (like 20250314-153012-123-4f9a2c).")
    return run_id


def _inside(base: Path, name: str) -> Path:
    """base/name resolved; RunIdError if it resolves anywhere but directly inside base (a planted symlink)."""
    root = base.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise RunIdError(f"The folder of run {name!r} is outside {root}.", f"Remove the link {root / name}.")
    return path


def registry_path(settings: Settings) -> Path:
    return settings.workspace / "runs.duckdb"


def new_run_id() -> str:
    """A run id that sorts by creation time: '20250314-153012-123-4f9a2c' (UTC to the millisecond, then random)."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _parse_time(text: object) -> datetime:
    """run.json's created_at (ISO, UTC or with an offset) as a naive UTC datetime for the registry."""
    try:
        dt = datetime.fromisoformat(str(text))
    except ValueError:
        raise RunError(f"created_at must be an ISO 8601 time. Got {text!r}.",
                       "Write it like 2025-03-14T15:30:12+00:00.") from None
    return (dt.astimezone(UTC) if dt.tzinfo else dt).replace(tzinfo=None)


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Exclusive use of the registry among Quarry processes and threads (flock on runs.lock)."""
    with atomic.locked(settings.workspace / "runs.lock"):
        yield


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


@contextmanager
def _registry(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The registry database, opened for this operation only, under the lock; retried while another
    program (e.g. a DuckDB shell) holds the file."""
    path = registry_path(settings)
    with _locked(settings):
        pause = LOCK_PAUSE_S
        for attempt in range(LOCK_TRIES):
            try:
                con = duckdb.connect(str(path), config={"threads": 1})
                break
            except duckdb.Error as exc:
                if not _is_lock_conflict(exc):
                    raise RunError(f"The run registry {path} cannot be opened: {str(exc).splitlines()[0]}",
                                   "Delete the file; it is rebuilt from the run folders.") from None
                if attempt == LOCK_TRIES - 1:
                    raise RunError(f"The run registry {path} is held by another program.",
                                   "Close other programs that opened it (e.g. a DuckDB shell) and try again.") from None
                time.sleep(pause)
                pause *= 2
        try:
            con.execute(_SCHEMA)
            yield con
        finally:
            con.close()


# ----------------------------------------------------------------------------------------------
# Checking and writing a run


def _check_run_json(doc: dict) -> dict:
    """run.json as it will be written: defaults filled in, the contract's required fields checked."""
    if not isinstance(doc, dict):
        raise RunError(f"run.json must be an object. Got {type(doc).__name__}.", "Pass a dict.")
    doc = dict(doc)
    doc.setdefault("format", FORMAT)
    doc.setdefault("version", VERSION)
    if doc["format"] != FORMAT or doc["version"] != VERSION:
        raise RunError(f"run.json must have format {FORMAT!r} version {VERSION}. "
                       f"Got {doc['format']!r} version {doc['version']!r}.", "Write the current format.")
    doc["run_id"] = doc.get("run_id") or new_run_id()
    if not isinstance(doc["run_id"], str) or not RUN_ID_RE.match(doc["run_id"]):
        raise RunError(f"{doc['run_id']!r} cannot be a run id.", "Use new_run_id().")
    doc.setdefault("created_at", _now_iso())
    _parse_time(doc["created_at"])
    doc["name"] = str(doc.get("name") or doc["run_id"])
    for key in ("dataset", "target"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise RunError(f"run.json needs {key!r} (a name). Got {doc.get(key)!r}.", f"Set {key!r}.")
    if doc.get("task") not in TASKS:
        raise RunError(f"run.json's task must be one of {', '.join(TASKS)}. Got {doc.get('task')!r}.",
                       "Set 'task'.")
    features = doc.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
        raise RunError("run.json needs 'features': the feature names in model order.", "Set 'features'.")
    categorical = doc.setdefault("categorical", {})
    if not isinstance(categorical, dict) or not set(categorical) <= set(features) or \
            not all(isinstance(v, list) for v in categorical.values()):
        raise RunError("run.json's 'categorical' must map feature names to their training categories (lists).",
                       "Set 'categorical' to {column: [categories in code order]}.")
    if doc["task"] != "regression":
        classes = doc.get("classes")
        need = 2 if doc["task"] == "binary" else 3
        if not isinstance(classes, list) or (len(classes) != need if need == 2 else len(classes) < need):
            raise RunError(f"A {doc['task']} run needs 'classes' ({'two' if need == 2 else 'three or more'} class "
                           f"values in label order). Got {classes!r}.", "Set 'classes'.")
    tags = doc.get("tags") or []
    doc["tags"] = _clean_tags(tags)
    return doc


def _clean_tags(tags: Iterable[str]) -> list[str]:
    out: list[str] = []
    for t in tags:
        if not isinstance(t, str) or not t.strip() or len(t.strip()) > TAG_MAX:
            raise RunError(f"A tag must be some text of at most {TAG_MAX} characters. Got {t!r}.", "Shorten it.")
        if t.strip() not in out:
            out.append(t.strip())
    return out


def _write(path: Path, text: str) -> None:
    """Write a file and push it to disk, so a renamed folder never holds half-written files after a crash."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dumps(doc: object) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _main_metric(doc: dict) -> str | None:
    """The metric the registry sorts by: run.json's "metric", else the task's usual one that was measured."""
    metrics = doc.get("metrics") or {}
    measured = [*(metrics.get("valid") or {}), *(metrics.get("test") or {})]
    if isinstance(doc.get("metric"), str):
        return doc["metric"]
    for name in MAIN_METRICS.get(doc.get("task"), ()):
        if name in measured:
            return name
    return measured[0] if measured else None


def _row(doc: dict) -> tuple:
    """The registry row of a run.json."""
    metric = _main_metric(doc)
    metrics = doc.get("metrics") or {}
    device = doc.get("device") or {}
    return (doc["run_id"], doc.get("name") or doc["run_id"], _parse_time(doc["created_at"]), doc["dataset"],
            doc["target"], doc["task"], device.get("used") if isinstance(device, dict) else str(device), metric,
            _number((metrics.get("valid") or {}).get(metric)), _number((metrics.get("test") or {}).get(metric)),
            list(doc.get("tags") or []), doc.get("status") or "complete")


def _upsert(con: duckdb.DuckDBPyConnection, doc: dict) -> None:
    marks = ", ".join("?" for _ in _ROW_COLUMNS)
    con.execute(f"INSERT OR REPLACE INTO runs ({', '.join(_ROW_COLUMNS)}) VALUES ({marks})", list(_row(doc)))


def save_run(settings: Settings, run_json: dict, model_text: str, curve: dict, importance: dict,
             recipe_json: str | None = None) -> Path:
    """Save a trained run as its folder and register it; the folder's path.

    The files are written into ``runs/.partial-<id>/``, pushed to disk, and the folder is renamed to
    ``runs/<id>/`` in one step; the registry row is added after. A save killed at any point leaves
    either no run or a complete one (which the next ``list_runs`` indexes if its row is missing).

    Parameters
    ----------
    run_json
        run.json's content (see the module docstring). Missing "format", "version", "run_id",
        "created_at" and "name" are filled in; the run id of the saved run is ``path.name``.
    model_text
        The LightGBM model in its text format (``Booster.model_to_string()``).
    recipe_json
        The fitted recipe's JSON text (``Recipe.dumps()``), or None when the run used the raw dataset.
    """
    doc = _check_run_json(run_json)
    if not isinstance(model_text, str) or not model_text.startswith("tree"):
        raise RunError("The model must be LightGBM's text format (Booster.model_to_string()).",
                       "Pass the model text, not a pickle or a file name.")
    if recipe_json is not None:
        R.loads(recipe_json)  # a damaged recipe would make the run unusable for scoring: refuse it now
    run_id = doc["run_id"]
    folder = runs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / run_id
    if final.exists():
        raise RunError(f"A run with the id {run_id!r} already exists.", "Use new_run_id() for every run.")
    partial = folder / f"{PARTIAL}{run_id}"
    partial.mkdir()
    try:
        _write(partial / "model.txt", model_text)
        if recipe_json is not None:
            _write(partial / "recipe.json", recipe_json)
        _write(partial / "curve.json", _dumps(curve))
        _write(partial / "importance.json", _dumps(importance))
        _write(partial / "run.json", _dumps(doc))  # last: a folder with run.json has everything
        _fsync_dir(partial)
        os.rename(partial, final)
        _fsync_dir(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    # The folder is the truth: if the registry cannot be opened now, the next list_runs indexes the run.
    with suppress(RunError), _registry(settings) as con:
        _upsert(con, doc)
    return final


# ----------------------------------------------------------------------------------------------
# Listing, with reconciliation


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _age_s(path: Path) -> float:
    """Seconds since anything in a folder last changed."""
    try:
        times = [path.stat().st_mtime, *(p.stat().st_mtime for p in path.iterdir())]
    except OSError:
        return 0.0
    return time.time() - max(times)


def _reconcile(settings: Settings, con: duckdb.DuckDBPyConnection) -> None:
    """Make the registry match the folders (the truth); remove what dead saves and deletes left behind."""
    folder = runs_dir(settings)
    complete: dict[str, Path] = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if not p.is_dir() or p.is_symlink():  # a linked folder is not a run (load_run refuses it too)
                continue
            if p.name.startswith(DELETING) or (p.name.startswith(PARTIAL) and _age_s(p) > STALE_PARTIAL_S):
                shutil.rmtree(p, ignore_errors=True)
            elif RUN_ID_RE.match(p.name) and (p / "run.json").is_file():
                complete[p.name] = p
    known = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
    gone = sorted(known - set(complete))
    if gone:
        con.execute("DELETE FROM runs WHERE list_contains(?, run_id)", [gone])
    for run_id in sorted(set(complete) - known):
        doc = _read_json(complete[run_id] / "run.json")
        if doc is None or doc.get("run_id") != run_id:
            continue  # damaged or hand-made: not listed (load_run says what is wrong)
        with suppress(QuarryError, KeyError, TypeError, duckdb.Error):
            _upsert(con, doc)


def _summary(row: tuple) -> RunSummary:
    values = dict(zip(_ROW_COLUMNS, row, strict=True))
    created = values["created_at"]
    values["created_at"] = created.replace(tzinfo=UTC).isoformat(timespec="milliseconds") if created else ""
    values["tags"] = tuple(values["tags"] or ())
    values["device"] = values["device"] or ""
    return RunSummary(**values)


def list_runs(settings: Settings, *, dataset: str | None = None, task: str | None = None, tag: str | None = None,
              order_by: str = "created_at", descending: bool = True) -> list[RunSummary]:
    """The saved runs, filtered and sorted (missing values last); the registry is brought in step first.

    Parameters
    ----------
    dataset, task, tag
        Only runs on this dataset, of this task, carrying this tag.
    order_by
        One of ``ORDER_COLUMNS``; ties are broken by run id (creation order).
    """
    if order_by not in ORDER_COLUMNS:
        raise RunError(f"Runs cannot be sorted by {order_by!r}.", f"Sort by one of: {', '.join(ORDER_COLUMNS)}.")
    where, params = [], []
    for column, value in (("dataset", dataset), ("task", task)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if tag is not None:
        where.append("list_contains(tags, ?)")
        params.append(tag)
    direction = "DESC" if descending else "ASC"
    sql = (f"SELECT {', '.join(_ROW_COLUMNS)} FROM runs {'WHERE ' + ' AND '.join(where) if where else ''} "
           f"ORDER BY {order_by} {direction} NULLS LAST, run_id {direction}")
    with _registry(settings) as con:
        _reconcile(settings, con)
        rows = con.execute(sql, params).fetchall()
    return [_summary(r) for r in rows]


# ----------------------------------------------------------------------------------------------
# One run


def _unknown(settings: Settings, run_id: object) -> RunError:
    ids = sorted((p.name for p in runs_dir(settings).glob("*") if (p / "run.json").is_file()
                  and RUN_ID_RE.match(p.name)), reverse=True) if runs_dir(settings).is_dir() else []
    known = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "") if ids else "none yet"
    return RunError(f"No run with the id {shown(run_id)}.",
                    f"Saved runs (newest first): {known}. List them on the Runs page or with the runs command.")


def _folder(settings: Settings, run_id: str) -> Path:
    """The folder of a complete run, resolved inside runs/; an unknown (or unsafe) id raises RunError listing
    the runs, before any path is made from it."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise _unknown(settings, run_id)
    path = _inside(runs_dir(settings), run_id)
    if not (path / "run.json").is_file():
        raise _unknown(settings, run_id)
    return path


def _damaged(path: Path, what: str) -> RunError:
    return RunError(f"The run folder {path} is damaged: {what}.", "Delete the run and train it again.")


def load_run(settings: Settings, run_id: str) -> Run:
    """A saved run: run.json, curve, importance and the fitted recipe (the model text is read when used)."""
    path = _folder(settings, run_id)
    info = _read_json(path / "run.json")
    if info is None or info.get("format") != FORMAT:
        raise _damaged(path, "run.json is unreadable or not a Quarry run")
    if info.get("run_id") != run_id:  # the id names the caches (cache_dir): it must be the folder's own
        raise _damaged(path, f"run.json names the run {shown(info.get('run_id'))}, not {run_id!r}")
    if info.get("version") != VERSION:
        raise RunError(f"Run {run_id!r} was saved in run format version {info.get('version')!r}; this Quarry "
                       f"reads version {VERSION}.", "Train the run again with this version of Quarry.")
    curve = _read_json(path / "curve.json")
    importance = _read_json(path / "importance.json")
    if curve is None or importance is None:
        raise _damaged(path, "curve.json or importance.json is unreadable")
    recipe_path = path / "recipe.json"
    recipe_json = recipe_path.read_text(encoding="utf-8") if recipe_path.exists() else None
    recipe = R.loads(recipe_json) if recipe_json is not None else None
    return Run(path=path, info=info, curve=curve, importance=importance, recipe_json=recipe_json, recipe=recipe)


def _rewrite_run_json(path: Path, doc: dict) -> None:
    """Replace run.json whole (a temporary file, then a rename)."""
    atomic.write_text(path / "run.json", _dumps(doc))


def _update(settings: Settings, run_id: str, change: Callable[[dict], None]) -> RunSummary:
    """Change run.json (the truth) and then the registry row, both under the lock."""
    with _registry(settings) as con:
        path = _folder(settings, run_id)
        doc = _read_json(path / "run.json")
        if doc is None:
            raise _damaged(path, "run.json is unreadable")
        change(doc)
        _rewrite_run_json(path, doc)
        _upsert(con, doc)
        row = con.execute(f"SELECT {', '.join(_ROW_COLUMNS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return _summary(row)


def rename_run(settings: Settings, run_id: str, name: str) -> RunSummary:
    """Give a run a new display name (the id, and so the folder, stay)."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise RunError(f"A run name must be some text of at most 200 characters. Got {name!r}.", "Type a name.")
    return _update(settings, run_id, lambda doc: doc.update(name=name.strip()))


def tag_run(settings: Settings, run_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> RunSummary:
    """Add and remove tags of a run (a tag added twice is kept once; removing an absent tag does nothing)."""
    add = _clean_tags([add] if isinstance(add, str) else add)
    remove = _clean_tags([remove] if isinstance(remove, str) else remove)

    def change(doc: dict) -> None:
        doc["tags"] = [t for t in _clean_tags([*(doc.get("tags") or []), *add]) if t not in remove]

    return _update(settings, run_id, change)


def delete_run(settings: Settings, run_id: str) -> None:
    """Delete a run: its folder disappears in one rename, then its row; the files are removed last."""
    with _registry(settings) as con:
        path = _folder(settings, run_id)
        owner = (_read_json(path / "run.json") or {}).get("created_by")
        auth.require_run_delete(owner)  # analysts delete their own runs, admins anyone's
        cache = cache_dir(settings, run_id)  # before the rename: a refused cache folder leaves the run as it was
        doomed = path.with_name(f"{DELETING}{run_id}-{secrets.token_hex(3)}")
        os.rename(path, doomed)
        con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
    shutil.rmtree(doomed, ignore_errors=True)  # leftovers are removed by the next list_runs
    shutil.rmtree(cache, ignore_errors=True)
    audit.record(settings, "run.delete", run=run_id, owner=owner)


# ----------------------------------------------------------------------------------------------
# Comparing


def _same(a: object, b: object) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _differing(values: dict[str, list]) -> dict[str, list]:
    return {k: v for k, v in values.items() if not all(_same(v[0], x) for x in v[1:])}


SETUP_KEYS = ("dataset", "fingerprint", "target", "task", "features", "categorical", "split", "data_path", "rows",
              "best_iteration")


def compare_runs(settings: Settings, ids: Sequence[str]) -> dict:
    """Runs side by side: the parameters and set-up that differ, and every metric, one value per run.

    Returns ``{"runs": [{"run_id", "name", "created_at", "dataset", "task"}...], "params": {name: [value per
    run]} (differing only; a run without the parameter has None), "setup": {key: [...]} (differing only:
    dataset, target, features, split...), "metrics": {"valid": {metric: [...]}, "test": {...}}}``.
    """
    ids = list(dict.fromkeys(ids))
    if len(ids) < 2:
        raise RunError(f"Comparing needs at least two runs. Got {len(ids)}.", "Pick two or more runs.")
    runs = [load_run(settings, i) for i in ids]
    param_names = list(dict.fromkeys(k for r in runs for k in (r.info.get("params") or {})))
    params = {k: [(r.info.get("params") or {}).get(k) for r in runs] for k in param_names}
    setup = {k: [r.info.get(k) for r in runs] for k in SETUP_KEYS}
    setup["device"] = [(r.info.get("device") or {}).get("used") for r in runs]
    metrics: dict[str, dict[str, list]] = {}
    for part in ("valid", "test"):
        names = list(dict.fromkeys(k for r in runs for k in ((r.info.get("metrics") or {}).get(part) or {})))
        metrics[part] = {m: [((r.info.get("metrics") or {}).get(part) or {}).get(m) for r in runs] for m in names}
    return {
        "runs": [{"run_id": r.run_id, "name": r.name, "created_at": r.info.get("created_at"),
                  "dataset": r.info.get("dataset"), "task": r.task} for r in runs],
        "params": _differing(params),
        "setup": _differing(setup),
        "metrics": metrics,
    }

"""Files written whole or not at all (a temporary file beside the target, renamed onto it when complete), and
one exclusive lock among Quarry's processes. Every writer in Quarry goes through these."""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(out: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``out``; move it onto ``out`` only if the block succeeds."""
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


def write_text(out: Path, text: str) -> None:
    """Write a text file whole or not at all."""
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(out: Path, data: bytes) -> None:
    """Write a binary file whole or not at all."""
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


def write_json(out: Path, doc: object, **dump: object) -> None:
    """Write a JSON document whole or not at all (``dump`` goes to json.dumps, e.g. indent=1)."""
    write_text(out, json.dumps(doc, **dump))


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive use of what `path` (a lock file, created if needed) guards, among processes and threads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

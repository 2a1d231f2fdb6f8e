"""Files written whole or not at all: a temporary file beside the target, renamed onto it when complete."""
from __future__ import annotations

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

"""What every command shares: the opened workspace, JSON and table output, progress on a terminal."""
from __future__ import annotations

import json
import sys

import pyarrow as pa

from core.fmt import jsonable
from core.workspace import Workspace, open_workspace


class Context(Workspace):
    """The workspace a command works in (core.workspace, opened the same way as the pages' and the jobs')."""

    @classmethod
    def open(cls) -> Context:
        ws = open_workspace()
        return cls(ws.settings, ws.con, ws.catalog)


def _share_progress(label: str):
    """Like _progress, for work that reports the share done (0 to 1)."""
    if not sys.stderr.isatty():
        return None
    return lambda share: sys.stderr.write(f"\r{label}: {share:4.0%}" + ("\n" if share >= 1 else "")) and None


# ----------------------------------------------------------------------------------------------
# Output helpers


def emit_json(doc: object) -> None:
    """One valid JSON document on stdout."""
    json.dump(jsonable(doc), sys.stdout, allow_nan=False)
    sys.stdout.write("\n")


def table_json(table: pa.Table) -> dict:
    """A page of rows as JSON: column names and types, then rows as lists."""
    return {"columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "rows": [list(r.values()) for r in table.to_pylist()]}


def print_table(table: pa.Table) -> None:
    """A page of rows as an aligned text table (the page is bounded, so this is small)."""
    import polars as pl

    with pl.Config(tbl_rows=table.num_rows, tbl_cols=-1, tbl_width_chars=200, fmt_str_lengths=40,
                   tbl_hide_dataframe_shape=True):
        print(pl.from_arrow(table))


def _progress(label: str):
    """A progress printer for stderr (only on a terminal, so logs and pipes stay clean)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        sys.stderr.write(f"\r{label}: {done / max(total, 1):4.0%} ({done:,} / {total:,} rows)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show

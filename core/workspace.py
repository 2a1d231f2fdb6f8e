"""One way to open the workspace: settings, Quarry's DuckDB connection and the catalog, views in step.

The pages (core.ui, with a connection cached per server), the CLI and the training worker all open it
here, so a dataset means the same thing everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

from core.data import catalog as cat
from core.data import engine
from core.settings import Settings, load_settings


@dataclass(frozen=True)
class Workspace:
    """What a page, a command or a job needs: settings, a DuckDB connection and the catalog."""

    settings: Settings
    con: duckdb.DuckDBPyConnection
    catalog: cat.Catalog

    def version(self) -> tuple:
        """Identity of the catalog's contents, part of every cache key (re-registering invalidates)."""
        return tuple((d.name, d.source, d.registered_at) for d in self.catalog.list())


def open_workspace(settings: Settings | None = None, con: duckdb.DuckDBPyConnection | None = None) -> Workspace:
    """Settings (from the environment unless given), a connection (a new one unless given), the catalog, and
    DuckDB's views brought in step with it."""
    settings = settings or load_settings()
    con = con if con is not None else engine.connect(settings)
    catalog = cat.Catalog(settings)
    cat.sync_views(con, catalog.list())
    return Workspace(settings, con, catalog)

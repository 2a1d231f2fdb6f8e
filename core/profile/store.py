"""Profiles kept in the workspace, keyed by the dataset's fingerprint and the options.

Reopening a profile is instant; a changed file (size or modification time) has a new
fingerprint, so it is profiled again. Files are written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from core import atomic
from core.data import catalog as cat
from core.profile.scan import Profile, Progress, profile_table
from core.settings import Settings

FORMAT_VERSION = 1


def profile_path(settings: Settings, dataset: cat.Dataset, exact: bool) -> Path:
    """Where this dataset's profile (with these options) is kept."""
    key = cat.fingerprint(dataset, settings)
    return settings.workspace / "profiles" / f"{dataset.name}-{key}-{'exact' if exact else 'approx'}.json"


def load_or_profile(con: duckdb.DuckDBPyConnection, dataset: cat.Dataset, settings: Settings, *,
                    exact: bool = False, progress: Progress | None = None,
                    refresh: bool = False, compute: bool = True) -> tuple[Profile | None, bool]:
    """(profile, True) from the workspace when the files are unchanged; else profile, keep it, (profile, False).

    With ``compute=False`` nothing is profiled: (None, False) when no usable profile is kept.
    """
    path = profile_path(settings, dataset, exact)
    if path.exists() and not refresh:
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") == FORMAT_VERSION:
                return Profile.from_json(doc["profile"]), True
        except (ValueError, KeyError, TypeError):
            pass  # a damaged or older file: profile again and replace it
    if not compute:
        return None, False
    result = profile_table(con, dataset.name, exact=exact, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, {"format": FORMAT_VERSION, "profile": result.to_json()}, allow_nan=False)
    return result, False

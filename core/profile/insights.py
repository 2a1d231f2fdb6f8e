"""What a profile tells beyond its statistics: quality alerts, missing-value patterns, target analysis.

Each part runs its own aggregate queries over the full data (core.alerts, core.missingness,
core.target); this module only puts them together for the CLI, the page and the HTML report.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

from core.errors import QuarryError
from core.fmt import jsonable
from core.profile import alerts as al
from core.profile import missingness, target
from core.profile.scan import Profile


@dataclass(frozen=True)
class Insights:
    """Alerts (warnings first), missing-value patterns and, when a target is chosen, its analysis."""

    alerts: tuple[al.Alert, ...]
    patterns: missingness.MissingPatterns
    target: target.TargetAnalysis | None = None

    def to_json(self) -> dict:
        return jsonable({"alerts": [a.to_json() for a in self.alerts], "missing_patterns": self.patterns.to_json(),
                         "target": self.target.to_json() if self.target else None})


def insights(con: duckdb.DuckDBPyConnection, profile: Profile, *, fmt: str | None = None,
             target_column: str | None = None) -> Insights:
    """Alerts, missing patterns and (with `target_column`) the target analysis of a profiled dataset.

    Parameters
    ----------
    profile
        The dataset's profile; ``profile.table`` is the registered dataset queried.
    fmt
        The dataset's file format ('csv' turns on the mixed-types check).
    target_column
        The column to predict. An unusable one (constant, all missing, free text) raises QuarryError.
    """
    if target_column is not None and target_column not in {c.name for c in profile.columns}:
        raise QuarryError(f"{target_column!r} is not a column of {profile.table}.",
                          "Pick the target among the dataset's columns.")
    analysis = target.target_relations(con, profile.table, profile, target_column) if target_column else None
    alerts = al.all_alerts(profile, con, fmt=fmt, target=target_column,
                           relations=analysis.features if analysis else None)
    return Insights(alerts=alerts, patterns=missingness.missing_patterns(con, profile.table, profile),
                    target=analysis)

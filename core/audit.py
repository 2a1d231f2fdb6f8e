"""The audit log: who did what, when — one JSON line per event in ``workspace/audit.jsonl``, append-only.

Events are sign-ins (success, failure, lockout), SQL text run, registrations, training started, scoring and
deletions. Each line is written with a single ``os.write`` on a file opened with ``O_APPEND``, so lines from
several threads or processes (the app, job workers, the CLI) never interleave, and nothing rewrites the
file. A failure to write is logged and never stops the action (the log must not lock people out).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.settings import Settings

LOG = logging.getLogger("quarry.audit")
FILE_NAME = "audit.jsonl"
_lock = threading.Lock()  # O_APPEND already keeps lines whole; the lock keeps this process's order too


@dataclass(frozen=True)
class Event:
    """One audit line: when (ISO 8601, UTC), who (email, "password user" or the OS user), what, details."""

    at: str
    who: str
    action: str
    details: dict

    def to_json(self) -> dict:
        return {"at": self.at, "who": self.who, "action": self.action, **self.details}


def path(settings: Settings) -> Path:
    """Where the audit log is: ``audit.jsonl`` in the workspace."""
    return settings.workspace / FILE_NAME


def record(settings: Settings, action: str, who: str | None = None, **details: object) -> Event:
    """Append one event; `who` defaults to the current identity (core.auth.who()).

    Parameters
    ----------
    action
        What happened, a dotted word such as "signin.failure", "sql.run", "dataset.register", "train.start",
        "score", "dataset.remove", "run.delete".
    details
        JSON-able facts about it (the SQL text, the dataset name, the client, ...).
    """
    if who is None:
        from core import auth  # here: core.auth imports this module

        who = auth.who()
    event = Event(datetime.now(UTC).isoformat(timespec="milliseconds"), who, action, details)
    line = (json.dumps(event.to_json(), default=str, ensure_ascii=False) + "\n").encode("utf-8")
    target = path(settings)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _lock:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
    except OSError as exc:
        LOG.error("could not write the audit log %s (%s): %s", target, exc, line.decode().strip())
    return event


def read(settings: Settings, last: int | None = None) -> list[dict]:
    """The logged events, oldest first (the `last` N when given); a damaged line is skipped."""
    target = path(settings)
    if not target.exists():
        return []
    events = []
    for text in target.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return events[-last:] if last else events

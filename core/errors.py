"""Errors a user can cause: each says what was wrong (message) and what to do (hint).

The library raises these; only the outer layer (CLI, pages) turns them into what a person sees.
"""
from __future__ import annotations


class QuarryError(Exception):
    """An error with a plain message and a hint on how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class PathError(QuarryError):
    """A path is missing, unreadable or outside the data roots."""


class DatasetError(QuarryError):
    """A dataset cannot be registered or read (bad file, bad name, unknown dataset)."""


class QueryError(QuarryError):
    """A query failed: bad SQL, a bad expression or an unknown column."""


class QueryRefused(QueryError):
    """User SQL was refused by the sandbox before it ran."""


class QueryTimeout(QueryError):
    """A query ran past its time limit and was interrupted."""

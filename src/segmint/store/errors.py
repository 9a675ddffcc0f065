"""Errors raised by the store.

::

    SegmintError
    └── StoreError
        ├── StoreUnavailable (+ Transient)   the server cannot be reached
        ├── StoreLocked                      the DuckDB file is held by another process
        └── StoreTooNew                      written by a newer segmint
"""

from __future__ import annotations

from segmint.errors import SegmintError, Transient


class StoreError(SegmintError):
    """A problem opening or using the store."""


class StoreUnavailable(StoreError, Transient):
    """The database server cannot be reached."""


class StoreLocked(StoreError):
    """The embedded database file is held by another process (``holder`` says which)."""

    def __init__(
        self, message: str, *, holder: str = "another process", pid: int | None = None
    ) -> None:
        super().__init__(message)
        self.holder = holder
        self.pid = pid


class StoreTooNew(StoreError):
    """The store was written by a newer version of segmint."""

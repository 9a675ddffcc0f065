"""Errors of the journeys stage (drawn in :mod:`segmint.errors`)."""

from __future__ import annotations

from segmint.errors import SegmintError


class JourneyError(SegmintError):
    """A journey cannot run or be shown."""


class UnknownJourneyError(JourneyError, KeyError):
    """No journey has the name given (the message suggests the nearest)."""

    def __str__(self) -> str:
        """The message, without KeyError's quotes."""
        return str(self.args[0]) if self.args else ""

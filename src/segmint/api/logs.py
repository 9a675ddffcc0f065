"""Structured logs: one JSON object per line (``segmint serve --log-format json``).

Each record has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus
``exception`` when one is attached and any ``extra`` fields given to the log call, so a log
shipper reads them without parsing text.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

FORMATS = ("text", "json")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON text."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        return orjson.dumps(out, default=str).decode()


def configure(log_format: str, level: str) -> None:
    """Set up logging for the server: for ``json``, every logger (uvicorn's too) to JSON lines.

    Call it after creating the ``uvicorn.Config``, which sets up uvicorn's own loggers.

    Args:
        log_format: ``text`` (uvicorn's own lines) or ``json``.
        level: The level name (``warning`` …; ``trace`` counts as debug).
    """
    if log_format != "json":
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("DEBUG" if level.lower() == "trace" else level.upper())
    for name in ("uvicorn", "uvicorn.error"):  # access lines stay off, as in text mode
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

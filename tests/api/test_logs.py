"""Structured logs: one JSON object per line with time, level, logger, message and extras."""

from __future__ import annotations

import logging

import orjson

from segmint.api.logs import JsonFormatter


def test_a_record_is_one_line_of_json() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        info = sys.exc_info()
    record = logging.LogRecord("segmint.api", logging.ERROR, __file__, 1, "failed %s", ("x",), info)
    record.created = 1767225600.25  # 2026-01-01T00:00:00.250Z
    record.path = "/v1/track"
    record.color_message = "\x1b[31mfailed\x1b[0m"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    got = orjson.loads(line)
    assert got["time"] == "2026-01-01T00:00:00.250+00:00"
    assert (got["level"], got["logger"], got["message"]) == ("error", "segmint.api", "failed x")
    assert got["path"] == "/v1/track" and "color_message" not in got
    assert "ValueError: bad" in got["exception"]

"""Helpers that belong to no stage: name suggestions, durations, chunked ``IN`` lists, stops, GC.

Every stage may import this module; it imports nothing of segmint's, so the rule language's
core does not depend on the config package (or any other stage) for these.
"""

from __future__ import annotations

import difflib
import gc
import importlib
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")

#: How many values one ``IN (?, ?, …)`` list holds: far below every backend's parameter limit.
IN_CHUNK = 500


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or None if nothing is close."""
    pool = list(candidates)
    found = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if found:
        return found[0]
    lowered = {c.lower(): c for c in pool}
    return lowered.get(name.lower())


_ADDRESS = re.compile(r"[^@\s<>\",;]+@[^@\s<>\",;'.]+(\.[^@\s<>\",;'.]+)+")


def looks_like_address(text: str) -> bool:
    """Whether ``text`` (trimmed) has the shape of an email address.

    One ``@``, no spaces, quotes, brackets, commas or semicolons (an apostrophe may stand
    in the local part: ``o'neil@example.com``), and a domain of at least two non-empty
    labels. Shared by intake (which values link profiles) and delivery (which addresses a
    consent, suppression or send takes).
    """
    return _ADDRESS.fullmatch(text.strip()) is not None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """Return "did you mean 'x'?" for the nearest candidate, or None."""
    found = nearest(name, candidates)
    return f"did you mean '{found}'?" if found else None


def did_you_mean_file(name: str, candidates: Iterable[str]) -> str | None:
    """:func:`did_you_mean` for file names, compared without their extensions.

    A shared ``.html`` is no likeness: ``nosuch.html`` is not near ``layout.html``.
    """
    by_stem: dict[str, str] = {}
    for candidate in candidates:
        by_stem.setdefault(_stem(candidate), candidate)
    found = nearest(_stem(name), by_stem)
    return f"did you mean '{by_stem[found]}'?" if found else None


def _stem(name: str) -> str:
    """A file name without the extension of its last part (``emails/welcome.html``)."""
    head, _, last = name.rpartition("/")
    base = last.rsplit(".", 1)[0] if "." in last.lstrip(".") else last
    return f"{head}/{base}" if head else base


_UNITS = {
    "s": "seconds", "sec": "seconds", "second": "seconds", "seconds": "seconds",
    "m": "minutes", "min": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "week": "weeks", "weeks": "weeks",
}  # fmt: skip
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``30d``, ``12 hours``, ``90 days`` or ``2w`` into a timedelta.

    Months and years are refused on purpose: their length varies, so a window written in
    them would not mean one thing.

    Raises:
        ValueError: With a message that says which forms are accepted.
    """
    match = _PATTERN.match(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"cannot read duration {text!r}: write a number and a unit, e.g. '30d', "
            "'12h', '90 days' (units: s, m, h, d, w)"
        )
    return timedelta(**{unit: float(match.group(1))})


def format_duration(value: timedelta) -> str:
    """Format a timedelta canonically in the largest whole unit (``30 days``, ``90 minutes``)."""
    seconds = int(value.total_seconds())
    for unit, size in (("weeks", 604800), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds and seconds % size == 0 and unit != "weeks":
            count = seconds // size
            return f"{count} {unit if count != 1 else unit[:-1]}"
    return f"{seconds} seconds" if seconds != 1 else "1 second"


def batched(rows: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """Yield successive slices of ``rows`` of at most ``size`` items."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def in_lists(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[tuple[str, Sequence[T]]]:
    """Yield ``(marks, chunk)`` pairs for ``... IN ({marks})`` queries over ``values``.

    ``marks`` is ``"?, ?, …"`` with one placeholder per value of ``chunk``.
    """
    for chunk in batched(values, size):
        yield ", ".join("?" for _ in chunk), chunk


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562) importing each public name on first use.

    A package ``__init__`` that re-exports its stages imports all of them, and with them
    DuckDB, pyarrow and sqlglot, whenever any one stage is imported; the CLI then pays for
    modules a command never runs. With this, ``from package import Name`` still works and
    imports only ``Name``'s module.

    Args:
        package: The package's ``__name__``.
        homes: Public name → the submodule (relative to ``package``) that defines it.
    """

    def get(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return get


STOP_PATIENCE = 5.0
"""Seconds a stop waits quietly for a thread's work under way before it says so."""


def wait_for_thread(thread: threading.Thread, what: str) -> None:
    """Wait until ``thread`` ends, saying so when that takes over :data:`STOP_PATIENCE` s.

    A stop never leaves a thread running on the store it is about to close: DuckDB aborts
    the process when a connection closes under a statement in progress.
    """
    thread.join(STOP_PATIENCE)
    if thread.is_alive():
        logging.getLogger("segmint").warning("stopping: waiting for %s", what)
        thread.join()


def tune_gc_for_serving() -> None:
    """Collect cycles rarely in a long-running server process (``segmint serve``).

    A server allocates many short-lived, acyclic objects per request and per engine step,
    and the default thresholds made the collector walk the large, long-lived graph (the
    identity graph, the real-time engine's profiles) thousands of times a second, finding
    nothing. Measured: a third less CPU per event at intake, a quarter less in real time.
    Call it once startup has built what lives as long as the process.
    """
    gc.freeze()  # what startup built is never garbage
    gc.set_threshold(50_000, 50, 100)


class KafkaClientLog:
    """librdkafka's log lines, through Python logging (``segmint.kafka.client``).

    Left alone, librdkafka prints each of its lines (``%3|…|FAIL|… Connection refused``,
    many a second while a broker is unreachable) to stderr. Its errors are ones it retries
    on its own; what finally fails reaches segmint as an exception with a clear message.
    So its lines are logged at INFO at most: ``--log-level info`` (or debug) shows them.
    """

    def __init__(self) -> None:
        self.logger = logging.getLogger("segmint.kafka.client")

    def log(self, level: int, msg: str, *args: Any) -> None:
        """What confluent_kafka calls with each line (its level as a Python level)."""
        self.logger.log(min(level, logging.INFO), msg, *args)


KAFKA_CLIENT_LOG = KafkaClientLog()
"""The ``logger`` every Kafka client of segmint is configured with."""

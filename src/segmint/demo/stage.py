"""What the demo's steps share: options, the running context, and how a step reports.

Each step of the walk-through calls segmint's public Python API. A step whose API is not
available says so (:class:`StageUnavailable`) and the demo goes on; a step never pretends.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from segmint.demo.errors import DemoError
from segmint.demo.generator import DEFAULT_AS_OF, DEFAULT_CUSTOMERS, DEFAULT_SEED
from segmint.workspace import Workspace

Status = Literal["done", "unavailable", "skipped", "failed"]


class StageUnavailable(DemoError):
    """A step's API is not part of this segmint build (yet)."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``segmint demo`` was asked to do.

    Attributes:
        customers: How many customers the synthetic shop has.
        directory: The demo workspace folder (reset on every run).
        out: The folder for previews, the outbox and the summary (reset on every run).
        seed: The shop's seed.
        as_of: The end of the demo year; refresh, previews and campaign run at this instant.
        debug: Print tracebacks of failed steps.
        commands: The CLI's command paths (``segments list``…), to suggest only those that
            exist; None suggests them all.
    """

    customers: int = DEFAULT_CUSTOMERS
    directory: Path = Path("demo-shop")
    out: Path = Path("demo-out")
    seed: int = DEFAULT_SEED
    as_of: datetime = DEFAULT_AS_OF
    debug: bool = False
    commands: frozenset[str] | None = None


@dataclass(frozen=True)
class Outcome:
    """How one step went: ``done``, ``unavailable`` (API missing), ``skipped`` or ``failed``."""

    stage: str
    status: Status
    detail: str
    seconds: float = 0.0


@dataclass
class DemoContext:
    """The state the steps pass along.

    Attributes:
        options: The demo's options.
        console: Where the steps print.
        workspace: The demo workspace, once laid out.
        archetypes: Each customer's user id → archetype name (to show where they landed).
        provider: The unsubscribes and bounces the shop's previous email provider recorded.
        facts: Figures steps record for the summary (event counts, segment sizes, files).
    """

    options: DemoOptions
    console: Console
    workspace: Workspace | None = None
    archetypes: dict[str, str] = field(default_factory=dict)
    provider: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ws(self) -> Workspace:
        """The demo workspace.

        Raises:
            DemoError: If the workspace step has not run.
        """
        if self.workspace is None:
            raise DemoError("the demo workspace has not been created")
        return self.workspace


def need(module: str, *names: str) -> tuple[Any, ...]:
    """Import ``names`` from ``module``, or say plainly that they are not available.

    Raises:
        StageUnavailable: If the module cannot be imported or lacks one of the names.
    """
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise StageUnavailable(f"{module} is not available yet ({exc})") from None
    missing = [name for name in names if not hasattr(found, name)]
    if missing:
        raise StageUnavailable(f"{module} does not provide {', '.join(missing)} yet")
    return tuple(getattr(found, name) for name in names)


def count(number: int, noun: str) -> str:
    """``20,000 customers``, ``1 customer``: a number with its noun, plural when needed."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"

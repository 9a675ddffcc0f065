"""Parameter types shared by every command: one way to type an instant.

Kept light on purpose (click and :mod:`segmint.clock` only): every command module imports it
when the CLI starts.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from segmint.clock import (
    INSTANT_FORMS,
    InstantOutOfRange,
    SystemClock,
    ensure_utc,
    parse_instant,
)


class InstantType(click.ParamType[datetime, Any]):
    """An instant typed on the command line, converted to an aware UTC datetime.

    Accepts what :func:`segmint.clock.parse_instant` accepts given the current time: ISO 8601
    dates and date-times (UTC when no offset is written), ``now``, and offsets from now
    (``-7d``, ``+2h``). A bad value is a usage error (exit status 2) that names the option,
    the value and the accepted forms.
    """

    name = "instant"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """Return ``value`` as an aware UTC datetime, or fail with the accepted forms."""
        if isinstance(value, datetime):
            return ensure_utc(value)
        try:
            return parse_instant(str(value), now=SystemClock().now())
        except InstantOutOfRange as exc:
            self.fail(str(exc), param, ctx)
        except ValueError as exc:
            self.fail(f"{exc}. Accepted: {INSTANT_FORMS}.", param, ctx)


INSTANT = InstantType()
"""The one parameter type of every ``--as-of`` (and any other instant option)."""

FC = TypeVar("FC", bound=Callable[..., Any])

_FORMS_HELP = "ISO 8601 (no offset = UTC), 'now', or relative like '-7d', '+2h'"


def as_of_option(
    what: str = "Evaluate at this instant", *, now_default: bool = True
) -> Callable[[FC], FC]:
    """The ``--as-of`` option: an :data:`INSTANT`, passed to the command as ``as_of``.

    Args:
        what: The first words of the help text (what the instant is for).
        now_default: Default to the current time (the command receives a datetime); when
            False the command receives None if the option is omitted.
    """
    return click.option(
        "--as-of",
        "as_of",
        type=INSTANT,
        default="now" if now_default else None,
        show_default=now_default,
        help=f"{what}: {_FORMS_HELP}." + ("" if now_default else " Default: the current time."),
    )


def refuse_later_than_now(instant: datetime, option: str, consequence: str) -> None:
    """Refuse an instant in the future for a command that would act on it now.

    Args:
        instant: The instant typed.
        option: The option's name, for the message (``--as-of``).
        consequence: What acting now as of that instant would do, and what to do instead.

    Raises:
        click.BadParameter: When ``instant`` is later than the current time.
    """
    now = SystemClock().now()
    if instant > now:
        raise click.BadParameter(
            f"{instant.isoformat()} is later than now ({now.isoformat(timespec='seconds')}): "
            f"{consequence}",
            param_hint=option,
        )


def check_kafka_url(url: str, option: str = "--kafka") -> str:
    """Return ``url`` if it is a Kafka topic URL; else a usage error naming ``option``.

    Checked before anything starts (the workspace opened, the port bound), with the reason
    :meth:`segmint.scale.kafka.KafkaTopic.from_url` gives.

    Raises:
        click.BadParameter: The URL is malformed (exit status 2).
    """
    from segmint.intake.streams import StreamUrlError
    from segmint.scale.kafka import KafkaTopic

    try:
        KafkaTopic.from_url(url)
    except StreamUrlError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    return url


class OutputFileType(click.Path):
    """A file a command will write: checked before the command does anything.

    The folder must exist and be a folder, and the path must not be one, so that a command
    which acts first and writes afterwards (``privacy erase --receipt``) never acts and then
    fails on the write. A bad path is a usage error (exit status 2) naming the option.
    """

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return the path, or fail naming the folder that is missing or not a folder."""
        path = Path(os.fsdecode(super().convert(value, param, ctx)))
        folder = path.parent
        if not folder.exists():
            self.fail(f"folder {str(folder)!r} does not exist: create it first", param, ctx)
        if not folder.is_dir():
            self.fail(f"{str(folder)!r} is a file, not a folder", param, ctx)
        return path


OUTPUT_FILE = OutputFileType()
"""The parameter type of an option naming a file to write (``--out``, ``--receipt``)."""


class DeferredChoice(click.Choice[str]):
    """A :class:`click.Choice` of the names in ``module.attribute``, imported when first used.

    The choices live beside the code that knows them (the SQL dialects in the rule compiler,
    the key scopes in intake); deferring them keeps those modules out of the CLI's start-up.
    """

    def __init__(self, module: str, attribute: str) -> None:
        self._where = (module, attribute)
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        """The names, imported on first use."""
        if self._choices is None:
            module, attribute = self._where
            self._choices = tuple(getattr(importlib.import_module(module), attribute))
        return self._choices

    @choices.setter
    def choices(self, value: tuple[str, ...]) -> None:
        self._choices = tuple(value)


def deferred_choice(module: str, attribute: str) -> click.Choice[str]:
    """A :class:`DeferredChoice` of the names in ``module.attribute``."""
    return DeferredChoice(module, attribute)

"""Segment fixture files: known profiles, an instant, and what segmint must decide for them.

A workspace keeps them in ``tests/segments/*.yaml``; ``segmint test`` runs them
(:mod:`segmint.governance.runner`). One file::

    description: VIPs and lapsed customers
    as_of: 2026-11-01T00:00:00Z
    profiles:
      ada:                                    # the user id of the profile
        traits: {email: ada@example.com, first_name: Ada}   # one identify call
        events:
          - {event: Order Completed, at: 2026-10-20, properties: {total: 1200}}
          - {event: Email Opened, at: -3d}    # 3 days before as_of
        expect:
          segments: [vip, recent_buyer]       # exactly these (in: / not_in: for some)
          traits: {lifetime_value: 1200, orders: 1}
          templates:
            - {template: "Hi {{ first_name }}", renders: "Hi Ada"}

Every key is checked (an unknown one is an error with a suggestion) and every problem names
``file:line:column`` (the workspace loader's machinery,
:func:`segmint.config.loader.validate_file`).
:func:`fixture_json_schema` is the JSON Schema of the format, for editors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from segmint.clock import ensure_utc, parse_instant
from segmint.common import did_you_mean
from segmint.config.errors import ConfigError, ConfigErrors
from segmint.config.loader import Positions, validate_file
from segmint.config.model import Strict, WorkspaceDef
from segmint.traits.model import BUILTINS

FIXTURE_DIR = Path("tests") / "segments"
"""Where a workspace keeps its segment fixture files."""


def _instant_text(value: Any) -> str:
    if isinstance(value, datetime):
        return ensure_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class EventFixture(Strict):
    """One event of a fixture profile.

    Attributes:
        event: A track event's name (``Order Completed``).
        identify: Traits of an identify call (instead of ``event``).
        at: When: ISO 8601 (``2026-10-20``, ``2026-10-20T09:30:00Z``) or an offset before
            the file's ``as_of`` (``-3d``, ``-2h``).
        properties: The track event's properties.
    """

    event: str | None = None
    identify: dict[str, Any] | None = None
    at: str
    properties: dict[str, Any] = Field(default_factory=dict)

    _read_at = field_validator("at", mode="before")(_instant_text)

    @model_validator(mode="after")
    def _one_kind(self) -> EventFixture:
        if (self.event is None) == (self.identify is None):
            raise ValueError("an event has either 'event' (a track call) or 'identify' (traits)")
        if self.identify is not None and self.properties:
            raise ValueError("'properties' belong to a track event; an identify has traits")
        return self


class TemplateExpectation(Strict):
    """A template snippet rendered for the profile, and what it must give.

    Attributes:
        template: The snippet, in the template language (``Hi {{ first_name }}``).
        renders: The exact text expected (surrounding white space ignored).
        contains: Text the rendered snippet must contain.
    """

    template: str
    renders: str | None = None
    contains: str | None = None

    @model_validator(mode="after")
    def _something_expected(self) -> TemplateExpectation:
        if self.renders is None and self.contains is None:
            raise ValueError("a template expectation needs 'renders' or 'contains'")
        return self


class Expectation(Strict):
    """What segmint must decide for one profile at the file's ``as_of``.

    Attributes:
        segments: Exactly the segments the profile is a member of.
        in_: Segments the profile must be a member of (others allowed).
        not_in: Segments the profile must not be a member of.
        traits: Trait values the profile must have (``null`` for a missing value).
        templates: Template snippets and what they must render for the profile.
    """

    segments: tuple[str, ...] | None = None
    in_: tuple[str, ...] = Field(default=(), alias="in")
    not_in: tuple[str, ...] = ()
    traits: dict[str, Any] = Field(default_factory=dict)
    templates: tuple[TemplateExpectation, ...] = ()


class ProfileFixture(Strict):
    """One profile: its identify traits, its events, and what is expected of it.

    Attributes:
        traits: Traits of one identify call made at the profile's first event (or at
            ``as_of`` when it has none). A profile with neither traits nor events gets an
            empty identify call at ``as_of``, so it exists (and sits in default segments).
        events: Its events, in any order.
        expect: What segmint must decide for it.
    """

    traits: dict[str, Any] = Field(default_factory=dict)
    events: tuple[EventFixture, ...] = ()
    expect: Expectation = Field(default_factory=Expectation)


class FixtureFile(Strict):
    """A fixture file.

    Attributes:
        description: What the file checks.
        as_of: The instant everything is evaluated at.
        profiles: Profiles by user id.
    """

    description: str | None = None
    as_of: str
    profiles: dict[str, ProfileFixture]

    _read_as_of = field_validator("as_of", mode="before")(_instant_text)

    @field_validator("as_of")
    @classmethod
    def _iso_instant(cls, value: str) -> str:
        parse_instant(value)  # a ValueError names the text
        return value

    @field_validator("profiles")
    @classmethod
    def _some_profiles(cls, value: dict[str, ProfileFixture]) -> dict[str, ProfileFixture]:
        if not value:
            raise ValueError("a fixture file needs at least one profile")
        return value


@dataclass(frozen=True)
class Fixture:
    """A loaded fixture file, its instants resolved and its names checked.

    Attributes:
        path: The file.
        spec: Its contents.
        as_of: The instant everything is evaluated at.
        positions: Where each key is, for messages.
    """

    path: Path
    spec: FixtureFile
    as_of: datetime
    positions: Positions

    def at(self, text: str) -> datetime:
        """An event's instant (an offset such as ``-3d`` is counted from ``as_of``)."""
        return parse_instant(text, now=self.as_of)

    def line(self, *path: str | int) -> int:
        """The line of the key at ``path`` (for readable failures)."""
        return self.positions.locate(path, key=True).line


def fixture_files(folder: Path) -> list[Path]:
    """The fixture files of a workspace folder, sorted (none: an empty list)."""
    found = folder / FIXTURE_DIR
    return sorted([*found.glob("*.yaml"), *found.glob("*.yml")]) if found.is_dir() else []


def load_fixture(path: Path, definition: WorkspaceDef) -> Fixture:
    """Load and check one fixture file against the workspace's definitions.

    Raises:
        ConfigErrors: Every problem found, each at its file:line:column (malformed YAML,
            unknown keys, bad instants, unknown segments or traits with a suggestion).
    """
    spec, positions = validate_file(path, FixtureFile)
    as_of = parse_instant(spec.as_of)
    problems = list(_check_names(spec, definition, positions))
    for user, profile in spec.profiles.items():
        for index, event in enumerate(profile.events):
            key: list[str | int] = ["profiles", user, "events", index, "at"]
            try:
                at = parse_instant(event.at, now=as_of)
            except ValueError as exc:
                problems.append(positions.error(str(exc), key))
                continue
            if at > as_of:
                msg = f"the event is at {event.at}, after as_of ({spec.as_of})"
                hint = "every event of a fixture happens at or before its as_of"
                problems.append(positions.error(msg, key, hint=hint))
    if problems:
        raise ConfigErrors(problems)
    return Fixture(path, spec, as_of, positions)


def _check_names(
    spec: FixtureFile, definition: WorkspaceDef, positions: Positions
) -> list[ConfigError]:
    segments = set(definition.segments)
    archived = set(definition.archived_segments)
    traits = _trait_names(definition)
    problems: list[ConfigError] = []
    for user, profile in spec.profiles.items():
        expect = profile.expect
        lists = (("segments", expect.segments or ()), ("in", expect.in_),
                 ("not_in", expect.not_in))  # fmt: skip
        for key, names in lists:
            for index, name in enumerate(names):
                where: list[str | int] = ["profiles", user, "expect", key, index]
                if name in archived:
                    msg = f"segment '{name}' is archived: nobody is a member of it"
                    problems.append(positions.error(msg, where))
                elif name not in segments:
                    hint = did_you_mean(name, segments)
                    problems.append(positions.error(f"unknown segment '{name}'", where, hint=hint))
        for name in expect.traits:
            if name not in traits:
                at: list[str | int] = ["profiles", user, "expect", "traits", name]
                hint = did_you_mean(name, traits)
                msg = f"unknown trait '{name}'"
                problems.append(positions.error(msg, at, hint=hint, key=True))
    return problems


def _trait_names(definition: WorkspaceDef) -> set[str]:
    builtins = (name for name, _, _ in BUILTINS)
    return {*definition.traits, *definition.model_traits(), *builtins}


def fixture_json_schema() -> Mapping[str, Any]:
    """The JSON Schema of a fixture file (for editors and CI linting of fixtures)."""
    schema = FixtureFile.model_json_schema(by_alias=True)
    schema["title"] = "segmint segment fixture file (tests/segments/*.yaml)"
    return schema

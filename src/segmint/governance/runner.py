"""Run segment fixture files through the batch and the real-time path and compare.

For each file (:mod:`segmint.governance.fixtures`) two scratch stores (in-memory DuckDB,
never the workspace's store) receive the same events through intake:

- **batch**: every event is ingested, then one ``refresh`` at ``as_of``
  (:func:`segmint.membership.batch.refresh`: traits and segments in SQL);
- **real time**: a :class:`segmint.membership.realtime.RealtimeEngine` listens to intake
  while the events arrive one by one at their own instants (the clock at each event's
  time, due time transitions fired before it), then the clock moves to ``as_of``.

Each profile's memberships and traits on each path are held to the expectation; a path
disagreeing with the other is a failure too. Templates snippets are rendered for the
profile (its traits and segments) with the workspace's renderer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmint.clock import FixedClock, parse_instant
from segmint.config.errors import ConfigError
from segmint.governance.fixtures import (
    Expectation,
    Fixture,
    TemplateExpectation,
    fixture_files,
    load_fixture,
)
from segmint.workspace import Workspace

if TYPE_CHECKING:
    from segmint.membership.compiled import CompiledSegments
    from segmint.personalize.renderer import Renderer
    from segmint.privacy.protect import Privacy

PATHS = ("batch", "real time")


@dataclass(frozen=True)
class Failure:
    """One expectation a path did not meet.

    Attributes:
        file: The fixture file.
        line: The line of the expectation.
        profile: The profile's user id.
        paths: The paths that failed it (``batch``, ``real time`` or both).
        what: ``segments``, ``trait NAME``, ``template N`` or ``agreement``.
        expected: What the file expects.
        actual: What the path decided.
        lines: A readable diff, one line each.
    """

    file: str
    line: int
    profile: str
    paths: tuple[str, ...]
    what: str
    expected: Any
    actual: Any
    lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The failure as JSON-ready data."""
        return {"file": self.file, "line": self.line, "profile": self.profile,
                "paths": list(self.paths), "what": self.what, "expected": self.expected,
                "actual": self.actual, "diff": list(self.lines)}  # fmt: skip


@dataclass
class FileResult:
    """The outcome of one fixture file.

    Attributes:
        path: The file.
        profiles: How many profiles it checks.
        checks: How many expectations were held (per path).
        failures: What failed.
        error: The file's problems when it could not be run (bad YAML, unknown names).
    """

    path: Path
    profiles: int = 0
    checks: int = 0
    failures: list[Failure] = field(default_factory=list)
    error: ConfigError | None = None

    @property
    def ok(self) -> bool:
        """Whether every expectation held on both paths."""
        return self.error is None and not self.failures

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        error = None if self.error is None else str(self.error)
        return {"file": str(self.path), "ok": self.ok, "profiles": self.profiles,
                "checks": self.checks, "failures": [f.to_dict() for f in self.failures],
                "error": error}  # fmt: skip


@dataclass(frozen=True)
class Decided:
    """What one path decided for one profile."""

    segments: frozenset[str]
    traits: dict[str, Any]


def run_fixtures(
    workspace: Workspace,
    paths: Sequence[Path] = (),
    *,
    progress: Callable[[Path], None] | None = None,
) -> list[FileResult]:
    """Run the given fixture files (default: every file in ``tests/segments/``).

    A file that cannot be loaded gives a result with its ``error``; the others still run.
    """
    files = list(paths) or fixture_files(workspace.path)
    results = []
    for path in files:
        if progress is not None:
            progress(path)
        try:
            fixture = load_fixture(path, workspace.definition)
        except ConfigError as exc:
            results.append(FileResult(path, error=exc))
            continue
        results.append(run_fixture(workspace, fixture))
    return results


def run_fixture(workspace: Workspace, fixture: Fixture) -> FileResult:
    """Run one loaded fixture through both paths and hold each profile to its expectation."""
    from segmint.personalize.renderer import Renderer

    decided = {path: _run_path(workspace, fixture, path) for path in PATHS}
    renderer = Renderer(workspace.templates_dir, workspace.definition)
    result = FileResult(fixture.path, profiles=len(fixture.spec.profiles))
    for user, profile in fixture.spec.profiles.items():
        per_path = {path: decided[path][user] for path in PATHS}
        found = _check(fixture, user, profile.expect, per_path, renderer)
        result.checks += _count(profile.expect)
        result.failures += found
    return result


def _count(expect: Expectation) -> int:
    segments = int(expect.segments is not None) + len(expect.in_) + len(expect.not_in)
    return segments + len(expect.traits) + len(expect.templates)


def _messages(fixture: Fixture) -> list[tuple[datetime, dict[str, Any]]]:
    """Every event of the file as a Segment message, with its instant, in time order."""
    out: list[tuple[datetime, dict[str, Any]]] = []
    for user, profile in fixture.spec.profiles.items():
        times = [fixture.at(e.at) for e in profile.events]
        if profile.traits or not times:  # a profile exists through its events: one at least
            first = min(times, default=fixture.as_of)
            out.append((first, _identify(user, profile.traits, first, "traits")))
        for index, (event, at) in enumerate(zip(profile.events, times, strict=True)):
            if event.identify is not None:
                out.append((at, _identify(user, event.identify, at, str(index))))
            else:
                out.append((at, {"type": "track", "userId": user, "event": event.event,
                                 "properties": event.properties, "timestamp": at.isoformat(),
                                 "messageId": f"fixture-{user}-{index}"}))  # fmt: skip
    return sorted(out, key=lambda m: m[0])


def _identify(user: str, traits: dict[str, Any], at: datetime, key: str) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": at.isoformat(),
            "messageId": f"fixture-{user}-{key}"}  # fmt: skip


def _run_path(workspace: Workspace, fixture: Fixture, path: str) -> dict[str, Decided]:
    from segmint.intake.pipeline import Intake
    from segmint.membership.batch import refresh
    from segmint.membership.compiled import CompiledSegments
    from segmint.membership.realtime import RealtimeEngine
    from segmint.store.duckdb import DuckDBStore

    definition = workspace.definition
    compiled = CompiledSegments(definition)
    messages = _messages(fixture)
    first = messages[0][0] if messages else fixture.as_of
    clock = FixedClock(min(first, fixture.as_of))
    store = DuckDBStore(":memory:")
    scratch = Workspace(path=workspace.path, definition=definition, _store=store)
    scratch._privacy = _keyless(scratch)
    try:
        intake = Intake(scratch, clock)
        if path == "batch":
            if messages:
                intake.submit([m for _, m in messages], source="fixture")
            refresh(scratch.store, compiled, fixture.as_of)
        else:
            engine = RealtimeEngine(scratch.store, compiled, clock)
            intake.add_listener(engine)
            for at, message in messages:
                clock.set(at)
                engine.advance(at)
                intake.submit([message], source="fixture")
            clock.set(fixture.as_of)
            engine.advance(fixture.as_of)
            engine.close()
        return _decided(scratch, compiled, fixture, path)
    finally:
        scratch.close()


def _decided(
    scratch: Workspace, compiled: CompiledSegments, fixture: Fixture, path: str
) -> dict[str, Decided]:
    from segmint.intake.identity import resolve_person
    from segmint.membership.changes import members_of
    from segmint.traits.batch import read_values
    from segmint.traits.live import profile_traits

    store = scratch.store
    ids = {
        user: resolve_person(store, f"user_id:{user}", scratch.definition.identifiers)
        for user in fixture.spec.profiles
    }
    members = members_of(store, ids.values())
    batch_values = (
        read_values(store, compiled.catalog, list(ids.values())) if path == "batch" else {}
    )
    out = {}
    for user, pid in ids.items():
        if path == "batch":
            traits = batch_values.get(pid, {})
        else:
            view = profile_traits(store, compiled.catalog, pid, fixture.as_of) or {"traits": []}
            traits = {t["name"]: t["value"] for t in view["traits"]}
        out[user] = Decided(frozenset(members.get(pid, ())), traits)
    return out


def _check(
    fixture: Fixture,
    user: str,
    expect: Expectation,
    per_path: dict[str, Decided],
    renderer: Renderer,
) -> list[Failure]:
    failures: list[Failure] = []

    def fail(key: Sequence[str | int], what: str, expected: Any, got: dict[str, Any],
             lines: Callable[[Any], list[str]]) -> None:  # fmt: skip
        bad = [p for p in PATHS if got[p] is not _OK]
        if not bad:
            return
        line = fixture.line("profiles", user, "expect", *key)
        values = {p: got[p] for p in bad}
        if len(bad) == 2 and values[PATHS[0]] == values[PATHS[1]]:
            groups = [(tuple(bad), values[PATHS[0]])]
        else:
            groups = [((p,), values[p]) for p in bad]
        for paths, actual in groups:
            failures.append(Failure(str(fixture.path), line, user, paths, what, expected,
                                    actual, tuple(lines(actual))))  # fmt: skip

    if expect.segments is not None:
        want = frozenset(expect.segments)
        got = {p: _OK if d.segments == want else sorted(d.segments) for p, d in per_path.items()}
        fail(["segments"], "segments", sorted(want), got, partial(_set_diff, want))
    for name in expect.in_:
        got = {p: _OK if name in d.segments else sorted(d.segments) for p, d in per_path.items()}
        fail(["in"], f"in {name}", name, got, partial(_member_line, name, False))
    for name in expect.not_in:
        got = {p: _OK if name not in d.segments else sorted(d.segments)
               for p, d in per_path.items()}  # fmt: skip
        fail(["not_in"], f"not in {name}", name, got, partial(_member_line, name, True))
    for name, value in expect.traits.items():
        got = {p: _trait_check(value, d.traits.get(name)) for p, d in per_path.items()}
        fail(["traits", name], f"trait {name}", value, got, partial(_value_diff, value))
    for index, snippet in enumerate(expect.templates):
        got = {p: _render_check(renderer, snippet, user, d, fixture.as_of)
               for p, d in per_path.items()}  # fmt: skip
        expected = snippet.renders if snippet.renders is not None else snippet.contains
        fail(["templates", index], f"template {index + 1}", expected, got,
             partial(_render_diff, snippet))  # fmt: skip
    return failures


class _Ok:
    def __repr__(self) -> str:
        return "ok"


_OK: Any = _Ok()


def _member_line(name: str, member: bool, _: Any) -> list[str]:
    return [f"a member of '{name}'" if member else f"not a member of '{name}'"]


def _value_diff(expected: Any, actual: Any) -> list[str]:
    return [f"expected {_show(expected)}", f"     got {_show(actual)}"]


def _set_diff(want: frozenset[str], actual: list[str]) -> list[str]:
    got = set(actual)
    lines = [f"expected [{', '.join(sorted(want))}]", f"     got [{', '.join(sorted(got))}]"]
    lines += [f"  - {n}  (expected, not a member)" for n in sorted(want - got)]
    lines += [f"  + {n}  (a member, not expected)" for n in sorted(got - want)]
    return lines


def _trait_check(expected: Any, actual: Any) -> Any:
    if isinstance(actual, datetime) and expected is not None:
        try:
            return _OK if parse_instant(str(expected)) == actual else actual
        except ValueError:
            return actual
    if isinstance(actual, list | tuple) and isinstance(expected, list | tuple):
        return _OK if list(actual) == list(expected) else actual
    if isinstance(expected, bool) or isinstance(actual, bool):
        return _OK if expected is actual else actual
    return _OK if expected == actual else actual


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return "null" if value is None else repr(value)


def _render_check(
    renderer: Renderer, snippet: TemplateExpectation, user: str, decided: Decided, as_of: datetime
) -> Any:
    from segmint.personalize.errors import TemplateError
    from segmint.profiles import Profile

    profile = Profile(user, decided.traits, decided.segments)
    try:
        text = renderer.render_snippet(snippet.template, profile, date=as_of).strip()
    except TemplateError as exc:
        return f"error: {exc}"
    if snippet.renders is not None:
        return _OK if text == snippet.renders.strip() else text
    return _OK if (snippet.contains or "") in text else text


def _render_diff(snippet: TemplateExpectation, actual: str) -> list[str]:
    if snippet.renders is not None:
        return [f"expected {snippet.renders.strip()!r}", f"     got {actual!r}"]
    return [f"expected to contain {snippet.contains!r}", f"     got {actual!r}"]


def _keyless(scratch: Workspace) -> Privacy:
    """The scratch store's privacy without the workspace's keys.

    Fixture people are made up: they never get a key in the workspace's vault.
    """
    from segmint.privacy.protect import Privacy

    privacy = Privacy(scratch.path, scratch.definition, scratch.store, environ={})
    if privacy.keyring is not None:
        privacy.close()
        privacy.keyring = None
    privacy.plaintext_on_purpose = True  # intake would refuse a sealed workspace's store
    scratch.store.privacy = privacy  # type: ignore[attr-defined]
    return privacy

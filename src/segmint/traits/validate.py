"""The traits of a workspace, with errors located in ``segmint.yaml``.

:func:`workspace_catalog` builds the catalog a workspace computes: its declared traits plus
the implicit aggregates its segment rules read (``performed(...)``, ``last_performed``), so
the incremental state serves the membership engine too. A broken definition raises a
:class:`~segmint.traits.errors.TraitDefinitionError` carrying ``file:line:column`` and a
caret under the offending text (inside a ``where``/``expr`` rule, at the rule's own error).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from segmint.config.errors import ConfigError
from segmint.config.loader import Positions, read_yaml
from segmint.config.model import WorkspaceDef
from segmint.config.scaffold import WORKSPACE_FILE
from segmint.errors import SourceLocation
from segmint.rules import EventAggregate, RuleError, dependencies, lower_events, parse
from segmint.traits.catalog import TraitCatalog, build_catalog
from segmint.traits.errors import TraitDefinitionError
from segmint.workspace import Workspace


def segment_aggregates(definition: WorkspaceDef) -> tuple[EventAggregate, ...]:
    """The implicit aggregates the workspace's segment rules read.

    Rules that do not parse are skipped here: ``segmint segments validate`` reports them.
    """
    found: dict[EventAggregate, None] = {}
    for segment in definition.segments.values():
        if segment.rule is None:
            continue
        try:
            _, aggregates = lower_events(parse(segment.rule))
        except RuleError:
            continue
        found.update(dict.fromkeys(aggregates))
    return tuple(found)


def workspace_catalog(workspace: Workspace, extra: Iterable[EventAggregate] = ()) -> TraitCatalog:
    """The catalog of a workspace's traits and the implicit traits of its segments.

    Raises:
        TraitDefinitionError: Located in the workspace file.
    """
    definition = workspace.definition
    try:
        return build_catalog(definition, (*segment_aggregates(definition), *extra))
    except TraitDefinitionError as exc:
        raise locate(exc, workspace.path / WORKSPACE_FILE) from None


def moving_traits(catalog: TraitCatalog) -> frozenset[str]:
    """The traits whose value moves with time alone, with no new event.

    Windowed aggregates (``within: 30d``), and derived traits that use ``now()``,
    ``within`` or ``days_since`` or read a moving trait. A rule reading one is
    time-dependent (see :func:`segmint.rules.dependencies`).
    """
    found = {spec.name for spec in catalog if spec.within is not None}
    for spec in catalog.derived:
        if spec.expr is not None and dependencies(spec.expr, found).time_dependent:
            found.add(spec.name)
    return frozenset(found)


def check_traits(definition: WorkspaceDef, path: Path) -> list[ConfigError]:
    """The trait-specific problems of a workspace file (empty when its traits compute).

    Rule texts are also checked by :func:`segmint.rules.workspace.check_workspace`; this adds
    what only the traits stage knows: aggregate targets, declared types, derived cycles.
    """
    try:
        build_catalog(definition, segment_aggregates(definition))
    except TraitDefinitionError as exc:
        return [locate(exc, path)]
    return []


def locate(error: TraitDefinitionError, path: Path) -> TraitDefinitionError:
    """Return ``error`` with the location of its key in the file at ``path``."""
    try:
        data, text = read_yaml(path)
    except ConfigError:
        return error  # the file went away or broke: the unlocated error still helps
    positions = Positions(data, str(path), text)
    keys: list[str | int] = ["traits", error.trait]
    if error.key is not None:
        keys.append(error.key)
    loc = positions.locate(keys, key=error.key is None)
    span = getattr(error.rule_error, "span", None)
    if span is not None and span.line == 1:
        quoted = text.splitlines()[loc.line - 1][loc.column - 1 : loc.column] in ("'", '"')
        column = loc.column + int(quoted) + span.column - 1
        loc = SourceLocation(loc.file, loc.line, column, max(span.end - span.start, 1))
    error.location = loc
    error.source = text
    error.args = (error._headline(),)
    return error

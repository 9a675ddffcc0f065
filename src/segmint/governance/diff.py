"""``segmint segments diff``: who would enter and leave each segment if a change were deployed.

The workspace's ``segmint.yaml`` as it is now (the change) is compared with another version
of it: a git ref (``HEAD`` by default: the last commit) or a file. Both sets of definitions
are evaluated by the batch SQL itself (:func:`segmint.membership.segsql.membership_query`
over traits computed from the store's events at one ``as_of``), so the difference is the
change's alone, not that of time passing since the last refresh. Nothing is written.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from segmint.config.errors import ConfigError
from segmint.config.loader import load_workspace_def
from segmint.config.model import WorkspaceDef
from segmint.config.scaffold import WORKSPACE_FILE
from segmint.store import Store

SAMPLE = 5


@dataclass
class SegmentDiff:
    """How one segment's members would change.

    Attributes:
        segment: The segment.
        status: ``added``, ``removed``, ``archived``, ``restored`` (no longer archived),
            ``changed`` or ``same`` (its own definition; its members may still move when a
            segment it reads, or its group, changed).
        entering: How many profiles would enter.
        leaving: How many would leave.
        sample_entering: Some of them (profile ids, sorted).
        sample_leaving: Some of them.
    """

    segment: str
    status: str
    entering: int = 0
    leaving: int = 0
    sample_entering: list[str] = field(default_factory=list)
    sample_leaving: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The diff as JSON-ready data."""
        return dict(self.__dict__)


def read_against(folder: Path, against: str) -> tuple[WorkspaceDef, str]:
    """The definitions to compare with: ``against`` is a file, or else a git ref.

    Returns:
        The definitions and a label for them (the file, or ``git REF``).

    Raises:
        ConfigError: If the file or the ref cannot be read, or does not load.
    """
    path = Path(against)
    if path.is_file():
        return load_workspace_def(path), str(path)
    if path.suffix in (".yaml", ".yml"):  # meant as a file: no git ref ends so
        raise ConfigError(
            f"no file {against!r} to compare with",
            hint="--against takes a git ref (HEAD, main, a commit) or a workspace file",
        )
    try:
        shown = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            ["git", "-C", str(folder), "show", f"{against}:./{WORKSPACE_FILE}"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise ConfigError("git is not installed: pass --against FILE") from None
    if shown.returncode != 0:
        reason = shown.stderr.strip().splitlines()[-1] if shown.stderr.strip() else "unknown"
        if "not a git repository" in reason:
            raise ConfigError(
                f"cannot read {WORKSPACE_FILE} at git ref '{against}': the workspace is not in "
                "a git repository",
                hint="commit segmint.yaml to git, or pass --against FILE (a copy of "
                "segmint.yaml as it was)",
            )
        raise ConfigError(
            f"cannot read {WORKSPACE_FILE} at git ref '{against}': {reason}",
            hint="--against takes a git ref (HEAD, main, a commit) or a workspace file",
        )
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / WORKSPACE_FILE
        copy.write_text(shown.stdout, encoding="utf-8")
        try:
            return load_workspace_def(copy), f"git {against}"
        except ConfigError as exc:
            raise ConfigError(
                f"{WORKSPACE_FILE} at git ref '{against}' does not load: {exc}"
            ) from None


def diff_segments(
    store: Store, before: WorkspaceDef, after: WorkspaceDef, as_of: datetime
) -> list[SegmentDiff]:
    """Who enters and leaves each segment going from ``before`` to ``after``, at ``as_of``.

    Every segment of either side is listed (``same`` ones too, with their counts).
    """
    from segmint.membership.compiled import CompiledSegments
    from segmint.membership.segsql import membership_query
    from segmint.traits.sqlgen import trait_query

    def members_sql(definition: WorkspaceDef) -> str:
        compiled = CompiledSegments(definition)
        source = trait_query(compiled.catalog, store.dialect, as_of)
        query = membership_query(compiled, dialect=store.dialect, as_of=as_of, source=source)
        return query.sql(dialect=store.dialect)

    new, old = members_sql(after), members_sql(before)
    rows = store.fetchall(
        f"SELECT 'enter', segment, profile_id FROM (SELECT profile_id, segment FROM ({new}) n "
        f"EXCEPT SELECT profile_id, segment FROM ({old}) o) d "
        f"UNION ALL SELECT 'exit', segment, profile_id FROM (SELECT profile_id, segment FROM "
        f"({old}) o2 EXCEPT SELECT profile_id, segment FROM ({new}) n2) e "
        "ORDER BY 2, 3"
    )
    diffs = {
        name: SegmentDiff(name, _status(name, before, after)) for name in _names(before, after)
    }
    for change, segment, pid in rows:
        found = diffs[segment]
        if change == "enter":
            found.entering += 1
            if len(found.sample_entering) < SAMPLE:
                found.sample_entering.append(str(pid))
        else:
            found.leaving += 1
            if len(found.sample_leaving) < SAMPLE:
                found.sample_leaving.append(str(pid))
    return sorted(diffs.values(), key=lambda d: d.segment)


def _names(before: WorkspaceDef, after: WorkspaceDef) -> set[str]:
    return {*before.segments, *after.segments, *after.archived_segments}


def _status(name: str, before: WorkspaceDef, after: WorkspaceDef) -> str:
    if name in after.archived_segments and name in before.segments:
        return "archived"
    if name not in after.segments:
        return "removed" if name in before.segments else "same"
    if name in before.archived_segments:
        return "restored"
    if name not in before.segments:
        return "added"
    same = before.segments[name].model_dump() == after.segments[name].model_dump()
    return "same" if same else "changed"

"""Edit ``segmint.yaml`` in place: comments, order and layout survive; nothing invalid is saved.

The management API and the console save definitions through :class:`DefinitionEditor`. An
edit is made on the ruamel.yaml round-trip tree of the file, so only the lines of the edited
entry change and the file stays readable and diffable in git. The edited text is then
validated by the very loader ``segmint`` uses at start-up (:meth:`Workspace.open
<segmint.workspace.Workspace.open>` on a copy), so a save is refused with the same errors,
at the same ``file:line:column`` and key path, as the file would get if written by hand.
Only a valid text replaces the file, atomically (write aside, then rename).

One mechanism serves every kind of definition kept under a top-level mapping of
``segmint.yaml`` (:data:`SECTIONS`: segments, traits, campaigns, journeys, experiments):
:meth:`DefinitionEditor.put_entry` and :meth:`DefinitionEditor.archive_entry` take the section
name. Archiving moves an entry out of ``segmint.yaml`` into ``archive/<section>.yaml`` (same
round-trip writing), except a segment's, which is marked ``archived: true`` in place (its
members exit at the next refresh or engine start; its history stays).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tempfile
import textwrap
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from segmint.config.errors import ConfigError, ConfigErrors, StaleDefinitionError
from segmint.config.journeys import JourneyDef
from segmint.config.loader import read_yaml
from segmint.config.measure import ExperimentDef
from segmint.config.model import CampaignDef, SegmentDef, TraitDef, WorkspaceDef
from segmint.config.scaffold import WORKSPACE_FILE

ARCHIVE_DIR = Path("archive")
"""Where archived definitions are kept (``<section>.yaml``), relative to the workspace."""
ARCHIVE_FILE = ARCHIVE_DIR / "segments.yaml"
"""Where archived segment definitions are kept, relative to the workspace folder."""
SECTIONS: dict[str, tuple[str, ...]] = {
    section: tuple(f.alias or n for n, f in model.model_fields.items())
    for section, model in (
        ("segments", SegmentDef),
        ("traits", TraitDef),
        ("campaigns", CampaignDef),
        ("journeys", JourneyDef),
        ("experiments", ExperimentDef),
    )
}
"""The sections :class:`DefinitionEditor` edits, each with its entries' keys in the order a
new entry is written (keys the model does not know are written after them, for the loader
to refuse with its usual "did you mean")."""
SEGMENT_KEYS = SECTIONS["segments"]
"""The keys a segment entry may have, in the order a new entry is written."""

_LOCK = threading.Lock()  # one writer of workspace files per process


def text_version(text: str) -> str:
    """A short fingerprint of a file's text (the ``version`` a client sends back to save)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class SavedDefinition:
    """The result of a save: the new definitions and the file's new version.

    Attributes:
        definition: The validated workspace definitions, as now written.
        version: :func:`text_version` of the new file text.
        text: The new file text.
    """

    definition: WorkspaceDef
    version: str
    text: str


class DefinitionEditor:
    """Reads, validates and writes the definitions of one workspace folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / WORKSPACE_FILE

    def read(self) -> tuple[CommentedMap, str]:
        """The round-trip tree of ``segmint.yaml`` (quotes kept) and its text.

        Raises:
            ConfigError: If the file is missing, not YAML or not a mapping.
        """
        _, text = read_yaml(self.path)  # the loader's errors for a broken file
        data = _yaml().load(text)
        if not isinstance(data, CommentedMap):
            raise ConfigError(f"{self.path} is not a mapping of keys")
        return data, text

    def version(self) -> str:
        """The current :func:`text_version` of ``segmint.yaml``."""
        return text_version(self.path.read_text(encoding="utf-8"))

    def validate(self, text: str, templates: Path | None = None) -> WorkspaceDef:
        """Validate ``text`` as this workspace's ``segmint.yaml`` would be at start-up.

        ``templates``: the templates folder to check against (default: the workspace's).

        Raises:
            ConfigErrors: Every problem, located in this workspace's ``segmint.yaml``.
        """
        from segmint.workspace import Workspace

        with tempfile.TemporaryDirectory(prefix="segmint-check-") as scratch:
            candidate = Path(scratch) / WORKSPACE_FILE
            candidate.write_text(text, encoding="utf-8")
            templates = templates or self.path.parent / "templates"
            if templates.is_dir():  # journeys and campaigns are checked against them
                (Path(scratch) / "templates").symlink_to(templates.resolve())
            try:
                return Workspace.open(scratch).definition
            except ConfigError as exc:
                raise _relocated(exc, str(candidate), str(self.path)) from None

    def put_entry(
        self,
        section: str,
        name: str,
        fields: Mapping[str, Any],
        *,
        version: str | None = None,
        dry_run: bool = False,
    ) -> SavedDefinition:
        """Create or replace entry ``name`` of ``section`` (a key of :data:`SECTIONS`).

        Only the lines of that entry change. Keys of an existing entry keep their place and
        comments; keys given as None or left out are removed; new keys are added in the
        section's key order. A new entry goes after the section's last one.

        Args:
            section: ``segments``, ``traits``, ``campaigns``, ``journeys`` or ``experiments``.
            name: The entry's name.
            fields: The entry's keys (``rule``, ``description``, ``tags`` … for a segment).
            version: The version the client edited; a different current file is refused.
            dry_run: Validate the edited text, write nothing.

        Raises:
            ConfigErrors: If the result is not a valid workspace (nothing is written).
            StaleDefinitionError: If the file changed since ``version``.
        """
        order = SECTIONS[section]
        with _LOCK:
            data, text = self._checked(version)
            lines = text.splitlines(keepends=True)
            entries = data.get(section)
            if not isinstance(entries, CommentedMap) or not entries:
                block = _with_section(data, lines, section, name, fields, order)
                return self._write(block, dry_run)
            indent = entries.lc.key(next(iter(entries)))[1]
            if name in entries:
                first, last = _entry_lines(data, lines, section, name)
                entry = entries[name]
                entry = entry if isinstance(entry, CommentedMap) else CommentedMap()
            else:
                first = last = _entry_lines(data, lines, section, list(entries)[-1])[1]
                entry = CommentedMap()
            _merge(entry, fields, order)
            block = _block(name, entry, indent)
            return self._write("".join(lines[:first]) + block + "".join(lines[last:]), dry_run)

    def put_segment(
        self,
        name: str,
        fields: Mapping[str, Any],
        *,
        version: str | None = None,
        dry_run: bool = False,
    ) -> SavedDefinition:
        """:meth:`put_entry` for section ``segments``."""
        return self.put_entry("segments", name, fields, version=version, dry_run=dry_run)

    def entries(self, section: str) -> dict[str, tuple[Any, int]]:
        """Every entry of ``section`` as plain data, with its 1-based line in the file."""
        data, _ = self.read()
        found = data.get(section)
        if not isinstance(found, CommentedMap):
            return {}
        return {str(k): (plain(v), found.lc.key(k)[0] + 1) for k, v in found.items()}

    def archive_entry(
        self, section: str, name: str, *, version: str | None = None
    ) -> SavedDefinition:
        """Move entry ``name`` of ``section`` from ``segmint.yaml`` to ``archive/<section>.yaml``.

        Raises:
            ConfigError: If there is no such entry.
            StaleDefinitionError: If the file changed since ``version``.
            ConfigErrors: If other definitions still use it (nothing is written).
        """
        with _LOCK:
            data, text = self._checked(version)
            entries = self._entries(data, section, name)
            lines = text.splitlines(keepends=True)
            first, last = _entry_lines(data, lines, section, name)
            block = "".join(lines[first:last])
            if len(entries) == 1:  # the section's only entry: the section goes with it
                first = data.lc.key(section)[0]
            saved = self._write("".join(lines[:first]) + "".join(lines[last:]))
            self._append_archive(section, block)
            return saved

    def archive_segment(self, name: str, *, version: str | None = None) -> SavedDefinition:
        """Mark segment ``name`` ``archived: true`` in ``segmint.yaml``.

        A segment stays in the file, set aside: nothing evaluates it, its members exit with
        cause ``definition_removed`` and its history stays (``segments list`` and ``show`` mark
        it archived). Removing the key restores it.

        Raises:
            ConfigError: If there is no such segment.
            StaleDefinitionError: If the file changed since ``version``.
            ConfigErrors: If other definitions still use it (nothing is written).
        """
        with _LOCK:
            data, _ = self._checked(version)
            fields = dict(self._entries(data, "segments", name)[name]) | {"archived": True}
        return self.put_entry("segments", name, fields, version=version)

    def _entries(self, data: CommentedMap, section: str, name: str) -> CommentedMap:
        """The entries of ``section``, which hold ``name``.

        Raises:
            ConfigError: If there is no such entry.
        """
        entries = data.get(section)
        if not isinstance(entries, CommentedMap) or name not in entries:
            raise ConfigError(f"no {section} entry '{name}' in {self.path}", key_path=section)
        return entries

    def _checked(self, version: str | None) -> tuple[CommentedMap, str]:
        data, text = self.read()
        if version is not None and version != text_version(text):
            raise StaleDefinitionError(
                f"{self.path} changed since version {version} was read (now {text_version(text)})",
                hint="reload the definition and apply the edit again",
            )
        return data, text

    def _write(self, text: str, dry_run: bool = False) -> SavedDefinition:
        definition = self.validate(text)
        if not dry_run:
            replace_file(self.path, text)
        return SavedDefinition(definition, text_version(text), text)

    def _append_archive(self, section: str, block: str) -> None:
        path = self.folder / ARCHIVE_DIR / f"{section}.yaml"
        old = (
            path.read_text(encoding="utf-8")
            if path.exists()
            else (
                f"# {section.capitalize()} archived from segmint.yaml; move one back under "
                f"'{section}:' to restore.\n"
            )
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, old + textwrap.dedent(block).rstrip("\n") + "\n")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # a long rule stays on its line
    return yaml


def _entry_lines(data: CommentedMap, lines: list[str], section: str, name: str) -> tuple[int, int]:
    """The 0-based line range ``[first, last)`` of entry ``name`` of ``section``.

    The entry runs to the next entry's key, or for the last one to the next top-level
    key; blank and comment lines just before that key stay with what follows.
    """
    entries: CommentedMap = data[section]
    names = list(entries)
    first = entries.lc.key(name)[0]
    at = names.index(name)
    if at + 1 < len(names):
        end = entries.lc.key(names[at + 1])[0]
    else:
        keys = list(data)
        after = keys[keys.index(section) + 1 :]
        end = data.lc.key(after[0])[0] if after else len(lines)
    while end > first + 1 and _blank_or_comment(lines[end - 1]):
        end -= 1
    return first, end


def _blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _block(name: str, entry: CommentedMap, indent: int) -> str:
    out = io.StringIO()
    _yaml().dump({name: entry}, out)
    return textwrap.indent(out.getvalue(), " " * indent)


def _with_section(
    data: CommentedMap,
    lines: list[str],
    section: str,
    name: str,
    fields: Mapping[str, Any],
    order: tuple[str, ...],
) -> str:
    """The text with a ``section:`` holding only ``name`` (there was none, or it was empty)."""
    entry = CommentedMap()
    _merge(entry, fields, order)
    if section in data:  # ``segments:`` or ``segments: {}``: replace that line
        first = data.lc.key(section)[0]
        keys = list(data)
        after = keys[keys.index(section) + 1 :]
        end = data.lc.key(after[0])[0] if after else len(lines)
        rest = "".join(lines[:first]), "".join(lines[end:])
    else:
        rest = "".join(lines), ""
    head = rest[0] if not rest[0] or rest[0].endswith("\n") else rest[0] + "\n"
    return head + f"{section}:\n" + _block(name, entry, 2) + rest[1]


def _merge(entry: CommentedMap, fields: Mapping[str, Any], order: tuple[str, ...]) -> None:
    for key in list(entry):
        if fields.get(str(key)) is None:
            del entry[key]
    unknown = [k for k in fields if k not in order]  # written, for the loader to refuse
    for key in (*order, *unknown):
        value = fields.get(key)
        if value is None or plain(entry.get(key)) == value:
            continue
        entry[key] = _styled(key, value)


def _styled(key: str, value: Any) -> Any:
    """A new value written as the example workspace writes it.

    Rules and conditions are double-quoted, lists of plain values flow on one line
    (``tags: [a, b]``); mappings and lists of mappings (journey steps) are blocks.
    """
    if key in ("rule", "where", "expr") and isinstance(value, str):
        return DoubleQuotedScalarString(value)
    if isinstance(value, Mapping):
        return CommentedMap((k, _styled(str(k), v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        seq = CommentedSeq(_styled(key, v) for v in value)
        if not any(isinstance(v, Mapping | list | tuple) for v in value):
            seq.fa.set_flow_style()
        return seq
    return value


def plain(value: Any) -> Any:
    """A round-trip YAML value as plain JSON-ready data (mappings, lists, scalars)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader sees the old or the new file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _relocated(exc: ConfigError, scratch: str, real: str) -> ConfigError:
    errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    moved = [_moved(e, scratch, real) for e in errors]
    return ConfigErrors(moved)


def _moved(error: ConfigError, scratch: str, real: str) -> ConfigError:
    location = error.location
    if location is not None and location.file == scratch:
        location = dataclasses.replace(location, file=real)
    message = error.message.replace(scratch, real)
    return ConfigError(message, location=location, key_path=error.key_path, hint=error.hint,
                       source=error.source)  # fmt: skip


def problem_json(error: ConfigError) -> dict[str, Any]:
    """One problem as JSON: message, file, line, column, key path, hint and the caret text."""
    loc = error.location
    return {
        "message": error.message,
        "file": loc.file if loc else None,
        "line": loc.line if loc else None,
        "column": loc.column if loc else None,
        "key_path": error.key_path,
        "hint": error.hint,
        "detail": error.detailed_message(),
    }


def problems_of(exc: ConfigError) -> list[ConfigError]:
    """The individual problems of a :class:`ConfigError` (several for ConfigErrors)."""
    return list(exc.errors) if isinstance(exc, ConfigErrors) else [exc]

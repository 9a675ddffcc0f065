"""Edit ``segmint.yaml`` in place: comments, order and layout survive; nothing invalid is saved.

The management API and the console save definitions through :class:`DefinitionEditor`. An
edit is made on the ruamel.yaml round-trip tree of the file, so only the lines of the edited
entry change and the file stays readable and diffable in git. The edited text is then
validated by the very loader ``segmint`` uses at start-up (:meth:`Workspace.open
<segmint.workspace.Workspace.open>` on a copy), so a save is refused with the same errors,
at the same ``file:line:column`` and key path, as the file would get if written by hand.
Only a valid text replaces the file, atomically (write aside, then rename).

Archiving a segment moves its definition out of ``segmint.yaml`` into
``archive/segments.yaml`` (same round-trip writing): its members exit at the next refresh,
rebuild or real-time engine start, and the definition stays in the workspace to restore.
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
from segmint.config.loader import read_yaml
from segmint.config.model import SegmentDef, WorkspaceDef
from segmint.config.scaffold import WORKSPACE_FILE

ARCHIVE_FILE = Path("archive") / "segments.yaml"
"""Where archived segment definitions are kept, relative to the workspace folder."""
SEGMENT_KEYS = tuple(f.alias or n for n, f in SegmentDef.model_fields.items())
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

    def validate(self, text: str) -> WorkspaceDef:
        """Validate ``text`` as this workspace's ``segmint.yaml`` would be at start-up.

        Raises:
            ConfigErrors: Every problem, located in this workspace's ``segmint.yaml``.
        """
        from segmint.workspace import Workspace

        with tempfile.TemporaryDirectory(prefix="segmint-check-") as scratch:
            candidate = Path(scratch) / WORKSPACE_FILE
            candidate.write_text(text, encoding="utf-8")
            templates = self.path.parent / "templates"
            if templates.is_dir():  # journeys and campaigns are checked against them
                (Path(scratch) / "templates").symlink_to(templates.resolve())
            try:
                return Workspace.open(scratch).definition
            except ConfigError as exc:
                raise _relocated(exc, str(candidate), str(self.path)) from None

    def put_segment(
        self,
        name: str,
        fields: Mapping[str, Any],
        *,
        version: str | None = None,
        dry_run: bool = False,
    ) -> SavedDefinition:
        """Create or replace segment ``name`` with ``fields`` (keys of :class:`SegmentDef`).

        Only the lines of that entry change. Keys of an existing entry keep their place and
        comments; keys given as None or left out are removed; new keys are added in
        :data:`SEGMENT_KEYS` order. A new segment goes after the last one.

        Args:
            name: The segment name.
            fields: The segment's keys (``rule``, ``description``, ``tags`` …).
            version: The version the client edited; a different current file is refused.
            dry_run: Validate the edited text, write nothing.

        Raises:
            ConfigErrors: If the result is not a valid workspace (nothing is written).
            StaleDefinitionError: If the file changed since ``version``.
        """
        with _LOCK:
            data, text = self._checked(version)
            lines = text.splitlines(keepends=True)
            segments = data.get("segments")
            if not isinstance(segments, CommentedMap) or not segments:
                return self._write(_with_section(data, lines, name, fields), dry_run)
            indent = segments.lc.key(next(iter(segments)))[1]
            if name in segments:
                first, last = _entry_lines(data, lines, name)
                entry = segments[name]
                entry = entry if isinstance(entry, CommentedMap) else CommentedMap()
            else:
                first = last = _entry_lines(data, lines, list(segments)[-1])[1]
                entry = CommentedMap()
            _merge(entry, fields)
            block = _block(name, entry, indent)
            return self._write("".join(lines[:first]) + block + "".join(lines[last:]), dry_run)

    def archive_segment(self, name: str, *, version: str | None = None) -> SavedDefinition:
        """Move segment ``name`` from ``segmint.yaml`` to :data:`ARCHIVE_FILE`.

        Raises:
            ConfigError: If there is no such segment.
            StaleDefinitionError: If the file changed since ``version``.
            ConfigErrors: If other definitions still use it (nothing is written).
        """
        with _LOCK:
            data, text = self._checked(version)
            segments = data.get("segments")
            if not isinstance(segments, CommentedMap) or name not in segments:
                raise ConfigError(f"no segment '{name}' in {self.path}", key_path="segments")
            lines = text.splitlines(keepends=True)
            first, last = _entry_lines(data, lines, name)
            saved = self._write("".join(lines[:first]) + "".join(lines[last:]))
            self._append_archive(name, "".join(lines[first:last]))
            return saved

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
            _replace(self.path, text)
        return SavedDefinition(definition, text_version(text), text)

    def _append_archive(self, name: str, block: str) -> None:
        path = self.folder / ARCHIVE_FILE
        old = path.read_text(encoding="utf-8") if path.exists() else (
            "# Segments archived from segmint.yaml; move one back under 'segments:' to restore.\n"
        )  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, old + textwrap.dedent(block).rstrip("\n") + "\n")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # a long rule stays on its line
    return yaml


def _entry_lines(data: CommentedMap, lines: list[str], name: str) -> tuple[int, int]:
    """The 0-based line range ``[first, last)`` of segment ``name``'s entry.

    The entry runs to the next segment's key, or for the last one to the next top-level
    key; blank and comment lines just before that key stay with what follows.
    """
    segments: CommentedMap = data["segments"]
    names = list(segments)
    first = segments.lc.key(name)[0]
    at = names.index(name)
    if at + 1 < len(names):
        end = segments.lc.key(names[at + 1])[0]
    else:
        keys = list(data)
        after = keys[keys.index("segments") + 1 :]
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
    data: CommentedMap, lines: list[str], name: str, fields: Mapping[str, Any]
) -> str:
    """The text with a ``segments:`` section holding only ``name`` (there was none)."""
    entry = CommentedMap()
    _merge(entry, fields)
    if "segments" in data:  # ``segments:`` or ``segments: {}``: replace that line
        first = data.lc.key("segments")[0]
        keys = list(data)
        after = keys[keys.index("segments") + 1 :]
        end = data.lc.key(after[0])[0] if after else len(lines)
        rest = "".join(lines[:first]), "".join(lines[end:])
    else:
        rest = "".join(lines), ""
    head = rest[0] if not rest[0] or rest[0].endswith("\n") else rest[0] + "\n"
    return head + "segments:\n" + _block(name, entry, 2) + rest[1]


def _merge(entry: CommentedMap, fields: Mapping[str, Any]) -> None:
    for key in list(entry):
        if fields.get(str(key)) is None:
            del entry[key]
    for key in SEGMENT_KEYS:
        value = fields.get(key)
        if value is None or entry.get(key) == value:
            continue
        entry[key] = _styled(key, value)


def _styled(key: str, value: Any) -> Any:
    """A new value written as the example workspace writes it."""
    if key == "rule" and isinstance(value, str):
        return DoubleQuotedScalarString(value)
    if isinstance(value, list | tuple):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def _replace(path: Path, text: str) -> None:
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

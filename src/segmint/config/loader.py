"""Load ``segmint.yaml`` into a :class:`WorkspaceDef`, with errors that point at the source.

ruamel.yaml keeps the line and column of every key and value; pydantic reports each failure
with its key path. The two meet in :class:`Positions`, which turns a key path back into a
location, so every error names ``file:line:column``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from segmint.common import did_you_mean
from segmint.config.errors import ConfigError, ConfigErrors
from segmint.config.measure import check_experiments
from segmint.config.model import AGGREGATES, TraitDef, WorkspaceDef
from segmint.config.yamlsyntax import diagnose
from segmint.errors import SourceLocation

KeyPath = Sequence[str | int]
M = TypeVar("M", bound=BaseModel)


class Positions:
    """Resolves key paths in a parsed YAML document to source locations."""

    def __init__(self, root: Any, file: str, text: str) -> None:
        self.root = root
        self.file = file
        self.text = text

    def locate(self, path: KeyPath, *, key: bool = False) -> SourceLocation:
        """Return the location of the value (or the key, if ``key``) at ``path``.

        Falls back to the deepest existing ancestor when the path does not exist.
        """
        node = self.root
        line, col, length = 0, 0, 1
        for index, part in enumerate(path):
            last = index == len(path) - 1
            part = _raw_key(node, part)
            if isinstance(node, CommentedMap) and part in node:
                k_line, k_col = node.lc.key(part)
                v_line, v_col = node.lc.value(part)
                value = node[part]
                if key and last or isinstance(value, CommentedMap | CommentedSeq):
                    line, col, length = k_line, k_col, len(str(part))
                else:
                    line, col, length = v_line, v_col, max(len(str(value)), 1)
                node = value
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
                if not isinstance(node, CommentedMap | CommentedSeq):
                    length = max(len(str(node)), 1)
            else:
                break
        return SourceLocation(self.file, line + 1, col + 1, length)

    def spelling(self, path: KeyPath) -> str:
        """The key at ``path`` as the file spells it (``true:`` is a boolean key to YAML)."""
        node = self.root
        for part in path[:-1]:
            node = node.get(_raw_key(node, part)) if isinstance(node, CommentedMap) else None
        last = _raw_key(node, path[-1]) if isinstance(node, CommentedMap) else path[-1]
        if isinstance(last, str) or not isinstance(node, CommentedMap) or last not in node:
            return str(last)
        line, col = node.lc.key(last)
        return str(self.text.splitlines()[line][col:].split(":", 1)[0].strip())

    def error(
        self, message: str, path: KeyPath, *, hint: str | None = None, key: bool = False
    ) -> ConfigError:
        """Build a :class:`ConfigError` located at ``path``."""
        return ConfigError(
            message,
            location=self.locate(path, key=key),
            key_path=dotted(path),
            hint=hint,
            source=self.text,
        )


def _raw_key(node: Any, part: str | int) -> Any:
    """The key of ``node`` that the model names ``part`` (YAML reads ``null:`` as None)."""
    if not isinstance(node, CommentedMap) or part in node:
        return part
    return next((k for k in node if not isinstance(k, str) and str(k) == part), part)


def dotted(path: KeyPath) -> str:
    """Render a key path as ``segments.vip.rule`` (list indices as ``[0]``)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_yaml(path: Path) -> tuple[Any, str]:
    """Parse a YAML file, keeping positions; raise ConfigError for malformed YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no workspace file at {path}", hint="run 'segmint init DIR'") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc.reason}") from None
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        raise yaml_error(exc, str(path), text) from None
    except ValueError as exc:  # YAML reads 2026-13-01 as a date, and the date is impossible
        raise _impossible_date(exc, str(path), text) from None
    return data, text


_DATE = re.compile(r"(?<![\w.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\w.-]*:)")


def _impossible_date(exc: ValueError, file: str, text: str) -> ConfigError:
    """Locate the date YAML could not build (ruamel.yaml gives no position)."""
    for number, line in enumerate(text.splitlines(), start=1):
        for found in _DATE.finditer(line.split("#", 1)[0]):
            try:
                date(*(int(part) for part in found.groups()))
            except ValueError:
                loc = SourceLocation(file, number, found.start() + 1, len(found.group()))
                hint = "write it as YYYY-MM-DD, or quote it"
                return ConfigError(f"impossible date '{found.group()}': {exc}", location=loc,
                                   hint=hint, source=text)  # fmt: skip
    return ConfigError(f"{file}: {exc}")


def yaml_error(exc: MarkedYAMLError, file: str, text: str) -> ConfigError:
    """Turn a YAML syntax error into a ConfigError at the mistake, in plain words.

    The common mistakes (:func:`segmint.config.yamlsyntax.diagnose`) are named where they
    are; any other error is reported where the parser stopped, in the parser's words.
    """
    shown = text.replace("\t", "\u2192")  # a tab, visible and one column wide
    found = diagnose(exc, text)
    if found is not None:
        loc = SourceLocation(file, found.line + 1, found.column + 1, found.length)
        return ConfigError(found.message, location=loc, hint=found.hint, source=shown)
    mark = exc.problem_mark or exc.context_mark
    where = SourceLocation(file, mark.line + 1, mark.column + 1) if mark else None
    problem = exc.problem or exc.context or "malformed YAML"
    return ConfigError(f"malformed YAML: {problem}", location=where, source=shown)


def validate_file(path: Path, model: type[M]) -> tuple[M, Positions]:
    """Load a YAML file into ``model``, every problem located at its file:line:column.

    Raises:
        ConfigErrors: Every problem found, each with its location.
    """
    data, text = read_yaml(path)
    positions = Positions(data, str(path), text)
    if not isinstance(data, CommentedMap):
        raise ConfigErrors([positions.error(f"{path.name} must be a mapping of keys", [])])
    try:
        return model.model_validate(_plain(data)), positions
    except ValidationError as exc:
        raise ConfigErrors(_translate(exc, positions, model)) from None


def load_workspace_def(path: Path) -> WorkspaceDef:
    """Load and validate a workspace file.

    Raises:
        ConfigErrors: Every problem found, each with its location.
    """
    workspace, positions = validate_file(path, WorkspaceDef)
    problems = list(cross_check(workspace, positions))
    if problems:
        raise ConfigErrors(problems)
    return workspace


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    return node


def _translate(
    exc: ValidationError, positions: Positions, root: type[BaseModel] = WorkspaceDef
) -> list[ConfigError]:
    errors: list[ConfigError] = []
    for err in exc.errors():
        path = [p for p in err["loc"] if not _is_union_tag(p)]
        if err["type"] == "extra_forbidden":
            errors.append(_unknown_key(path, positions, root))
            continue
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            message = f"missing required key '{path[-1]}'"
            path = path[:-1]
        errors.append(positions.error(message, path))
    return errors


def _is_union_tag(part: Any) -> bool:
    # pydantic's names of validator functions, and the tags of discriminated unions
    # (``<arm>``: no key of segmint.yaml is spelled with angle brackets)
    return isinstance(part, str) and (part.startswith("function-") or part.startswith("<"))


def _unknown_key(
    path: list[str | int], positions: Positions, root: type[BaseModel] = WorkspaceDef
) -> ConfigError:
    name = str(path[-1])
    candidates = _fields_at(path[:-1], root)
    hint = did_you_mean(name, candidates)
    if root is WorkspaceDef and _under(path, "traits"):
        listing = f"aggregates are: {', '.join(AGGREGATES)}"
        hint = f"{hint} ({listing})" if hint else listing
    return positions.error(f"unknown key '{name}'", path, hint=hint, key=True)


def _under(path: KeyPath, section: str) -> bool:
    return len(path) == 3 and path[0] == section


def _fields_at(path: KeyPath, root: type[BaseModel] = WorkspaceDef) -> list[str]:
    model: type[BaseModel] | None = root
    for part in path:
        if model is None:
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            # inside a dict[str, Model]: the key is a user name; keep the model
            continue
        model = _model_of(field.annotation)
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def cross_check(ws: WorkspaceDef, positions: Positions) -> list[ConfigError]:
    """Check references between sections: parents, groups, campaign and webhook segments."""
    errors: list[ConfigError] = []
    names = list(ws.segments)
    archived = ws.archived_segments
    defaults: dict[str, str] = {}
    hint: str | None
    for name, seg in ws.segments.items():
        if seg.parent is not None and seg.parent in archived:
            msg = f"parent segment '{seg.parent}' of segment '{name}' is archived"
            hint = "archive the child too, or set 'archived: false' on the parent"
            errors.append(positions.error(msg, ["segments", name, "parent"], hint=hint))
        elif seg.parent is not None and seg.parent not in ws.segments:
            hint = did_you_mean(seg.parent, names)
            msg = f"unknown parent segment '{seg.parent}' of segment '{name}'"
            errors.append(positions.error(msg, ["segments", name, "parent"], hint=hint))
        if seg.priority and seg.group is None:
            errors.append(_priority_alone(ws, name, positions))
        elif seg.priority and seg.default:
            errors.append(_priority_on_default(name, str(seg.group), positions))
        if seg.default and seg.group is not None:
            if seg.group in defaults:
                msg = f"group '{seg.group}' already has default segment '{defaults[seg.group]}'"
                errors.append(positions.error(msg, ["segments", name, "default"]))
            defaults[seg.group] = name
    for name, campaign in ws.campaigns.items():
        if campaign.segment in archived:
            msg = f"campaign '{name}' targets segment '{campaign.segment}', which is archived"
            hint = "remove the campaign, or set 'archived: false' on the segment"
            errors.append(positions.error(msg, ["campaigns", name, "segment"], hint=hint))
        elif campaign.segment not in ws.segments:
            hint = did_you_mean(campaign.segment, names)
            msg = f"unknown segment '{campaign.segment}' in campaign '{name}'"
            errors.append(positions.error(msg, ["campaigns", name, "segment"], hint=hint))
        if campaign.topic not in ws.consent.topics:
            hint = did_you_mean(campaign.topic, ws.consent.topics)
            msg = f"unknown consent topic '{campaign.topic}' in campaign '{name}'"
            errors.append(positions.error(msg, ["campaigns", name, "topic"], hint=hint))
    for name, hook in ws.webhooks.items():
        for index, segment in enumerate(hook.segments):
            key: list[str | int] = ["webhooks", name, "segments", index]
            if segment in archived:
                msg = f"webhook '{name}' follows segment '{segment}', which is archived"
                hint = "remove it from the webhook, or set 'archived: false' on the segment"
                errors.append(positions.error(msg, key, hint=hint))
            elif segment not in ws.segments:
                hint = did_you_mean(segment, names)
                msg = f"unknown segment '{segment}' in webhook '{name}'"
                errors.append(positions.error(msg, key, hint=hint))
    if ws.email.group is not None and not any(
        s.group == ws.email.group for s in ws.segments.values()
    ):
        msg = f"email.group names '{ws.email.group}', which no segment belongs to"
        errors.append(positions.error(msg, ["email", "group"]))
    return errors + _check_derive(ws, positions) + check_experiments(ws, positions)


def group_warnings(ws: WorkspaceDef, path: Path) -> list[ConfigError]:
    """A group of one segment named like another group: most likely a misspelt group.

    Such a segment is in no exclusive group with the others, which nothing else would say.
    """
    groups: dict[str, list[str]] = {}
    for name, seg in ws.segments.items():
        if seg.group is not None:
            groups.setdefault(seg.group, []).append(name)
    positions: Positions | None = None
    warnings = []
    for group, members in groups.items():
        hint = did_you_mean(group, [g for g in groups if g != group and len(groups[g]) > 1])
        if len(members) == 1 and hint is not None:
            if positions is None:
                data, text = read_yaml(path)
                positions = Positions(data, str(path), text)
            msg = (f"group '{group}' has only segment '{members[0]}', so it is exclusive "
                   "with no other segment")  # fmt: skip
            warnings.append(positions.error(msg, ["segments", members[0], "group"], hint=hint))
    return warnings


def _priority_alone(ws: WorkspaceDef, name: str, positions: Positions) -> ConfigError:
    """A priority on a segment with no group: it ranks nothing (it was ignored)."""
    groups = sorted({s.group for s in ws.segments.values() if s.group is not None})
    example = f" (as {', '.join(groups)})" if groups else ""
    msg = (f"segment '{name}' has a 'priority' but no 'group': a priority ranks the "
           "segments of an exclusive group")  # fmt: skip
    hint = f"add 'group: NAME'{example}, or remove 'priority'"
    return positions.error(msg, ["segments", name, "priority"], hint=hint)


def _priority_on_default(name: str, group: str, positions: Positions) -> ConfigError:
    """A priority on a group's default: it ranks after every other member (it was ignored)."""
    msg = (f"default segment '{name}' has a 'priority': a default ranks after every other "
           f"segment of group '{group}', holding whoever matches none")  # fmt: skip
    return positions.error(msg, ["segments", name, "priority"], hint="remove 'priority'")


def _check_derive(ws: WorkspaceDef, positions: Positions) -> list[ConfigError]:
    """A derived trait reads a PII value before it is sealed: its ``from`` must be one.

    A typo (``from: emial``) derived nothing, for every profile, and said nothing.
    """
    pii = sorted(set(ws.privacy.pii) | {n for n, t in ws.traits.items() if t.pii})
    errors = []
    for name, rule in ws.privacy.derive.items():
        if rule.from_ not in pii:
            msg = (f"privacy.derive '{name}' reads '{rule.from_}', which is no PII name "
                   f"(privacy.pii and pii: true traits: {', '.join(pii) or 'none'})")  # fmt: skip
            hint = did_you_mean(rule.from_, pii) or "derive from a PII value, as email"
            errors.append(positions.error(msg, ["privacy", "derive", name, "from"], hint=hint))
    return errors


def trait_types(ws: WorkspaceDef) -> dict[str, TraitDef]:
    """Return the trait definitions by name (a convenience for other stages)."""
    return dict(ws.traits)

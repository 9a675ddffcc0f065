"""Lint templates against the workspace: names, fallbacks, segment names, syntax.

Checks, each with file, line and column:

- ``syntax`` (error): the file is not valid Jinja, or uses an unknown filter or test;
- ``missing-template`` (error): it extends, includes or imports a file that is not there;
- ``unknown-variable`` (error): a name that is not a trait, a context name, an ``extra``
  name delivery passes, a sandbox global or something the template defines itself;
- ``unknown-segment`` (error): a segment name compared with ``segment`` or tested against
  ``segments`` that the workspace does not define;
- ``segment-not-in-group`` (warning): ``segment == 'x'`` where ``x`` is not in the group
  ``email.group``, so it can never be true;
- ``no-fallback`` (warning): ``{{ trait }}`` on an optional trait (an identify trait without
  ``default``, or an aggregate that is null without events) with no ``default`` filter and
  no enclosing ``{% if trait %}``;
- ``no-subject`` (error): an email template (one named on the command line, or, when
  linting every file, one that no other template extends, includes or imports) whose
  ``subject`` block is missing or blank, through its layouts: ``template preview`` and
  sending refuse it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2 import meta, nodes

from segmint.common import did_you_mean, did_you_mean_file
from segmint.config.model import WorkspaceDef
from segmint.errors import SourceLocation, caret_excerpt
from segmint.personalize.compiler import flatten, syntax_error
from segmint.personalize.errors import TemplateError
from segmint.personalize.renderer import Renderer

NULLABLE_AGGREGATES = frozenset({"avg", "min", "max", "first", "last", "most_frequent"})
_FALLBACK_FILTERS = frozenset({"default", "d"})
TEMPLATE_SUFFIXES = frozenset({".html", ".htm", ".txt", ".jinja", ".jinja2", ".j2"})
"""Files ``segmint template lint`` checks when no name is given (images and such are not)."""


@dataclass(frozen=True)
class LintIssue:
    """One finding.

    Attributes:
        template: The file, relative to ``templates/``.
        severity: ``error`` (lint fails) or ``warning``.
        code: The check that found it (see the module docstring).
        message: What is wrong.
        line: 1-based line.
        column: 1-based column.
        hint: A suggestion, when there is one.
        length: How many characters the caret underlines.
    """

    template: str
    severity: Literal["error", "warning"]
    code: str
    message: str
    line: int
    column: int
    hint: str | None = None
    length: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the issue as a JSON-ready dict."""
        return asdict(self)

    def detailed_message(self, source: str | None) -> str:
        """Return ``file:line:col: severity: message`` and, given the source, a caret line."""
        loc = SourceLocation(f"templates/{self.template}", self.line, self.column, self.length)
        head = f"{loc}: {self.severity}: {self.message}"
        if source is None:
            return head + (f"; {self.hint}" if self.hint else "")
        return head + "\n" + caret_excerpt(source, loc, self.hint)


class Linter:
    """Lints the templates of one renderer's workspace."""

    def __init__(self, renderer: Renderer) -> None:
        """Collect the names, optional traits and segments of the renderer's workspace."""
        self.renderer = renderer
        definition = renderer.definition
        context = renderer.context
        self.known = context.known_names | set(renderer.html_env.globals)
        self.optional = frozenset(
            name
            for name, trait in definition.traits.items()
            if trait.default is None
            and (
                trait.kind != "computed"
                or (trait.aggregate is not None and trait.aggregate[0] in NULLABLE_AGGREGATES)
            )
        )
        self.segments = frozenset(definition.segments)
        self.group = context.group
        self.group_members = frozenset((*context.group_order, context.group_default or ""))
        self.sources: dict[str, str] = {}

    def template_names(self) -> list[str]:
        """Every template file under ``templates/`` (by suffix), sorted."""
        root = self.renderer.templates_dir
        found = (
            p
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in TEMPLATE_SUFFIXES
        )
        return sorted(p.relative_to(root).as_posix() for p in found)

    def lint(self, names: Iterable[str] | None = None) -> list[LintIssue]:
        """Lint ``names`` (and what they extend or include), or every template."""
        queue = list(names) if names is not None else self.template_names()
        queue = [self.renderer.resolve_name(n) for n in queue]
        emails = list(queue) if names is not None else None
        done: set[str] = set()
        used: set[str] = set()  # extended, included or imported by another template
        issues: list[LintIssue] = []
        while queue:
            name = queue.pop(0)
            if name in done:
                continue
            done.add(name)
            found, referenced = self.lint_one(name)
            issues.extend(found)
            used.update(r for r in referenced if r != name)
            if names is not None:
                queue.extend(r for r in referenced if r not in done)
        broken = {i.template for i in issues if i.severity == "error"}
        for name in emails if emails is not None else sorted(done - used):
            if name not in broken:
                issues.extend(self._subject(name))
        return issues

    def _subject(self, name: str) -> Iterator[LintIssue]:
        """An email template must have a subject (``Renderer.compile`` refuses it otherwise)."""
        renderer = self.renderer
        try:
            flat = flatten(
                renderer.files, renderer.html_env, name, renderer.limits.max_template_bytes
            )
        except TemplateError:
            return  # the other checks say why it does not compile
        if flat.subject is None or not flat.subject.strip():
            yield LintIssue(
                name, "error", "no-subject", "the template has no subject", 1, 1,
                "add {% block subject %}…{% endblock %} (template preview needs it even when "
                "a campaign sets its own subject)",
            )  # fmt: skip

    def lint_one(self, name: str) -> tuple[list[LintIssue], list[str]]:
        """Lint one file; return its issues and the templates it references by name."""
        env = self.renderer.html_env
        try:  # through the loader: it refuses names that leave templates/
            source = self.renderer.files.get_source(env, name)[0]
        except jinja2.TemplateNotFound:
            hint = did_you_mean_file(name, self.template_names())
            issue = LintIssue(name, "error", "not-found", f"no template named {name!r}", 1, 1, hint)
            return [issue], []
        except UnicodeDecodeError as exc:
            issue = LintIssue(name, "error", "encoding", f"not UTF-8 text: {exc.reason}", 1, 1)
            return [issue], []
        self.sources[name] = source
        try:
            tree = env.parse(source, name)
            env.compile(source, name)  # unknown filters and tests surface here
        except jinja2.TemplateSyntaxError as exc:
            err = syntax_error(exc, name, source)
            line, column = (err.location.line, err.location.column) if err.location else (1, 1)
            return [LintIssue(name, "error", "syntax", err.message, line, column)], []
        referenced = [r for r in meta.find_referenced_templates(tree) if r is not None]
        issues = [*self._segment_names(name, source, tree), *self._fallbacks(name, source, tree)]
        issues.extend(self._references(name, source, tree))
        # Last: jinja2.meta runs a code generator whose optimizer folds constants in place.
        issues.extend(self._names(name, source, tree))
        return sorted(issues, key=lambda i: (i.line, i.column)), referenced

    def _references(self, name: str, source: str, tree: nodes.Template) -> Iterator[LintIssue]:
        """Layouts, partials and imports named in quotes must exist."""
        kinds = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
        found: Iterator[Any] = tree.find_all(kinds)
        for node in found:
            target = node.template
            ignore = isinstance(node, nodes.Include) and node.ignore_missing
            if not isinstance(target, nodes.Const) or not isinstance(target.value, str) or ignore:
                continue
            try:
                self.renderer.files.get_source(self.renderer.html_env, target.value)
            except jinja2.TemplateNotFound:
                hint = did_you_mean_file(target.value, self.template_names())
                yield self._issue(
                    name, source, node, "error", "missing-template",
                    f"no template named {target.value!r} in templates/",
                    f"['\"]({re.escape(target.value)})['\"]", hint,
                )  # fmt: skip

    def _names(self, name: str, source: str, tree: nodes.Template) -> Iterator[LintIssue]:
        unknown = meta.find_undeclared_variables(tree) - self.known
        reported: set[str] = set()
        for node in tree.find_all(nodes.Name):
            if node.name in unknown and node.name not in reported:
                reported.add(node.name)
                yield self._issue(
                    name, source, node, "error", "unknown-variable",
                    f"unknown variable {node.name!r}: not a trait or a template name",
                    _name_pattern(node.name), did_you_mean(node.name, self.known),
                )  # fmt: skip

    def _fallbacks(self, name: str, source: str, tree: nodes.Template) -> Iterator[LintIssue]:
        for node, guarded in _outputs(tree, frozenset()):
            bare: Any = node
            while isinstance(bare, nodes.Filter):
                if bare.name in _FALLBACK_FILTERS:
                    break
                bare = bare.node
            if isinstance(bare, nodes.Name) and bare.name in self.optional - guarded:
                yield self._issue(
                    name, source, bare, "warning", "no-fallback",
                    f"{bare.name!r} may be missing and has no fallback",
                    _name_pattern(bare.name),
                    f'write {{{{ {bare.name} | default("…") }}}} or wrap it in '
                    f"{{% if {bare.name} %}}",
                )  # fmt: skip

    def _segment_names(self, name: str, source: str, tree: nodes.Template) -> Iterator[LintIssue]:
        for compare in tree.find_all(nodes.Compare):
            for var, segment, const in _segment_comparisons(compare):
                yield from self._check_segment(name, source, var, segment, const)

    def _check_segment(
        self, name: str, source: str, var: str, segment: str, const: nodes.Const
    ) -> Iterator[LintIssue]:
        if segment not in self.segments:
            hint = did_you_mean(segment, self.segments)
            message = f"unknown segment {segment!r}"
            yield self._issue(
                name, source, const, "error", "unknown-segment", message,
                _quoted_pattern(segment, var), hint,
            )  # fmt: skip
        elif var == "segment" and segment not in self.group_members:
            group = self.group or "(email.group is not set)"
            yield self._issue(
                name, source, const, "warning", "segment-not-in-group",
                f"segment {segment!r} is not in the exclusive group {group}: "
                f"`segment` is never {segment!r}",
                _quoted_pattern(segment, var), f"use '{segment}' in segments",
            )  # fmt: skip

    def _issue(
        self,
        name: str,
        source: str,
        node: nodes.Node,
        severity: Literal["error", "warning"],
        code: str,
        message: str,
        needle: str,
        hint: str | None,
    ) -> LintIssue:
        line = node.lineno or 1
        column, length = _column(source, line, needle)
        return LintIssue(name, severity, code, message, line, column, hint, length)


def _column(source: str, line: int, needle: str) -> tuple[int, int]:
    r"""The 1-based column and length of ``needle`` on ``line``.

    ``needle`` holds regular expressions separated by ``\n``, tried in order; group 1, if
    any, is what the caret underlines. Matches inside a tag win over matches in text.
    """
    lines = source.splitlines() or [""]
    text = lines[min(max(line, 1), len(lines)) - 1]
    for option in needle.split("\n"):
        pattern = re.compile(option)
        fallback: tuple[int, int] | None = None
        for match in pattern.finditer(text):
            group = 1 if pattern.groups else 0
            start, end = match.start(group), match.end(group)
            before = text[:start]
            if before.rfind("{") > before.rfind("}"):
                return start + 1, end - start
            fallback = fallback or (start + 1, end - start)
        if fallback:
            return fallback
    return 1, 1


def _name_pattern(name: str) -> str:
    return rf"(?<![\w.'\"])({re.escape(name)})(?![\w'\"])"


def _quoted_pattern(value: str, var: str) -> str:
    quoted = rf"['\"]{re.escape(value)}['\"]"
    if var == "segment":
        return f"segment\\s*[!=]=\\s*({quoted})\n({quoted})\\s*[!=]=\\s*segment\n{quoted}"
    return quoted


def _names_in(node: nodes.Node) -> frozenset[str]:
    found = {n.name for n in node.find_all(nodes.Name)}
    if isinstance(node, nodes.Name):
        found.add(node.name)
    return frozenset(found)


def _outputs(node: nodes.Node, guarded: frozenset[str]) -> Iterator[tuple[Any, frozenset[str]]]:
    """Yield each ``{{ }}`` expression with the names tested by enclosing ``if`` tags."""
    if isinstance(node, nodes.Output):
        for expr in node.nodes:
            if not isinstance(expr, nodes.TemplateData):
                yield expr, guarded
        return
    if isinstance(node, nodes.If):
        inner = guarded | _names_in(node.test)
        for child in node.body:
            yield from _outputs(child, inner)
        for branch in node.elif_:
            yield from _outputs(branch, guarded)
        for child in node.else_:
            yield from _outputs(child, guarded)
        return
    for child in node.iter_child_nodes():
        yield from _outputs(child, guarded)


def _segment_comparisons(compare: nodes.Compare) -> Iterator[tuple[str, str, nodes.Const]]:
    """Yield (variable, segment name, node) for comparisons with ``segment``/``segments``."""
    left: Any = compare.expr
    for operand in compare.ops:
        right: Any = operand.expr
        if operand.op in ("eq", "ne"):
            for var, const in ((left, right), (right, left)):
                if _is_name(var, "segment") and _is_str(const):
                    yield "segment", const.value, const
        elif operand.op in ("in", "notin"):
            if _is_str(left) and _is_name(right, "segments"):
                yield "segments", left.value, left
            if _is_name(left, "segment") and isinstance(right, nodes.List | nodes.Tuple):
                items: list[Any] = right.items
                for item in items:
                    if _is_str(item):
                        yield "segment", item.value, item
        left = right


def _is_name(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name


def _is_str(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, str)


def lint_templates(
    templates_dir: Path | str, definition: WorkspaceDef, names: Iterable[str] | None = None
) -> tuple[list[LintIssue], dict[str, str]]:
    """Lint templates of a workspace; return the issues and the sources read (for carets).

    Args:
        templates_dir: The workspace's ``templates/`` folder.
        definition: The workspace definition.
        names: Templates to lint with what they extend or include; all files when None.
    """
    linter = Linter(Renderer(templates_dir, definition))
    issues = linter.lint(names)
    return issues, linter.sources

"""The management API for traits, templates, campaigns, journeys and experiments.

One set of routes serves every kind, ``/v1/manage/{kind}``: list, read, validate, create,
update, archive. Reads need a key with the ``read`` scope, changes one with ``admin``.

The four kinds kept in ``segmint.yaml`` (:class:`SectionKind`) are edited through
:class:`segmint.config.edit.DefinitionEditor`, the mechanism segments use: only the entry's
lines change, and the edited text is validated by the loader ``segmint`` runs at start-up,
so a refused save carries the loader's problems (``file:line:column``, key path, hint) as
JSON. Templates (:class:`TemplateKind`) are files, ``templates/NAME.html``; a save is linted
as ``segmint template lint`` lints it, and the workspace is loaded against the new folder
(journeys name templates). Archived entries go to ``archive/``.

After a save the workspace takes the new definitions (:meth:`Workspace.replace_definition
<segmint.workspace.Workspace.replace_definition>`), which a running server's real-time
engine follows.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from segmint.api.auth import require_admin, require_read
from segmint.api.errors import ApiError
from segmint.api.inputs import not_renamed, refuse_nul
from segmint.api.state import workspace_of
from segmint.common import did_you_mean
from segmint.config.edit import (
    ARCHIVE_DIR,
    DefinitionEditor,
    SavedDefinition,
    problem_json,
    problems_of,
    text_version,
)
from segmint.config.errors import ConfigError, StaleDefinitionError
from segmint.workspace import Workspace

router = APIRouter(tags=["manage"], dependencies=[Depends(refuse_nul)])
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A new entry's name: a YAML key, a URL part and a name rules and templates can use."""


class KindName(enum.StrEnum):
    """The kinds of definition these routes manage (segments have their own routes)."""

    traits = "traits"
    templates = "templates"
    campaigns = "campaigns"
    journeys = "journeys"
    experiments = "experiments"


class DefinitionBody(BaseModel):
    """A definition as the client edits it."""

    name: str | None = Field(default=None, description="The name (create and validate).")
    definition: dict[str, Any] | None = Field(
        default=None, description="The entry's keys, as written in segmint.yaml."
    )
    source: str | None = Field(default=None, description="A template's text (templates only).")
    version: str | None = Field(
        default=None, description="The version edited (refused if the file changed)."
    )


@dataclasses.dataclass(frozen=True)
class SectionKind:
    """Entries of one top-level mapping of ``segmint.yaml``.

    Attributes:
        section: The key in ``segmint.yaml`` (``traits``, ``campaigns`` …).
    """

    section: str

    def names(self, ws: Workspace) -> list[str]:
        """The defined names, sorted."""
        return sorted(getattr(ws.definition, self.section))

    def listing(self, ws: Workspace) -> dict[str, Any]:
        """Every entry as written, with its line, and the file's version."""
        editor = DefinitionEditor(ws.path)
        entries = editor.entries(self.section)
        rows = [{"name": n, "definition": d, "line": at} for n, (d, at) in entries.items()]
        return {self.section: rows, "version": editor.version()}

    def read(self, ws: Workspace, name: str) -> dict[str, Any]:
        """One entry as written, with its line and the file's version."""
        editor = DefinitionEditor(ws.path)
        entries = editor.entries(self.section)
        if name not in entries:
            raise _unknown(self.section, name, list(entries), ws)
        definition, line = entries[name]
        return {"name": name, "definition": definition, "line": line,
                "file": str(editor.path), "version": editor.version()}  # fmt: skip

    def save(
        self, ws: Workspace, name: str, body: DefinitionBody, dry_run: bool
    ) -> SavedDefinition:
        """Write (or with ``dry_run`` only check) entry ``name`` as ``body.definition``."""
        if body.source is not None:
            message = (f"source: only templates take a source; give the {self.section} "
                       "entry's keys as definition")  # fmt: skip
            raise ApiError(422, "invalid_request", message, "source")
        if body.definition is None:
            raise ApiError(422, "invalid_request", "definition: give the entry's keys",
                           "definition")  # fmt: skip
        return DefinitionEditor(ws.path).put_entry(
            self.section, name, body.definition, version=body.version, dry_run=dry_run
        )

    def archive(self, ws: Workspace, name: str, version: str | None) -> SavedDefinition:
        """Move the entry to ``archive/<section>.yaml``."""
        return DefinitionEditor(ws.path).archive_entry(self.section, name, version=version)


@dataclasses.dataclass(frozen=True)
class TemplateKind:
    """Email templates: ``templates/NAME.html`` files."""

    section: str = "templates"
    suffix: str = ".html"

    def names(self, ws: Workspace) -> list[str]:
        """The templates' names (file names without ``.html``), sorted."""
        folder = ws.templates_dir
        return sorted(p.stem for p in folder.glob(f"*{self.suffix}")) if folder.is_dir() else []

    def listing(self, ws: Workspace) -> dict[str, Any]:
        """Every template with its file and version."""
        rows = [self._row(ws, n) | {"name": n} for n in self.names(ws)]
        return {"templates": rows}

    def read(self, ws: Workspace, name: str) -> dict[str, Any]:
        """One template's text, file and version."""
        if name not in self.names(ws):
            raise _unknown(self.section, name, self.names(ws))
        path = self.path(ws, name)
        return {"name": name, "source": path.read_text(encoding="utf-8")} | self._row(ws, name)

    def path(self, ws: Workspace, name: str) -> Path:
        """The file of template ``name``."""
        return ws.templates_dir / f"{name}{self.suffix}"

    def _row(self, ws: Workspace, name: str) -> dict[str, Any]:
        path = self.path(ws, name)
        return {"file": str(path), "version": text_version(path.read_text(encoding="utf-8"))}

    def save(
        self, ws: Workspace, name: str, body: DefinitionBody, dry_run: bool
    ) -> SavedDefinition:
        """Lint ``body.source`` as template ``name`` and load the workspace beside it."""
        if body.definition is not None:
            raise ApiError(422, "invalid_request", "definition: a template is its text: give "
                           "it as source (its subject is a block in it)", "definition")  # fmt: skip
        if body.source is None:
            raise ApiError(422, "invalid_request", "source: give the template's text", "source")
        path = self.path(ws, name)
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if body.version is not None and body.version != text_version(old):
            raise StaleDefinitionError(
                f"{path} changed since version {body.version} was read (now {text_version(old)})",
                hint="reload the template and apply the edit again",
            )
        saved = self._checked(ws, {path.name: body.source})
        if not dry_run:
            _replace(path, body.source)
        return dataclasses.replace(saved, version=text_version(body.source))

    def archive(self, ws: Workspace, name: str, version: str | None) -> SavedDefinition:
        """Move the template to ``archive/templates/`` unless a definition still names it."""
        path = self.path(ws, name)
        if version is not None and version != text_version(path.read_text(encoding="utf-8")):
            raise StaleDefinitionError(f"{path} changed since version {version} was read",
                                       hint="reload the template and try again")  # fmt: skip
        used = sorted(c for c, d in ws.definition.campaigns.items() if d.template == name)
        if used:
            raise ConfigError(f"template '{name}' is used by campaign(s) {', '.join(used)}",
                              key_path=f"campaigns.{used[0]}.template")  # fmt: skip
        saved = self._checked(ws, {path.name: None})
        target = ws.path / ARCHIVE_DIR / "templates" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        return saved

    def _checked(self, ws: Workspace, changes: dict[str, str | None]) -> SavedDefinition:
        """Lint the changed files in a copy of ``templates/`` and load the workspace there.

        Raises:
            ConfigErrors: The lint errors, located in the real ``templates/`` folder, or the
                loader's problems.
        """
        from segmint.config.errors import ConfigErrors
        from segmint.errors import SourceLocation
        from segmint.personalize.lint import lint_templates

        editor = DefinitionEditor(ws.path)
        with tempfile.TemporaryDirectory(prefix="segmint-templates-") as scratch:
            folder = Path(scratch) / "templates"
            if ws.templates_dir.is_dir():
                shutil.copytree(ws.templates_dir, folder)
            folder.mkdir(exist_ok=True)
            for file, text in changes.items():
                if text is None:
                    (folder / file).unlink(missing_ok=True)
                else:
                    (folder / file).write_text(text, encoding="utf-8")
            definition = editor.validate(editor.path.read_text(encoding="utf-8"), folder)
            written = [f for f, t in changes.items() if t is not None]
            issues, sources = lint_templates(folder, definition, written) if written else ([], {})
        errors = [
            ConfigError(
                i.message,
                location=SourceLocation(
                    str(ws.templates_dir / i.template), i.line, i.column, i.length
                ),  # fmt: skip
                key_path=f"templates.{Path(i.template).stem}",
                hint=i.hint,
                source=sources.get(i.template),
            )
            for i in issues
            if i.severity == "error"
        ]
        if errors:
            raise ConfigErrors(errors)
        text = editor.path.read_text(encoding="utf-8")
        return SavedDefinition(definition, text_version(text), text)


KINDS: dict[KindName, SectionKind | TemplateKind] = {
    KindName.traits: SectionKind("traits"),
    KindName.templates: TemplateKind(),
    KindName.campaigns: SectionKind("campaigns"),
    KindName.journeys: SectionKind("journeys"),
    KindName.experiments: SectionKind("experiments"),
}


# -- the Python API ------------------------------------------------------------------------


def validate(ws: Workspace, kind: KindName, body: DefinitionBody) -> list[dict[str, Any]]:
    """Every problem the loader would report if ``body`` were saved, as JSON."""
    name = _name(body)
    try:
        KINDS[kind].save(ws, name, body, dry_run=True)
    except ConfigError as exc:
        return problems(exc)
    return []


def problems(exc: ConfigError) -> list[dict[str, Any]]:
    """Each problem of a refused save as JSON: message, file, line, column, key path, hint."""
    return [problem_json(p) for p in problems_of(exc)]


def save(
    ws: Workspace, kind: KindName, name: str, body: DefinitionBody, *, create: bool
) -> dict[str, Any]:
    """Create (``create``) or update entry ``name``; the workspace takes the new definitions.

    Raises:
        ApiError: 409 if it exists (create) or the file changed since ``body.version``;
            404 if it does not exist (update); 422 with the loader's problems otherwise.
    """
    handler = KINDS[kind]
    exists = name in handler.names(ws)
    if create and not NAME.fullmatch(name):
        hint = "use letters, digits and '_', starting with a letter or '_'"
        raise ApiError(422, "invalid_request", f"name: {name!r} is not a name: {hint}", "name")
    if create and exists:
        raise ApiError(409, "conflict", f"{kind.value} entry '{name}' already exists: update it",
                       "name")  # fmt: skip
    if not create and not exists:
        raise _unknown(kind.value, name, handler.names(ws), ws)
    if not create:
        not_renamed(f"{kind.value} entry", name, body.name)
    try:
        saved = handler.save(ws, name, body, dry_run=False)
    except ConfigError as exc:
        raise refused(exc) from None
    ws.replace_definition(saved.definition)
    return handler.read(ws, name) | _notes(ws, kind, name)


def archive(ws: Workspace, kind: KindName, name: str, version: str | None) -> dict[str, Any]:
    """Move entry ``name`` to ``archive/``; refused while another definition uses it."""
    handler = KINDS[kind]
    if name not in handler.names(ws):
        raise _unknown(kind.value, name, handler.names(ws), ws)
    try:
        saved = handler.archive(ws, name, version)
    except ConfigError as exc:
        raise refused(exc) from None
    ws.replace_definition(saved.definition)
    return {"archived": name, "kind": kind.value, "version": saved.version,
            **_notes(ws, kind, name)}  # fmt: skip


def _notes(ws: Workspace, kind: KindName, name: str) -> dict[str, Any]:
    """For a journey: what the next tick does to instances its change left behind.

    Instances of an archived journey, or at a step renamed or removed, end with reason
    ``definition_changed`` (see :func:`segmint.journeys.insight.show_journey`).
    """
    if kind is not KindName.journeys:
        return {}
    from segmint.journeys.errors import UnknownJourneyError
    from segmint.journeys.insight import show_journey

    try:
        return {"notes": show_journey(ws, name)["notes"]}
    except UnknownJourneyError:  # archived, and no instance of it left
        return {"notes": []}


def refused(exc: ConfigError) -> ApiError:
    """The API's answer to a refused save: 409 for a stale version, else 422 with problems."""
    if isinstance(exc, StaleDefinitionError):
        return ApiError(409, "conflict", str(exc), "version")
    problems = problems_of(exc)
    return ApiError(422, "invalid_definition", "\n".join(map(str, problems)),
                    problems[0].key_path)  # fmt: skip


def _name(body: DefinitionBody) -> str:
    if not body.name:
        raise ApiError(422, "invalid_request", "name: give the entry's name", "name")
    return body.name


def _unknown(kind: str, name: str, known: list[str], ws: Workspace | None = None) -> ApiError:
    hint = did_you_mean(name, known)
    message = f"unknown {kind} entry '{name}'" + (f"; {hint}" if hint else "")
    models = ws.definition.models if ws is not None and kind == "traits" else {}
    for model, defn in sorted(models.items()):  # a score rules read like any other trait
        if name in defn.output_traits(model).values():
            message = (f"trait '{name}' is written by model '{model}' (under 'models:' in "
                       "segmint.yaml), not a traits entry: its scores come from "
                       f"'segmint models score {model}'")  # fmt: skip
    return ApiError(404, "not_found", message, "name")


def _replace(path: Path, text: str) -> None:
    from segmint.config.edit import replace_file

    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, text)


# -- routes --------------------------------------------------------------------------------

PREFIX = "/v1/manage/{kind}"


@router.get(PREFIX, dependencies=[Depends(require_read)])
def list_route(kind: KindName, request: Request) -> dict[str, Any]:
    """Every entry of a kind, as written."""
    return KINDS[kind].listing(workspace_of(request))


@router.get(PREFIX + "/{name}", dependencies=[Depends(require_read)])
def read_route(kind: KindName, name: str, request: Request) -> dict[str, Any]:
    """One entry, as written, with its file, line and version."""
    return KINDS[kind].read(workspace_of(request), name)


@router.post(PREFIX + "/validate", dependencies=[Depends(require_read)])
def validate_route(kind: KindName, body: DefinitionBody, request: Request) -> dict[str, Any]:
    """Check an entry as the loader would, without saving: ``{"valid", "problems"}``."""
    problems = validate(workspace_of(request), kind, body)
    return {"valid": not problems, "problems": problems}


@router.post(PREFIX, status_code=201, dependencies=[Depends(require_admin)])
def create_route(kind: KindName, body: DefinitionBody, request: Request) -> dict[str, Any]:
    """Create an entry (in ``segmint.yaml``, or a template file)."""
    return save(workspace_of(request), kind, _name(body), body, create=True)


@router.put(PREFIX + "/{name}", dependencies=[Depends(require_admin)])
def update_route(
    kind: KindName, name: str, body: DefinitionBody, request: Request
) -> dict[str, Any]:
    """Replace an entry's keys (keys left out are removed) or a template's text."""
    return save(workspace_of(request), kind, name, body, create=False)


@router.post(PREFIX + "/{name}/archive", dependencies=[Depends(require_admin)])
def archive_route(
    kind: KindName, name: str, request: Request, version: str | None = None
) -> dict[str, Any]:
    """Move an entry to ``archive/``."""
    return archive(workspace_of(request), kind, name, version)

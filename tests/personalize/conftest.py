"""Fixtures for the personalize tests: a renderer over the example workspace."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from segmint.personalize import Limits, RenderedEmail, Renderer
from segmint.profiles import Profile
from segmint.workspace import Workspace

AS_OF = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
SENDER = "Example Shop <shop@example.com>"


@pytest.fixture
def renderer(workspace: Workspace) -> Renderer:
    """A renderer over the scaffolded example workspace (templates layout + lifecycle)."""
    return Renderer(workspace.templates_dir, workspace.definition)


@pytest.fixture
def write_template(workspace: Workspace) -> Callable[[str, str], None]:
    """Write a file into the workspace's templates folder."""

    def write(name: str, text: str) -> None:
        path = workspace.templates_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    return write


@pytest.fixture
def render(
    workspace: Workspace, write_template: Callable[[str, str], None]
) -> Callable[..., RenderedEmail]:
    """Render a template body (written as ``t.html``) for a profile, with a fresh renderer."""

    def run(
        body: str,
        traits: dict[str, Any] | None = None,
        segments: frozenset[str] = frozenset(),
        limits: Limits | None = None,
        **kwargs: Any,
    ) -> RenderedEmail:
        if "{% block subject" not in body:
            body = "{% block subject %}Subject{% endblock %}" + body
        write_template("t.html", body)
        renderer = Renderer(workspace.templates_dir, workspace.definition, limits=limits)
        profile = Profile("p1", traits or {}, segments)
        return renderer.compile("t").render(profile, **(defaults() | kwargs))

    return run


@pytest.fixture(scope="module")
def quick_render(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., RenderedEmail]:
    """Like ``render``, over one workspace per test module (for long parametrized lists)."""
    ws = Workspace.init(tmp_path_factory.mktemp("quick") / "ws", name="quick")
    ws.close()
    renderers: dict[Limits | None, Renderer] = {}
    counter = iter(range(1_000_000))

    def run(
        body: str,
        traits: dict[str, Any] | None = None,
        segments: frozenset[str] = frozenset(),
        limits: Limits | None = None,
        **kwargs: Any,
    ) -> RenderedEmail:
        if "{% block subject" not in body:
            body = "{% block subject %}Subject{% endblock %}" + body
        name = f"t{next(counter)}.html"
        (ws.templates_dir / name).write_text(body, encoding="utf-8")
        if limits not in renderers:
            renderers[limits] = Renderer(ws.templates_dir, ws.definition, limits=limits)
        profile = Profile("p1", traits or {}, segments)
        return renderers[limits].compile(name).render(profile, **(defaults() | kwargs))

    return run


def defaults() -> dict[str, Any]:
    """The render arguments every test needs."""
    return {
        "sender": SENDER,
        "to": "ada@example.com",
        "message_id": "m1@example.com",
        "date": AS_OF,
    }


def parse(email: RenderedEmail) -> EmailMessage:
    """Parse a rendered message with the standard library's strict modern parser."""
    message = message_from_bytes(email.as_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message

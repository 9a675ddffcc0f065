"""Every command that takes a person accepts the same ids, through the one resolver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from segmint.clock import FixedClock
from segmint.intake import Intake
from segmint.workspace import Workspace

from .conftest import NOW, identify, track

AT = ["--as-of", "2026-03-01T12:00:00Z"]


@pytest.fixture
def people(workspace: Workspace) -> dict[str, str]:
    """Ann (a user id, an email in mixed case, a second device merged in) and a stranger."""
    intake = Intake(workspace, FixedClock(NOW))
    intake.submit([track("m1", anonymousId="phone")], source="web")
    gone = str(workspace.store.fetchall("SELECT profile_id FROM events")[0][0])
    intake.submit(
        [identify("m2", userId="u-ann", anonymousId="laptop",
                  traits={"email": "Ann@Example.com", "first_name": "Ann"})],
        source="web",
    )  # fmt: skip
    intake.submit([identify("m3", userId="u-ann", anonymousId="phone")], source="web")
    kept = str(
        workspace.store.fetchall("SELECT profile_id FROM identities WHERE value = 'u-ann'")[0][0]
    )
    workspace.close()
    return {"kept": kept, "gone": gone}


REFS = (
    "u-ann", "user_id:u-ann", "ann@example.com", "ANN@example.COM", "email:Ann@Example.com",
    "laptop", "phone", "anonymous_id:phone",
)  # fmt: skip


def test_profile_show_and_template_preview_accept_the_same_ids(
    workspace: Workspace, people: dict[str, str], cli: Callable[..., Any], tmp_path: Path
) -> None:
    ws = str(workspace.path)
    for ref in (*REFS, people["kept"], people["gone"]):
        shown = cli("-w", ws, "profile", "show", ref, *AT, "--format", "json")
        assert shown.returncode == 0, (ref, shown.stderr)
        assert orjson.loads(shown.stdout)["profile_id"] == people["kept"]
        out = tmp_path / "previews"
        preview = cli("-w", ws, "template", "preview", "lifecycle", "--profile", ref,
                      "--out", str(out), *AT, "--format", "json")  # fmt: skip
        assert preview.returncode == 0, (ref, preview.stderr)
        [written] = orjson.loads(preview.stdout)["written"]
        assert written["profile_id"] == people["kept"]


@pytest.mark.parametrize("command", [["profile", "show"], ["consent", "show"]])
def test_unknown_and_mistyped_ids_fail_and_say_what_was_tried(
    workspace: Workspace, people: dict[str, str], cli: Callable[..., Any], command: list[str]
) -> None:
    ws = str(workspace.path)
    missing = cli("-w", ws, *command, "nobody", *(AT if command[0] == "profile" else []))
    assert missing.returncode == 1
    assert (
        "no person matches 'nobody': tried it as profile id, user id, email and anonymous id"
        in (missing.stderr)
    )
    typo = cli("-w", ws, *command, "emial:ann@example.com")
    assert typo.returncode == 1
    assert "did you mean 'email:ann@example.com'?" in typo.stderr
    wrong_kind = cli("-w", ws, *command, "user_id:ann@example.com")
    assert wrong_kind.returncode == 1
    assert "no person has user_id 'ann@example.com'" in wrong_kind.stderr


def test_template_preview_of_nobody_fails(
    workspace: Workspace, people: dict[str, str], cli: Callable[..., Any], tmp_path: Path
) -> None:
    result = cli("-w", str(workspace.path), "template", "preview", "lifecycle",
                 "--profile", "u-nobody", "--out", str(tmp_path), *AT)  # fmt: skip
    assert result.returncode == 1
    assert "no person matches 'u-nobody'" in result.stderr
    assert not list(tmp_path.glob("*.eml"))


def test_a_value_of_two_people_asks_for_kind_value(
    workspace: Workspace, people: dict[str, str], cli: Callable[..., Any]
) -> None:
    ws = Workspace.open(workspace.path)
    Intake(ws, FixedClock(NOW)).submit(
        [identify("m9", userId="ann@example.com", traits={"email": "other@example.com"})],
        source="web",
    )
    ws.close()
    both = cli("-w", str(workspace.path), "profile", "show", "ann@example.com", *AT)
    assert both.returncode == 1
    assert "names more than one person" in both.stderr
    assert "'email:ann@example.com' or 'user_id:ann@example.com'" in both.stderr
    exact = cli("-w", str(workspace.path), "profile", "show", "email:ann@example.com", *AT,
                "--format", "json")  # fmt: skip
    assert orjson.loads(exact.stdout)["profile_id"] == people["kept"]

"""``segmint template lint`` and ``segmint template preview`` on a real DuckDB workspace."""

from __future__ import annotations

import json
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import orjson
import pytest

from segmint.cli.main import main
from segmint.store import Store
from segmint.workspace import Workspace


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def add_member(store: Store, pid: str, traits: dict[str, object], segments: list[str]) -> None:
    store.execute(
        'INSERT INTO trait_values (profile_id, "values", as_of) VALUES (?, ?, ?)',
        [pid, orjson.dumps(traits).decode(), "2026-11-28 00:00:00"],
    )
    for segment in segments:
        store.execute(
            "INSERT INTO memberships (segment, profile_id, entered_at) VALUES (?, ?, ?)",
            [segment, pid, "2026-11-28 00:00:00"],
        )


@pytest.fixture
def shop(workspace: Workspace) -> Workspace:
    store = workspace.store
    add_member(store, "ada", {"first_name": "Ada", "email": "ada@example.com"}, ["vip"])
    add_member(store, "bo", {"first_name": "Bø", "email": "bo@example.com"}, ["vip", "high_value"])
    add_member(store, "cy", {"first_name": None, "orders": 4}, ["vip"])
    add_member(store, "dee", {"orders": 5}, ["loyal_customer"])
    workspace.close()  # the CLI opens the DuckDB file itself
    return workspace


def test_lint_clean_and_json(capsys: pytest.CaptureFixture[str], workspace: Workspace) -> None:
    code, out, _ = run(capsys, "-w", str(workspace.path), "template", "lint", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["errors"] == 0 and report["templates"] == [
        "cart_discount.html", "cart_reminder.html", "layout.html", "lifecycle.html",
    ]  # fmt: skip


def test_lint_errors_exit_1(capsys: pytest.CaptureFixture[str], workspace: Workspace) -> None:
    (workspace.templates_dir / "bad.html").write_text(
        "{% if segment == 'vipp' %}{{ frist_name }}{% endif %}", encoding="utf-8"
    )
    code, out, err = run(capsys, "-w", str(workspace.path), "template", "lint", "bad")
    assert code == 1
    assert "templates/bad.html:1:18: error: unknown segment 'vipp'" in out
    assert "did you mean 'first_name'?" in out
    assert "2 error(s)" in err
    code, out, _ = run(capsys, "-w", str(workspace.path), "template", "lint", "--format", "json")
    assert code == 1 and json.loads(out)["errors"] == 2


def test_lint_strict_fails_on_warnings(
    capsys: pytest.CaptureFixture[str], workspace: Workspace
) -> None:
    (workspace.templates_dir / "warn.html").write_text(
        "{% block subject %}Hi{% endblock %}{{ first_name }}", encoding="utf-8"
    )
    assert run(capsys, "-w", str(workspace.path), "template", "lint", "warn")[0] == 0
    assert run(capsys, "-w", str(workspace.path), "template", "lint", "warn", "--strict")[0] == 1


def test_preview_segment_members(
    capsys: pytest.CaptureFixture[str], shop: Workspace, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    args = ["-w", str(shop.path), "template", "preview", "lifecycle", "--segment", "vip"]
    code, out, err = run(
        capsys, *args, "--n", "2", "--out", str(out_dir), "--as-of", "2026-11-28T10:00:00Z",
        "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert [w["profile_id"] for w in result["written"]] == ["ada", "bo"]  # first 2 by id
    assert sorted(p.name for p in out_dir.iterdir()) == ["ada.eml", "ada.html", "bo.eml", "bo.html"]
    assert "early access" in (out_dir / "ada.html").read_text(encoding="utf-8")
    message = message_from_bytes((out_dir / "bo.eml").read_bytes(), policy=policy.default)
    assert message["Subject"] == "Bø, something picked for you"
    assert message["To"] == "bo@example.com"
    assert message["From"] == "Example Shop <shop@example.com>"  # the campaign's sender
    assert message["Date"].datetime.isoformat() == "2026-11-28T10:00:00+00:00"
    assert "preview/unsubscribe" in message["List-Unsubscribe"]


def test_preview_one_profile(
    capsys: pytest.CaptureFixture[str], shop: Workspace, tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "-w", str(shop.path), "template", "preview", "lifecycle", "--profile", "dee",
        "--out", str(tmp_path), "--as-of", "2026-11-28T10:00:00Z",
    )  # fmt: skip
    assert code == 0, err
    assert "1 written, 0 failed" in out
    html = (tmp_path / "dee.html").read_text(encoding="utf-8")
    assert "shopping with us 5 times" in html
    message = message_from_bytes((tmp_path / "dee.eml").read_bytes(), policy=policy.default)
    assert message["To"] == "dee@preview.invalid"  # no email trait: a harmless address


def test_preview_render_error_fails_that_profile_only(
    capsys: pytest.CaptureFixture[str], shop: Workspace, tmp_path: Path
) -> None:
    (shop.templates_dir / "ratio.html").write_text(
        "{% block subject %}s{% endblock %}<p>{{ 10 / orders }}</p>", encoding="utf-8"
    )
    code, out, err = run(
        capsys, "-w", str(shop.path), "template", "preview", "ratio", "--segment", "vip",
        "--out", str(tmp_path), "--as-of", "2026-11-28T10:00:00Z", "--format", "json",
    )  # fmt: skip
    assert code == 1
    result = json.loads(out)
    assert [w["profile_id"] for w in result["written"]] == ["cy"]
    assert {f["profile_id"] for f in result["failed"]} == {"ada", "bo"}
    # ada and bo have no orders: dividing by a missing trait is an undefined-value error
    assert all(f["reason"] == "undefined" and "orders" in f["error"] for f in result["failed"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--segment", "vipp"], "unknown segment 'vipp'; did you mean 'vip'?"),
        (["--segment", "churned"], "segment 'churned' has no members"),
        (["--profile", "ghost"], "no person matches 'ghost'"),
        ([], "Error: give exactly one of --segment or --profile"),
    ],
)
def test_preview_errors(
    capsys: pytest.CaptureFixture[str], shop: Workspace, args: list[str], message: str
) -> None:
    code, _, err = run(capsys, "-w", str(shop.path), "template", "preview", "lifecycle", *args)
    assert code == (1 if args else 2)  # 2: a usage error
    assert message in err


def test_entry_point_exit_status(workspace: Workspace) -> None:
    (workspace.templates_dir / "bad.html").write_text("{{ nope }}", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "segmint", "-w", str(workspace.path), "template", "lint"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "unknown variable 'nope'" in proc.stdout


def test_preview_of_a_mistyped_template_suggests_the_nearest(
    shop: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "-w", str(shop.path), "template", "preview", "lifecycl",
                         "--segment", "vip")  # fmt: skip
    assert code == 1 and out == ""
    assert "no template named 'lifecycl.html'" in err
    assert "did you mean 'lifecycle.html'?" in err


def test_preview_of_an_unrelated_name_suggests_nothing(
    shop: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """``template preview nosuch`` suggested 'layout.html': the shared '.html' made them near."""
    code, _, err = run(capsys, "-w", str(shop.path), "template", "preview", "nosuch",
                       "--segment", "vip")  # fmt: skip
    assert code == 1 and "no template named 'nosuch.html'" in err
    assert "did you mean" not in err

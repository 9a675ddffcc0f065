"""Key management: enable, rotation (old key refused, data still readable), bad keys."""

from __future__ import annotations

import json

import pytest

from segmint.intake.identity import resolve_person
from segmint.privacy.errors import MasterKeyError
from segmint.privacy.keys import KEY_FILE, decode_master_key
from segmint.profiles import load_profile
from segmint.workspace import Workspace

from .conftest import ADA, submit_people


def test_enable_then_rotate_keeps_data_readable(workspace: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    path = str(workspace.path)
    workspace.close()
    done = cli("--workspace", path, "privacy", "enable")
    assert done.returncode == 0, done.stderr
    key_file = workspace.path / ".segmint-keys" / KEY_FILE
    assert key_file.stat().st_mode & 0o077 == 0
    assert ".segmint-keys/" in (workspace.path / ".gitignore").read_text().splitlines()
    again = cli("--workspace", path, "privacy", "enable")
    assert again.returncode == 1 and "already exists" in again.stderr

    with Workspace.open(path) as ws:
        submit_people(ws)
    old_key = key_file.read_text()
    done = cli("--workspace", path, "privacy", "rotate-key", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rewrapped"] == 3  # Ada, her merged profile, Bob
    assert key_file.read_text() != old_key
    with Workspace.open(path) as ws:
        ada = resolve_person(ws.store, "ada@example.com")
        from segmint.clock import parse_instant
        from segmint.membership.service import Membership

        Membership(ws).refresh(parse_instant("2026-03-02"))
        profile = load_profile(ws.store, ada)
        assert profile is not None and profile.traits["email"] == ADA["email"]
    key_file.write_text(old_key)
    with Workspace.open(path) as ws, pytest.raises(MasterKeyError, match="rotate-key"):
        _ = ws.privacy
    listed = cli("--workspace", path, "audit", "list", "--format", "json")
    actions = [a["action"] for a in json.loads(listed.stdout)]
    assert actions == ["privacy.key.enable", "privacy.key.rotate"]


def test_a_malformed_key_is_named(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMINT_MASTER_KEY", "too-short")
    with pytest.raises(MasterKeyError, match=r"\$SEGMINT_MASTER_KEY"):
        _ = workspace.privacy
    with pytest.raises(MasterKeyError):
        decode_master_key("!!!", "x")


def test_rotation_from_a_variable_needs_the_new_key_in_another(
    workspace: Workspace,
    cli,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    from segmint.privacy.keys import generate_master_key

    monkeypatch.setenv("SEGMINT_MASTER_KEY", generate_master_key())
    with Workspace.open(workspace.path) as ws:
        submit_people(ws)
    path = str(workspace.path)
    refused = cli("--workspace", path, "privacy", "rotate-key")
    assert refused.returncode == 2 and "--new-key-env" in refused.stderr
    new = generate_master_key()
    monkeypatch.setenv("NEW_KEY", new)
    done = cli("--workspace", path, "privacy", "rotate-key", "--new-key-env", "NEW_KEY")
    assert done.returncode == 0, done.stderr
    assert not (workspace.path / ".segmint-keys" / KEY_FILE).exists()
    monkeypatch.setenv("SEGMINT_MASTER_KEY", new)
    with Workspace.open(path) as ws:
        assert ws.privacy.keyring is not None
        assert resolve_person(ws.store, "bob@example.org")

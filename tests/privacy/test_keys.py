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


def test_enable_refuses_a_new_key_beside_a_vault_that_needs_its_own(
    workspace: Workspace,
    cli,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """A key file not copied (the key folder is git-ignored): 'seal-existing' said to run
    'privacy enable', which wrote a new key that does not open the vault."""
    path = str(workspace.path)
    workspace.close()
    assert cli("--workspace", path, "privacy", "enable").returncode == 0
    with Workspace.open(path) as ws:
        submit_people(ws)
    key_file = workspace.path / ".segmint-keys" / KEY_FILE
    old_key = key_file.read_text()
    key_file.unlink()
    for command in (("privacy", "seal-existing"), ("privacy", "rotate-key")):
        out = cli("--workspace", path, *command)
        assert out.returncode == 1 and f"restore {key_file}" in out.stderr
        assert "privacy enable" not in out.stderr, out.stderr
    refused = cli("--workspace", path, "privacy", "enable")
    assert refused.returncode == 1 and "its master key is not here" in refused.stderr
    assert "vault.sqlite" in refused.stderr and not key_file.exists()
    monkeypatch.setenv("SEGMINT_MASTER_KEY", old_key.strip())
    from_env = cli("--workspace", path, "privacy", "enable")  # it would write an unused file
    assert from_env.returncode == 1 and "comes from $SEGMINT_MASTER_KEY" in from_env.stderr
    assert not key_file.exists()
    with Workspace.open(path) as ws:  # the old key still opens everything
        assert resolve_person(ws.store, "bob@example.org")


def test_a_rotation_stopped_after_the_rewrap_keeps_the_new_key(
    workspace: Workspace,
    cli,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """The new key was written only after the vault was rewrapped under it: a stop between
    the two lost the only key that opens the vault, and with it every sealed value."""
    from segmint.privacy.keys import NEW_KEY_FILE, Keyring

    path = str(workspace.path)
    workspace.close()
    assert cli("--workspace", path, "privacy", "enable").returncode == 0
    with Workspace.open(path) as ws:
        submit_people(ws)
    rotate = Keyring.rotate

    def stopped(self: Keyring, new_master: bytes) -> int:
        rotate(self, new_master)
        raise KeyboardInterrupt  # Ctrl-C right after the vault committed

    monkeypatch.setattr(Keyring, "rotate", stopped)
    assert cli("--workspace", path, "privacy", "rotate-key").returncode == 130
    monkeypatch.undo()
    keys = workspace.path / ".segmint-keys"
    with Workspace.open(path) as ws, pytest.raises(MasterKeyError, match=NEW_KEY_FILE):
        _ = ws.privacy
    (keys / NEW_KEY_FILE).replace(keys / KEY_FILE)  # as the message says
    with Workspace.open(path) as ws:
        from segmint.clock import parse_instant
        from segmint.membership.service import Membership

        ada = resolve_person(ws.store, "ada@example.com")
        Membership(ws).refresh(parse_instant("2026-03-02"))
        profile = load_profile(ws.store, ada)
        assert profile is not None and profile.traits["email"] == ADA["email"]

"""``segmint test``: fixture files through the batch and the real-time path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segmint.config.errors import ConfigError, ConfigErrors
from segmint.governance.fixtures import fixture_json_schema, load_fixture
from segmint.governance.runner import run_fixtures
from segmint.workspace import Workspace

GOOD = """
description: tiers, a window, a time exit and a lifespan
as_of: 2026-03-15T12:00:00Z
profiles:
  ada:
    traits: {email: ada@example.com, first_name: Ada}
    events:
      - {event: Order Completed, at: 2026-03-10, properties: {total: 600}}
      - {event: Email Opened, at: -2d}
      - {event: Email Opened, at: -1d}
    expect:
      segments: [buyers, big, recent, engaged, promo]
      traits: {orders: 1, lifetime_value: 600, last_purchase_at: 2026-03-10T00:00:00Z}
      templates:
        - {template: "Hi {{ first_name }}", renders: "Hi Ada"}
        - {template: "{{ segments }}", contains: "engaged"}
  bob:
    events:
      - {event: Order Completed, at: -20d, properties: {total: 20}}
      - {event: Email Opened, at: -40d}
      - {event: Email Opened, at: -1d}
    expect:
      in: [buyers, small]
      not_in: [recent, engaged, big]
      traits: {opens_30d: 1, first_name: null}
      templates:
        - {template: "Hi {{ first_name | default('there') }}", renders: "Hi there"}
  cyd:
    expect: {segments: [small]}
"""


def write(ws: Workspace, name: str, text: str) -> Path:
    folder = ws.path / "tests" / "segments"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_a_good_file_passes_on_both_paths(gov: Workspace) -> None:
    write(gov, "good.yaml", GOOD)
    (result,) = run_fixtures(gov)
    assert result.error is None
    assert result.failures == []
    assert result.profiles == 3
    assert result.checks == 15  # 6 for ada, 8 for bob, 1 for cyd


def test_the_workspace_store_is_never_touched(gov: Workspace) -> None:
    write(gov, "good.yaml", GOOD)
    run_fixtures(gov)
    assert not (gov.path / ".segmint" / "segmint.duckdb").exists()


def test_wrong_expectations_give_a_diff_per_path(gov: Workspace) -> None:
    text = GOOD.replace(
        "segments: [buyers, big, recent, engaged, promo]",
        "segments: [buyers, recent, engaged, promo, small]",
    )
    text = text.replace('renders: "Hi Ada"', 'renders: "Hello Ada"')
    text = text.replace("opens_30d: 1,", "opens_30d: 2,")
    path = write(gov, "wrong.yaml", text)
    (result,) = run_fixtures(gov)
    by_what = {f.what: f for f in result.failures}
    assert set(by_what) == {"segments", "template 1", "trait opens_30d"}
    seg = by_what["segments"]
    assert seg.paths == ("batch", "real time")
    assert (
        seg.line
        == text.splitlines().index("      segments: [buyers, recent, engaged, promo, small]") + 1
    )
    assert "  - small  (expected, not a member)" in seg.lines
    assert "  + big  (a member, not expected)" in seg.lines
    assert by_what["trait opens_30d"].actual == 1
    assert by_what["template 1"].actual == "Hi Ada"
    assert str(path) == seg.file


def test_lifespan_ends_membership_on_both_paths(gov: Workspace) -> None:
    # the promo segment's lifespan ends on 2026-03-20: ada is out after it
    write(
        gov,
        "late.yaml",
        GOOD.replace("2026-03-15T12:00:00Z", "2026-03-20T00:00:00Z").replace(
            "big, recent, engaged, promo]", "big, recent, engaged]"
        ),
    )
    (result,) = run_fixtures(gov)
    assert [f.what for f in result.failures] == []


def test_cli_exit_codes_and_json(gov: Workspace, cli) -> None:
    write(gov, "good.yaml", GOOD)
    ok = cli("-w", str(gov.path), "test")
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout and "all passed" in ok.stdout
    write(gov, "wrong.yaml", GOOD.replace("opens_30d: 1,", "opens_30d: 5,"))
    bad = cli("-w", str(gov.path), "test", "--format", "json")
    assert bad.returncode == 1
    data = json.loads(bad.stdout)
    assert data["ok"] is False
    (failure,) = [f for r in data["files"] for f in r["failures"]]
    assert failure["what"] == "trait opens_30d"
    assert failure["diff"] == ["expected 5", "     got 1"]


def test_one_file_can_be_named(gov: Workspace, cli) -> None:
    good = write(gov, "good.yaml", GOOD)
    write(gov, "wrong.yaml", GOOD.replace("opens_30d: 1,", "opens_30d: 5,"))
    assert cli("-w", str(gov.path), "test", str(good)).returncode == 0


def test_no_fixture_folder_is_a_clear_error(gov: Workspace, cli) -> None:
    result = cli("-w", str(gov.path), "test")
    assert result.returncode == 1
    assert "tests/segments" in result.stderr


@pytest.mark.parametrize(
    ("text", "message", "needle"),
    [
        (
            GOOD.replace("expect: {segments: [small]}", "expect: {segmnts: [small]}"),
            "unknown key 'segmnts'",
            "segmnts",
        ),
        (
            GOOD.replace("expect: {segments: [small]}", "expect: {segments: [smal]}"),
            "unknown segment 'smal'",
            "[smal]",
        ),
        (
            GOOD.replace("traits: {opens_30d: 1,", "traits: {opens30d: 1,"),
            "unknown trait 'opens30d'",
            "opens30d",
        ),
        (GOOD.replace("at: -20d", "at: last week"), "cannot read instant 'last week'", "last week"),
        (
            GOOD.replace("at: 2026-03-10,", "at: 2026-02-30,"),
            "impossible date '2026-02-30'",
            "02-30",
        ),
        (GOOD.replace("as_of: 2026-03-15T12:00:00Z", "as_of: soon"), "soon", "as_of"),
        (
            GOOD.replace("{event: Email Opened, at: -2d}", "{at: -2d}"),
            "either 'event'",
            "{at: -2d}",
        ),
        (GOOD.replace("at: -20d", "at: +2d"), "after as_of", "+2d"),
    ],
)
def test_bad_files_name_file_and_line(gov: Workspace, text: str, message: str, needle: str) -> None:
    path = write(gov, "bad.yaml", text)
    line = next(n for n, t in enumerate(text.splitlines(), start=1) if needle in t)
    with pytest.raises(ConfigError) as info:
        load_fixture(path, gov.definition)
    error = info.value.errors[0] if isinstance(info.value, ConfigErrors) else info.value
    assert message in str(error)
    assert error.location is not None
    assert (error.location.file, error.location.line) == (str(path), line)


def test_a_bad_file_does_not_stop_the_others(gov: Workspace, cli) -> None:
    write(gov, "a_bad.yaml", "as_of: 2026-03-15\nprofiles: {a: {expect: {in: [nope]}}}\n")
    write(gov, "good.yaml", GOOD)
    results = run_fixtures(gov)
    assert [r.ok for r in results] == [False, True]
    result = cli("-w", str(gov.path), "test")
    assert result.returncode == 1
    assert "a_bad.yaml:2" in result.stderr and "PASS" in result.stdout


def test_archived_segments_are_refused_in_expectations(gov: Workspace) -> None:
    yaml_path = gov.path / "segmint.yaml"
    yaml_path.write_text(
        yaml_path.read_text().replace(
            'engaged: {rule: "opens_30d >= 2"}', 'engaged: {rule: "opens_30d >= 2", archived: true}'
        )
    )
    ws = Workspace.open(gov.path)
    path = write(ws, "a.yaml", GOOD)
    with pytest.raises(ConfigErrors, match="segment 'engaged' is archived"):
        load_fixture(path, ws.definition)


def test_the_example_workspace_ships_passing_fixtures(tmp_path: Path, cli) -> None:
    target = tmp_path / "shop"
    assert cli("init", str(target)).returncode == 0
    assert (target / "tests" / "segments" / "lifecycle.yaml").is_file()
    result = cli("-w", str(target), "test", "--format", "json")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["files"][0]["checks"] > 10
    # the other checks a newcomer runs pass too, with the journey step experiment in it
    for check in (("segments", "validate"), ("template", "lint"), ("experiments", "list")):
        done = cli("-w", str(target), *check)
        assert done.returncode == 0, (check, done.stdout, done.stderr)
    listed = cli("-w", str(target), "experiments", "list", "--format", "json")
    assert [e["experiment"] for e in json.loads(listed.stdout)] == ["win_back.miss_you"]


def test_schema_describes_the_format(cli) -> None:
    schema = fixture_json_schema()
    assert set(schema["required"]) == {"as_of", "profiles"}
    result = cli("test", "--schema")
    assert result.returncode == 0 and json.loads(result.stdout)["title"].startswith("segmint")


def test_fixture_people_never_reach_the_workspace_key_vault(gov: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    assert cli("--workspace", str(gov.path), "privacy", "enable").returncode == 0
    vault = gov.path / ".segmint-keys" / "vault.sqlite"
    write(gov, "good.yaml", GOOD)
    (result,) = run_fixtures(gov)
    assert result.error is None and result.failures == []
    with sqlite3.connect(vault) as db:
        assert db.execute("SELECT count(*) FROM profile_keys").fetchone()[0] == 0


def test_fixtures_run_keyless_when_the_master_key_is_only_in_the_environment(
    gov: Workspace,
    cli,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    assert cli("--workspace", str(gov.path), "privacy", "enable").returncode == 0
    opened = Workspace.open(gov.path)
    assert opened.privacy.encrypting  # the vault exists from now on
    opened.close()
    key_file = gov.path / ".segmint-keys" / "master.key"
    monkeypatch.setenv("SEGMINT_MASTER_KEY", key_file.read_text().strip())
    key_file.unlink()  # the vault stays; the key comes from the variable only
    write(gov, "good.yaml", GOOD)
    (result,) = run_fixtures(gov)
    assert result.error is None and result.failures == []

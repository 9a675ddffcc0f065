"""``segmint campaign …`` and ``segmint consent …`` run in-process through click."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from segmint.cli.main import _register_commands, cli
from segmint.deliver.errors import CampaignError

from .conftest import T0, Shop  # type: ignore[import-not-found]


def run(shop: Shop, *args: str) -> str:
    _register_commands()
    shop.workspace.close()  # the command opens the workspace itself
    result = CliRunner().invoke(cli, ["-w", str(shop.path), *args], catch_exceptions=False)
    shop.reopen()
    assert result.exit_code == 0, result.output
    return result.output


def test_dry_run_then_send_then_report(shop: Shop, tmp_path: Path) -> None:
    shop.add("ann")
    shop.add("bob", consent=False)
    out = tmp_path / "out"
    at = ["--as-of", T0.isoformat()]
    dry = json.loads(run(shop, "campaign", "send", "lifecycle_update", "--dry-run",
                         "--out", str(out), "--format", "json", *at))  # fmt: skip
    assert dry["dry_run"] and dry["written"] == 1 and dry["skipped"] == {"no_consent": 1}
    assert not [key for key in dry if key.startswith("sent")]  # nothing claims a send
    dry_table = run(shop, "campaign", "send", "lifecycle_update", "--dry-run", "--out", str(out),
                    *at)  # fmt: skip
    flat = " ".join(dry_table.split())  # rich wraps lines at the terminal's width
    assert "written, not sent" in flat and "(dry run: nothing sent)" in flat
    assert not re.search(r"│ sent\b", dry_table)
    assert "1 message(s) written to" in flat and flat.endswith("out, not sent")
    assert [p.name for p in out.iterdir()] == ["ann@example.com.eml"]
    assert shop.server.handler.received == []

    table = run(shop, "campaign", "send", "lifecycle_update", *at)
    assert "no_consent" in table and "sent" in table
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}

    listed = json.loads(run(shop, "campaign", "list", "--format", "json"))
    assert {c["name"]: c["sent"] for c in listed} == {"fragile": 0, "lifecycle_update": 1}
    report = json.loads(run(shop, "campaign", "report", "lifecycle_update", "--format", "json"))
    assert report["ledger"] == {"sent": {"": 1}, "skipped": {"no_consent": 1}}


def test_consent_commands(shop: Shop, tmp_path: Path) -> None:
    ann = shop.add("ann", consent=None)
    run(shop, "consent", "set", ann, "granted", "--topic", "offers", "--as-of", T0.isoformat())
    csv_file = tmp_path / "consent.csv"
    csv_file.write_text(
        "user_id,topic,status,occurred_at\n"
        "ann,newsletter,yes,2026-02-01T00:00:00Z\n"
        "nobody,offers,yes,\n"
        "ann,spam,yes,\n"
    )
    output = run(shop, "consent", "import", str(csv_file))
    assert "recorded 1 consent change" in output
    history = json.loads(run(shop, "consent", "show", ann, "--format", "json"))
    assert [(h["topic"], h["status"], h["source"]) for h in history] == [
        ("newsletter", "granted", "import:consent.csv"),
        ("offers", "granted", "cli"),
    ]
    run(shop, "consent", "suppress", "Ann@example.com", "--reason", "complaint")
    rows = shop.workspace.store.fetchall("SELECT address, reason, source FROM suppressions")
    assert rows == [("ann@example.com", "complaint", "cli")]
    assert "lifted" in run(shop, "consent", "unsuppress", "ann@example.com")


def test_send_refuses_an_out_folder_that_is_a_file_or_without_dry_run(
    shop: Shop, tmp_path: Path
) -> None:
    shop.add("ann")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    _register_commands()
    shop.workspace.close()
    runner = CliRunner()
    base = ["-w", str(shop.path), "campaign", "send", "lifecycle_update"]
    result = runner.invoke(cli, [*base, "--dry-run", "--out", str(a_file)])
    assert result.exit_code != 0 and isinstance(result.exception, CampaignError)
    assert "is a file" in str(result.exception)
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "eml")])
    assert result.exit_code == 2 and "use it with --dry-run" in result.output
    assert shop.server.handler.received == []  # nothing was sent by either
    shop.reopen()


def test_report_of_a_campaign_removed_from_the_workspace_reads_its_ledger(
    shop: Shop, tmp_path: Path
) -> None:
    """Its sends stay in the store: the report shows them and says the definition is gone."""
    shop.add("ann")
    run(shop, "campaign", "send", "lifecycle_update", "--as-of", T0.isoformat())
    from ruamel.yaml import YAML

    yaml, yaml_file = YAML(), shop.path / "segmint.yaml"
    config = yaml.load(yaml_file)
    del config["campaigns"]["lifecycle_update"]
    yaml.dump(config, yaml_file)
    shop.reopen()
    assert "lifecycle_update" not in shop.workspace.definition.campaigns
    report = json.loads(run(shop, "campaign", "report", "lifecycle_update", "--format", "json"))
    assert report["ledger"] == {"sent": {"": 1}} and report["defined"] is False
    table = " ".join(run(shop, "campaign", "report", "lifecycle_update").split())
    assert "no longer in segmint.yaml" in table
    with pytest.raises(CampaignError, match="unknown campaign 'lifecycle_updat'"):
        run(shop, "campaign", "report", "lifecycle_updat")

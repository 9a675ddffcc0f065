"""Sending, consent, journeys and measurement fed the wrong things, as a newcomer types them.

The example shop of ``segmint init``; each wrong input gets one clear line naming it, the
exit status of a usage error (2) and no traceback, and nothing is sent or recorded on the
way (see also ``test_wrong_input.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.cli.conftest import import_consent
from tests.conftest import refreshed_shop

Run = Callable[..., Any]  # tests/conftest.py's ``cli`` fixture (a CliResult)

AS_OF = "2026-11-01T00:00:00Z"
SECRET = "a-secret-of-at-least-16-characters"


@pytest.fixture
def shop(cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``segmint init`` with its sample contacts and orders ingested and refreshed."""
    monkeypatch.setenv("SEGMINT_SECRET", SECRET)
    return refreshed_shop(cli, tmp_path, AS_OF)


def _history(cli: Run, shop: Path, person: str) -> list[dict[str, Any]]:
    out = cli("-w", str(shop), "consent", "show", person, "--format", "json")
    assert out.returncode == 0, out
    return list(json.loads(out.stdout))


def test_campaign_send_refuses_a_later_instant(cli: Run, shop: Path) -> None:
    """``--as-of +1d`` sent the email now and recorded it (ledger, Email Delivered) tomorrow."""
    out = cli("-w", str(shop), "campaign", "send", "lifecycle_update", "--as-of", "+1d",
              "--format", "json")  # fmt: skip
    assert out.returncode == 2, out
    error = json.loads(out.stdout)["error"]
    assert error["field"] == "--as-of" and "later than now" in error["message"]
    assert "--dry-run" in error["message"]  # what to do instead
    report = cli("-w", str(shop), "campaign", "report", "lifecycle_update", "--format", "json")
    assert json.loads(report.stdout)["ledger"] == {}  # nobody planned, nobody sent
    dry = cli("-w", str(shop), "campaign", "send", "lifecycle_update", "--as-of", "+1d",
              "--dry-run", "--out", str(shop / "outbox"))  # fmt: skip
    assert dry.returncode == 0, dry  # a dry run sends nothing: any instant is fine


@pytest.mark.parametrize(
    "args",
    [
        ("consent", "set", "ada.lovelace@example.com", "unsubscribed", "--as-of", "+1d"),
        ("consent", "suppress", "ada.lovelace@example.com", "--as-of", "+1d"),
    ],
)
def test_consent_changes_refuse_a_later_instant(
    cli: Run, shop: Path, args: tuple[str, ...]
) -> None:
    """An unsubscribe dated tomorrow let today's sends through (it counts from its date)."""
    before = _history(cli, shop, "ada.lovelace@example.com")
    out = cli("-w", str(shop), *args)
    assert out.returncode == 2 and "--as-of" in out.stderr and "later than now" in out.stderr
    assert "Traceback" not in out.stderr
    assert _history(cli, shop, "ada.lovelace@example.com") == before
    lifted = cli("-w", str(shop), "consent", "unsuppress", "ada.lovelace@example.com")
    assert lifted.stdout.startswith("no suppression")


def test_consent_import_refuses_a_row_dated_later(cli: Run, shop: Path) -> None:
    """A year typed 2062 for 2026 made a grant outrank every later denial until 2062."""
    out = import_consent(
        cli, shop, "grace.hopper@example.com,offers,granted,2062-11-03",
        "grace.hopper@example.com,newsletter,denied,2026-11-03",
    )  # fmt: skip
    assert out.returncode == 0 and "recorded 1 consent change(s)" in out.stdout
    assert "consent.csv:2: occurred_at '2062-11-03' is later than" in out.stderr
    topics = [c["topic"] for c in _history(cli, shop, "grace.hopper@example.com")]
    assert "offers" not in topics and "newsletter" in topics


def test_consent_import_twice_records_each_statement_once(cli: Run, shop: Path) -> None:
    """Importing the same file again doubled every statement in the person's history."""
    rows = ("grace.hopper@example.com,offers,denied,2026-11-03",
            "nobody.yet@example.com,newsletter,granted,2026-11-03")  # fmt: skip
    first = import_consent(cli, shop, *rows)
    assert first.returncode == 0 and first.stdout.strip() == "recorded 2 consent change(s)"
    again = import_consent(cli, shop, *rows)
    assert again.returncode == 0, again
    assert again.stdout.strip() == "recorded 0 consent change(s), 2 recorded already"
    offers = [c for c in _history(cli, shop, "grace.hopper@example.com") if c["topic"] == "offers"]
    assert len(offers) == 1
    assert len(_history(cli, shop, "nobody.yet@example.com")) == 1  # an address statement


def test_template_preview_into_a_file_is_a_usage_error(cli: Run, shop: Path) -> None:
    """``--out`` naming a file was a FileExistsError traceback."""
    (shop / "notes.txt").write_text("mine")
    out = cli("-w", str(shop), "template", "preview", "lifecycle", "--profile",
              "ada.lovelace@example.com", "--out", str(shop / "notes.txt"))  # fmt: skip
    assert out.returncode == 2 and "--out" in out.stderr and "is a file" in out.stderr
    assert (shop / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("removal", ["step", "journey"])
def test_journeys_show_says_what_ends_instances_of_a_removed_definition(
    cli: Run, shop: Path, removal: str
) -> None:
    """Instances at a renamed step vanished from the steps table (active 7, steps 0 each), and
    nothing said the next run ends them all (``definition_changed``), for good."""
    cli("-w", str(shop), "journeys", "run", "--as-of", AS_OF)  # no mail server: failures
    view = json.loads(cli("-w", str(shop), "journeys", "show", "welcome_series",
                          "--format", "json").stdout)  # fmt: skip
    waiting = {s["step"]: s["active"] for s in view["per_step"] if s["active"]}
    assert waiting and sum(waiting.values()) == view["active"]
    yaml = shop / "segmint.yaml"
    text = yaml.read_text()
    if removal == "step":
        for step in waiting:
            text = text.replace(f"{{name: {step},", f"{{name: {step}_v2,")
    else:
        start, end = text.index("  welcome_series:"), text.index("  win_back:")
        text = text[:start] + text[end:]
    yaml.write_text(text)
    out = cli("-w", str(shop), "journeys", "show", "welcome_series", "--format", "json")
    assert out.returncode == 0, out
    shown = json.loads(out.stdout)
    assert {s["step"]: s["active"] for s in shown["per_step"] if s["active"]} == waiting
    assert all(s["kind"] is None for s in shown["per_step"] if s["step"] in waiting)
    (note,) = shown["notes"]
    assert "no longer in segmint.yaml" in note and "definition_changed" in note
    assert f"ends {view['active']} active instance(s)" in note
    table = cli("-w", str(shop), "journeys", "show", "welcome_series")
    assert "warning:" in table.stderr and "definition_changed" in table.stderr


@pytest.fixture
def unused_port() -> int:
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_webhooks_deliver_tries_every_due_row_and_refuses_a_later_instant(
    cli: Run, shop: Path, unused_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It tried the first 100 rows due, said so, and left the rest due without a word."""
    from datetime import UTC, datetime

    from segmint.membership.webhooks import webhook_outbox
    from segmint.workspace import Workspace

    monkeypatch.setenv("SEGMINT_WEBHOOK_SECRET", "a-webhook-secret")
    yaml = shop / "segmint.yaml"
    yaml.write_text(
        yaml.read_text() + f"\nwebhooks:\n  crm: {{url: 'http://127.0.0.1:{unused_port}/'}}\n"
    )
    with Workspace.open(shop) as ws:
        webhook_outbox(ws.store).enqueue(
            [("crm", json.dumps({"n": n})) for n in range(150)], datetime(2026, 11, 1, tzinfo=UTC)
        )
    later = cli("-w", str(shop), "webhooks", "deliver", "--as-of", "+1d")
    assert later.returncode == 2 and "--as-of" in later.stderr and "later than now" in later.stderr
    status = json.loads(cli("-w", str(shop), "webhooks", "status", "--format", "json").stdout)
    assert status["webhooks"]["crm"]["pending"] == 150  # nothing tried
    out = cli("-w", str(shop), "webhooks", "deliver")
    assert out.returncode == 0 and out.stdout.strip() == "delivered 0, retrying 150, dead 0"
    again = cli("-w", str(shop), "webhooks", "deliver")  # each retried later, not again now
    assert again.stdout.strip() == "delivered 0, retrying 0, dead 0"


@pytest.mark.parametrize(
    ("args", "field", "message"),
    [
        (("--profile", "ada.lovelace@example.com", "--n", "5"), None, "--n counts members"),
        (("--segment", "vip", "--from", "shop"), "--from", "not a valid address 'shop'"),
    ],
)
def test_template_preview_refuses_options_it_cannot_honour(
    cli: Run, shop: Path, args: tuple[str, ...], field: str | None, message: str
) -> None:
    """``--n`` with ``--profile`` was ignored; a bad ``--from`` failed every render in turn."""
    out = cli("-w", str(shop), "template", "preview", "lifecycle", *args,
              "--out", str(shop / "previews"), "--format", "json")  # fmt: skip
    assert out.returncode == 2, out
    error = json.loads(out.stdout)["error"]
    assert message in error["message"] and error["field"] == field
    assert not (shop / "previews").exists()  # nothing rendered


def test_journeys_run_since_after_its_instant_names_both(cli: Run, shop: Path) -> None:
    """'must not be after --until' named an option the user had not given (now by default)."""
    out = cli("-w", str(shop), "journeys", "run", "--since", "2026-11-02", "--as-of", AS_OF,
              "--format", "json")  # fmt: skip
    assert out.returncode == 2
    error = json.loads(out.stdout)["error"]
    assert error["field"] == "--since" and "2026-11-02T00:00:00+00:00" in error["message"]
    assert "2026-11-01T00:00:00+00:00" in error["message"]


def test_campaign_send_error_before_sending_is_one_line(cli: Run, shop: Path) -> None:
    """The progress bar, started before the campaign was checked, left a blank line first."""
    out = cli("-w", str(shop), "campaign", "send", "lifecycle_updat")
    assert out.returncode == 1
    assert out.stderr.startswith("error: unknown campaign 'lifecycle_updat'"), repr(out.stderr)
    assert out.stderr.count("\n") == 1


def test_a_run_at_an_earlier_instant_honours_an_unsubscribe_recorded_since(
    cli: Run, shop: Path
) -> None:
    """``--as-of`` an instant before today's unsubscribe read consent as it was then, and the
    message went out now to a person who had unsubscribed."""
    for person in ("ada.lovelace@example.com", "grace.hopper@example.com"):
        done = cli("-w", str(shop), "consent", "set", person, "unsubscribed")  # now
        assert done.returncode == 0, done
    dry = cli("-w", str(shop), "campaign", "send", "lifecycle_update", "--dry-run", "--out",
              str(shop / "outbox"), "--as-of", AS_OF, "--format", "json")  # fmt: skip
    report = json.loads(dry.stdout)
    assert report["written"] == 0 and report["skipped"] == {"unsubscribed": 1}  # ada, the VIP
    run = cli("-w", str(shop), "journeys", "run", "--as-of", AS_OF, "--format", "json")
    assert json.loads(run.stdout)["skipped"]["unsubscribed"] == 1  # grace's welcome


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("campaign", "report", "journey:welcome_series:welcome"),
         "is step 'welcome' of journey 'welcome_series', not a campaign: `segmint journeys "
         "show welcome_series`"),
        (("experiments", "report", "journey:welcome_series:welcome"),
         "named JOURNEY.STEP ('welcome_series.welcome'): journey step 'welcome_series.welcome' "
         "has no experiment"),
    ],
)  # fmt: skip
def test_a_journey_step_named_as_kpis_label_it_is_pointed_to_its_place(
    cli: Run, shop: Path, args: tuple[str, ...], message: str
) -> None:
    """``report kpis`` labels a journey's step ``journey:NAME:STEP``; typed back, it was an
    'unknown campaign' listing the campaigns only."""
    out = cli("-w", str(shop), *args)
    assert out.returncode == 1 and message in out.stderr, out.stderr


def test_kpis_past_the_attribution_say_so(cli: Run, shop: Path) -> None:
    """Conversions after the last ``measure rebuild --as-of`` were silently left out."""
    built = cli("-w", str(shop), "measure", "rebuild", "--as-of", "2026-06-01")
    assert built.returncode == 0, built
    out = cli("-w", str(shop), "report", "kpis", "--to", AS_OF)
    assert out.returncode == 0
    assert "conversions are counted up to 2026-06-01T00:00:00+00:00" in out.stderr
    data = json.loads(cli("-w", str(shop), "report", "kpis", "--to", AS_OF, "--format",
                          "json").stdout)  # fmt: skip
    assert data["attribution_built_as_of"] == "2026-06-01T00:00:00+00:00"
    cli("-w", str(shop), "measure", "rebuild", "--as-of", AS_OF)
    assert "counted up to" not in cli("-w", str(shop), "report", "kpis", "--to", AS_OF).stderr

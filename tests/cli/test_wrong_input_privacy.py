"""Privacy, models, the console's lookups and scale-out options fed the wrong things.

As ``test_wrong_input.py``: each wrong input gets one clear line naming it, the exit status
of the rest of the CLI (2 for a usage error) and no traceback; nothing is done half-way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.cli.conftest import SHOP_AS_OF

Run = Callable[..., Any]  # tests/conftest.py's ``cli`` fixture (a CliResult)

AS_OF = SHOP_AS_OF


def test_an_error_at_line_100_names_the_line_not_an_emoji(cli: Run, shop: Path) -> None:
    """rich read ``segmint.yaml:100:12`` as the emoji code ``:100:`` and printed 💯."""
    yaml = shop / "segmint.yaml"
    text = yaml.read_text().replace('"lifetime_value >= 1000"', '"lifetime_valu >= 1000"')
    line = text.splitlines().index('    rule: "lifetime_valu >= 1000"') + 1
    yaml.write_text("#\n" * (100 - line) + text)
    out = cli("-w", str(shop), "segments", "validate")
    assert out.returncode == 1
    assert "segmint.yaml:100:12: unknown trait 'lifetime_valu'" in out.stderr, out.stderr
    assert "\N{HUNDRED POINTS SYMBOL}" not in out.stderr
    shown = cli("-w", str(shop), "status")  # any command: the workspace fails to load
    assert "segmint.yaml:100:12:" in shown.stderr


def _history(cli: Run, shop: Path, segment: str) -> list[dict[str, Any]]:
    shown = cli("-w", str(shop), "segments", "show", segment, "--format", "json")
    return list(json.loads(shown.stdout)["history"])


def test_refresh_refuses_a_later_instant_that_would_record_its_changes_now(
    cli: Run, shop: Path
) -> None:
    """``refresh --as-of +400d`` recorded now who enters and leaves then: the next refresh
    at the right time recorded them all leaving again, and the size history went negative."""
    before = _history(cli, shop, "churned")
    out = cli("-w", str(shop), "refresh", "--as-of", "+400d", "--format", "json")
    assert out.returncode == 2, out
    error = json.loads(out.stdout)["error"]
    assert error["field"] == "--as-of" and "later than now" in error["message"]
    assert "segmint reconcile --as-of" in error["message"]  # how to look ahead instead
    assert _history(cli, shop, "churned") == before  # nothing recorded
    ahead = cli("-w", str(shop), "reconcile", "--as-of", "+400d")  # looking is fine
    assert ahead.returncode == 1 and "churned" in ahead.stdout
    assert cli("-w", str(shop), "refresh").returncode == 0  # now: fine


@pytest.mark.parametrize(
    ("command", "consequence"),
    [("train", "data window"), ("score", "'segmint models list' says when it is due")],
)
def test_models_refuse_a_later_instant(
    cli: Run, shop: Path, command: str, consequence: str
) -> None:
    """``models score --as-of +90d`` stored scores dated then and refreshed memberships at
    that instant; ``train`` recorded a version trained on 'data up to' a day not yet come."""
    yaml = shop / "segmint.yaml"
    yaml.write_text(yaml.read_text() + "\nmodels:\n  clv: {kind: clv}\n")
    out = cli("-w", str(shop), "models", command, "clv", "--as-of", "+90d")
    assert out.returncode == 2, out
    assert "Invalid value for --as-of" in out.stderr
    assert "later than now" in out.stderr and consequence in out.stderr
    listed = json.loads(cli("-w", str(shop), "models", "list", "--format", "json").stdout)
    assert listed[0]["version"] is None and listed[0]["last_scored"] is None
    status = json.loads(cli("-w", str(shop), "status", "--format", "json").stdout)
    assert status["counts"]["events"] == 15  # no score event stored


def _address_statements(shop: Path) -> list[tuple[Any, ...]]:
    from segmint.workspace import Workspace

    with Workspace.open(shop) as ws:
        return ws.store.fetchall("SELECT * FROM address_consents")


@pytest.mark.parametrize(
    "person", ["grace.hopper@example.com", "email:GRACE.Hopper@example.com", "7390016487542"]
)
def test_consent_for_an_erased_person_says_so_and_keeps_no_address(
    cli: Run, shop: Path, person: str
) -> None:
    """``consent set`` of an erased email was kept as 'an address no profile has yet' (the
    address stored again), and their user id was 'no person matches'."""
    assert cli("-w", str(shop), "privacy", "erase", "grace.hopper@example.com", "--yes")
    out = cli("-w", str(shop), "consent", "set", person, "granted", "--topic", "offers")
    assert out.returncode == 1 and f"{person!r} was erased on" in out.stderr, out
    assert "(receipt er_" in out.stderr
    column = "user_id" if person.isdigit() else "email"
    value = person.removeprefix("email:")
    (shop / "consent.csv").write_text(f"{column},topic,status\n{value},offers,granted\n")
    imported = cli("-w", str(shop), "consent", "import", str(shop / "consent.csv"))
    assert imported.returncode == 1 and "recorded 0 consent change(s)" in imported.stdout
    assert f"consent.csv:2: '{column}:{value}' was erased on" in imported.stderr
    assert _address_statements(shop) == []
    other = cli("-w", str(shop), "consent", "set", "new.person@example.com", "granted")
    assert other.returncode == 0 and "no profile has it yet" in other.stdout  # still kept


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("worker", "--kafka", "kafka://127.0.0.1:9092"), "expected a Kafka URL"),
        (("worker", "--kafka", "kafka://127.0.0.1:9/t?grup=g"), "did you mean 'group'?"),
        (("serve", "--role", "intake", "--kafka", "kafka://127.0.0.1:9/t?partitions=0"),
         "?partitions= must be a positive number"),
    ],
)  # fmt: skip
def test_a_bad_kafka_url_is_a_usage_error_naming_the_option(
    cli: Run, shop: Path, args: tuple[str, ...], message: str
) -> None:
    """A malformed --kafka was exit 1 and named no option (serve found it only after it had
    bound its port and opened the workspace)."""
    out = cli("-w", str(shop), *args, "--log-level", "error")
    assert out.returncode == 2, out
    assert "Invalid value for --kafka" in out.stderr and message in out.stderr
    assert "Traceback" not in out.stderr


def _audit(cli: Run, shop: Path) -> list[dict[str, Any]]:
    return list(json.loads(cli("-w", str(shop), "audit", "list", "--format", "json").stdout))


@pytest.mark.parametrize(
    "command",
    [
        ("privacy", "erase", "grace.hopper@example.com", "--yes"),
        ("privacy", "export", "grace.hopper@example.com"),
        ("privacy", "enable"),
        ("privacy", "seal-existing"),
        ("privacy", "rotate-key"),
    ],
    ids=lambda c: c[1],
)
def test_privacy_commands_refuse_to_record_a_later_instant(
    cli: Run, shop: Path, is_erased: Any, command: tuple[str, ...]
) -> None:
    """``privacy erase --as-of +3d`` erased now and dated the receipt and the audit entry
    three days on: the log, read in order, said an erasure happened after later entries."""
    if command[1] in ("seal-existing", "rotate-key"):
        assert cli("-w", str(shop), "privacy", "enable").returncode == 0
    before = _audit(cli, shop)
    out = cli("-w", str(shop), *command, "--as-of", "+3d")
    assert out.returncode == 2, out
    assert "Invalid value for --as-of" in out.stderr and "later than now" in out.stderr
    assert "audit log" in out.stderr
    assert _audit(cli, shop) == before
    assert not is_erased(shop, "grace.hopper@example.com")  # nothing done
    assert cli("-w", str(shop), *command, "--as-of", "-1h").returncode == 0  # earlier: fine


def _rows(shop: Path, table: str) -> list[tuple[Any, ...]]:
    from segmint.workspace import Workspace

    with Workspace.open(shop) as ws:
        return ws.store.fetchall(f"SELECT * FROM {table}")  # noqa: S608


def test_a_sealed_workspace_without_its_key_keeps_no_address_in_the_clear(
    cli: Run, shop: Path
) -> None:
    """With the key file missing, ``consent set EMAIL`` found nobody (the identities are keyed
    hashes) and kept the address in plaintext 'for an address no profile has yet';
    ``consent suppress`` kept it in plaintext too; ``profile show EMAIL`` said 'no person';
    ``audit list --subject EMAIL`` listed nothing."""
    w = ("-w", str(shop))
    assert cli(*w, "privacy", "enable").returncode == 0
    assert cli(*w, "privacy", "seal-existing").returncode == 0
    key = shop / ".segmint-keys" / "master.key"
    kept = key.read_bytes()
    key.unlink()
    ada = "ada.lovelace@example.com"
    (shop / "consent.csv").write_text(f"email,topic,status\n{ada},offers,denied\n")
    for command, action in [
        (("consent", "set", ada, "unsubscribed"), "recording consent for an address"),
        (("consent", "import", str(shop / "consent.csv")), "recording consent for an address"),
        (("consent", "suppress", ada), "suppressing an address"),
        (("consent", "unsuppress", ada), "lifting a suppression"),
        (("profile", "show", ada), "finding a person by a sealed identifier"),
        (("audit", "list", "--subject", ada), "finding a person by a sealed identifier"),
    ]:
        out = cli(*w, *command)
        assert out.returncode == 1, (command, out)
        assert f"{action} needs the master key" in out.stderr and str(key) in out.stderr
    assert _rows(shop, "address_consents") == [] and _rows(shop, "suppressions") == []
    by_id = cli(*w, "profile", "show", "7390016487599")  # no sealed identifier: no key talk
    assert by_id.returncode == 1 and "master key" not in by_id.stderr
    key.write_bytes(kept)
    assert cli(*w, "consent", "suppress", ada).returncode == 0
    assert ada not in str(_rows(shop, "suppressions"))  # a keyed hash, as sealing promises


@pytest.mark.parametrize(
    "command",
    [
        ("privacy", "erase", "grace.hopper@example.com"),
        ("quarantine", "purge", "--before", "now"),
    ],
    ids=lambda c: c[0],
)
def test_a_question_goes_to_stderr_and_a_script_is_told_to_pass_yes(
    cli: Run, shop: Path, is_erased: Any, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """The confirmation was asked on stdout, before the JSON (``--format json`` output was no
    JSON), and without a terminal to answer it the command said only 'aborted' (exit 130)."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # cron: nothing to answer with
    out = cli("-w", str(shop), *command, "--format", "json")
    assert out.returncode == 2, out
    error = json.loads(out.stdout)["error"]  # stdout is JSON, the question is on stderr
    assert "standard input is not a terminal" in error["message"]
    assert "pass --yes" in error["message"] and "[y/N]" in out.stderr
    assert not is_erased(shop, "grace.hopper@example.com")  # nothing done
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert cli("-w", str(shop), *command).returncode == 130  # a no: aborted, as before
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    done = cli("-w", str(shop), *command, "--format", "json")
    assert done.returncode == 0 and isinstance(json.loads(done.stdout), dict)


def test_a_model_that_cannot_train_is_one_line_in_a_log(cli: Run, shop: Path) -> None:
    """The spinner, off a terminal, left a blank line before the error in every log."""
    yaml = shop / "segmint.yaml"
    yaml.write_text(yaml.read_text() + "\nmodels:\n  rfm: {kind: clustering}\n")
    out = cli("-w", str(shop), "models", "train", "rfm", "--as-of", AS_OF)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: clustering needs at least 20 profiles"), out.stderr
    assert out.stderr.count("\n") == 1


def test_a_retention_event_name_nothing_sends_is_warned_of(cli: Run, shop: Path) -> None:
    """``retention: {Order Complted: 90d}`` deleted nothing, every day, and said nothing:
    the events were kept past the period the workspace promises."""
    yaml = shop / "segmint.yaml"
    yaml.write_text(yaml.read_text() + "\nprivacy:\n  retention: {Order Complted: 90d}\n")
    out = cli("-w", str(shop), "privacy", "enforce", "--format", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["deleted"] == {"Order Complted": 0}
    assert "privacy.retention: event 'Order Complted' is not in the events stored so far; " \
        "did you mean 'Order Completed'?" in out.stderr  # fmt: skip
    checked = cli("-w", str(shop), "segments", "validate")
    assert "event 'Order Complted' in privacy.retention" in checked.stderr
    assert "did you mean 'Order Completed'?" in checked.stderr


def test_audit_list_writes_instants_with_their_offset(cli: Run, shop: Path) -> None:
    """``audit list --format json`` wrote '2026-12-04T21:08:55' (no offset) where every other
    command writes '+00:00': a script reading it as local time was hours off."""
    from datetime import datetime

    assert cli("-w", str(shop), "privacy", "export", "grace.hopper@example.com").returncode == 0
    (entry,) = _audit(cli, shop)
    assert datetime.fromisoformat(entry["at"]).utcoffset() is not None, entry["at"]


@pytest.mark.parametrize(
    ("args", "field", "message"),
    [
        (("nope",), "URL", "unsupported stream URL 'nope'"),
        (("redis://127.0.0.1:6379/0",), "URL", "needs ?stream="),
        (("redis://127.0.0.1:6379/0?stream=x", "--batch-size", "0"), "--batch-size", "x>=1"),
        (("redis://127.0.0.1:6379/0?stream=x", "--max-messages", "-5"), "--max-messages",
         "x>=1"),
    ],
)  # fmt: skip
def test_consume_refuses_a_bad_url_or_count_as_a_usage_error(
    cli: Run, shop: Path, args: tuple[str, ...], field: str, message: str
) -> None:
    """A malformed URL was exit 1; --batch-size 0 reached Redis ('XREADGROUP count must be a
    positive integer') and --max-messages -5 was taken."""
    out = cli("-w", str(shop), "consume", *args, "--idle-timeout", "0.1", "--format", "json")
    assert out.returncode == 2, out
    error = json.loads(out.stdout)["error"]
    assert message in error["message"] and field in (error["field"] or error["message"])


def test_preview_of_a_model_trait_nothing_scored_says_what_to_run(cli: Run, shop: Path) -> None:
    """A rule on ``churn_risk`` before the model was trained and scored previewed as
    '0 profiles' with no word why (the trait is null for everyone)."""
    yaml = shop / "segmint.yaml"
    yaml.write_text(
        yaml.read_text() + "\nmodels:\n  churn_risk: {kind: propensity, target: churn}\n"
    )
    rule = "churn_risk > 0.7 and orders >= 1"
    out = cli("-w", str(shop), "segments", "preview", rule, "--format", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["size"] == 0
    (warning,) = json.loads(out.stdout)["warnings"]
    assert "trait 'churn_risk' is written by model 'churn_risk', which has scored no" in warning
    assert "'segmint models train churn_risk', then 'segmint models score churn_risk'" in warning
    plain = cli("-w", str(shop), "segments", "preview", "orders >= 1", "--format", "json")
    assert json.loads(plain.stdout)["warnings"] == []


def test_serve_role_intake_refuses_an_explicit_realtime(cli: Run, shop: Path) -> None:
    """``--role intake --realtime`` was silently served without real time."""
    out = cli("-w", str(shop), "serve", "--role", "intake", "--kafka", "kafka://127.0.0.1:9/t",
              "--realtime")  # fmt: skip
    assert out.returncode == 2 and "--realtime with --role intake" in out.stderr
    assert "segmint worker" in out.stderr


def test_a_sealed_workspace_without_its_key_is_not_served(
    cli: Run, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` started, then answered every tracking call 500 ('storing input needs the
    master key'); ``consume`` failed the same way batch after batch."""
    import socket

    from segmint.cli import intake_cmd

    def never(*_: Any) -> Any:
        raise AssertionError("the server started")  # instead of serving until stopped

    monkeypatch.setattr(intake_cmd, "_graceful_server_class", never)
    w = ("-w", str(shop))
    assert cli(*w, "privacy", "enable").returncode == 0
    assert cli(*w, "privacy", "seal-existing").returncode == 0  # the vault holds their keys
    (shop / ".segmint-keys" / "master.key").unlink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    for command in (("serve", "--port", port), ("ui", "--port", port),
                    ("consume", "redis://127.0.0.1:6379/0?stream=segmint-probe",
                     "--idle-timeout", "1")):  # fmt: skip
        out = cli(*w, *command)
        assert out.returncode == 1, (command, out)
        assert "(storing input) needs the master key" in out.stderr
        assert "restore" in out.stderr and "master.key" in out.stderr


@pytest.mark.parametrize("how", ["{pid}", "profile:{pid}"])
def test_erasing_again_by_the_profile_id_says_when_it_was_erased(
    cli: Run, shop: Path, how: str
) -> None:
    """The profile id that ``privacy erase`` printed was 'no person matches' afterwards (its
    email and user id said 'was erased on … (receipt …)')."""
    done = cli("-w", str(shop), "privacy", "erase", "grace.hopper@example.com", "--yes",
               "--format", "json")  # fmt: skip
    receipt = json.loads(done.stdout)
    ref = how.format(pid=receipt["profile_id"])
    again = cli("-w", str(shop), "privacy", "erase", ref, "--yes")
    assert again.returncode == 1
    assert f"{ref!r} was erased on" in again.stderr
    assert f"(receipt {receipt['receipt_id']})" in again.stderr
    assert receipt["identifiers_suppressed"] == 2  # her user id and email; not the profile
    shown = cli("-w", str(shop), "profile", "show", ref, "--as-of", AS_OF)
    assert shown.returncode == 1 and "was erased on" in shown.stderr


def test_audit_list_subject_takes_any_id_of_a_person(cli: Run, shop: Path) -> None:
    """The log names people by profile id (and an erasure by its receipt): ``--subject`` with
    an email or user id listed nothing, and an erased person's history was out of reach."""
    w = ("-w", str(shop))
    assert cli(*w, "privacy", "export", "grace.hopper@example.com").returncode == 0
    assert cli(*w, "privacy", "export", "alan.turing@example.org").returncode == 0

    def about(ref: str) -> list[str]:
        out = cli(*w, "audit", "list", "--subject", ref, "--format", "json")
        assert out.returncode == 0, out.stderr
        return [e["action"] for e in json.loads(out.stdout)]

    assert about("grace.hopper@example.com") == ["privacy.export"]
    assert about("7390016487542") == ["privacy.export"]  # her user id
    assert cli(*w, "privacy", "erase", "7390016487542", "--yes").returncode == 0
    assert about("grace.hopper@example.com") == ["privacy.export", "privacy.erase"]
    assert about("email:nobody@example.com") == []


def test_audit_list_warns_of_a_filter_nothing_matches(cli: Run, shop: Path) -> None:
    """A typo in ``--actor`` or ``--subject`` listed an empty log without a word."""
    w = ("-w", str(shop), "audit", "list")
    assert cli("-w", str(shop), "privacy", "export", "grace.hopper@example.com").returncode == 0
    actor = cli(*w, "--actor", "cl")
    assert actor.returncode == 0 and "no audit entry has actor 'cl'; did you mean 'cli'?" in (
        actor.stderr
    )
    subject = cli(*w, "--subject", "er_0000")
    assert subject.returncode == 0 and "no audit entry is about 'er_0000'" in subject.stderr
    both = cli(*w, "--actor", "cli", "--action", "privacy.erase")  # each matches; not both
    assert both.returncode == 0 and "warning" not in both.stderr


@pytest.mark.parametrize("command", ["erase", "export"])
def test_a_person_id_pasted_with_spaces_or_blank_is_said_so(
    cli: Run, shop: Path, command: str
) -> None:
    """A user id pasted with a space or tab around it, or nothing at all, was 'no person
    matches' like any unknown id (ids are stored as sent, so a space is no typo to fix
    silently)."""
    w = ("-w", str(shop), "privacy", command)
    padded = cli(*w, "7390016487542\t", "--yes" if command == "erase" else "--as-of=-1s")
    assert padded.returncode == 1
    assert "'7390016487542' (without the spaces around it) matches: did you mean it?" in (
        padded.stderr
    )
    blank = cli(*w, " ", *(["--yes"] if command == "erase" else []))
    assert blank.returncode == 1 and "no id given" in blank.stderr


def test_someone_only_quarantine_or_a_consent_names_can_be_erased(
    cli: Run, shop: Path, is_erased: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone whose every message failed validation, or whose address was consented to
    before any profile had it, was 'no person matches': nothing erased them but a purge of
    the whole quarantine."""
    import io
    from datetime import UTC, datetime

    from segmint.intake.pipeline import Intake
    from segmint.workspace import Workspace

    bad = {"type": "identify", "userId": "u-cy", "traits": {"email": "cy@example.net"},
           "timestamp": "not a date", "messageId": "q-cy"}  # fmt: skip
    with Workspace.open(shop) as ws:
        Intake(ws).submit([bad], source="test", received_at=datetime(2026, 11, 1, tzinfo=UTC),
                          invalid="quarantine")  # fmt: skip
    w = ("-w", str(shop))
    assert cli(*w, "consent", "set", "dee@example.net", "granted").returncode == 0
    exported = cli(*w, "privacy", "export", "u-cy")  # access goes with erasure
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["manifest"]["sections"]["quarantine"]["rows"] == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    asked = cli(*w, "privacy", "erase", "u-cy")  # the question names what is erased
    assert asked.returncode == 130
    assert "erase u-cy (no profile: only quarantined messages" in asked.stderr
    done = cli(*w, "privacy", "erase", "u-cy", "--yes", "--format", "json")
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["profile_id"] is None and receipt["deleted"]["quarantine"] == 1
    assert "q-cy" not in cli(*w, "quarantine", "list", "--format", "json").stdout
    gone = cli(*w, "privacy", "erase", "dee@example.net", "--yes")
    assert gone.returncode == 0 and gone.stdout.startswith("erased dee@example.net: 0 profiles")
    assert is_erased(shop, "u-cy") and is_erased(shop, "dee@example.net")
    again = cli(*w, "privacy", "erase", "u-cy", "--yes")
    assert again.returncode == 1 and "'u-cy' was erased on" in again.stderr

"""Wave-2 commands fed the wrong things, as a newcomer types them on the example shop.

Each wrong input gets one clear line naming it, a non-zero exit and no traceback; nothing is
done half-way before the mistake is noticed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.cli.conftest import SHOP_AS_OF, import_consent

Run = Callable[..., Any]  # tests/conftest.py's ``cli`` fixture (a CliResult)

AS_OF = SHOP_AS_OF


@pytest.mark.parametrize("where", ["missing/receipt.json", "a_file/receipt.json"])
def test_erase_checks_the_receipt_path_before_erasing(
    cli: Run, shop: Path, is_erased: Any, where: str
) -> None:
    (shop / "a_file").write_text("not a folder")
    receipt = shop / where
    out = cli("-w", str(shop), "privacy", "erase", "grace.hopper@example.com", "--yes",
              "--receipt", str(receipt))  # fmt: skip
    assert out.returncode == 2, out
    assert "--receipt" in out.stderr and str(receipt.parent) in out.stderr
    assert not is_erased(shop, "grace.hopper@example.com")  # nothing done


def test_export_to_a_missing_folder_is_one_line(cli: Run, shop: Path) -> None:
    target = shop / "missing" / "export.json"
    out = cli("-w", str(shop), "privacy", "export", "grace.hopper@example.com", "--out",
              str(target))  # fmt: skip
    assert out.returncode == 2 and "--out" in out.stderr and "does not exist" in out.stderr
    audit = cli("-w", str(shop), "audit", "list", "--format", "json")
    assert not any(e["action"].startswith("privacy.export") for e in json.loads(audit.stdout))


def _interrupt_in_duckdb() -> None:
    raise RuntimeError("Query interrupted")  # what DuckDB raises for Ctrl-C in a statement


def _interrupt_then_cleanup_fails() -> None:
    try:
        _interrupt_in_duckdb()
    except RuntimeError:  # a clean-up statement in the aborted transaction fails in turn
        raise ValueError("Current transaction is aborted (please ROLLBACK)")  # noqa: B904


def _interrupt_during_an_import() -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:  # e.g. dataclasses wraps it in __set_name__
        raise RuntimeError("Error calling __set_name__") from exc


@pytest.mark.parametrize(
    "fault", [_interrupt_in_duckdb, _interrupt_then_cleanup_fails, _interrupt_during_an_import]
)
def test_ctrl_c_anywhere_is_aborted_not_a_traceback(
    cli: Run, shop: Path, monkeypatch: pytest.MonkeyPatch, fault: Callable[[], None]
) -> None:
    from segmint.workspace import Workspace

    monkeypatch.setattr(Workspace, "status", lambda self: fault())
    out = cli("-w", str(shop), "status")
    assert out.returncode == 130 and out.stderr.strip().endswith("aborted"), out
    assert "Traceback" not in out.stderr
    assert cli("--debug", "-w", str(shop), "status").returncode == 130


@pytest.mark.parametrize(
    ("args", "status", "message", "field"),
    [
        (("journeys", "show", "abandoned_crt"), 1, "did you mean 'abandoned_cart'?", None),
        (("experiments", "report", "win_bak.miss_you"), 1, "unknown experiment", None),
        (("segments", "suggest", "cart_abandoners"), 1, "no campaign or journey", None),
        (("journeys", "run", "--as-of", "yesterday"), 2, "'yesterday'", "--as-of"),
        (("report", "kpis", "--from", "3x"), 2, "'3x'", "--from"),
        (("models", "list", "--as-of", "soon"), 2, "'soon'", "--as-of"),
    ],
)
def test_errors_of_a_json_command_are_json(
    cli: Run, shop: Path, args: tuple[str, ...], status: int, message: str, field: str | None
) -> None:
    out = cli("-w", str(shop), *args, "--format", "json")
    assert out.returncode == status
    error = json.loads(out.stdout)["error"]
    assert message in error["message"] and error["field"] == field
    assert error["exit_status"] == status and error["type"]
    assert message in out.stderr  # people still read it there


def test_errors_without_json_leave_stdout_empty(cli: Run, shop: Path) -> None:
    out = cli("-w", str(shop), "journeys", "show", "abandoned_crt")
    assert out.returncode == 1 and out.stdout == ""


def test_preview_warns_of_an_event_name_nothing_sends(cli: Run, shop: Path) -> None:
    """A mistyped event matches nobody: the size 0 comes with the reason and the fix."""
    rule = "performed('Order Complted') or performed('Order Completed', where => 'totl > 5')"
    out = cli("-w", str(shop), "segments", "preview", rule, "--as-of", AS_OF)
    assert out.returncode == 0
    assert "event 'Order Complted' is not in the events stored so far" in out.stderr
    assert "did you mean 'Order Completed'?" in out.stderr
    assert "property 'totl' of event 'Order Completed'" in out.stderr
    assert "did you mean 'total'?" in out.stderr
    data = json.loads(cli("-w", str(shop), "segments", "preview", rule, "--format", "json").stdout)
    assert len(data["warnings"]) == 2
    clean = cli("-w", str(shop), "segments", "preview", "performed('Order Completed')")
    assert "warning" not in clean.stderr


def test_journeys_run_that_could_not_send_exits_non_zero(
    cli: Run, shop: Path, monkeypatch: pytest.MonkeyPatch, unused_port: int
) -> None:
    """For cron: messages held (no link secret) or failed (no SMTP server) are an error."""
    monkeypatch.delenv("SEGMINT_SECRET", raising=False)
    held = cli("-w", str(shop), "journeys", "run", "--as-of", AS_OF, "--format", "json")
    assert held.returncode == 1, held
    assert json.loads(held.stdout)["delayed"]["not_configured"] >= 1  # the report still
    assert "not sent" in held.stderr and "SEGMINT_SECRET" in held.stderr
    yaml = shop / "segmint.yaml"
    yaml.write_text(yaml.read_text().replace("port: 1025", f"port: {unused_port}"))
    monkeypatch.setenv("SEGMINT_SECRET", "a-secret-of-at-least-16-characters")
    later = "2026-11-02T00:00:00Z"  # the held messages are due again
    failed = cli("-w", str(shop), "journeys", "run", "--as-of", later)
    assert failed.returncode == 1 and "connection" in failed.stderr
    assert "email.smtp" in failed.stderr
    again = cli("-w", str(shop), "journeys", "run", "--as-of", later)  # nothing due: fine
    assert again.returncode == 0, again


@pytest.fixture
def unused_port() -> int:
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_consent_import_of_only_bad_rows_fails_like_ingest(cli: Run, shop: Path) -> None:
    """Every row refused and nothing recorded is no success (``ingest`` exits 1 too)."""
    rows = ("grace.hopper@example.com,newsleter,granted,2026-01-01",
            "grace.hopper@example.com,offers,granted,yesterday")  # fmt: skip
    out = import_consent(cli, shop, *rows)
    assert out.returncode == 1 and "recorded 0 consent change(s)" in out.stdout
    assert "consent.csv:2:" in out.stderr and "did you mean 'newsletter'?" in out.stderr
    assert "consent.csv:3:" in out.stderr
    partly = import_consent(cli, shop, *rows, "grace.hopper@example.com,offers,granted,2026-01-01")
    assert partly.returncode == 0 and "recorded 1 consent change(s)" in partly.stdout


def test_journeys_run_refuses_two_different_instants(cli: Run, shop: Path) -> None:
    """--until is another name of --as-of: given both, which one counts was a silent guess."""
    out = cli("-w", str(shop), "journeys", "run", "--as-of", "2026-10-01", "--until", AS_OF)
    assert out.returncode == 2 and "--as-of" in out.stderr and "--until" in out.stderr
    same = cli("-w", str(shop), "journeys", "run", "--as-of", AS_OF, "--until", AS_OF)
    assert "--until" not in same.stderr
    only = cli("-w", str(shop), "journeys", "run", "--until", AS_OF, "--format", "json")
    assert json.loads(only.stdout)["until"].startswith("2026-11-01T00:00:00")


def test_diff_against_a_missing_file_or_outside_git_says_which(cli: Run, shop: Path) -> None:
    missing = cli("-w", str(shop), "segments", "diff", "--against", "old-segmint.yaml")
    assert missing.returncode == 1 and "no file 'old-segmint.yaml'" in missing.stderr
    assert "at git ref" not in missing.stderr
    no_git = cli("-w", str(shop), "segments", "diff")  # the default: HEAD
    assert no_git.returncode == 1 and "not in a git repository" in no_git.stderr
    assert "--against FILE" in no_git.stderr


def test_spark_refresh_of_missing_local_events_fails_before_starting_spark(
    cli: Run, shop: Path
) -> None:
    """Starting Spark took half a minute and printed a Java stack trace before the error."""
    import time

    pytest.importorskip("pyspark")
    missing = shop / "nowhere" / "events.parquet"
    started = time.monotonic()
    out = cli("-w", str(shop), "refresh", "--engine", "spark", "--events", str(missing))
    assert out.returncode == 1 and f"no Parquet events at '{missing}'" in out.stderr
    assert "segmint export events --parquet" in out.stderr
    assert time.monotonic() - started < 10


def test_ui_on_a_busy_port_points_at_its_own_help(cli: Run, shop: Path) -> None:
    """The hint named 'segmint ui serve', a command that does not exist."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        out = cli("-w", str(shop), "ui", "--port", port)
    assert out.returncode == 2 and "Address already in use" in out.stderr
    assert "segmint ui --help" in out.stderr and "ui serve" not in out.stderr


def test_retention_refuses_a_later_instant_that_would_delete_kept_events(
    cli: Run, shop: Path
) -> None:
    """``--as-of +400d`` deleted now every event younger than its period: data lost early."""
    yaml = shop / "segmint.yaml"
    yaml.write_text(yaml.read_text() + "\nprivacy:\n  retention: {Order Completed: 90d}\n")
    before = json.loads(cli("-w", str(shop), "status", "--format", "json").stdout)["counts"]
    out = cli("-w", str(shop), "privacy", "enforce", "--as-of", "+400d")
    assert out.returncode == 2 and "--as-of" in out.stderr and "later than now" in out.stderr
    after = json.loads(cli("-w", str(shop), "status", "--format", "json").stdout)["counts"]
    assert after["events"] == before["events"]
    now = cli("-w", str(shop), "privacy", "enforce", "--format", "json")  # now: fine
    assert now.returncode == 0 and "Order Completed" in json.loads(now.stdout)["deleted"]


def test_ingest_of_a_missing_file_says_so_before_asking_for_a_mapping(cli: Run, shop: Path) -> None:
    """A glob that matched nothing (``data/*.jsonl``) was answered "choose a mapping"."""
    out = cli("-w", str(shop), "ingest", str(shop / "data" / "*.jsonl"))
    assert out.returncode == 2 and "does not exist" in out.stderr, out
    assert "mapping" not in out.stderr


def test_rebuild_refuses_a_later_instant(cli: Run, shop: Path) -> None:
    """``rebuild --as-of 2030-01-01`` stored the values of 2030 (windows emptied) as now's."""
    import duckdb

    def stored_as_of() -> Any:
        with duckdb.connect(str(shop / ".segmint" / "segmint.duckdb"), read_only=True) as con:
            return con.execute("SELECT max(as_of), count(*) FROM trait_values").fetchall()

    before = stored_as_of()
    out = cli("-w", str(shop), "rebuild", "--as-of", "+400d")
    assert out.returncode == 2 and "--as-of" in out.stderr and "later than now" in out.stderr
    assert stored_as_of() == before
    assert cli("-w", str(shop), "rebuild", "--as-of", AS_OF).returncode == 0


def test_template_preview_of_an_erased_person_says_so(cli: Run, shop: Path) -> None:
    """``template preview --profile`` said 'no person matches', as if never known."""
    erased = cli("-w", str(shop), "privacy", "erase", "grace.hopper@example.com", "--yes")
    assert erased.returncode == 0, erased
    out = cli("-w", str(shop), "template", "preview", "lifecycle", "--profile",
              "grace.hopper@example.com", "--out", str(shop / "previews"))  # fmt: skip
    assert out.returncode == 1 and "was erased" in out.stderr and "receipt" in out.stderr, out


# -- segment definitions the loader passed but no command could use --------------------------


def _edit_segments(folder: Path, text: str) -> None:
    path = folder / "segmint.yaml"
    body = path.read_text()
    assert "\nsegments:\n" in body
    path.write_text(body.replace("\nsegments:\n", f"\nsegments:\n{text}", 1))


@pytest.fixture
def fresh(cli: Run, tmp_path: Path) -> Path:
    """``segmint init``: the example shop, nothing ingested."""
    assert cli("init", str(tmp_path / "ws")).returncode == 0
    return tmp_path / "ws"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("  own:\n    rule: 'orders > 1'\n    parent: own\n", "segment 'own' is its own parent"),
        ("  a:\n    rule: 'orders > 1'\n    parent: b\n  b:\n    rule: 'orders > 2'\n"
         "    parent: a\n", "segments read each other in a cycle: a → b → a"),
        ("  a:\n    rule: \"in_segment('vip')\"\n    group: lifecycle\n",
         "segment 'a' reads 'vip' of its own exclusive group 'lifecycle'"),
    ],
)  # fmt: skip
def test_segments_no_plan_can_order_fail_validate_at_their_line(
    cli: Run, fresh: Path, text: str, says: str
) -> None:
    """``segments validate`` said 'no problems'; ``refresh`` then failed with "segment 'X'
    reads itself", naming no file or line."""
    _edit_segments(fresh, text)
    out = cli("-w", str(fresh), "segments", "validate", "--format", "json")
    assert out.returncode == 1, out
    [error] = json.loads(out.stdout)["errors"]
    assert error["message"].startswith(says), error
    first = text.split(":", 1)[0].strip()  # the segment written first, on the line after
    assert (error["line"], error["column"]) == (36, 3), error  # 'segments:' (line 35)
    assert error["key_path"] == f"segments.{first}", error
    refresh = cli("-w", str(fresh), "refresh", "--as-of", AS_OF)
    assert refresh.returncode != 0 and "segmint.yaml:" in refresh.stderr and says in refresh.stderr


def test_a_misspelt_group_is_a_warning_naming_the_group_it_resembles(cli: Run, fresh: Path) -> None:
    """``group: lifecylce`` made a group of one, exclusive with nothing, without a word."""
    _edit_segments(fresh, "  a:\n    rule: 'orders > 1'\n    group: lifecylce\n")
    out = cli("-w", str(fresh), "segments", "validate", "--format", "json")
    assert out.returncode == 0, out
    [warning] = [w for w in json.loads(out.stdout)["warnings"] if "group" in w["message"]]
    assert warning["key_path"] == "segments.a.group" and warning["line"] == 38, warning
    assert warning["message"] == (
        "group 'lifecylce' has only segment 'a', so it is exclusive with no other segment"
    )
    assert warning["hint"] == "did you mean 'lifecycle'?"

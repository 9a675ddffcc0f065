"""Journey definitions: the examples load; every bad reference is refused with its position."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from tests.conftest import CliResult

from segmint.config import ConfigError, ConfigErrors
from segmint.workspace import Workspace

from .conftest import edit  # type: ignore[import-not-found]


@pytest.fixture
def ws_path(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    Workspace.init(path, name="defs").close()
    return path


def errors_of(path: Path) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        Workspace.open(path)
    return info.value.errors


def line_of(path: Path, text: str) -> int:
    lines = (path / "segmint.yaml").read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if text in line)


def test_example_journeys_load(ws_path: Path) -> None:
    with Workspace.open(ws_path) as ws:
        cart = ws.definition.journeys["abandoned_cart"]
        assert cart.trigger.event == "Cart Abandoned"
        assert cart.reentry_after == timedelta(days=7)
        assert cart.step_names() == ["first_wait", "reminder", "one_day", "discount"]
        assert ws.definition.delivery.caps[0].max == 3
        assert set(ws.definition.journeys) == {"abandoned_cart", "welcome_series", "win_back"}


@pytest.mark.parametrize(
    ("old", "new", "message", "hint"),
    [
        ("send: cart_reminder,", "send: cart_remindr,", "unknown template 'cart_remindr'",
         "did you mean 'cart_reminder'?"),
        ("{segment_entry: lapsing}", "{segment_entry: lapsng}", "unknown segment 'lapsng'",
         "did you mean 'lapsing'?"),
        ("{event: Order Completed}         #", "{event: Order Complted}         #",
         "unknown event 'Order Complted'", "did you mean 'Order Completed'?"),
        ('{rule: "emails_opened_30d >= 1", next: tips}',
         '{rule: "emails_opend_30d >= 1", next: tips}', "unknown trait 'emails_opend_30d'",
         "did you mean 'emails_opened_30d'?"),
        ("on_timeout: last_try", "on_timeout: last_tri", "unknown step 'last_tri'",
         "did you mean 'last_try'?"),
        ("send: cart_reminder, topic: offers}", "send: cart_reminder, topic: offer}",
         "unknown consent topic 'offer'", "did you mean 'offers'?"),
    ],
)  # fmt: skip
def test_a_bad_reference_is_refused_at_its_position(
    ws_path: Path, old: str, new: str, message: str, hint: str
) -> None:
    edit(ws_path, old, new)
    [error] = errors_of(ws_path)
    assert message in error.message
    assert error.hint == hint
    assert error.location is not None
    assert error.location.line == line_of(ws_path, new)
    assert error.key_path is not None and error.key_path.startswith("journeys.")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{name: first_wait, wait: 2h}", "{name: first_wait, wait: 2 hourz}", "duration"),
        ("{name: first_wait, wait: 2h}", "{name: first_wait, wait: 2h, send: x}",
         "a step needs exactly one of"),
        ("        timeout: 14d\n", "", "'wait_until' needs a 'timeout'"),
        ("reentry: 7d ", "reentry: weekly ", "'once', 'every_time' or a duration"),
        ("reentry: 7d ", "reentry: every_tme ", "did you mean 'every_time'?"),
        ("late_after: 1d ", "late_after: tomorrow ", "duration"),
        ("late_after: 1d ", "late_after: 0s ", "'late_after' must be a positive duration"),
        ("{name: first_wait, wait: 2h}", "{name: first_wait, wiat: 2h}", "unknown key 'wiat'"),
    ],
)  # fmt: skip
def test_a_malformed_step_is_refused_at_its_position(
    ws_path: Path, old: str, new: str, message: str
) -> None:
    edit(ws_path, old, new)
    errors = errors_of(ws_path)
    assert any(message in e.message or message in str(e) for e in errors), errors
    assert all(e.location is not None and e.location.line > 1 for e in errors)


def test_split_percentages_must_add_up(ws_path: Path) -> None:
    edit(
        ws_path,
        "      - {name: end, exit: completed}\n",
        "      - {name: end, exit: completed}\n      - name: halves\n        split:\n"
        "          - {percent: 50, next: tips}\n          - {percent: 40}\n",
    )
    [error] = errors_of(ws_path)
    assert "add up to 100" in error.message
    assert error.key_path == "journeys.welcome_series.steps[5]"


def test_cli_lists_and_shows_with_json(ws_path: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("-w", str(ws_path), "journeys", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["abandoned_cart", "welcome_series", "win_back"]
    result = cli("-w", str(ws_path), "journeys", "show", "abandoned_cart", "--format", "json")
    view = json.loads(result.stdout)
    assert [s["step"] for s in view["per_step"]] == [
        "first_wait", "reminder", "one_day", "discount",
    ]  # fmt: skip
    result = cli("-w", str(ws_path), "journeys", "show", "abandoned_crat")
    assert result.returncode == 1
    assert "did you mean 'abandoned_cart'?" in result.stderr
    result = cli("-w", str(ws_path), "journeys", "run", "--until", "yesterday")
    assert result.returncode == 2 and "--until" in result.stderr
    # a later instant would send now what is due then (tried as a new user would)
    result = cli("-w", str(ws_path), "journeys", "run", "--until", "+3h")
    assert result.returncode == 2 and "is later than now" in result.stderr


def test_the_json_schema_accepts_the_examples_and_refuses_a_bad_step(
    ws_path: Path, cli: Callable[..., CliResult]
) -> None:
    import jsonschema
    from ruamel.yaml import YAML

    result = cli("journeys", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    data = YAML(typ="safe").load((ws_path / "segmint.yaml").read_text())
    section = {"journeys": data["journeys"], "delivery": data["delivery"]}
    jsonschema.validate(section, schema)
    section["journeys"]["abandoned_cart"]["steps"][0]["wiat"] = "2h"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(section, schema)

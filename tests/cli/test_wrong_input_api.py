"""``segmint webhooks`` and ``segmint models`` fed the wrong things, as a newcomer types them.

The example shop of ``segmint init``; each mistake is one clear line naming it (a file and
line for ``segmint.yaml``), and what a script reads with ``--format json`` is JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.cli.conftest import SHOP_AS_OF
from tests.conftest import cli_now

Run = Callable[..., Any]  # tests/conftest.py's ``cli`` fixture (a CliResult)


def add_webhook(shop: Path, url: str) -> None:
    yaml = shop / "segmint.yaml"
    yaml.write_text(yaml.read_text() + f"\nwebhooks:\n  crm:\n    url: '{url}'\n")


@pytest.mark.parametrize(
    "url",
    ["ftp://hooks.example/crm", "hooks.example/crm", "http://", "javascript:alert(1)",
     "file:///etc/passwd", "https://hooks example/crm"],
)  # fmt: skip
def test_a_webhook_url_that_is_not_http_is_located(cli: Run, shop: Path, url: str) -> None:
    """It was accepted, and every delivery failed and was retried for hours before going dead."""
    add_webhook(shop, url)
    out = cli("-w", str(shop), "webhooks", "status")
    assert out.returncode == 1, out
    assert out.stdout == ""
    line = out.stderr.strip().splitlines()[0]
    assert "segmint.yaml:" in line and "(at webhooks.crm.url)" in line, line
    assert "http(s) URL" in line and url in line


def test_webhooks_deliver_answers_json_for_a_script(
    cli: Run, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--format json` was no option of `webhooks deliver`: a script had to parse a sentence."""
    cli_now(monkeypatch, "2026-11-02T00:00:00Z")
    monkeypatch.setenv("SEGMINT_WEBHOOK_SECRET", "a-webhook-secret")
    add_webhook(shop, "http://127.0.0.1:9/crm")
    args = ("-w", str(shop), "webhooks", "deliver", "--as-of", SHOP_AS_OF)
    out = cli(*args, "--format", "json")
    assert out.returncode == 0, out
    assert json.loads(out.stdout) == {
        "as_of": "2026-11-01T00:00:00+00:00", "delivered": 0, "retrying": 0, "dead": 0, "dropped": 0
    }  # fmt: skip
    assert cli(*args).stdout.strip() == "delivered 0, retrying 0, dead 0"

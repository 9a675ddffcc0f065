"""``segmint webhooks`` and ``segmint models`` fed the wrong things, as a newcomer types them.

The example shop of ``segmint init``; each mistake is one clear line naming it (a file and
line for ``segmint.yaml``), and what a script reads with ``--format json`` is JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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

"""Privacy, models, the console's lookups and scale-out options fed the wrong things.

As ``test_wrong_input.py``: each wrong input gets one clear line naming it, the exit status
of the rest of the CLI (2 for a usage error) and no traceback; nothing is done half-way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import refreshed_shop

Run = Callable[..., Any]  # tests/conftest.py's ``cli`` fixture (a CliResult)

AS_OF = "2026-11-01T00:00:00Z"


@pytest.fixture
def shop(cli: Run, tmp_path: Path) -> Path:
    """``segmint init`` with its sample contacts and orders ingested and refreshed."""
    return refreshed_shop(cli, tmp_path, AS_OF)


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

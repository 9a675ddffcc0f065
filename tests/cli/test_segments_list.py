"""``segments list --tag``: a tag no segment has is said, with the nearest tag."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def test_an_unknown_tag_is_noted_with_did_you_mean(cli: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "shop"
    assert cli("init", str(target)).returncode == 0
    result = cli("-w", str(target), "segments", "list", "--tag", "revnue", "--format", "json")
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert "no segment has tag 'revnue'; did you mean 'revenue'?" in result.stderr
    known = cli("-w", str(target), "segments", "list", "--tag", "revenue", "--format", "json")
    assert {r["name"] for r in json.loads(known.stdout)} == {"vip", "high_value"}
    assert known.stderr == ""

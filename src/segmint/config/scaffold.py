"""``segmint init``: scaffold a workspace folder from the packaged example."""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

from ruamel.yaml import YAML

from segmint.config.errors import ConfigError

WORKSPACE_FILE = "segmint.yaml"
STATE_DIR = ".segmint"
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def scaffold(target: Path, *, name: str | None = None) -> Path:
    """Create a workspace in ``target`` (created if missing) and return its path.

    Raises:
        ConfigError: If ``target`` already holds a workspace file.
    """
    if (target / WORKSPACE_FILE).exists():
        raise ConfigError(
            f"{target / WORKSPACE_FILE} already exists",
            hint="choose an empty folder, or edit the existing workspace",
        )
    target.mkdir(parents=True, exist_ok=True)
    example = resources.files("segmint.config") / "example"
    text = (example / WORKSPACE_FILE).read_text(encoding="utf-8")
    if name:
        text = text.replace("name: example-shop", f"name: {_scalar(name)}", 1)
    (target / WORKSPACE_FILE).write_text(text, encoding="utf-8")
    for folder in ("templates", "data", "tests/segments"):  # fixtures: `segmint test`
        (target / folder).mkdir(parents=True, exist_ok=True)
        for item in example.joinpath(*folder.split("/")).iterdir():
            if item.is_file():
                text = item.read_text(encoding="utf-8")
                (target / folder / item.name).write_text(text, encoding="utf-8")
    (target / STATE_DIR).mkdir(exist_ok=True)
    # .segmint-keys/ holds the master key and profile-key vault once PII encryption is on
    (target / ".gitignore").write_text(f"{STATE_DIR}/\n.segmint-keys/\n", encoding="utf-8")
    return target


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain when that is safe, else double-quoted (JSON)."""
    if _PLAIN.fullmatch(text) and YAML(typ="safe").load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def copy_tree(source: Path, target: Path) -> None:
    """Copy a folder tree (used by the demo to lay out extra files)."""
    shutil.copytree(source, target, dirs_exist_ok=True)

"""The CLI: init, status, --version and the error line, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from segmint import __version__


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segmint", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_init_then_status_json(tmp_path: Path) -> None:
    target = tmp_path / "shop"
    assert run("init", str(target)).returncode == 0
    result = run("-w", str(target), "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["store"]["backend"] == "duckdb"
    assert info["store"]["schema_version"] >= 1
    assert info["counts"]["events"] == 0
    assert info["counts"]["segments"] == 7


def test_init_refuses_existing_workspace(tmp_path: Path) -> None:
    assert run("init", str(tmp_path / "w")).returncode == 0
    result = run("init", str(tmp_path / "w"))
    assert result.returncode == 1
    assert "already exists" in result.stderr


def test_missing_workspace_is_one_clear_line(tmp_path: Path) -> None:
    result = run("-w", str(tmp_path / "nowhere"), "status")
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "segmint init" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_adds_traceback(tmp_path: Path) -> None:
    result = run("--debug", "-w", str(tmp_path / "nowhere"), "status")
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_config_error_names_file_and_line(tmp_path: Path) -> None:
    target = tmp_path / "shop"
    run("init", str(target))
    yaml_file = target / "segmint.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("priority: 100", "priorty: 100"))
    result = run("-w", str(target), "status")
    assert result.returncode == 1
    assert f"{yaml_file}:39:5: unknown key 'priorty'" in result.stderr
    assert "did you mean 'priority'?" in result.stderr

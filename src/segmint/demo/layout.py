"""The demo's folders: the workspace it resets on every run, and the output folder.

The demo deletes only folders it made itself, recognised by a marker file; any other
non-empty folder is refused, so a mistyped ``--dir`` never wipes someone's work.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from segmint.demo.errors import DemoError

MARKER = ".segmint-demo"
"""The file that marks a folder as made by ``segmint demo`` (and so safe to reset)."""


def reset_folder(folder: Path, role: str) -> Path:
    """Empty ``folder`` (creating it) if it is missing, empty, or made by the demo.

    Args:
        folder: The folder to reset.
        role: What the folder is for, used in the error message.

    Raises:
        DemoError: If the folder exists, holds files, and was not made by the demo.
    """
    check_resettable(folder, role)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text(
        "Made by 'segmint demo', which empties this folder on every run.\n", encoding="utf-8"
    )
    return folder


def check_resettable(folder: Path, role: str) -> None:
    """Make sure the demo may reset ``folder``: missing, empty, or made by the demo.

    Raises:
        DemoError: If the folder is a file, or holds files and was not made by the demo.
    """
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DemoError(f"the demo {role} {folder} is a file, not a folder")
    if any(folder.iterdir()) and not (folder / MARKER).exists():
        raise DemoError(
            f"{folder} is not empty and was not made by 'segmint demo'; "
            f"the demo resets its {role} on every run, so it will not touch this one. "
            "Choose another folder with --dir/--out."
        )


def check_separate(workspace: Path, out: Path) -> None:
    """Refuse a workspace and an output folder that are the same or nested.

    Raises:
        DemoError: If one folder is, or is inside, the other (resetting one would wipe both).
    """
    a, b = workspace.resolve(), out.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise DemoError(
            f"the demo workspace ({workspace}) and output folder ({out}) must be separate "
            "folders, neither inside the other: the demo resets both"
        )


def lay_out_workspace(folder: Path) -> Path:
    """Reset ``folder`` and copy the packaged demo workspace into it.

    That is ``segmint.yaml``, ``templates/`` and the segment fixtures ``tests/segments/``.
    """
    reset_folder(folder, "workspace")
    packaged = resources.files("segmint.demo") / "workspace"
    (folder / "segmint.yaml").write_text(
        (packaged / "segmint.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    templates = folder / "templates"
    templates.mkdir()
    for item in (packaged / "templates").iterdir():
        if item.is_file() and item.name.endswith(".html"):
            (templates / item.name).write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
    fixtures = folder / "tests" / "segments"  # `segmint test`
    fixtures.mkdir(parents=True)
    for item in packaged.joinpath("tests", "segments").iterdir():
        if item.is_file() and item.name.endswith(".yaml"):
            (fixtures / item.name).write_text(item.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / ".segmint").mkdir()
    (folder / ".gitignore").write_text(".segmint/\n", encoding="utf-8")
    return folder

"""The Python facade over a workspace folder; the CLI and the REST API go through it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segmint.config.errors import ConfigError, ConfigErrors
from segmint.config.loader import Positions, load_workspace_def, read_yaml
from segmint.config.model import WorkspaceDef
from segmint.config.scaffold import STATE_DIR, WORKSPACE_FILE, scaffold
from segmint.rules.workspace import check_workspace
from segmint.store import LATEST_VERSION, Store, current_version, open_store

if TYPE_CHECKING:
    from segmint.privacy.protect import Privacy


@dataclass
class Workspace:
    """A workspace: its folder, its validated definitions and (opened on demand) its store.

    Attributes:
        path: The workspace folder.
        definition: The validated contents of ``segmint.yaml``.
    """

    path: Path
    definition: WorkspaceDef
    _store: Store | None = None
    reads_only: bool = False
    """Open the store for reading only: while ``serve`` holds DuckDB, read through it."""
    _privacy: Privacy | None = None
    finished_erasures: dict[str, int] = field(default_factory=dict)
    """The keys destroyed, by receipt id, of erasures stopped half-way that opening the vault
    finished (:func:`segmint.privacy.erased.finish_erasures`)."""
    _listeners: list[Callable[[WorkspaceDef], None]] = field(default_factory=list)

    def on_definition(self, listener: Callable[[WorkspaceDef], None]) -> None:
        """Call ``listener`` with the new definitions after each :meth:`replace_definition`."""
        self._listeners.append(listener)

    def replace_definition(self, definition: WorkspaceDef) -> None:
        """Take ``definition`` (just saved to ``segmint.yaml``) and tell the listeners.

        A server's real-time engine listens here, so a save through the management API or
        the console applies without a restart.
        """
        self.definition = definition
        for listener in self._listeners:
            listener(definition)

    @classmethod
    def open(cls, path: Path | str = ".", *, reads_only: bool = False) -> Workspace:
        """Load the workspace at ``path`` (a folder, or its ``segmint.yaml``).

        Raises:
            ConfigError: If the folder or its workspace file does not exist or is invalid.
        """
        folder = Path(path)
        if folder.name == WORKSPACE_FILE:
            folder = folder.parent
        if not folder.exists():
            raise ConfigError(
                f"workspace folder {folder} does not exist",
                hint=f"create one with 'segmint init {folder}'",
            )
        if not (folder / WORKSPACE_FILE).exists():
            raise ConfigError(
                f"{folder} has no {WORKSPACE_FILE}",
                hint=f"create one with 'segmint init {folder}', or pass --workspace",
            )
        definition = load_workspace_def(folder / WORKSPACE_FILE)
        problems = check_definition(definition, folder / WORKSPACE_FILE)
        if problems:
            raise ConfigErrors(problems)
        return cls(path=folder, definition=definition, reads_only=reads_only)

    @classmethod
    def init(cls, path: Path | str, *, name: str | None = None) -> Workspace:
        """Scaffold a new workspace at ``path`` and open it."""
        scaffold(Path(path), name=name)
        return cls.open(path)

    @property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use."""
        if self._store is None:
            self._store = open_store(
                self.definition.store, workspace_dir=self.path, reads_only=self.reads_only
            )
            # Intake and the read edges find the privacy settings through the store (the
            # identity resolver hashes emails, profile reads unseal PII) when a key is set.
            self._store.privacy = _LazyPrivacy(self)  # type: ignore[attr-defined]
        return self._store

    @property
    def privacy(self) -> Privacy:
        """The privacy settings at work: keys, sealing, salt (``segmint.privacy``)."""
        if self._privacy is None:
            from segmint.privacy.protect import Privacy

            self._privacy = Privacy(self.path, self.definition, self.store)
            if not hasattr(self.store, "privacy"):  # a store given to the constructor
                self.store.privacy = self._privacy  # type: ignore[attr-defined]
            if self._privacy.keyring is not None and not self.reads_only:
                from segmint.privacy.erased import finish_erasures

                # the keys of an erasure whose process stopped before the vault deleted them
                self.finished_erasures = finish_erasures(self._privacy)
        return self._privacy

    @property
    def state_dir(self) -> Path:
        """The folder for local state (the embedded database, outboxes)."""
        return self.path / STATE_DIR

    @property
    def templates_dir(self) -> Path:
        """The folder holding email templates."""
        return self.path / "templates"

    def status(self) -> dict[str, Any]:
        """Summarise the workspace: backend, schema version and counts."""
        store = self.store
        counts = {
            name: store.fetchall(f"SELECT count(*) FROM {table}")[0][0]
            for name, table in (
                ("events", "events"),
                ("profiles", "profiles"),
                ("memberships", "memberships"),
                ("quarantined", "quarantine"),
                ("realtime_failures", "realtime_failures"),
            )
        }
        return {
            "workspace": self.definition.name,
            "path": str(self.path.resolve()),
            "store": {
                "backend": store.dialect,
                "url": store.url,
                "schema_version": current_version(store),
                "latest_schema_version": LATEST_VERSION,
                "from_environment": bool(os.environ.get("SEGMINT_DATABASE_URL")),
            },
            "counts": counts
            | {
                "traits": len(self.definition.traits),
                "segments": len(self.definition.segments),
                "campaigns": len(self.definition.campaigns),
            },
        }

    def close(self) -> None:
        """Close the store if it was opened."""
        if self._privacy is not None:
            self._privacy.close()
            self._privacy = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _LazyPrivacy:
    """The workspace's :class:`Privacy`, built on first use (most commands never need it)."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    def __getattr__(self, name: str) -> Any:
        return getattr(self._workspace.privacy, name)


def check_definition(definition: WorkspaceDef, path: Path) -> list[ConfigError]:
    """Every problem a loaded workspace file has beyond its keys and references.

    The rules (:func:`segmint.rules.check_workspace`), the journeys, and, when those are
    sound, whether the segments can be ordered (:func:`segmint.membership.check_plan`):
    what ``segmint segments validate`` reports and what every command refuses to start on.

    Args:
        definition: The workspace loaded from ``path`` (its ``segmint.yaml``).
        path: The file, read again for positions.
    """
    problems = check_workspace(definition, path)
    if definition.journeys:
        from segmint.journeys.validate import check_journeys

        problems += check_journeys(definition, path, path.parent / "templates")
    return problems or _plan_problems(definition, path)


def _plan_problems(definition: WorkspaceDef, path: Path) -> list[ConfigError]:
    """The segment no plan can order, at its key in ``path`` (none when they can be)."""
    from segmint.membership import SegmentStructureError, check_plan

    try:
        check_plan(definition)
    except SegmentStructureError as exc:
        data, text = read_yaml(path)
        keys = ["segments", exc.segment] if exc.segment is not None else ["segments"]
        return [Positions(data, str(path), text).error(str(exc), keys, key=True)]
    return []

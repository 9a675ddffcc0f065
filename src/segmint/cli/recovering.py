"""The workspace the CLI opens: caught up after a server stopped without its final save.

Only reading ``meta`` is paid on every command; the real-time engine is imported and run
(:func:`segmint.membership.recovery.catch_up_unsaved`) only after such a stop.
"""

from __future__ import annotations

from segmint.clock import SystemClock
from segmint.store import Store
from segmint.traits.state import stopped_unsaved
from segmint.workspace import Workspace


class RecoveringWorkspace(Workspace):
    """A workspace that catches up an unsaved real-time stop when its store is first opened.

    Every command that reads traits or memberships (``template preview``, ``campaign
    send``, ``segments show``) then sees what the events say, as ``profile show`` does.
    """

    @property
    def store(self) -> Store:
        """The store, opened (and migrated, and caught up) on first use."""
        fresh = self._store is None
        store = super().store
        if fresh and stopped_unsaved(store):
            from segmint.membership.recovery import catch_up_unsaved

            catch_up_unsaved(self, SystemClock().now())
        return store

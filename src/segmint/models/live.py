"""Real-time scores: which models follow a profile's events, and which a schedule.

* **CLV** is closed form, so it is re-scored for a profile on its next order: an intake
  listener (:class:`LiveClv`, registered after the real-time membership engine) reads the
  profile's order history, computes the outputs with the newest trained version, writes the
  score events and hands them to the engine, which moves memberships at once. The probability
  alive also decays with time alone; that change arrives with the scheduled scoring.
* **Propensity** and **clustering** are scored on their ``schedule`` (``segmint models
  score NAME``, run by cron or a scheduler; ``segmint models list`` says which are due):
  their features are whole trait snapshots and their trees are not worth re-running per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from segmint.models.errors import ModelNotTrainedError

if TYPE_CHECKING:
    from segmint.clock import Clock
    from segmint.events import Event
    from segmint.models.clv import ClvModel
    from segmint.workspace import Workspace


class LiveClv:
    """An intake listener re-scoring the CLV models of profiles that just ordered.

    Args:
        workspace: The workspace.
        engine: The real-time membership engine (anything with ``process(events, merges,
            as_of)``) that receives the score events.
        clock: The server's clock.
    """

    def __init__(self, workspace: Workspace, engine: Any, clock: Clock) -> None:
        self.workspace = workspace
        self.engine = engine
        self.clock = clock
        self.models = {n: d for n, d in workspace.definition.models.items() if d.kind == "clv"}
        self._fitted: dict[str, tuple[int, ClvModel] | None] = {}

    def reload(self) -> None:
        """Forget the loaded versions (after training, the next event loads the new one)."""
        self._fitted.clear()

    def _model(self, name: str) -> tuple[int, ClvModel] | None:
        from segmint.models.clv import ClvModel
        from segmint.models.registry import latest

        if name not in self._fitted:
            try:
                entry = latest(self.workspace.store, name, kind="clv")
                self._fitted[name] = (entry.version, ClvModel.from_dict(entry.params))
            except ModelNotTrainedError:
                self._fitted[name] = None
        return self._fitted[name]

    def __call__(self, events: Sequence[Event], merges: Sequence[Any] = ()) -> list[Event]:
        """Re-score the profiles of ``events`` that ordered; return the score events stored."""
        from segmint.models.data import order_history
        from segmint.models.scores import score_events, write_scores
        from segmint.models.service import clv_scores

        at = self.clock.now()
        stored: list[Event] = []
        for name, defn in self.models.items():
            pids = {e.profile_id for e in events if e.type == "track" and e.event == defn.event}
            fitted = self._model(name) if pids else None
            if fitted is None:
                continue
            version, model = fitted
            history = order_history(self.workspace.store, defn.event, defn.value, at, list(pids))
            scores = clv_scores(model, defn, history, at)
            stored += write_scores(self.workspace.store, score_events(name, version, at, scores))
        if stored:
            self.engine.process(stored, [], at)
        return stored


def attach_live_scores(workspace: Workspace, intake: Any, engine: Any, clock: Clock) -> LiveClv:
    """Register :class:`LiveClv` on ``intake`` (after ``engine``, which it feeds)."""
    live = LiveClv(workspace, engine, clock)
    if live.models:
        intake.add_listener(live)
    return live

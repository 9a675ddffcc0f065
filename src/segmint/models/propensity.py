"""Propensity: the probability that a profile orders (or, for churn, does not) within N days.

Two snapshots, both built by :func:`segmint.models.data.trait_frame` from events up to a
cut-off only, with labels read from the window after it:

* evaluation: features at ``as_of - 2N``, labels in ``(as_of - 2N, as_of - N]``, scored on
  the snapshot at ``as_of - N`` with labels in ``(as_of - N, as_of]`` (out of time);
* the model kept: fitted on the snapshot at ``as_of - N`` (the newest whose labels are known).

So no event after a snapshot's cut-off reaches its features, and nothing after ``as_of`` is
read at all. Trees are scikit-learn's ``HistGradientBoostingClassifier`` (NULL traits are
missing values it handles natively), calibrated by isotonic regression on out-of-fold predictions
(``CalibratedClassifierCV(ensemble=False)``: one model to score, not three).
Reported: AUC, log-loss, Brier score and a calibration table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from segmint.models.errors import NotEnoughDataError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Floats = npt.NDArray[np.float64]

MIN_PROFILES = 200
"""The fewest profiles a propensity snapshot must hold."""
MIN_CLASS = 20
"""The fewest profiles of each class (orderers and non-orderers) a snapshot must hold."""
SMALL = 50_000
"""Below this many rows, fitting and scoring run on one thread."""
MAX_TRAIN_ROWS = 250_000
"""Larger snapshots are sampled (deterministically) to this many rows for fitting."""


@dataclass(frozen=True)
class Snapshot:
    """Features at a cut-off and the labels of the window after it."""

    cutoff: datetime
    profile_ids: list[str]
    features: Floats
    labels: Any  # int array

    def check(self, what: str, target: Literal["purchase", "churn"]) -> None:
        """Refuse a snapshot too small to learn from, saying how much is needed."""
        import numpy as np

        n, positive = len(self.labels), int(np.sum(self.labels))
        word = "churned" if target == "churn" else "ordered"
        if n < MIN_PROFILES:
            raise NotEnoughDataError(
                f"the {what} snapshot at {self.cutoff:%Y-%m-%d %H:%M} has {n} profiles; a "
                f"propensity model needs at least {MIN_PROFILES} (with {MIN_CLASS} of each "
                "outcome): import more history or shorten 'within'"
            )
        if min(positive, n - positive) < MIN_CLASS:
            raise NotEnoughDataError(
                f"the {what} snapshot at {self.cutoff:%Y-%m-%d %H:%M} has {positive} of "
                f"{n} profiles that {word} and {n - positive} that did not; a propensity "
                f"model needs at least {MIN_CLASS} of each outcome"
            )


def fit(features: Floats, labels: Any, seed: int = 0) -> Any:
    """A calibrated gradient-boosted classifier fitted on ``features``/``labels``."""
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    if len(labels) > MAX_TRAIN_ROWS:
        pick = np.random.default_rng(seed).choice(len(labels), MAX_TRAIN_ROWS, replace=False)
        features, labels = features[np.sort(pick)], labels[np.sort(pick)]
    trees = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)
    model = CalibratedClassifierCV(trees, method="isotonic", cv=3, ensemble=False)
    with _threads(len(labels)):
        model.fit(features, labels)
    return model


def _threads(rows: int) -> Any:
    """Limit threads to one for small data; large data uses the library's default.

    On small data threads cost more than they give, and they oversubscribe a busy machine.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1 if rows < SMALL else None)


def predict(model: Any, features: Floats) -> Floats:
    """The calibrated probability of the positive class for each row."""
    import numpy as np

    with _threads(len(features)):
        return np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)


def metrics(labels: Any, scores: Floats, bins: int = 10) -> dict[str, Any]:
    """AUC, log-loss, Brier score, base rate and a calibration table (mean score vs rate)."""
    import numpy as np
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    table = [
        {"bin": f"{edges[i]:.1f}-{edges[i + 1]:.1f}", "profiles": int((which == i).sum()),
         "mean_score": round(float(scores[which == i].mean()), 4),
         "observed_rate": round(float(labels[which == i].mean()), 4)}
        for i in range(bins) if (which == i).any()
    ]  # fmt: skip
    return {
        "auc": round(float(roc_auc_score(labels, scores)), 4),
        "log_loss": round(float(log_loss(labels, np.clip(scores, 1e-6, 1 - 1e-6))), 4),
        "brier": round(float(brier_score_loss(labels, scores)), 4),
        "base_rate": round(float(np.mean(labels)), 4),
        "profiles": len(labels),
        "calibration": table,
    }


def windows(as_of: datetime, within: timedelta) -> dict[str, str]:
    """The data windows of a training run, for the registry."""
    return {
        "train_features_until": (as_of - 2 * within).isoformat(),
        "train_labels": f"({(as_of - 2 * within).isoformat()}, {(as_of - within).isoformat()}]",
        "final_features_until": (as_of - within).isoformat(),
        "final_labels": f"({(as_of - within).isoformat()}, {as_of.isoformat()}]",
        "evaluation": "out of time: trained on the first snapshot, scored on the second",
    }

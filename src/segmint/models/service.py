"""Train and score the models of a workspace: the API the CLI, the demo and tests call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from segmint.config.mlmodels import RFM, ModelDef
from segmint.models import clusters, propensity
from segmint.models.clv import ClvModel, fit_bgnbd, fit_gamma_gamma
from segmint.models.data import WEEK_DAYS, OrderHistory, day_number, order_history, trait_frame
from segmint.models.errors import (
    MLUnavailableError,
    ModelError,
    ModelNotTrainedError,
    ScoreInstantError,
    UnknownModelError,
)
from segmint.models.registry import ModelVersion, latest, record_scoring, register
from segmint.models.scores import score_events, write_scores

if TYPE_CHECKING:
    from segmint.events import Event
    from segmint.traits.catalog import TraitCatalog
    from segmint.workspace import Workspace

Progress = Callable[[str], None]


def model_def(workspace: Workspace, name: str) -> ModelDef:
    """The definition of model ``name``.

    Raises:
        UnknownModelError: With the nearest declared name.
    """
    from segmint.common import did_you_mean

    models = workspace.definition.models
    if name not in models:
        hint = did_you_mean(name, models) if models else None
        known = f" (models: {', '.join(sorted(models))})" if models else " (none declared)"
        raise UnknownModelError(f"unknown model {name!r}{known}" + (f"; {hint}" if hint else ""))
    return models[name]


def require_ml() -> None:
    """Check that the ``ml`` extra is installed.

    Raises:
        MLUnavailableError: Naming the missing library and how to install it.
    """
    import importlib.util

    for module in ("numpy", "scipy", "sklearn"):
        if importlib.util.find_spec(module) is None:
            raise MLUnavailableError(
                f"models need {module}, which is not installed: pip install 'segmint[ml]'"
            )


def _catalog(workspace: Workspace) -> TraitCatalog:
    from segmint.traits.validate import workspace_catalog

    return workspace_catalog(workspace)


def train(
    workspace: Workspace, name: str, as_of: datetime, *, trained_at: datetime | None = None,
    progress: Progress | None = None,
) -> ModelVersion:  # fmt: skip
    """Train model ``name`` on the events up to ``as_of`` and register a new version."""
    defn = model_def(workspace, name)
    require_ml()
    say = progress or (lambda _: None)
    fitter = {"clv": _train_clv, "propensity": _train_propensity, "clustering": _train_clusters}
    say(f"training {name} ({defn.kind})")
    features, window, metrics, report, params = fitter[defn.kind](workspace, defn, as_of, say)
    entry = ModelVersion(name, 0, defn.kind, trained_at or as_of, as_of,
                         defn.model_dump(mode="json"), features, window, metrics, report,
                         params)  # fmt: skip
    return register(workspace.store, entry)


def clv_inputs(history: OrderHistory, at: datetime) -> tuple[Any, Any, Any, Any]:
    """``(x, t_x, T, mean repeat spend)`` in weeks at ``at`` (see :mod:`segmint.models.clv`)."""
    import numpy as np

    today = day_number(at)
    x = history.days - 1
    t_x = (history.last_day - history.first_day) / WEEK_DAYS
    age = (today - history.first_day) / WEEK_DAYS
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(x > 0, history.repeat_spend / np.maximum(x, 1), 0.0)
    return x, t_x, age, mean


def _train_clv(workspace: Workspace, defn: ModelDef, as_of: datetime, say: Progress) -> tuple:  # type: ignore[type-arg]
    history = order_history(workspace.store, defn.event, defn.value, as_of)
    x, t_x, T, m = clv_inputs(history, as_of)
    say(f"fitting BG/NBD on {len(x)} customers")
    bg = fit_bgnbd(x, t_x, T)
    say("fitting Gamma-Gamma")
    model = ClvModel(bg, fit_gamma_gamma(x, m))
    window = {"orders_until": as_of.isoformat(), "customers": len(x),
              "repeat_customers": int((x > 0).sum()), "time_unit": "week",
              "same_day_orders": "merged"}  # fmt: skip
    params = model.to_dict()
    metrics = {"mean_p_alive": round(float(bg.p_alive(x, t_x, T).mean()), 4)}
    return (
        ["frequency", "recency", "T", "monetary"],
        window,
        metrics,
        {"parameters": params},
        params,
    )


def snapshot(
    workspace: Workspace, catalog: TraitCatalog, defn: ModelDef, names: list[str], cutoff: datetime
) -> propensity.Snapshot:
    """Features at ``cutoff`` and labels from ``(cutoff, cutoff + within]``."""
    import numpy as np

    from segmint.store import utcnow_naive

    store = workspace.store
    frame = trait_frame(store, catalog, names, cutoff)
    rows = store.fetchall(
        "SELECT DISTINCT profile_id FROM events WHERE type = 'track' AND event = ? "
        "AND timestamp > ? AND timestamp <= ?",
        [defn.event, utcnow_naive(cutoff), utcnow_naive(cutoff + defn.within)],
    )
    acted = {r[0] for r in rows}
    ids, values = frame.profile_ids, frame.values
    if defn.target == "churn":  # churn is defined for customers: an order before the cut-off
        buyers = set(order_history(store, defn.event, defn.value, cutoff).profile_ids)
        keep = np.array([p in buyers for p in ids], dtype=bool)
        ids, values = [p for p, k in zip(ids, keep, strict=True) if k], values[keep]
    hit = np.array([p in acted for p in ids], dtype=int)
    labels = 1 - hit if defn.target == "churn" else hit
    return propensity.Snapshot(cutoff, ids, values, labels)


def feature_traits(catalog: TraitCatalog, defn: ModelDef) -> list[str]:
    """The traits a propensity or clustering model reads (checked against the catalog)."""
    from segmint.common import did_you_mean
    from segmint.models.data import numeric_traits

    usable = numeric_traits(catalog)
    if defn.features is None:
        return usable if defn.kind == "propensity" else _rfm(catalog, defn)
    for name in defn.features:
        if name not in usable:
            why = "is not a number, boolean or timestamp trait" if name in catalog else "is unknown"
            hint = did_you_mean(name, usable)
            raise ModelError(f"feature {name!r} {why}" + (f"; {hint}" if hint else ""))
    return list(defn.features)


def _rfm(catalog: TraitCatalog, defn: ModelDef) -> list[str]:
    """Recency, frequency and monetary traits of the order event, found in the catalog."""
    on_event = [s for s in catalog if s.kind == "computed" and s.event == defn.event
                and s.within is None and s.where is None]  # fmt: skip
    pick = {
        "recency": [s for s in on_event if s.func in ("last", "max") and s.target == "timestamp"],
        "frequency": [s for s in on_event if s.func == "count"],
        "monetary": sorted(
            (s for s in on_event if s.func in ("avg", "sum") and s.target == defn.value),
            key=lambda s: s.func != "avg",
        ),
    }
    missing = [what for what in RFM if not pick[what]]
    if missing:
        raise ModelError(
            f"no trait gives the {' and '.join(missing)} of {defn.event!r} for RFM clustering: "
            "declare 'features:' or add traits (last: timestamp / count: events / "
            f"avg: {defn.value}, event: {defn.event})"
        )
    return [pick[what][0].name for what in RFM]


def _train_propensity(
    workspace: Workspace, defn: ModelDef, as_of: datetime, say: Progress
) -> tuple:  # type: ignore[type-arg]
    catalog = _catalog(workspace)
    names = feature_traits(catalog, defn)
    early = snapshot(workspace, catalog, defn, names, as_of - 2 * defn.within)
    late = snapshot(workspace, catalog, defn, names, as_of - defn.within)
    early.check("training", defn.target)
    late.check("evaluation", defn.target)
    say(f"training on {len(early.labels)} profiles, evaluating on {len(late.labels)}")
    scores = propensity.predict(propensity.fit(early.features, early.labels), late.features)
    metrics = propensity.metrics(late.labels, scores)
    say("fitting the model kept on the newest snapshot")
    model = propensity.fit(late.features, late.labels)
    report = {"target": defn.target, "within_days": defn.within.days}
    return names, propensity.windows(as_of, defn.within), metrics, report, model


def _train_clusters(workspace: Workspace, defn: ModelDef, as_of: datetime, say: Progress) -> tuple:  # type: ignore[type-arg]
    import numpy as np

    catalog = _catalog(workspace)
    names = feature_traits(catalog, defn)
    frame = trait_frame(workspace.store, catalog, names, as_of)
    keep = ~np.all(np.isnan(frame.values), axis=1)
    values = frame.values[keep]
    say(f"clustering {len(values)} profiles on {', '.join(frame.names)}")
    model = clusters.fit(frame.names, values, defn.k)
    described = clusters.describe(model, values)
    for item, rule in zip(described, clusters.propose_rules(model, values), strict=True):
        item["proposed_rule"] = rule["rule"]
        item["rule_precision"], item["rule_recall"] = rule["precision"], rule["recall"]
    metrics = {"k": model.k, "silhouette": {str(k): s for k, s in model.silhouettes.items()}}
    window = {"traits_at": as_of.isoformat(), "profiles": len(values)}
    return names, window, metrics, {"clusters": described}, model


@dataclass(frozen=True)
class ScoreResult:
    """What one scoring did."""

    model: str
    version: int
    as_of: datetime
    profiles: int
    events: list[Event]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"model": self.model, "version": self.version, "as_of": self.as_of.isoformat(),
                "profiles": self.profiles, "written": len(self.events)}  # fmt: skip


def compute_scores(
    workspace: Workspace, name: str, as_of: datetime, entry: ModelVersion | None = None
) -> dict[str, dict[str, float | None]]:
    """Profile → trait outputs of the model's newest version at ``as_of`` (nothing written)."""
    defn = model_def(workspace, name)
    require_ml()
    entry = entry or latest(workspace.store, name, kind=defn.kind)
    if defn.kind == "clv":
        return _score_clv(workspace, defn, entry, as_of)
    catalog = _catalog(workspace)
    _features_defined(entry, catalog)
    frame = trait_frame(workspace.store, catalog, entry.features, as_of)
    if defn.kind == "propensity":
        values = propensity.predict(entry.params, frame.values)
        return {
            p: {"score": round(float(v), 6)} for p, v in zip(frame.profile_ids, values, strict=True)
        }
    labels = entry.params.assign(frame.values)
    return {p: {"cluster": float(c)} for p, c in zip(frame.profile_ids, labels, strict=True)}


def _features_defined(entry: ModelVersion, catalog: TraitCatalog) -> None:
    """Refuse a version that learnt from traits no longer defined: it cannot be fed them.

    Raises:
        ModelNotTrainedError: Naming the traits, and saying to train again.
    """
    gone = [f for f in entry.features if f not in catalog]
    if gone:
        raise ModelNotTrainedError(
            f"model {entry.model!r} v{entry.version} learnt from trait(s) {', '.join(gone)}, "
            "no longer defined in segmint.yaml: it has not been trained on the traits there "
            f"are now: run 'segmint models train {entry.model}'"
        )


def _score_clv(
    workspace: Workspace, defn: ModelDef, entry: ModelVersion, as_of: datetime
) -> dict[str, dict[str, float | None]]:
    model = ClvModel.from_dict(entry.params)
    history = order_history(workspace.store, defn.event, defn.value, as_of)
    return clv_scores(model, defn, history, as_of)


def clv_scores(
    model: ClvModel, defn: ModelDef, history: OrderHistory, as_of: datetime
) -> dict[str, dict[str, float | None]]:
    """CLV outputs per profile of ``history`` (closed form: cheap enough for real time)."""
    x, t_x, T, m = clv_inputs(history, as_of)
    period, horizon = defn.within.days / WEEK_DAYS, defn.horizon.days / WEEK_DAYS
    columns = {
        "expected_purchases": model.bgnbd.expected_purchases(period, x, t_x, T),
        "probability_alive": model.bgnbd.p_alive(x, t_x, T),
        "expected_spend": model.spend.expected_spend(x, m),
        "clv": model.clv(horizon, x, t_x, T, m, defn.discount_rate),
    }
    out: dict[str, dict[str, float | None]] = {}
    for i, pid in enumerate(history.profile_ids):
        out[pid] = {k: round(float(v[i]), 6) for k, v in columns.items()}
    return out


def score(
    workspace: Workspace, name: str, as_of: datetime, *, progress: Progress | None = None
) -> ScoreResult:
    """Score every profile with the newest version and write the scores as events.

    Raises:
        UnknownModelError: ``name`` is not declared (any more): its traits are gone, so its
            stored versions are not scored.
        ModelNotTrainedError: It was never trained (as the kind it is declared now).
        ScoreInstantError: ``as_of`` is before the end of the data the version learnt from.
    """
    defn = model_def(workspace, name)
    entry = latest(workspace.store, name, kind=defn.kind)
    _learnt_by(entry, as_of)
    (progress or (lambda _: None))(f"scoring {name} v{entry.version}")
    scores = compute_scores(workspace, name, as_of, entry)
    written = write_scores(workspace.store, score_events(name, entry.version, as_of, scores))
    record_scoring(workspace.store, entry, as_of, as_of, len(scores), len(written))
    return ScoreResult(name, entry.version, as_of, len(scores), written)


def _learnt_by(entry: ModelVersion, as_of: datetime) -> None:
    """Refuse scores dated before the data ``entry`` learnt from ended.

    Such a score would use what happened after its own instant, and it is stored for good
    (score events are events): train a version at that instant to score then.

    Raises:
        ScoreInstantError: Naming both instants.
    """
    if as_of < entry.as_of:
        learnt, asked = entry.as_of.isoformat(), as_of.isoformat()
        raise ScoreInstantError(
            f"model {entry.model!r} v{entry.version} learnt from the events up to {learnt}, "
            f"after --as-of {asked}: its scores dated then would use what happened later; "
            f"score at {learnt} or later, or first train a version on the events up to then: "
            f"'segmint models train {entry.model} --as-of {asked}'"
        )

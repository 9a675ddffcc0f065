"""Typed definitions of ``models:`` in ``segmint.yaml``: CLV, propensity and clustering.

Each model produces one or more traits. Their names and types are known before anything is
trained, so a rule such as ``churn_risk > 0.7`` type-checks as soon as the model is declared
(a profile that was never scored has NULL there, like any trait that was never set).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from segmint.common import parse_duration

ModelKind = Literal["clv", "propensity", "clustering"]

OUTPUTS: dict[str, tuple[str, ...]] = {
    "clv": ("expected_purchases", "probability_alive", "expected_spend", "clv"),
    "propensity": ("score",),
    "clustering": ("cluster",),
}
"""The outputs of each kind of model; each becomes a number trait."""

RFM = ("recency", "frequency", "monetary")
"""The default clustering features, computed from the order event (see ``models/data.py``)."""


def _duration(value: Any) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return parse_duration(str(value))


class ModelDef(BaseModel):
    """One model and the traits it writes.

    Attributes:
        kind: ``clv`` (BG/NBD + Gamma-Gamma), ``propensity`` (gradient-boosted trees) or
            ``clustering`` (K-Means).
        event: The order event CLV and RFM read, and the event a propensity model predicts.
        value: The property holding an order's value (CLV's spend, RFM's monetary).
        target: For ``propensity``: ``purchase`` (the event happens within ``within``) or
            ``churn`` (it does not).
        within: For ``propensity``: the prediction window (also the training cut-off's
            distance from ``as_of``). For ``clv``: the horizon of ``expected_purchases``.
        horizon: For ``clv``: the horizon of ``clv`` and ``expected_spend``.
        discount_rate: For ``clv``: the yearly discount rate applied to future spend.
        features: Traits used as features (``propensity``: default every number and boolean
            trait; ``clustering``: default ``recency``, ``frequency``, ``monetary``).
        k: For ``clustering``: the number of clusters (default: chosen by silhouette, 2–8).
        schedule: How often ``segmint models score`` should be run (a duration such as
            ``1d``); ``segmint models list`` shows which models are due.
        traits: Output name → trait name (defaults: ``<model>_<output>``; a propensity
            model's ``score`` defaults to the model name, a CLV model's ``clv`` too).
        description: Free text shown in listings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ModelKind
    event: str = "Order Completed"
    value: str = "properties.total"
    target: Literal["purchase", "churn"] = "purchase"
    within: timedelta = timedelta(days=90)
    horizon: timedelta = timedelta(days=365)
    discount_rate: float = Field(default=0.0, ge=0.0, lt=1.0)
    features: tuple[str, ...] | None = None
    k: int | None = Field(default=None, ge=2, le=20)
    schedule: timedelta = timedelta(days=1)
    traits: dict[str, str] = Field(default_factory=dict)
    description: str | None = None

    _check_durations = field_validator("within", "horizon", "schedule", mode="before")(_duration)

    @model_validator(mode="after")
    def _known_outputs(self) -> ModelDef:
        unknown = sorted(set(self.traits) - set(OUTPUTS[self.kind]))
        if unknown:
            raise ValueError(
                f"a {self.kind} model has no output {unknown[0]!r} "
                f"(its outputs: {', '.join(OUTPUTS[self.kind])})"
            )
        if self.kind != "clustering" and self.k is not None:
            raise ValueError("'k' applies only to clustering models")
        if self.kind == "clv" and self.features is not None:
            raise ValueError("a clv model reads the order event only: it takes no 'features'")
        return self

    def output_traits(self, name: str) -> dict[str, str]:
        """Output → trait name, defaults filled in, for the model called ``name``."""
        named = {"score": name, "clv": name} if self.kind != "clustering" else {}
        return {o: self.traits.get(o, named.get(o, f"{name}_{o}")) for o in OUTPUTS[self.kind]}

"""Typed definitions of ``measure:``, ``experiments:`` and campaign ``variants:``.

Kept apart from :mod:`segmint.config.model` (which imports these for ``WorkspaceDef``), so
this module cannot import its ``Strict`` base; :class:`_Strict` has the same settings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from segmint.common import did_you_mean, parse_duration

if TYPE_CHECKING:
    from segmint.config.errors import ConfigError
    from segmint.config.loader import KeyPath, Positions
    from segmint.config.model import WorkspaceDef


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MeasureDef(_Strict):
    """How conversions are attributed to sends, and the workspace's global holdout.

    Attributes:
        conversion_event: The track event that counts as a conversion.
        revenue_properties: Properties read for its revenue, the first present wins.
        window: How long after a touch a conversion is still attributed to it (``5d``).
        attribution: ``engaged``: the last message the person opened (machine opens
            excluded) or clicked; ``sent``: the last message sent to them.
        global_holdout_percent: The share of all profiles (0–50 %) kept from every
            campaign and journey, to measure what marketing adds (incrementality).
    """

    conversion_event: str = "Order Completed"
    revenue_properties: tuple[str, ...] = ("total", "revenue")
    window: timedelta = timedelta(days=5)
    attribution: Literal["engaged", "sent"] = "engaged"
    global_holdout_percent: float = Field(default=0.0, ge=0.0, le=50.0)

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        return value if isinstance(value, timedelta) else parse_duration(str(value))


class VariantDef(_Strict):
    """One arm of an experiment.

    Attributes:
        name: The arm's name (``control``, ``b``, ``holdout``…); the first arm is the
            control every other arm is compared with.
        subject: The subject this arm sends (else the campaign's).
        template: The template this arm sends (else the campaign's).
        weight: The arm's share of the audience, relative to the other arms' weights.
        holdout: This arm is sent nothing (it measures what the campaign adds).
        delay: A send-time variant: this arm's message goes this long after the others'
            (``2h``, ``1d``): a campaign's next run after the delay sends it.
    """

    name: str
    subject: str | None = None
    template: str | None = None
    weight: float = Field(default=1.0, gt=0.0)
    holdout: bool = False
    delay: timedelta | None = None

    @field_validator("delay", mode="before")
    @classmethod
    def _delay(cls, value: Any) -> Any:
        if value is None or isinstance(value, timedelta):
            return value
        return parse_duration(str(value))

    @model_validator(mode="after")
    def _holdout_sends_nothing(self) -> VariantDef:
        if self.holdout and (self.subject or self.template or self.delay):
            raise ValueError(
                "a holdout arm is sent nothing: it takes no subject, template or delay"
            )
        if self.delay is not None and self.delay <= timedelta(0):
            raise ValueError("'delay' must be a positive duration")
        return self


class AutoWinnerDef(_Strict):
    """When an experiment picks its winner by itself.

    Once every arm has at least ``min_sample`` people, the assignment check (SRM) passes
    and an arm beats the control significantly (Holm-corrected, the experiment's test),
    that arm wins (or the control, if it beats every other arm significantly); the
    decision is recorded, and everyone not yet assigned gets the winner from then on.

    Attributes:
        min_sample: The fewest people per arm before a winner may be picked.
    """

    min_sample: int = Field(default=100, ge=1)


Metric = Literal["open", "click", "conversion", "revenue"]


class ExperimentDef(_Strict):
    """An experiment on a campaign: its arms, what decides it, and how it is read.

    Attributes:
        campaign: The campaign whose audience is split.
        variants: The arms, the control first (at least two).
        metric: The primary metric: ``open``, ``click``, ``conversion`` (rates per
            recipient) or ``revenue`` (per recipient).
        sequential: Read the results with the always-valid sequential test (safe to look
            at any time) instead of the fixed-sample one.
        alpha: The significance level (two-sided).
        description: What the experiment is for.
        auto_winner: Pick the winner by itself and send it to the rest of the audience.
    """

    campaign: str
    variants: tuple[VariantDef, ...]
    metric: Metric = "conversion"
    sequential: bool = False
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    description: str | None = None
    auto_winner: AutoWinnerDef | None = None

    @model_validator(mode="after")
    def _distinct_names(self) -> ExperimentDef:
        names = [v.name for v in self.variants]
        if len(names) < 2:
            raise ValueError("an experiment needs at least two arms (the control first)")
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must differ: {names}")
        return self


def experiments_of(ws: WorkspaceDef) -> dict[str, tuple[ExperimentDef, KeyPath]]:
    """Return every experiment by name with the key path of its definition.

    A campaign's ``variants:`` is an experiment named after the campaign (primary metric
    ``conversion``).
    """
    found: dict[str, tuple[ExperimentDef, KeyPath]] = {
        name: (exp, ["experiments", name]) for name, exp in ws.experiments.items()
    }
    for name, campaign in ws.campaigns.items():
        if campaign.variants:
            exp = ExperimentDef(
                campaign=name, variants=campaign.variants, auto_winner=campaign.auto_winner
            )
            found.setdefault(name, (exp, ["campaigns", name, "variants"]))
    for journey_name, journey in ws.journeys.items():
        for index, (step_name, step) in enumerate(
            zip(journey.step_names(), journey.steps, strict=True)
        ):
            arms = tuple(v for v in step.variants if isinstance(v, VariantDef))
            if arms:
                exp = ExperimentDef(
                    campaign=journey_step_campaign(journey_name, step_name), variants=arms,
                    metric=step.metric, auto_winner=step.auto_winner,
                )  # fmt: skip
                path: KeyPath = ["journeys", journey_name, "steps", index, "variants"]
                found.setdefault(f"{journey_name}.{step_name}", (exp, path))
    return found


def journey_step_campaign(journey: str, step: str) -> str:
    """What a journey step's messages carry as their campaign (before ``:ENTRY``)."""
    return f"journey:{journey}:{step}"


GLOBAL_HOLDOUT = "global_holdout"
"""The name the workspace's global holdout is reported under, as an experiment; reserved."""


def check_experiments(ws: WorkspaceDef, positions: Positions) -> list[ConfigError]:
    """Check what experiments refer to: campaigns, and one experiment per campaign.

    The name ``global_holdout`` is the global holdout's: an experiment of that name would
    be listed beside it, reported as it, and drawn from the buckets that pick it.
    """
    errors: list[ConfigError] = []
    owner: dict[str, str] = {}
    for name, (exp, path) in experiments_of(ws).items():
        if name == GLOBAL_HOLDOUT:
            msg = (f"'{GLOBAL_HOLDOUT}' is the global holdout's name "
                   "(measure.global_holdout_percent): name the experiment otherwise")  # fmt: skip
            errors.append(positions.error(msg, path))
        if path[0] == "journeys":
            continue  # a journey step's own arms: its step is the campaign
        if exp.campaign not in ws.campaigns:
            hint = did_you_mean(exp.campaign, list(ws.campaigns))
            msg = f"unknown campaign '{exp.campaign}' in experiment '{name}'"
            errors.append(positions.error(msg, [*path, "campaign"], hint=hint))
        elif exp.campaign in owner:
            msg = (
                f"campaign '{exp.campaign}' is already split by experiment "
                f"'{owner[exp.campaign]}': one experiment per campaign"
            )
            errors.append(positions.error(msg, path))
        owner.setdefault(exp.campaign, name)
    if ws.experiments and any(c.variants for c in ws.campaigns.values()):
        for name, campaign in ws.campaigns.items():
            if campaign.variants and name in ws.experiments:
                msg = f"experiment '{name}' and campaign '{name}' variants share a name"
                errors.append(positions.error(msg, ["campaigns", name, "variants"]))
    return errors

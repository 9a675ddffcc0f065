"""Typed definitions of journeys and of the delivery policy (``journeys:``, ``delivery:``).

A journey is a trigger (segment entry or exit, or an event), a re-entry policy, an optional
audience segment, exit conditions checked before every step, and a list of steps. Steps run
in order; ``branch``, ``split`` and ``wait_until`` name the step they continue with
(``next``), and the last step ends the journey. References to segments, templates, events
and traits are checked by :mod:`segmint.journeys.validate` with their positions.

The delivery policy (frequency caps, quiet hours, send-time optimisation) applies to
campaigns and journeys alike (:mod:`segmint.deliver.policy`).
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from segmint.common import did_you_mean, parse_duration
from segmint.config.measure import AutoWinnerDef, Metric, VariantDef
from segmint.config.model import Strict

STEP_KINDS = ("send", "wait", "wait_until", "branch", "split", "exit")
"""The kinds of journey step; a step has exactly one of these keys."""

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _duration(value: Any) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return parse_duration(str(value))


class Condition(Strict):
    """An event (optionally filtered by its properties) or a rule over the profile.

    Attributes:
        event: An event name: the condition holds once the profile performs it after
            entering the journey.
        where: A filter over that event's properties, in the rule language.
        rule: A rule over the profile's traits and segments, in the rule language.
    """

    event: str | None = None
    where: str | None = None
    rule: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        if (self.event is None) == (self.rule is None):
            raise ValueError("a condition needs exactly one of 'event' or 'rule'")
        if self.where is not None and self.event is None:
            raise ValueError("'where' filters an event: give 'event' with it")
        return self


class Trigger(Strict):
    """What starts a journey for a profile.

    Attributes:
        segment_entry: The profile enters this segment.
        segment_exit: The profile leaves this segment.
        event: The profile performs this event.
        where: A filter over the event's properties, in the rule language.
    """

    segment_entry: str | None = None
    segment_exit: str | None = None
    event: str | None = None
    where: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        given = [self.segment_entry, self.segment_exit, self.event]
        if sum(v is not None for v in given) != 1:
            raise ValueError(
                "a trigger needs exactly one of 'segment_entry', 'segment_exit' or 'event'"
            )
        if self.where is not None and self.event is None:
            raise ValueError("'where' filters the trigger event: give 'event' with it")
        return self


class Route(Strict):
    """One way out of a ``branch`` (a rule or a segment) or a ``split`` (a percentage).

    Attributes:
        rule: A rule over the profile (``branch``).
        segment: A segment the profile is in (``branch``).
        percent: This route's share of profiles (``split``; the shares add up to 100).
        next: The step to continue with (the journey ends when omitted).
    """

    rule: str | None = None
    segment: str | None = None
    percent: float | None = Field(default=None, gt=0, le=100)
    next: str | None = None


Variant = Annotated[
    Annotated[str, Tag("<template>")] | Annotated[VariantDef, Tag("<arm>")],
    Discriminator(lambda v: "<template>" if isinstance(v, str) else "<arm>"),
]
"""A send step's variant: a template name, or an experiment arm (a mapping). Validated as
the one its shape says, so a typo in an arm is reported once, as an arm's."""


class Step(Strict):
    """One journey step: exactly one of its kinds (see :data:`STEP_KINDS`).

    Attributes:
        name: The step's name (default ``step<N>``); instances remember it, so name the
            steps of a live journey: a step removed from the definition exits the
            instances waiting on it (reason ``definition_changed``).
        send: The template to send.
        topic: The consent topic of the message (the workspace's first topic by default).
        subject: A subject overriding the template's.
        from_: The sender (the journey's ``from`` by default).
        variants: Templates to choose from deterministically per profile, or an
            experiment's arms (``{name, subject, template, delay, weight, holdout}``, the
            control first): arms are assigned, recorded and reported like a campaign's
            (experiment ``JOURNEY.STEP``).
        metric: The experiment's primary metric (``open``, ``click``, ``conversion``,
            ``revenue``).
        auto_winner: Let the experiment pick its winner (see ``experiments:``).
        send_time: ``now`` (default) or ``optimal``: send at the profile's best hour of the
            week (send-time optimisation).
        when_capped: ``delay`` to the next allowed instant or ``skip`` the message when a
            frequency cap is reached (the journey's setting by default).
        wait: A duration such as ``2h`` or ``1d``.
        wait_until: A condition to wait for (an event, or a rule becoming true).
        timeout: How long ``wait_until`` waits at most.
        on_timeout: The step after a timeout (default: the following step).
        branch: Routes checked in order, the first match wins.
        default: The step when no ``branch`` route matches (default: the following one).
        split: Routes with percentages, chosen deterministically by profile and journey.
        exit: Ends the journey here, with this reason.
        next: The step to continue with (default: the following one; the end after the
            last).
    """

    name: str | None = None
    send: str | None = None
    topic: str | None = None
    subject: str | None = None
    from_: str | None = Field(default=None, alias="from")
    variants: tuple[Variant, ...] = ()
    metric: Metric = "conversion"
    auto_winner: AutoWinnerDef | None = None
    send_time: Literal["now", "optimal"] = "now"
    when_capped: Literal["delay", "skip"] | None = None
    wait: timedelta | None = None
    wait_until: Condition | None = None
    timeout: timedelta | None = None
    on_timeout: str | None = None
    branch: tuple[Route, ...] | None = None
    default: str | None = None
    split: tuple[Route, ...] | None = None
    exit: str | None = None
    next: str | None = None

    _check_wait = field_validator("wait", "timeout", mode="before")(_duration)

    @property
    def kind(self) -> str:
        """Which kind of step this is."""
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = f" (found {', '.join(kinds)})" if kinds else ""
            raise ValueError(f"a step needs exactly one of {', '.join(STEP_KINDS)}{found}")
        if self.wait is not None and self.wait <= timedelta(0):
            raise ValueError("'wait' must be a positive duration")
        if self.wait_until is not None and self.timeout is None:
            raise ValueError("'wait_until' needs a 'timeout' (how long to wait at most)")
        arms = [v for v in self.variants if isinstance(v, VariantDef)]
        if arms and len(arms) != len(self.variants):
            raise ValueError("'variants' are all template names or all arms, not both")
        if arms and len(arms) < 2:
            raise ValueError("an experiment needs at least two arms (the control first)")
        if len({v.name for v in arms}) != len(arms):
            raise ValueError(f"variant names must differ: {[v.name for v in arms]}")
        if self.split is not None:
            shares = [r.percent for r in self.split]
            if any(p is None for p in shares) or abs(sum(p or 0 for p in shares) - 100) > 1e-9:
                raise ValueError("the 'percent' of every split route must add up to 100")
        if self.branch is not None:
            for route in self.branch:
                if (route.rule is None) == (route.segment is None):
                    raise ValueError("a branch route needs exactly one of 'rule' or 'segment'")
        return self


class JourneyDef(Strict):
    """A journey: a trigger, the steps each entering profile goes through, exit conditions.

    Attributes:
        trigger: What starts the journey for a profile.
        steps: The steps, in order.
        from_: The sender of the journey's messages.
        reentry: ``once`` (ever), ``every_time``, or a duration such as ``30d`` (once per
            that period).
        audience: A segment the profile must be in to enter.
        exit_when: Conditions checked before every step: the first that holds ends the
            journey (reason ``exit_condition``).
        priority: When two messages compete for a profile under a frequency cap, the
            higher priority wins.
        when_capped: ``delay`` (to the next allowed instant) or ``skip`` a capped message.
        late_after: Skip a message taken longer than this after its due instant (reason
            ``late``; the journey goes on), e.g. ``1d`` for a cart reminder that means
            nothing days later, after the server or the cron tick was down. None (the
            default): send it however late.
        description: What the journey is for.
    """

    trigger: Trigger
    steps: tuple[Step, ...] = Field(min_length=1)
    from_: str = Field(alias="from")
    reentry: str = "once"
    audience: str | None = None
    exit_when: tuple[Condition, ...] = ()
    priority: int = 0
    when_capped: Literal["delay", "skip"] = "delay"
    late_after: timedelta | None = None
    description: str | None = None

    _check_late = field_validator("late_after", mode="before")(_duration)

    @field_validator("reentry")
    @classmethod
    def _reentry(cls, value: str) -> str:
        if value not in ("once", "every_time"):
            try:
                parse_duration(value)
            except ValueError as exc:  # a duration is one of three forms: say all three
                hint = did_you_mean(value, ["once", "every_time"]) or str(exc)
                raise ValueError(
                    f"reentry is 'once', 'every_time' or a duration such as '30d', not "
                    f"{value!r}: {hint}"
                ) from None
        return value

    @property
    def reentry_after(self) -> timedelta | None:
        """The minimum time between two entries (None: ``once`` ever; 0: every time)."""
        if self.reentry == "once":
            return None
        if self.reentry == "every_time":
            return timedelta(0)
        return parse_duration(self.reentry)

    def step_names(self) -> list[str]:
        """Every step's name (``step<N>`` for an unnamed one), in order."""
        return [s.name or f"step{i + 1}" for i, s in enumerate(self.steps)]

    @model_validator(mode="after")
    def _names(self) -> JourneyDef:
        if self.late_after is not None and self.late_after <= timedelta(0):
            raise ValueError("'late_after' must be a positive duration, e.g. 1d")
        names = self.step_names()
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"two steps are named '{name}'")
            seen.add(name)
        return self


class FrequencyCap(Strict):
    """At most ``max`` messages per ``per`` to one profile (of ``topic``, or of any).

    Attributes:
        max: How many messages.
        per: The sliding window, e.g. ``7d``.
        topic: Count only this consent topic's messages (all messages when omitted).
    """

    max: int = Field(ge=0)
    per: timedelta
    topic: str | None = None

    _check_per = field_validator("per", mode="before")(_duration)


class QuietHours(Strict):
    """Hours in the profile's local time zone when no message is sent.

    Attributes:
        start: When quiet hours begin (``21:00``).
        end: When they end (``08:00``); a message due inside goes out at this time.
    """

    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML reads 21:00 unquoted as sexagesimal 1260
            return time(value // 60 % 24, value % 60)
        if isinstance(value, str) and _CLOCK.match(value.strip()):
            hour, minute = value.strip().split(":")
            return time(int(hour), int(minute))
        if isinstance(value, time):
            return value
        raise ValueError(f"expected a time of day such as '21:00', got {value!r}")


class DeliveryDef(Strict):
    """The delivery policy shared by campaigns and journeys.

    Attributes:
        caps: Frequency caps, counted from the send ledger.
        quiet_hours: No message in these local hours (the profile's ``timezone`` trait,
            else the workspace's time zone).
        send_time_prior: Weight of the workspace's engagement hours in each profile's
            send-time estimate (in opens/clicks; larger trusts the profile's own less).
        send_time_history: How far back opens and clicks count for send-time optimisation.
    """

    caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: QuietHours | None = None
    send_time_prior: float = Field(default=5.0, ge=0)
    send_time_history: timedelta = timedelta(days=180)

    _check_history = field_validator("send_time_history", mode="before")(_duration)


def journey_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the ``journeys:`` and ``delivery:`` sections.

    Durations (``wait``, ``timeout``, ``per`` …) are strings such as ``2h`` or ``7d``.
    """
    defs: dict[str, Any] = {}
    roots = {}
    for model in (JourneyDef, DeliveryDef):
        found = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(found.pop("$defs", {}))
        defs[model.__name__] = found
        roots[model.__name__] = {"$ref": f"#/$defs/{model.__name__}"}
    _durations(defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "segmint journeys and delivery policy",
        "type": "object",
        "properties": {
            "journeys": {"type": "object", "additionalProperties": roots["JourneyDef"]},
            "delivery": roots["DeliveryDef"],
        },
        "$defs": defs,
    }


def _durations(node: Any) -> None:
    """Durations are written ``2h``, ``30d`` in ``segmint.yaml``, not ISO 8601."""
    if isinstance(node, dict):
        if node.get("format") == "duration":
            node.pop("format")
            node["pattern"] = r"^\s*\d+(\.\d+)?\s*[a-zA-Z]+\s*$"
        for value in node.values():
            _durations(value)
    elif isinstance(node, list):
        for value in node:
            _durations(value)

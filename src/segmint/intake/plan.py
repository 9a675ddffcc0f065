"""The tracking plan: what declared events must look like.

The plan lives in the workspace (``tracking_plan:``). Only ``track`` events are checked.
A violation is not an error: the pipeline quarantines the message with the reasons this
module returns, and ``segmint quarantine replay`` tries it again once the plan or the data is
fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segmint.clock import parse_instant
from segmint.config.model import EventPlan, PropertySpec, TrackingPlan
from segmint.intake.payloads import Message


@dataclass(frozen=True)
class Violation:
    """One way a message breaks the plan.

    Attributes:
        field: The JSON path of the offending field (``properties.total``).
        reason: What is wrong, for people.
        value: The offending value as shown (left out of a reason kept in the clear when
            PII is encrypted).
    """

    field: str
    reason: str
    value: str | None = None

    def __str__(self) -> str:
        return self.text()

    def text(self, *, values: bool = True) -> str:
        """``field: reason`` and the offending value (``[sealed]`` unless ``values``)."""
        if self.value is None:
            return f"{self.field}: {self.reason}"
        return f"{self.field}: {self.reason} {self.value if values else '[sealed]'}"


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_instant(value)
    except ValueError:
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    "integer": _is_integer,
    "boolean": lambda v: isinstance(v, bool),
    "timestamp": _is_timestamp,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def check_plan(plan: TrackingPlan | None, message: Message) -> list[Violation]:
    """Return the ways ``message`` breaks ``plan`` (empty when it conforms or has no plan)."""
    if plan is None or message.type != "track" or message.event is None:
        return []
    declared = plan.events.get(message.event)
    if declared is None:
        if plan.allow_unplanned_events:
            return []
        return [Violation("event", f"event {message.event!r} is not in the tracking plan")]
    return _check_event(message.event, declared, message.properties)


def _check_event(name: str, plan: EventPlan, properties: dict[str, Any]) -> list[Violation]:
    found: list[Violation] = []
    for key, spec in plan.properties.items():
        found.extend(_check_property(key, spec, properties))
    if not plan.allow_other_properties:
        for key in properties:
            if key not in plan.properties:
                found.append(
                    Violation(f"properties.{key}", f"is not in the plan for event {name!r}")
                )
    return found


def _check_property(key: str, spec: PropertySpec, properties: dict[str, Any]) -> list[Violation]:
    path = f"properties.{key}"
    value = properties.get(key)
    if value is None:
        return [Violation(path, "is required")] if spec.required else []
    if not _CHECKS[spec.type](value):
        return [
            Violation(path, f"must be {spec.type}, got {type(value).__name__}", f"{value!r:.40}")
        ]
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(repr(v) for v in spec.enum)
        return [Violation(path, f"must be one of {allowed}, got", f"{value!r:.40}")]
    return []

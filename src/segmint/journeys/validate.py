"""Checks of journey references, located in ``segmint.yaml``.

Segments, templates, topics, events and step names are checked here; journey rules and
event filters with every other rule of the workspace (:func:`segmint.rules.check_workspace`).

An event is refused when the tracking plan forbids unplanned events and does not declare
it, or when it is not known anywhere in the workspace (trait definitions, the tracking
plan, segment rules, the engagement events segmint records) but is one edit away from a
known one: a likely typo. Otherwise an event no definition mentions yet is accepted, since
events are whatever the sources send.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from segmint.common import did_you_mean
from segmint.config.errors import ConfigError
from segmint.config.journeys import JourneyDef
from segmint.config.loader import Positions, read_yaml
from segmint.config.model import WorkspaceDef
from segmint.rules import dependencies, parse

KNOWN_EVENTS = (
    "Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced",
    "Email Unsubscribed", "Order Completed", "Cart Abandoned", "Product Viewed",
)  # fmt: skip
"""Events segmint records itself or the shop integrations send."""

Path_ = tuple[str | int, ...]


def check_journeys(defn: WorkspaceDef, yaml_path: Path, templates_dir: Path) -> list[ConfigError]:
    """Return every problem of the journeys' references, located in ``segmint.yaml``."""
    if not defn.journeys:
        return []
    data, text = read_yaml(yaml_path)
    positions = Positions(data, str(yaml_path), text)
    events = known_events(defn)
    templates = sorted(
        p.relative_to(templates_dir).as_posix() for p in templates_dir.rglob("*.html")
    ) if templates_dir.is_dir() else []  # fmt: skip
    errors: list[ConfigError] = []
    for name, journey in defn.journeys.items():
        for message, path, hint in _problems(defn, name, journey, events, templates):
            errors.append(positions.error(message, list(path), hint=hint))
    return errors


def known_events(defn: WorkspaceDef) -> set[str]:
    """Every event name the workspace mentions, plus those segmint records itself."""
    found = set(KNOWN_EVENTS)
    found |= {t.event for t in defn.traits.values() if t.event}
    if defn.tracking_plan is not None:
        found |= set(defn.tracking_plan.events)
    for seg in defn.segments.values():
        if seg.rule:
            try:
                found |= set(dependencies(parse(seg.rule)).events)
            except Exception:  # noqa: S112 (a broken rule is reported by check_workspace)
                continue
    return found


def _problems(
    defn: WorkspaceDef, name: str, journey: JourneyDef, events: set[str], templates: list[str]
) -> Iterator[tuple[str, Path_, str | None]]:
    base: Path_ = ("journeys", name)
    segments = list(defn.segments)
    trigger = journey.trigger
    refs: list[tuple[str | None, Path_]] = [
        (trigger.segment_entry, (*base, "trigger", "segment_entry")),
        (trigger.segment_exit, (*base, "trigger", "segment_exit")),
        (journey.audience, (*base, "audience")),
    ]
    event_refs: list[tuple[str | None, Path_]] = [(trigger.event, (*base, "trigger", "event"))]
    event_refs += [(c.event, (*base, "exit_when", i, "event"))
                   for i, c in enumerate(journey.exit_when)]  # fmt: skip
    steps = journey.step_names()
    targets: list[tuple[str | None, Path_]] = []
    for index, step in enumerate(journey.steps):
        at = (*base, "steps", index)
        if step.send is not None:
            named: list[tuple[Path_, str]] = [((*at, "send"), step.send)]
            named += [((*at, "variants", i), v) if isinstance(v, str)
                      else ((*at, "variants", i, "template"), v.template or step.send)
                      for i, v in enumerate(step.variants)]  # fmt: skip
            for path, template in named:
                if not _template_exists(template, templates):
                    bare = [t.removesuffix(".html") for t in templates]
                    hint = did_you_mean(template.removesuffix(".html"), bare)
                    yield f"unknown template '{template}' in journey '{name}'", path, hint
            topic = step.topic
            if topic is not None and topic not in defn.consent.topics:
                hint = did_you_mean(topic, defn.consent.topics)
                yield f"unknown consent topic '{topic}' in journey '{name}'", (*at, "topic"), hint
        if step.wait_until is not None:
            event_refs.append((step.wait_until.event, (*at, "wait_until", "event")))
        for r, route in enumerate((*(step.branch or ()), *(step.split or ()))):
            kind = "branch" if step.branch is not None else "split"
            refs.append((route.segment, (*at, kind, r, "segment")))
            targets.append((route.next, (*at, kind, r, "next")))
        targets += [(step.next, (*at, "next")), (step.on_timeout, (*at, "on_timeout")),
                    (step.default, (*at, "default"))]  # fmt: skip
    for segment, path in refs:
        if segment is not None and segment not in defn.segments:
            yield (f"unknown segment '{segment}' in journey '{name}'", path,
                   did_you_mean(segment, segments))  # fmt: skip
    for target, path in targets:
        if target is not None and target not in steps:
            yield (f"unknown step '{target}' in journey '{name}' (steps: {', '.join(steps)})",
                   path, did_you_mean(target, steps))  # fmt: skip
    for event, path in event_refs:
        if event is not None and event not in events:
            hint = did_you_mean(event, events)
            plan = defn.tracking_plan
            if plan is not None and not plan.allow_unplanned_events:
                yield f"event '{event}' is not in the tracking plan", path, hint
            elif hint is not None:
                yield f"unknown event '{event}' in journey '{name}'", path, hint


def _template_exists(name: str, templates: list[str]) -> bool:
    return name in templates or f"{name}.html" in templates

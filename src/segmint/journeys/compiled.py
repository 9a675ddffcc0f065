"""A journey definition prepared for the engine: steps by name, successors, conditions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from segmint.config.journeys import JourneyDef, Step
from segmint.config.model import CampaignDef
from segmint.events import Event
from segmint.journeys.conditions import EventTest, event_test


@dataclass
class CompiledJourney:
    """One journey, ready to run.

    Attributes:
        name: The journey's name.
        definition: Its definition.
        default_topic: The workspace's first consent topic (a send step's default).
    """

    name: str
    definition: JourneyDef
    default_topic: str
    steps: dict[str, Step] = field(init=False)
    after: dict[str, str | None] = field(init=False)
    _campaigns: dict[tuple[str, str], CampaignDef] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        names = self.definition.step_names()
        self.first = names[0]
        self.steps = dict(zip(names, self.definition.steps, strict=True))
        self.after = {
            n: (names[i + 1] if i + 1 < len(names) else None) for i, n in enumerate(names)
        }
        trigger = self.definition.trigger
        self.trigger_event: EventTest | None = (
            event_test(trigger.event, trigger.where) if trigger.event else None
        )
        self.exit_events = [
            event_test(c.event, c.where) for c in self.definition.exit_when if c.event
        ]
        self.exit_rules = [c.rule for c in self.definition.exit_when if c.rule]
        self.wait_events: dict[str, EventTest] = {
            n: event_test(s.wait_until.event, s.wait_until.where)
            for n, s in self.steps.items()
            if s.wait_until is not None and s.wait_until.event is not None
        }

    @cached_property
    def segment(self) -> str | None:
        """The segment the journey is for: its audience, else the one entering starts it.

        Its members' habits are the send-time prior of the journey's messages.
        """
        trigger = self.definition.trigger
        return self.definition.audience or trigger.segment_entry

    def next_of(self, name: str) -> str | None:
        """The step after ``name`` (its ``next``, else the following one; None: the end)."""
        step = self.steps[name]
        return step.next if step.next is not None else self.after[name]

    def exits_on(self, event: Event) -> bool:
        """Whether ``event`` meets one of the journey's event exit conditions."""
        return any(test(event) for test in self.exit_events)

    def split_bucket(self, profile_id: str) -> float:
        """A number in [0, 100) fixed by journey and profile (for ``split``)."""
        digest = hashlib.sha256(f"{self.name}\0{profile_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 * 100

    def topic(self, step: Step) -> str:
        """The consent topic of a send step."""
        return step.topic or self.default_topic

    def template(self, step: Step, profile_id: str) -> str:
        """The template of a send step for this profile (a variant, deterministically)."""
        assert step.send is not None  # noqa: S101
        names = [v for v in step.variants if isinstance(v, str)]
        if not names:
            return step.send  # (an experiment's arms are chosen by assignment instead)
        choices = (step.send, *names)
        digest = hashlib.sha256(f"{self.name}\0{step.name}\0{profile_id}".encode()).digest()
        return choices[int.from_bytes(digest[:8], "big") % len(choices)]

    def campaign(self, name: str, template: str) -> CampaignDef:
        """The send step as a campaign definition (what the composer builds from)."""
        key = (name, template)
        if key not in self._campaigns:
            self._campaigns[key] = self._campaign(name, template)
        return self._campaigns[key]

    def _campaign(self, name: str, template: str) -> CampaignDef:
        step = self.steps[name]
        return CampaignDef.model_validate(
            {
                "segment": self.definition.trigger.segment_entry or "-",
                "template": template,
                "from": step.from_ or self.definition.from_,
                "topic": self.topic(step),
                "subject": step.subject,
                "priority": self.definition.priority,
            }
        )

    @cached_property
    def rules(self) -> list[str]:
        """Every rule text the journey evaluates (exits, waits, branches)."""
        found = list(self.exit_rules)
        for step in self.definition.steps:
            if step.wait_until is not None and step.wait_until.rule:
                found.append(step.wait_until.rule)
            for route in step.branch or ():
                if route.rule:
                    found.append(route.rule)
        return found

    @cached_property
    def trigger_segments(self) -> frozenset[str]:
        """The segments whose entries or exits start the journey."""
        trigger = self.definition.trigger
        return frozenset(s for s in (trigger.segment_entry, trigger.segment_exit) if s)

    @cached_property
    def events(self) -> frozenset[str]:
        """Every event name the journey listens to."""
        names = {c.event for c in self.definition.exit_when if c.event}
        names |= {s.wait_until.event for s in self.definition.steps
                  if s.wait_until is not None and s.wait_until.event}  # fmt: skip
        if self.definition.trigger.event:
            names.add(self.definition.trigger.event)
        return frozenset(n for n in names if n)


def ledger_campaign(journey: str, step: str, entry: int) -> str:
    """The send ledger's campaign of one instance's send step: one row per person ever.

    The entry number keeps a re-entered profile's messages apart; a restart finds the same
    row, so a step is sent at most once per entry.
    """
    return f"journey:{journey}:{step}:{entry}"

"""The delivery policy shared by campaigns and journeys: consent, caps, quiet hours, timing.

For one message to one profile at the instant it is due, :meth:`DeliveryPolicy.decide`
answers *send now*, *delay until T* or *skip (reason)*, in this order:

1. consent and suppression, through :class:`~segmint.deliver.gate.ConsentGate`, at the
   moment of sending (never when the journey started): a refusal skips with the gate's
   reason;
2. send-time optimisation (``optimal``): the message waits for the profile's best hour of
   the week (:class:`SendTimes`), counted from the instant the message first fell due;
3. quiet hours in the profile's time zone (its ``timezone`` trait, else the workspace's):
   a message due inside the window waits for the window's end;
4. frequency caps (``delivery.caps``), counted from the send ledger (rows sent, uncertain
   or being attempted, by their consent topic) plus what this run already granted: a
   capped message is delayed to the instant a counted send leaves the window, or skipped
   (``when_capped``).

A delayed message is decided again, in full, when it falls due again. Messages that
compete for one profile's last slot are decided in priority order by the caller
(:func:`by_priority`), so the higher-priority campaign or journey wins.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from segmint.clock import ensure_utc
from segmint.common import in_lists
from segmint.config.journeys import DeliveryDef, FrequencyCap, QuietHours
from segmint.deliver.gate import ConsentGate
from segmint.profiles import Profile
from segmint.store import Store, from_store_time, utcnow_naive
from segmint.store.bulk import fetch_in

Action = Literal["send", "delay", "skip"]
_WEEK_HOURS = 7 * 24
ENGAGEMENT_EVENTS = ("Email Opened", "Email Link Clicked")
"""The events send-time optimisation learns from (machine opens excluded)."""


@dataclass(frozen=True)
class Message:
    """A message that is due for one profile.

    Attributes:
        profile: The recipient.
        topic: The consent topic.
        due: When it is due (the decision's instant).
        priority: The campaign's or journey's priority.
        first_due: When it first fell due (send-time optimisation counts from here).
        send_time: ``now`` or ``optimal``.
        when_capped: ``delay`` or ``skip`` under a reached cap.
        segment: The segment the message is for (its send-time prior), if any.
    """

    profile: Profile
    topic: str
    due: datetime
    priority: int = 0
    first_due: datetime | None = None
    send_time: Literal["now", "optimal"] = "now"
    when_capped: Literal["delay", "skip"] = "skip"
    segment: str | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with a message: send, delay until ``at``, or skip for ``reason``."""

    action: Action
    at: datetime
    reason: str | None = None


@dataclass
class SendHistory:
    """Per profile, the instants and topics of messages that count toward the caps."""

    sends: dict[str, list[tuple[datetime, str | None]]] = field(default_factory=dict)

    def add(self, profile_id: str, at: datetime, topic: str | None) -> None:
        """Count one more message (kept sorted by instant)."""
        bisect.insort(self.sends.setdefault(profile_id, []), (at, topic), key=lambda s: s[0])

    def times(self, profile_id: str, topic: str | None) -> list[datetime]:
        """The instants of the profile's messages (of ``topic``, or of any when None)."""
        rows = self.sends.get(profile_id, ())
        return [at for at, t in rows if topic is None or t == topic]


def ledger_history(store: Store, profile_ids: Iterable[str], since: datetime) -> SendHistory:
    """Read from the send ledger the messages sent (or possibly sent) since ``since``.

    Rows ``sent``, ``uncertain`` or ``attempting`` count, at their ``sent_at`` (or their
    last update, for a row whose mark never came).
    """
    history = SendHistory()
    ids = sorted(set(profile_ids))
    rows = fetch_in(
        store,
        "SELECT profile_id, coalesce(sent_at, updated_at), topic FROM sends "
        "WHERE profile_id IN ({values}) AND status IN ('sent', 'uncertain', 'attempting') "
        "AND coalesce(sent_at, updated_at) > ?",
        ids,
        after=[utcnow_naive(since)],
    )
    for pid, at, topic in rows:
        history.add(pid, ensure_utc(from_store_time(at) or at), topic)
    return history


def longest_window(delivery: DeliveryDef) -> timedelta:
    """The longest cap window (what :func:`ledger_history` must read back)."""
    return max((c.per for c in delivery.caps), default=timedelta(0))


def profile_zone(profile: Profile, trait: str, default: str) -> ZoneInfo:
    """The profile's time zone (its trait, else the workspace default, else UTC)."""
    for name in (profile.traits.get(trait), default):
        if isinstance(name, str) and name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def in_quiet_hours(at: datetime, zone: ZoneInfo, quiet: QuietHours) -> bool:
    """Whether the instant ``at`` falls inside the quiet window in ``zone``."""
    if quiet.start == quiet.end:
        return False
    local = at.astimezone(zone).time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def quiet_end(at: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """The first instant at or after ``at`` outside the quiet window (``at`` itself if so)."""
    if not in_quiet_hours(at, zone, quiet):
        return at
    local = at.astimezone(zone)
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if end <= local:
        end = end + timedelta(days=1)
    out = end.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)
    # a daylight-saving gap may put the wall time inside the window still: step on
    while in_quiet_hours(out, zone, quiet):
        out += timedelta(minutes=15)
    return out


def cap_release(times: Sequence[datetime], cap: FrequencyCap, at: datetime) -> datetime | None:
    """When a message at ``at`` would respect ``cap`` given earlier ``times`` (sorted).

    Returns ``None`` when it does now; else the instant the oldest blocking send leaves the
    window (``at - per < t <= at`` counts).
    """
    inside = [t for t in times if at - cap.per < t]
    if len(inside) < cap.max:
        return None
    if cap.max == 0:
        return datetime.max.replace(tzinfo=UTC)
    return inside[len(inside) - cap.max] + cap.per


class SendTimes:
    """Each profile's best hour of the week to receive email, with a smoothed prior.

    Score of hour ``h`` for a profile = its own opens/clicks in ``h`` + ``prior`` × the
    share of ``h`` in its segment's opens/clicks, where the segment's shares are themselves
    smoothed toward the workspace's (``prior`` pseudo-counts): a profile with no history
    follows its segment, a segment with little history the workspace, one with a long
    history its own habit, and a small list works (no minimum audience). Without a segment
    (or for one nobody in it engaged) the workspace's shares are the prior. Machine opens
    (``machine_open``) never count.

    Args:
        hours: (profile_id, instant) of every human open or click considered.
        prior: The weight of the prior, in opens.
        segments: Segment → its members, for the per-segment priors.
    """

    def __init__(
        self,
        hours: Iterable[tuple[str, datetime]],
        prior: float,
        segments: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.prior = prior
        self.per_profile: dict[str, Counter[int]] = {}
        self.overall: Counter[int] = Counter()
        for pid, at in hours:
            how = hour_of_week(at)
            self.per_profile.setdefault(pid, Counter())[how] += 1
            self.overall[how] += 1
        self.total = sum(self.overall.values())
        self.per_segment: dict[str, Counter[int]] = {}
        for segment, members in (segments or {}).items():
            counts: Counter[int] = Counter()
            for pid in members:
                counts.update(self.per_profile.get(pid, Counter()))
            self.per_segment[segment] = counts

    @classmethod
    def from_store(
        cls,
        store: Store,
        as_of: datetime,
        history: timedelta,
        prior: float,
        segments: Iterable[str] = (),
    ) -> SendTimes:
        """Read the human opens and clicks of the last ``history`` before ``as_of``.

        ``segments``: the segments whose members' habits make per-segment priors.
        """
        import orjson

        marks = ", ".join("?" for _ in ENGAGEMENT_EVENTS)
        rows = store.fetchall(
            "SELECT profile_id, timestamp, CAST(properties AS TEXT) FROM events "
            f"WHERE type = 'track' AND event IN ({marks}) AND timestamp > ? AND timestamp <= ?",
            [*ENGAGEMENT_EVENTS, utcnow_naive(as_of - history), utcnow_naive(as_of)],
        )
        found = []
        for pid, at, raw in rows:
            props = orjson.loads(raw) if raw else {}
            if not (isinstance(props, dict) and props.get("machine_open")):
                found.append((pid, ensure_utc(from_store_time(at) or at)))
        members: dict[str, list[str]] = {}
        for marks_, chunk in in_lists(sorted(set(segments))):
            for segment, pid in store.fetchall(
                f"SELECT segment, profile_id FROM memberships WHERE segment IN ({marks_})",
                list(chunk),
            ):
                members.setdefault(str(segment), []).append(str(pid))
        return cls(found, prior, members)

    def shares(self, segment: str | None = None) -> dict[int, float]:
        """The prior's share of each hour: the segment's, smoothed toward the workspace's."""
        overall = {h: n / self.total for h, n in self.overall.items()} if self.total else {}
        counts = self.per_segment.get(segment or "")
        seen = sum(counts.values()) if counts else 0
        if not counts or not seen:
            return overall
        weight = self.prior + seen
        return {
            h: (counts[h] + self.prior * overall.get(h, 0.0)) / weight
            for h in set(counts) | set(overall)
        }

    def best_hour(self, profile_id: str, segment: str | None = None) -> int | None:
        """The profile's best hour of the week (0 = Monday 00:00 UTC), or None if unknown.

        ``segment``: the segment whose habits are the profile's prior (else the workspace).
        """
        own = self.per_profile.get(profile_id, Counter())
        if not own and not self.total:
            return None
        share = self.shares(segment)
        scores = {h: own[h] + self.prior * share.get(h, 0.0) for h in set(own) | set(share)}
        return max(sorted(scores), key=lambda h: scores[h])

    def next_slot(self, profile_id: str, since: datetime, segment: str | None = None) -> datetime:
        """The first instant at or after ``since`` in the profile's best hour."""
        best = self.best_hour(profile_id, segment)
        if best is None or hour_of_week(since) == best:
            return since
        start = since.replace(minute=0, second=0, microsecond=0)
        ahead = (best - hour_of_week(since)) % _WEEK_HOURS
        return start + timedelta(hours=ahead)


def hour_of_week(at: datetime) -> int:
    """The hour of the week of ``at`` in UTC (0 = Monday 00:00)."""
    utc = at.astimezone(UTC)
    return utc.weekday() * 24 + utc.hour


class DeliveryPolicy:
    """Decides, message by message, whether to send now, later or never.

    Args:
        delivery: The workspace's delivery settings.
        gate: The consent gate for each topic (:class:`ConsentGate`, built at the instant
            of sending).
        history: The messages already counted toward the caps (see :func:`ledger_history`);
            every ``send`` decision is added to it.
        timezone_trait: The trait holding a profile's time zone.
        default_zone: The workspace's time zone.
        send_times: The send-time model (needed for ``optimal`` messages).
    """

    def __init__(
        self,
        delivery: DeliveryDef,
        gate: Mapping[str, ConsentGate],
        history: SendHistory,
        *,
        timezone_trait: str = "timezone",
        default_zone: str = "UTC",
        send_times: SendTimes | None = None,
    ) -> None:
        self.delivery = delivery
        self.gate = gate
        self.history = history
        self.timezone_trait = timezone_trait
        self.default_zone = default_zone
        self.send_times = send_times
        self.counts: Counter[str] = Counter()
        """Decisions by ``action:reason`` (``delay:quiet_hours``, ``skip:capped`` …)."""

    def decide(self, message: Message) -> Decision:
        """Decide what happens to ``message`` at its due instant (see the module doc)."""
        decision = self._decide(message)
        key = decision.action if decision.reason is None else f"{decision.action}:{decision.reason}"
        self.counts[key] += 1
        if decision.action == "send":
            self.history.add(message.profile.profile_id, message.due, message.topic)
        return decision

    def _decide(self, message: Message) -> Decision:
        at = message.due
        refused = self.gate[message.topic].check(message.profile)
        if refused is not None:
            return Decision("skip", at, refused)
        if message.send_time == "optimal" and self.send_times is not None:
            slot = self.send_times.next_slot(
                message.profile.profile_id, message.first_due or at, message.segment
            )
            if slot > at:
                return Decision("delay", slot, "send_time")
        quiet = self.delivery.quiet_hours
        if quiet is not None:
            zone = profile_zone(message.profile, self.timezone_trait, self.default_zone)
            if in_quiet_hours(at, zone, quiet):
                return Decision("delay", quiet_end(at, zone, quiet), "quiet_hours")
        release = self._cap_release(message)
        if release is not None:
            if message.when_capped == "skip" or release.year > 9000:
                return Decision("skip", at, "capped")
            return Decision("delay", release, "capped")
        return Decision("send", at)

    def _cap_release(self, message: Message) -> datetime | None:
        pid = message.profile.profile_id
        latest: datetime | None = None
        for cap in self.delivery.caps:
            if cap.topic is not None and cap.topic != message.topic:
                continue
            found = cap_release(self.history.times(pid, cap.topic), cap, message.due)
            if found is not None and (latest is None or found > latest):
                latest = found
        return latest


def by_priority(messages: Iterable[Message]) -> list[Message]:
    """Messages in the order to decide them: earliest due first, higher priority on a tie.

    Competing messages for one profile at one instant thus give the slot to the
    higher-priority campaign or journey.
    """
    return sorted(messages, key=lambda m: (m.due, -m.priority, m.profile.profile_id))

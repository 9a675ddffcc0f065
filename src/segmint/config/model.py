"""Typed definitions of a workspace, validated from ``segmint.yaml``.

Every model forbids unknown keys, so a typo is an error (with a suggestion), never ignored.
The loader (:mod:`segmint.config.loader`) maps validation failures back to file:line:column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from segmint.clock import ensure_utc, parse_instant
from segmint.common import parse_duration
from segmint.config.measure import AutoWinnerDef, ExperimentDef, MeasureDef, VariantDef
from segmint.config.mlmodels import ModelDef

TraitType = Literal["string", "number", "boolean", "timestamp", "list"]
AGGREGATES = (
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "distinct_count",
    "most_frequent",
    "exists",
)
Aggregate = Literal[
    "count", "sum", "avg", "min", "max", "first", "last", "distinct_count", "most_frequent",
    "exists",
]  # fmt: skip


class Strict(BaseModel):
    """Base model: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: Any) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return parse_duration(str(value))


class TraitDef(Strict):
    """One trait: from identify calls, computed over events, or derived from other traits.

    Exactly one of ``from``, an aggregate key (``count``, ``sum``, …) or ``expr`` is given.

    Attributes:
        from_: ``identify`` for a trait read from identify calls (and imports of contacts).
        type: The declared type; computed traits infer theirs when omitted.
        pii: Marks personal data (an email, a phone number). With a master key configured
            (``privacy:``), the trait's key is sealed in stored events like the names in
            ``privacy.pii``; see ``docs/internals.md`` (Privacy).
        default: The value used when the trait is missing.
        count: ``events`` to count matching events.
        sum: The property path summed (``properties.total``).
        avg: The property path averaged.
        min: The property path (or ``timestamp``) whose minimum is kept.
        max: The property path (or ``timestamp``) whose maximum is kept.
        first: The property path (or ``timestamp``) of the earliest matching event.
        last: The property path (or ``timestamp``) of the latest matching event.
        distinct_count: The property path whose distinct values are counted.
        most_frequent: The property path whose most frequent value is kept.
        exists: ``events``: true when at least one matching event exists.
        event: The event name the aggregate reads (all track events when omitted).
        where: A filter over the event's properties, in the rule language.
        within: A window such as ``30d``: only events in the last 30 days at ``as_of`` count.
        expr: A derived trait: an expression over other traits, in the rule language.
        description: Free text shown in listings.
    """

    from_: Literal["identify"] | None = Field(default=None, alias="from")
    type: TraitType | None = None
    pii: bool = False
    default: Any = None
    count: str | None = None
    sum: str | None = None
    avg: str | None = None
    min: str | None = None
    max: str | None = None
    first: str | None = None
    last: str | None = None
    distinct_count: str | None = None
    most_frequent: str | None = None
    exists: str | None = None
    event: str | None = None
    where: str | None = None
    within: timedelta | None = None
    expr: str | None = None
    description: str | None = None

    _check_within = field_validator("within", mode="before")(_duration)

    @property
    def aggregate(self) -> tuple[Aggregate, str] | None:
        """The (function, target) pair of a computed trait, else None."""
        for name in AGGREGATES:
            target = getattr(self, name)
            if target is not None:
                return name, target  # type: ignore[return-value]
        return None

    @property
    def kind(self) -> Literal["identify", "computed", "derived"]:
        """Which of the three trait kinds this is."""
        if self.from_ is not None:
            return "identify"
        if self.expr is not None:
            return "derived"
        return "computed"

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> TraitDef:
        aggs = [a for a in AGGREGATES if getattr(self, a) is not None]
        kinds = int(self.from_ is not None) + int(self.expr is not None) + int(bool(aggs))
        if kinds != 1:
            raise ValueError(
                "a trait needs exactly one of 'from: identify', an aggregate "
                f"({', '.join(AGGREGATES)}) or 'expr'"
            )
        if len(aggs) > 1:
            raise ValueError(f"a trait has one aggregate, found {', '.join(aggs)}")
        if self.kind != "computed" and (self.event or self.where or self.within):
            raise ValueError("'event', 'where' and 'within' apply only to computed traits")
        return self


class SegmentDef(Strict):
    """One segment.

    Attributes:
        rule: The rule, in the rule language. Omitted only for a group's default segment.
        description: What the segment is for.
        tags: Free labels for filtering listings.
        group: An exclusive group: a profile is in at most one segment of the group.
        priority: Within a group, the matching segment with the highest priority wins.
        default: The group's fallback for profiles that match none of its segments.
        parent: A segment whose members bound this one: a child never holds a non-member.
        archived: An archived segment is evaluated by nothing (batch, real time, previews,
            SQL exports): it is left out of the workspace's ``segments`` when loaded and kept
            in ``archived_segments``. Its members exit at the next refresh or real-time
            engine start (cause ``definition_removed``); its history stays. Set it back to
            ``false`` to evaluate it again (members re-enter at the next refresh).
        lifespan: When the segment stops holding anyone: an instant (``2026-12-31``, a
            date is midnight UTC, or ``2026-12-31T18:00:00Z``), or a duration (``30d``)
            counted from ``since``. Until then the rule decides; from that instant on the
            segment holds nobody: its members exit at exactly that instant, in real time
            and in batch alike (the rule evaluated is ``(RULE) and now() < timestamp
            'END'``, see :attr:`evaluated_rule`). Archive or remove it afterwards.
        since: The instant a duration ``lifespan`` counts from (required with one).
    """

    rule: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    group: str | None = None
    priority: int = 0
    default: bool = False
    parent: str | None = None
    archived: bool = False
    lifespan: datetime | timedelta | None = None
    since: datetime | None = None

    @field_validator("lifespan", mode="before")
    @classmethod
    def _read_lifespan(cls, value: Any) -> datetime | timedelta | None:
        if value is None or isinstance(value, timedelta):
            return value
        instant = _instant(value)
        if instant is not None:
            return instant
        try:
            return parse_duration(str(value))
        except ValueError:
            raise ValueError(
                f"lifespan {value!r} is neither an instant (2026-12-31, "
                "2026-12-31T18:00:00Z) nor a duration (30d, 12h)"
            ) from None

    @field_validator("since", mode="before")
    @classmethod
    def _read_since(cls, value: Any) -> datetime | None:
        if value is None:
            return None
        instant = _instant(value)
        if instant is None:
            raise ValueError(f"since {value!r} is not an instant (2026-12-01, 2026-12-01T09:00Z)")
        return instant

    @property
    def ends_at(self) -> datetime | None:
        """The instant the segment's lifespan ends (None: it has none)."""
        if isinstance(self.lifespan, timedelta):
            return None if self.since is None else self.since + self.lifespan
        return self.lifespan

    @property
    def evaluated_rule(self) -> str | None:
        """The rule the engines evaluate: ``rule``, bounded by the lifespan when there is one.

        A default segment with a lifespan has no rule to bound; it is refused on load.
        """
        end = self.ends_at
        if self.rule is None or end is None:
            return self.rule
        text = end.isoformat().replace("+00:00", "Z")
        return f"({self.rule}) and now() < timestamp '{text}'"

    @model_validator(mode="after")
    def _rule_or_default(self) -> SegmentDef:
        if self.default and self.group is None:
            raise ValueError("a default segment needs a 'group' to be the default of")
        if self.default and self.rule is not None:
            raise ValueError("a default segment has no rule: it holds whoever matches none")
        if not self.default and self.rule is None:
            raise ValueError("a segment needs a 'rule' (or 'default: true' with a 'group')")
        if self.lifespan is not None and self.default:
            raise ValueError("a default segment has no 'lifespan': archive it instead")
        if isinstance(self.lifespan, timedelta) and self.since is None:
            raise ValueError(
                "a duration 'lifespan' counts from 'since' (the instant the segment started): "
                "add 'since: 2026-12-01', or give the lifespan as an end instant"
            )
        if self.since is not None and not isinstance(self.lifespan, timedelta):
            raise ValueError("'since' is the start of a duration 'lifespan' (such as 30d)")
        return self


def _instant(value: Any) -> datetime | None:
    """An instant from YAML (a date, a date-time, or ISO 8601 text), else None."""
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    try:
        return parse_instant(str(value))
    except ValueError:
        return None


class PropertySpec(Strict):
    """A property in the tracking plan."""

    type: Literal["string", "number", "integer", "boolean", "timestamp", "object", "array"]
    required: bool = False
    enum: tuple[Any, ...] | None = None


class EventPlan(Strict):
    """What one event must look like."""

    properties: dict[str, PropertySpec] = Field(default_factory=dict)
    allow_other_properties: bool = True


class TrackingPlan(Strict):
    """Declared events; violations are quarantined with their reason."""

    events: dict[str, EventPlan] = Field(default_factory=dict)
    allow_unplanned_events: bool = True


class SourceDef(Strict):
    """A named source of events, for data-quality reporting."""

    kind: Literal["http", "import", "webhook", "stream"] = "http"
    freshness: timedelta | None = None
    description: str | None = None

    _check_freshness = field_validator("freshness", mode="before")(_duration)


class ImportDef(Strict):
    """A column mapping for ``segmint ingest``.

    Attributes:
        kind: ``identify`` for contacts, ``track`` for events.
        event: The event name for ``track`` imports (or ``event_column``).
        event_column: A column holding the event name.
        user_id: The column holding the user id.
        anonymous_id: The column holding an anonymous id.
        timestamp: The column holding the event time.
        traits: Trait name → column, for ``identify`` imports (on ``track`` imports they
            go to ``context.traits``, which identifies who performed the event).
        properties: Property name → column, for ``track`` imports.
        key: Columns whose values identify a row, for stable message ids.
        source: The source name recorded on the events.
        types: Column → type (``string``, ``number``, ``integer``, ``boolean``,
            ``timestamp``): how a column's text is converted; other columns keep the value
            the file gives (text for CSV).
        message_id: A template such as ``shopify-order-{order_id}`` for the messageId, so
            imported rows coincide with the same events arriving from another source
            (default: derived from the mapping name and ``key``).
    """

    kind: Literal["identify", "track"]
    event: str | None = None
    event_column: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    timestamp: str | None = None
    traits: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    key: tuple[str, ...] = ()
    source: str | None = None
    types: dict[str, Literal["string", "number", "integer", "boolean", "timestamp"]] = Field(
        default_factory=dict
    )
    message_id: str | None = None


class ConsentDef(Strict):
    """Consent policy for marketing email."""

    policy: Literal["opt_in", "opt_out"] = "opt_in"
    topics: tuple[str, ...] = ("newsletter",)
    trait: str | None = "email_consent"


class SmtpDef(Strict):
    """How to reach the SMTP server."""

    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password_env: str | None = None
    pool_size: int = 4
    rate_limit: float | None = None
    timeout: float = 30.0


class EmailDef(Strict):
    """Email settings shared by campaigns."""

    smtp: SmtpDef = Field(default_factory=SmtpDef)
    base_url: str = "http://127.0.0.1:8000"
    secret_env: str = "SEGMINT_SECRET"  # noqa: S105 (a variable name, not a secret)
    group: str | None = None
    timezone_trait: str = "timezone"
    email_trait: str = "email"


class CampaignDef(Strict):
    """A campaign: who gets which template, from whom, under which consent topic.

    Attributes:
        segment: The segment sent to.
        template: The template.
        sender: The ``from`` address.
        topic: The consent topic.
        subject: A subject overriding the template's.
        description: What the campaign is for.
        priority: Under a frequency cap, the higher-priority campaign or journey wins.
    """

    segment: str
    template: str
    sender: str = Field(alias="from")
    topic: str = "newsletter"
    subject: str | None = None
    description: str | None = None
    variants: tuple[VariantDef, ...] = ()  # an experiment named after the campaign
    auto_winner: AutoWinnerDef | None = None  # for ``variants``
    priority: int = 0


def _spaced(text: str) -> bool:
    return any(c.isspace() for c in text)


class WebhookDef(Strict):
    """An outgoing webhook that receives membership changes."""

    url: str
    secret_env: str = "SEGMINT_WEBHOOK_SECRET"  # noqa: S105 (a variable name, not a secret)
    segments: tuple[str, ...] = ()
    max_attempts: int | None = Field(default=None, ge=1)  # None: the retry policy's (8)

    @field_validator("url")
    @classmethod
    def _web_url(cls, value: str) -> str:
        """Refuse what no POST can reach: each delivery would fail, retried for hours."""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or _spaced(value):
            raise ValueError(
                f"{value!r} is not an http(s) URL: write it in full, e.g. "
                "https://hooks.example.com/segmint"
            )
        return value


class ShopifyDef(Strict):
    """The shop webhook's shared secret, read from an environment variable."""

    secret_env: str = "SHOPIFY_WEBHOOK_SECRET"  # noqa: S105 (a variable name, not a secret)


class DeriveDef(Strict):
    """A plaintext trait derived at intake from a PII value, before the value is sealed.

    Attributes:
        from_: The PII trait or property read (``email``).
        take: ``domain`` (the part after ``@``, lowercased) or ``hash`` (a keyed hash,
            equal for equal values: compare without reading).
    """

    from_: str = Field(alias="from")
    take: Literal["domain", "hash"] = "domain"


class PrivacyDef(Strict):
    """PII protection, retention and minimisation (``segmint.privacy``).

    Attributes:
        pii: Trait and property names sealed at rest when a master key is configured (with
            every trait marked ``pii: true``).
        key_env: The environment variable holding the base64 master key.
        key_dir: The folder (relative to the workspace, outside ``.segmint/``) holding the
            master key file and the profile-key vault; ``segmint privacy enable`` makes it.
        derive: Plaintext traits derived at intake from PII values (``email_domain``).
        retention: Event name → how long its events are kept (``Page Viewed: 90d``).
        minimise: Drop properties the tracking plan does not declare, at intake.
        truncate_ip: Zero the host part of ``context.ip`` at intake (IPv4 /24, IPv6 /48).
    """

    pii: tuple[str, ...] = ("email", "name", "phone", "address")
    key_env: str = "SEGMINT_MASTER_KEY"
    key_dir: str = ".segmint-keys"
    derive: dict[str, DeriveDef] = Field(default_factory=dict)
    retention: dict[str, timedelta] = Field(default_factory=dict)
    minimise: bool = False
    truncate_ip: bool = True

    @field_validator("retention", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: _duration(v) for k, v in value.items()}


# the journey and delivery models build on Strict (defined above)
from segmint.config.journeys import DeliveryDef, JourneyDef  # noqa: E402


class WorkspaceDef(Strict):
    """The whole of ``segmint.yaml``.

    Attributes:
        name: The workspace name.
        store: ``duckdb`` (the embedded default) or a ``postgresql://`` URL.
        timezone: The workspace's default time zone for dates in email.
        identifiers: Traits that identify a person across devices (email by default).
        traits: Trait definitions by name.
        segments: Segment definitions by name.
        tracking_plan: Optional declared events.
        sources: Named sources with freshness SLAs.
        imports: Column mappings for ``segmint ingest``.
        consent: The consent policy.
        email: SMTP and link settings.
        campaigns: Campaign definitions by name.
        webhooks: Outgoing webhooks by name.
        shopify: The shop webhook settings.
        models: Machine-learning models by name; each writes traits (``segmint.models``).
        measure: Attribution settings and the global holdout.
        experiments: Experiments on campaigns by name.
        delivery: The delivery policy (caps, quiet hours) of campaigns and journeys.
        journeys: Journey definitions by name.
        privacy: PII encryption, retention and minimisation.
    """

    name: str
    store: str = "duckdb"
    timezone: str = "UTC"
    identifiers: tuple[str, ...] = ("email",)
    traits: dict[str, TraitDef] = Field(default_factory=dict)
    segments: dict[str, SegmentDef] = Field(default_factory=dict)
    tracking_plan: TrackingPlan | None = None
    sources: dict[str, SourceDef] = Field(default_factory=dict)
    imports: dict[str, ImportDef] = Field(default_factory=dict)
    consent: ConsentDef = Field(default_factory=ConsentDef)
    email: EmailDef = Field(default_factory=EmailDef)
    campaigns: dict[str, CampaignDef] = Field(default_factory=dict)
    webhooks: dict[str, WebhookDef] = Field(default_factory=dict)
    shopify: ShopifyDef = Field(default_factory=ShopifyDef)
    delivery: DeliveryDef = Field(default_factory=DeliveryDef)
    journeys: dict[str, JourneyDef] = Field(default_factory=dict)
    measure: MeasureDef = Field(default_factory=MeasureDef)
    experiments: dict[str, ExperimentDef] = Field(default_factory=dict)
    models: dict[str, ModelDef] = Field(default_factory=dict)
    privacy: PrivacyDef = Field(default_factory=PrivacyDef)
    _archived: dict[str, SegmentDef] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _set_archived_aside(self) -> WorkspaceDef:
        # one place decides what is evaluated: every engine, SQL export and check reads
        # ``segments``, so an archived segment is simply not there
        archived = {n: s for n, s in self.segments.items() if s.archived}
        if archived:
            active = {n: s for n, s in self.segments.items() if not s.archived}
            object.__setattr__(self, "segments", active)
            self._archived = archived
        return self

    @property
    def archived_segments(self) -> dict[str, SegmentDef]:
        """Segments marked ``archived: true``: kept with their history, evaluated by nothing."""
        return dict(self._archived)

    def model_traits(self) -> dict[str, tuple[str, str]]:
        """Trait name → (model, output) for every trait a model writes."""
        return {t: (m, o) for m, d in self.models.items() for o, t in d.output_traits(m).items()}

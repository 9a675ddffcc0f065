"""The root of segmint's error hierarchy, and the mixins every stage shares.

Each stage has its own ``errors.py`` whose classes derive from these::

    SegmintError
    ├── ConfigError + ValueError       (config/errors.py)  file:line:column + key path
    │   ├── ConfigErrors                                   several found in one pass
    │   ├── StaleDefinitionError                           segmint.yaml changed meanwhile
    │   └── TraitDefinitionError       (traits/errors.py)
    │       └── TraitCycleError
    ├── StoreError                     (store/errors.py)
    │   ├── StoreUnavailable   + Transient
    │   ├── StoreLocked
    │   └── StoreTooNew
    ├── RuleError                      (rules/errors.py)   position + caret
    │   ├── RuleSyntaxError    + ValueError
    │   ├── RuleTypeError      + TypeError
    │   ├── RuleNameError      + LookupError
    │   └── RuleCycleError
    ├── IntakeError                    (intake/errors.py)
    │   ├── PayloadError       + ValueError
    │   │   └── PayloadTooLarge
    │   ├── ShopifyPayloadError + ValueError               (intake/shopify.py)
    │   ├── MappingError, RowError + ValueError            (intake/mappings.py)
    │   ├── ApiKeyError
    │   │   ├── UnknownKey
    │   │   └── RevokedKey
    │   ├── IntakeBusy         + Transient
    │   ├── IntakeClosed
    │   ├── PersonRefError     + LookupError               an id typed names no one person
    │   │   ├── UnknownPersonError
    │   │   └── AmbiguousPersonError
    │   └── StreamError                                    (intake/streams.py)
    │       ├── StreamUrlError     + Terminal, ValueError
    │       └── StreamUnavailable  + Transient
    ├── TraitError                     (traits/errors.py)
    │   ├── StaleStateError
    │   ├── EventColumnError   + LookupError               events table lacks a column
    │   └── UnsupportedTraitError + ValueError             aggregate a dialect cannot do
    ├── MembershipError                (membership/errors.py)
    │   ├── SegmentStructureError
    │   ├── UnknownSegmentError + KeyError
    │   ├── ReconcileError
    │   ├── StalePreviewError
    │   └── WebhookError
    │       ├── WebhookRetryable   + Transient
    │       └── WebhookRejected    + Terminal
    ├── TemplateError                  (personalize/errors.py)
    │   ├── TemplateNotFound   + LookupError
    │   ├── TemplateSyntaxError + ValueError
    │   └── TemplateRenderError
    │       ├── TemplateSecurityError
    │       ├── TemplateLimitError
    │       └── TemplateUndefinedError
    ├── DeliveryError                  (deliver/errors.py)
    │   ├── TransientDeliveryError + Transient
    │   │   ├── SoftBounce
    │   │   └── ConnectionDropped
    │   └── TerminalDeliveryError  + Terminal
    │       ├── HardBounce
    │       ├── MessageRejected
    │       └── AuthenticationFailed
    ├── CampaignError                  (deliver/errors.py)
    ├── JourneyError                   (journeys/errors.py)
    │   └── UnknownJourneyError + KeyError
    ├── LinkError + ValueError         (deliver/errors.py) tampered or malformed link
    ├── ApiError                       (api/errors.py)     HTTP status + field
    │   └── RateLimited                (api/public.py)     429 + Retry-After
    ├── SparkUnavailable               (scale/spark.py)    pyspark or Java missing
    ├── SparkEventsError + LookupError (scale/spark.py)    no such events file or table
    ├── WorkerError                    (scale/kafka.py)    Kafka workers: no PostgreSQL, no topic
    ├── DemoError                      (demo/errors.py)
    │   └── StageUnavailable                               (demo/stage.py)
    ├── PrivacyError                   (privacy/errors.py)
    │   ├── MasterKeyError     + ValueError                master key missing, bad or wrong
    │   ├── ErasedProfileError                             the profile's key was destroyed
    │   └── AuditChainBroken                               audit entry edited/removed/moved
    ├── ModelError                     (models/errors.py)
    │   ├── UnknownModelError  + KeyError
    │   ├── ModelNotTrainedError
    │   ├── NotEnoughDataError + ValueError                too few profiles, one class
    │   ├── ScoreInstantError  + ValueError                scoring before a version's data
    │   └── MLUnavailableError                             the `ml` extra is not installed
    └── MeasureError                   (measure/errors.py)
        ├── UnknownExperimentError + LookupError
        └── ExperimentDefinitionError + ValueError

Retry logic looks only at the :class:`Transient` / :class:`Terminal` marks, never at the
concrete class.
"""

from __future__ import annotations

from dataclasses import dataclass


class SegmintError(Exception):
    """Base class of every error segmint raises on purpose."""

    def detailed_message(self) -> str:
        """Return the message with any source excerpt and caret, for people to read."""
        return str(self)


class Transient:
    """Mixin: the operation may succeed if retried later."""


class Terminal:
    """Mixin: retrying will not help; record why and give up."""


@dataclass(frozen=True)
class SourceLocation:
    """Where in a text something is: 1-based line and column, and the span length."""

    file: str | None
    line: int
    column: int
    length: int = 1

    def __str__(self) -> str:
        prefix = f"{self.file}:" if self.file else ""
        return f"{prefix}{self.line}:{self.column}"


def caret_excerpt(text: str, loc: SourceLocation, hint: str | None = None) -> str:
    """Render the line of ``text`` at ``loc`` with a caret under the span.

    Args:
        text: The whole source text.
        loc: The location to point at.
        hint: Text written after the carets, such as a "did you mean" suggestion.

    Returns:
        Two lines: the numbered source line and the caret line.
    """
    lines = text.splitlines() or [""]
    index = min(max(loc.line, 1), len(lines)) - 1
    number = str(index + 1)
    gutter = " " * len(number)
    carets = "^" * max(loc.length, 1)
    tail = f" {hint}" if hint else ""
    pad = " " * (loc.column - 1)
    return f"  {number} | {lines[index]}\n  {gutter} | {pad}{carets}{tail}"

"""Errors raised by intake.

::

    SegmintError
    └── IntakeError
        ├── PayloadError (+ ValueError)     a message is malformed; names the field
        │   └── PayloadTooLarge            over the per-message or per-batch size limit
        ├── ApiKeyError                    missing, unknown, revoked or out of scope
        │   ├── UnknownKey                 no such API key
        │   └── RevokedKey                 the key was revoked
        ├── IntakeBusy (+ Transient)       too much is waiting to be stored; retry
        ├── IntakeClosed                   the group-commit writer has stopped
        └── PersonRefError (+ LookupError) an id a person typed names nobody, or two people
            ├── UnknownPersonError         no profile id or identity matches
            └── AmbiguousPersonError       a bare value names two people: write KIND:VALUE

Malformed input is refused with a :class:`PayloadError`; input that is well formed but breaks
the tracking plan is not an error at all: it is quarantined with its reason.
"""

from __future__ import annotations

from segmint.errors import SegmintError, Transient


class IntakeError(SegmintError):
    """A problem taking in events."""


class PayloadError(IntakeError, ValueError):
    """A message is malformed.

    Attributes:
        field: The JSON path of the offending field (``batch[3].userId``), or ``""`` for the
            whole body.
        reason: The problem, without the field.
    """

    status = 400
    code = "invalid_payload"

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)

    def within(self, prefix: str) -> PayloadError:
        """Return the same error with its field placed under ``prefix``."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        if self.field.startswith("["):
            field = f"{prefix}{self.field}"
        return type(self)(field, self.reason)


class PayloadTooLarge(PayloadError):
    """A message or a batch is over its size limit."""

    status = 413
    code = "payload_too_large"


class ApiKeyError(IntakeError):
    """An API key is missing, unknown, revoked or lacks the scope asked for."""


class UnknownKey(ApiKeyError):
    """No key matches."""


class RevokedKey(ApiKeyError):
    """The key was revoked."""


class IntakeBusy(IntakeError, Transient):
    """Too many messages wait (for the writer or for real time); retry shortly.

    ``retry_after``: the seconds a client should wait (the API's ``Retry-After``).
    """

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IntakeClosed(IntakeError):
    """The group-commit writer has stopped; nothing more is accepted."""


class PersonRefError(IntakeError, LookupError):
    """An id a person typed (profile id, user id, email, ``KIND:VALUE`` …) names no one person.

    Attributes:
        ref: The id as typed.
        field: The input field it came from (an API body field, a CLI argument), if known.
    """

    def __init__(self, ref: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.ref = ref
        self.field = field


class UnknownPersonError(PersonRefError):
    """No profile id and no identity matches the id."""


class AmbiguousPersonError(PersonRefError):
    """A bare value is an identity of two different people (a user id and an email).

    Attributes:
        matches: ``KIND:VALUE`` → the profile it names, for each match.
    """

    def __init__(
        self, ref: str, message: str, matches: dict[str, str], field: str | None = None
    ) -> None:
        super().__init__(ref, message, field)
        self.matches = matches

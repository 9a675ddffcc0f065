"""Errors raised by the privacy package.

::

    SegmintError
    └── PrivacyError                     (privacy/errors.py)
        ├── MasterKeyError + ValueError  the master key is missing, malformed or wrong
        ├── ErasedProfileError           the profile's key was destroyed (erased person)
        └── AuditChainBroken             an audit entry was edited, removed or reordered
"""

from __future__ import annotations

from segmint.errors import SegmintError


class PrivacyError(SegmintError):
    """A problem protecting, exporting or erasing personal data."""


class MasterKeyError(PrivacyError, ValueError):
    """The workspace master key is missing, malformed, or does not open the key vault."""


class ErasedProfileError(PrivacyError):
    """A sealed value belongs to a profile whose key was destroyed by an erasure."""


class AuditChainBroken(PrivacyError):
    """The audit log's hash chain does not verify (``problems`` lists where)."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems

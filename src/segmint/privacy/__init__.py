"""Privacy and governance: PII sealed at rest, erasure, export, retention and the audit log.

The public entry points; see ``docs/internals.md`` (Privacy) for how the parts fit.
"""

from __future__ import annotations

from segmint.privacy.audit import append as audit_append
from segmint.privacy.audit import verify as audit_verify
from segmint.privacy.erase import Receipt, erase
from segmint.privacy.errors import (
    AuditChainBroken,
    ErasedProfileError,
    MasterKeyError,
    PrivacyError,
)
from segmint.privacy.export import export_person
from segmint.privacy.keys import generate_master_key
from segmint.privacy.protect import Privacy, truncate_ip
from segmint.privacy.retention import enforce

__all__ = [
    "AuditChainBroken",
    "ErasedProfileError",
    "MasterKeyError",
    "Privacy",
    "PrivacyError",
    "Receipt",
    "audit_append",
    "audit_verify",
    "enforce",
    "erase",
    "export_person",
    "generate_master_key",
    "truncate_ip",
]

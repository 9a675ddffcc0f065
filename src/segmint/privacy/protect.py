"""The workspace's privacy settings at work: intake protection and read-side unsealing.

:class:`Privacy` is built once per workspace (``Workspace.privacy``). Intake calls
:meth:`Privacy.protect` on each message once its profile is known and before it is stored:
undeclared properties are dropped (``minimise``), ``context.ip`` is truncated, derived
plaintext traits (``email_domain``) are computed, and, with a master key, every PII key is
sealed under the profile's key. Everything downstream (stored events, trait SQL, real-time
state, memberships) sees the sealed text, so batch and real time still agree; the read edges
that need the person's data (templates, the delivery address, export) unseal through
:meth:`Privacy.unseal_values`. Identifier values (email) are kept in ``identities`` as a
keyed hash (:meth:`Privacy.identity_index`), so lookups by email still work.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from segmint.config.model import DeriveDef, WorkspaceDef
from segmint.intake.payloads import Message
from segmint.privacy.errors import ErasedProfileError, MasterKeyError
from segmint.privacy.keys import (
    BLIND,
    KEY_FILE,
    VAULT_FILE,
    Keyring,
    Vault,
    is_sealed,
    load_master_key,
)
from segmint.store import Store, read_meta, write_meta

ERASED = "[erased]"
"""What an unreadable value of an erased person reads as."""


class Privacy:
    """One workspace's privacy settings, key ring (when a master key is configured) and salt.

    Args:
        path: The workspace folder (the key folder is relative to it).
        definition: The workspace definition.
        store: The store (for the salt and the erased-subject list).
        environ: The environment to read the master key variable from (default: os.environ).
    """

    def __init__(
        self,
        path: Path,
        definition: WorkspaceDef,
        store: Store,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = definition.privacy
        self.store = store
        self.plan = definition.tracking_plan
        self.identifiers = definition.identifiers
        self.names = frozenset(self.settings.pii) | {
            n for n, t in definition.traits.items() if t.pii
        }
        self.key_dir = path / self.settings.key_dir
        found = load_master_key(self.key_dir, self.settings.key_env, environ)
        self.keyring: Keyring | None = None
        if found is not None:
            key, origin = found
            self.keyring = Keyring(key, Vault(self.key_dir / VAULT_FILE), origin)
        self._salt: bytes | None = None
        self.plaintext_on_purpose = False
        """Set by a caller that runs keyless on purpose (a scratch store of made-up people):
        :meth:`require_key` then lets it be."""

    @property
    def encrypting(self) -> bool:
        """Whether PII is sealed at rest (a master key is configured)."""
        return self.keyring is not None

    def require_key(self, action: str) -> None:
        """Refuse ``action`` when the workspace seals PII but no master key is configured.

        Without the key, an erasure could neither destroy the person's keys nor read their
        sealed identifiers, and an export would show every sealed value as erased.

        Raises:
            MasterKeyError: The key vault exists and no master key is configured.
        """
        vault = self.key_dir / VAULT_FILE
        if self.keyring is None and not self.plaintext_on_purpose and vault.exists():
            raise MasterKeyError(
                f"{action} needs the master key: this workspace seals PII (its key vault is "
                f"{vault}) but none is configured; set ${self.settings.key_env} or restore "
                f"{self.key_dir / KEY_FILE}"
            )

    def close(self) -> None:
        """Close the key vault."""
        if self.keyring is not None:
            self.keyring.vault.close()

    # --- intake -------------------------------------------------------------------------

    def protect(self, profile_id: str, message: Message) -> Message:
        """Make ``message`` what is stored: minimised, IP truncated, PII sealed (in place).

        Doing it again changes nothing (sealed values stay as they are), so a batch that
        intake retries after a failed transaction is stored the same.
        """
        if self.settings.minimise and self.plan is not None and message.type == "track":
            message.properties = _minimise(self.plan.events.get(message.event or ""),
                                           message.properties)  # fmt: skip
        context = message.context
        if self.settings.truncate_ip and "ip" in context:
            context = message.context = {**context, "ip": truncate_ip(context["ip"])}
        inner = context.get("traits")
        if isinstance(inner, dict) and inner:
            message.context = {**context, "traits": self._seal(profile_id, inner)}
        message.properties = self._seal(profile_id, message.properties)
        message.traits = self._seal(profile_id, message.traits)
        return message

    def prepare(self, profile_ids: Iterable[str]) -> None:
        """Load the keys of ``profile_ids`` in one vault query (before a batch is sealed)."""
        if self.keyring is not None:
            self.keyring.preload(profile_ids)

    def seal_values(self, profile_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with every PII value sealed under ``profile_id``'s key.

        Derived plaintext traits are added; ``values`` itself comes back when there is
        nothing to seal.
        """
        return self._seal(profile_id, values)

    def _seal(self, profile_id: str, values: dict[str, Any]) -> dict[str, Any]:
        names = self.names
        if not values or names.isdisjoint(values):
            return values
        out = dict(values)
        for name, rule in self.settings.derive.items():
            source = values.get(rule.from_)
            if source is not None and not is_sealed(source):
                out[name] = self.derive(rule, source)
        if self.keyring is not None:
            seal = self.keyring.seal
            for key in names.intersection(values):
                value = values[key]
                if value is not None and not is_sealed(value):
                    out[key] = seal(profile_id, value)
        return out

    def derive(self, rule: DeriveDef, value: Any) -> Any:
        """A derived plaintext value of a PII value (``domain`` or keyed ``hash``)."""
        text = str(value).strip().lower()
        if rule.take == "domain":
            return text.rpartition("@")[2] or None if "@" in text else None
        return self.subject_hash(rule.from_, text)

    def flush(self) -> None:
        """Write data keys made for new profiles to the vault (before the store commits)."""
        if self.keyring is not None:
            self.keyring.flush()

    def identity_index(self, kind: str, value: str) -> str:
        """How an identifier value is kept in ``identities``: a keyed hash for PII kinds."""
        if self.keyring is None or kind not in self.names:
            return value
        return self.keyring.blind_index(kind, value)

    def address_key(self, address: str) -> str:
        """How a delivery address is kept in ``suppressions`` and ``address_consents``.

        The normalised address, or with PII encryption on the blind index ``identities``
        keeps for it (so the gate and the owner lookup compare keys, never addresses).
        A value that already is a blind index (an email identity) is returned as it is.
        """
        key = address.strip().lower()
        return key if key.startswith(BLIND) else self.identity_index("email", key)

    def seal_address(self, profile_id: str, address: str) -> str:
        """How ``sends.address`` keeps an address: sealed under the profile's key when on.

        Call :meth:`flush` before the store commits (a profile with no key yet gets one).
        """
        if self.keyring is None or "email" not in self.names:
            return address
        return self.keyring.seal(profile_id, address)

    def seal_payload(self, profile_id: str, text: str) -> str:
        """A queued message body about ``profile_id``, sealed under its key when on.

        Call :meth:`flush` before the store commits (a profile with no key yet gets one).
        """
        if self.keyring is None:
            return text
        return self.keyring.seal(profile_id, text)

    # --- erased subjects ------------------------------------------------------------------

    def salt(self) -> bytes:
        """The workspace's random salt for subject hashes (made on first use, in ``meta``)."""
        if self._salt is None:
            text = read_meta(self.store, "privacy_salt")
            if text is None:
                text = secrets.token_hex(16)
                write_meta(self.store, "privacy_salt", text)
            self._salt = bytes.fromhex(text)
        return self._salt

    def has_salt(self) -> bool:
        """Whether the salt exists (it is made by the first erasure or intake check).

        A read that finds none knows no subject was ever erased, and writes nothing: a
        lookup beside a running server may only read (DuckDB: :mod:`segmint.store.shared`).
        """
        return self._salt is not None or read_meta(self.store, "privacy_salt") is not None

    def subject_hash(self, kind: str, value: str) -> str:
        """A salted hash of an identifier, kept after erasure instead of the value."""
        text = value.strip().lower() if kind == "email" else value.strip()
        return hashlib.sha256(self.salt() + f"{kind}\x1f{text}".encode()).hexdigest()

    def erased_hashes(self, message: Message) -> list[str]:
        """The subject hashes of the identifiers ``message`` carries."""
        found = []
        if message.user_id:
            found.append(self.subject_hash("user_id", message.user_id))
        inner = message.context.get("traits")
        for traits in (message.traits, inner if isinstance(inner, dict) else {}):
            for kind in self.identifiers:
                value = traits.get(kind)
                if isinstance(value, str) and value.strip():
                    found.append(self.subject_hash(kind, value))
        return found

    # --- reading --------------------------------------------------------------------------

    def unseal(self, value: Any) -> Any:
        """The plaintext of a sealed value (:data:`ERASED` once its key is destroyed)."""
        if not is_sealed(value):
            return value
        if self.keyring is None:
            return ERASED
        try:
            return self.keyring.unseal(value)
        except ErasedProfileError:
            return ERASED

    def unseal_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with every sealed value opened (a no-op without sealed values)."""
        if not any(is_sealed(v) for v in values.values()):
            return values
        return {k: self.unseal(v) for k, v in values.items()}


def _minimise(plan: Any, properties: dict[str, Any]) -> dict[str, Any]:
    if plan is None:
        return properties  # an unplanned event (allowed by the plan): nothing declared
    kept = {k: v for k, v in properties.items() if k in plan.properties}
    return properties if len(kept) == len(properties) else kept


def truncate_ip(value: Any) -> Any:
    """An IP address with its host part zeroed (IPv4 to /24, IPv6 to /48)."""
    text = str(value).strip()
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts):
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0"  # the usual IPv4 case, without parsing
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None  # not an address: keep nothing rather than something identifying
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)

"""Sealing what names people but belongs to no profile: quarantined payloads.

A quarantined message failed validation before identity resolution, so no profile key
covers it. With a master key configured it is sealed whole under the identities it names
(:func:`segmint.intake.identity.payload_identities`: userId, anonymousId, identifier values
in traits, ``context.traits`` and properties). Each identity has a *subject key* in the
vault, named ``s_`` and the hex of its blind index (the keyed hash ``identities`` keeps for
emails). The payload gets a random key of its own, split into XOR shares, one sealed under
each subject key: every share is needed to read it, so destroying *any one* subject key
makes it unreadable, in the store and in every copy of it. Erasure
(:func:`segmint.privacy.erase.erase`) destroys the subject keys of every identity of the
person, including an email only a quarantined message carried next to their userId.

A payload naming no identity (not JSON, or no id in it) is sealed under the key of its
arrival day (``s_day_YYYYMMDD``): nothing is stored in plaintext, erasure cannot link it to
anyone, and destroying that day's key (:func:`shred_unlinked`) shreds every such row of the
day at once.

The sealed text is ``encs:<base64(nonce|ciphertext)>|<share>|<share>…``, each share a sealed
value (:mod:`segmint.privacy.keys`) naming its subject key. Beside it the row keeps the
subject names (``subjects``), so erasure finds and deletes the rows it can; without a master
key those are salted hashes (``h_…``) and the payload stays plaintext, as before.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Sequence
from datetime import date

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from segmint.privacy.errors import ErasedProfileError, MasterKeyError
from segmint.privacy.keys import BLIND
from segmint.privacy.protect import Privacy

SEALED_SUBJECTS = "encs:"
"""The prefix of a payload sealed under subject keys."""
_AAD = b"segmint-subject-sealed"


def is_subject_sealed(text: object) -> bool:
    """Whether ``text`` is a payload sealed under subject keys."""
    return isinstance(text, str) and text.startswith(SEALED_SUBJECTS)


def subject_names(privacy: Privacy, identities: Iterable[tuple[str, str]]) -> list[str]:
    """The subject names of ``identities`` (kind, plaintext value or blind index).

    With a master key: the vault key names ``s_<blind index hex>``; without: ``h_`` and a
    salted hash (so erasure still finds plaintext rows).
    """
    keyring = privacy.keyring
    names: list[str] = []
    for kind, value in identities:
        if keyring is not None:
            index = value if value.startswith(BLIND) else keyring.blind_index(kind, value)
            names.append("s_" + index[len(BLIND) :])
        elif not value.startswith(BLIND):
            names.append("h_" + privacy.subject_hash(kind, value)[:40])
    return list(dict.fromkeys(names))


def all_subject_names(privacy: Privacy, identities: Iterable[tuple[str, str]]) -> list[str]:
    """Both spellings of ``identities``' subject names (rows may predate the master key)."""
    found = list(identities)
    names = subject_names(privacy, found)
    plain = [(k, v) for k, v in found if not v.startswith(BLIND)]
    names += ["h_" + privacy.subject_hash(k, v)[:40] for k, v in plain]
    return list(dict.fromkeys(names))


def day_key(day: date) -> str:
    """The subject key of the payloads naming nobody that arrived on ``day``."""
    return f"s_day_{day:%Y%m%d}"


def seal(
    privacy: Privacy, text: str, identities: Sequence[tuple[str, str]], day: date
) -> tuple[str, str | None]:
    """Seal ``text`` under the subject keys of ``identities``; return it and its subjects.

    Without a master key the text is returned as it is. Call :meth:`Privacy.flush` before
    the store commits (new subject keys wait in the key ring until then).
    """
    names = subject_names(privacy, identities)
    listed = " ".join(names) or None
    keyring = privacy.keyring
    if keyring is None:
        return text, listed
    keys = names or [day_key(day)]
    secret = secrets.token_bytes(32)
    shares = [secrets.token_bytes(32) for _ in keys[1:]]
    last = secret
    for share in shares:
        last = bytes(a ^ b for a, b in zip(last, share, strict=True))
    shares.append(last)
    nonce = secrets.token_bytes(12)
    body = nonce + AESGCM(secret).encrypt(nonce, text.encode(), _AAD)
    sealed = [
        keyring.seal(k, base64.b64encode(s).decode()) for k, s in zip(keys, shares, strict=True)
    ]
    return SEALED_SUBJECTS + "|".join([base64.b64encode(body).decode(), *sealed]), listed


def open_sealed(privacy: Privacy | None, text: str) -> str:
    """The plaintext of a payload sealed by :func:`seal` (any other text as it is).

    Raises:
        ErasedProfileError: A subject key is destroyed (someone it names was erased).
        MasterKeyError: No master key is configured to open it.
    """
    if not is_subject_sealed(text):
        return text
    keyring = None if privacy is None else privacy.keyring
    if keyring is None:
        raise MasterKeyError(
            "this quarantined payload is sealed (PII encryption): set the master key "
            "($SEGMINT_MASTER_KEY or the key file in .segmint-keys/) to read or replay it"
        )
    body, *shares = text[len(SEALED_SUBJECTS) :].split("|")
    secret = bytes(32)
    try:
        for share in shares:
            part = base64.b64decode(keyring.unseal(share))  # ErasedProfileError once destroyed
            secret = bytes(a ^ b for a, b in zip(secret, part, strict=True))
        raw = base64.b64decode(body)
        return AESGCM(secret).decrypt(raw[:12], raw[12:], _AAD).decode()
    except InvalidTag:  # a key of the same name made after an erasure: not the one used
        raise ErasedProfileError("a key this payload was sealed under is destroyed") from None


def destroy(privacy: Privacy, names: Iterable[str]) -> int:
    """Destroy the subject keys ``names`` (those that exist); return how many existed."""
    keys = [n for n in names if n.startswith("s_")]
    if privacy.keyring is None or not keys:
        return 0
    return privacy.keyring.destroy(keys)


def shred_unlinked(privacy: Privacy, day: date) -> int:
    """Destroy the key of the payloads naming nobody that arrived on ``day``."""
    return destroy(privacy, [day_key(day)])


def shred_unlinked_before(privacy: Privacy, day: date) -> int:
    """Destroy the day keys of every day before ``day``; return how many existed."""
    if privacy.keyring is None:
        return 0
    prefix = day_key(day)[: -len("YYYYMMDD")]
    names = privacy.keyring.vault.names(prefix)
    return destroy(privacy, [n for n in names if n < day_key(day)])


__all__ = [
    "SEALED_SUBJECTS",
    "all_subject_names",
    "day_key",
    "destroy",
    "is_subject_sealed",
    "open_sealed",
    "seal",
    "shred_unlinked",
    "shred_unlinked_before",
    "subject_names",
]

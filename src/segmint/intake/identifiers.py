"""Which identifier trait values intake trusts to say who a person is.

An identifier trait (workspace ``identifiers``: ``email`` by default, a ``phone``, a
customer number) links every profile that carries the same value. A value typed into a form
by someone who did not want to give it (``"none"``, ``"n/a"``, ``"-"``), a blank, or a number
where an email belongs would link strangers: two visitors who both typed ``none`` would
become one person. So a value is used as an identity only when it is usable:

- **any identifier**: a string (or, except for an email, an integer), not blank once
  trimmed, and no placeholder word (:data:`PLACEHOLDERS`, any case);
- **email**: ``local@domain`` with one ``@``, no spaces, and a domain of at least two
  non-empty labels (``ann+news@example.com``, ``Ann@Bücher.de`` and upper case are fine;
  ``5``, ``none``, ``ann@``, ``ann@localhost`` are not);
- **phone** (:data:`PHONE_NAMES`): 5 to 15 digits (E.164 allows 15), optionally after a
  ``+``, with spaces, dashes, dots, slashes and parentheses between them.

The same holds for a ``userId`` or ``anonymousId`` (:func:`usable_id`): blank or a placeholder
(``"null"``, ``"undefined"``), it names nobody. A message left with neither is refused (the
tracking API answers 400 naming the field; imports quarantine it with that reason), and so
is an alias naming such an id.

An unusable value is *ignored as an identity* only: the message is stored as sent (events
are the source of truth, and the trait shows on the profile as typed so the user can see
and fix it), and intake counts it per source for ``segmint quality``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from segmint.common import looks_like_address

if TYPE_CHECKING:
    from segmint.intake.payloads import Message

PLACEHOLDERS = frozenset(
    {"none", "null", "nil", "undefined", "n/a", "na", "unknown", "-", "--", "?", "[object object]"}
)
"""Words clients and forms send for "no value"; never an identity."""

PHONE_NAMES = frozenset({"phone", "phone_number", "mobile", "mobile_phone"})
"""Identifier names checked as phone numbers."""

_PHONE = re.compile(r"\+?\d{5,15}")
_PHONE_SEPARATORS = str.maketrans("", "", " -./()\u00a0")


def identifier_value(name: str, value: Any) -> str | None:
    """An identifier trait's value as intake keys it (trimmed; emails lowercased), or None.

    None means the value is absent or not usable as an identity (see the module docstring).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, float) and (name == "email" or name in PHONE_NAMES):
        return None  # a float is no email, and would lose a phone's digits
    if name == "email" and not isinstance(value, str):
        return None  # nor is an integer an email
    text = str(value).strip()
    if name == "email":
        text = text.lower()
    return text if usable(name, text) else None


def usable(name: str, text: str) -> bool:
    """Whether the trimmed ``text`` may link profiles as identifier ``name``."""
    if not text or text.lower() in PLACEHOLDERS:
        return False
    if name == "email":
        return looks_like_address(text)
    if name in PHONE_NAMES:
        return _PHONE.fullmatch(text.translate(_PHONE_SEPARATORS)) is not None
    return True


def usable_id(value: str | None) -> bool:
    """Whether a userId, anonymousId or previousId may name someone: not blank, no placeholder.

    Clients send ``"null"`` or ``"undefined"`` for a user they do not know (a JavaScript
    variable never set); used as an id, it would make one person of everyone it was sent for.
    """
    if value is None:
        return False
    text = value.strip()
    return bool(text) and text.lower() not in PLACEHOLDERS


def usable_ids(message: Message, ignored: list[str]) -> Message:
    """``message`` as identity resolution reads it: no userId or anonymousId naming nobody.

    Each such id (``"null"``, blank) is left out, its kind added to ``ignored``. Decoding
    refused a message left with neither; the stored event keeps them as sent.
    """
    user, anonymous = message.user_id, message.anonymous_id
    if (user is None or usable_id(user)) and (anonymous is None or usable_id(anonymous)):
        return message
    if user is not None and not usable_id(user):
        ignored.append("user_id")
        user = None
    if anonymous is not None and not usable_id(anonymous):
        ignored.append("anonymous_id")
        anonymous = None
    return replace(message, user_id=user, anonymous_id=anonymous)

"""Engagement events (delivered, bounced, opened, clicked, unsubscribed) built for intake.

Engagement never writes the ``events`` table itself: these functions build Segment-spec
track messages, and the caller submits them through :class:`segmint.intake.Intake`, so
engagement feeds traits (``emails_opened_30d``) and segments like any other event.

Machine opens are flagged, not dropped: ``properties.machine_open`` is true when the pixel
was fetched by a known image proxy or security scanner (by user agent), or within
:data:`MACHINE_OPEN_SECONDS` of delivery (prefetching, as Apple Mail Privacy Protection does).
Rates that should count people exclude them with ``where: "not machine_open"``. Clicks by
link scanners are flagged the same way (``machine_click``, by user agent only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from segmint.common import batched
from segmint.config.model import CampaignDef
from segmint.store import Store, from_store_time

if TYPE_CHECKING:
    from segmint.deliver.ledger import SendLedger, UnannouncedRow

MACHINE_OPEN_SECONDS = 5.0
MACHINE_AGENTS = (
    "googleimageproxy",
    "ggpht.com",
    "yahoomailproxy",
    "apple mail privacy",
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "python-requests",
    "curl/",
    "wget/",
    "bot",
    "crawler",
    "spider",
)
"""Lower-case user-agent fragments of image proxies, link scanners and scripts."""
BARE_AGENTS = ("mozilla/5.0", "")
"""Whole user agents that only proxies send (Apple's privacy proxy sends a bare Mozilla/5.0)."""


def is_machine_agent(user_agent: str | None) -> bool:
    """Return whether a user agent is an image proxy, a link scanner or a script."""
    agent = (user_agent or "").strip().lower()
    return agent in BARE_AGENTS or any(fragment in agent for fragment in MACHINE_AGENTS)


def is_machine_open(user_agent: str | None, opened_at: datetime, sent_at: datetime | None) -> bool:
    """Return whether an open looks automatic (see the module docstring)."""
    if is_machine_agent(user_agent):
        return True
    if sent_at is None:
        return False
    return opened_at - sent_at < timedelta(seconds=MACHINE_OPEN_SECONDS)


def identity_of(store: Store, profile_id: str) -> dict[str, str]:
    """Return the ``userId`` (else ``anonymousId``) under which to attribute an event.

    Reads the ``identities`` table; a profile without one is addressed by its own id.
    """
    return identities_of(store, [profile_id])[profile_id]


def identities_of(store: Store, profile_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Return :func:`identity_of` for many profiles, in one query per 500 of them."""
    found: dict[str, dict[str, str]] = {}
    for chunk in batched(list(dict.fromkeys(profile_ids)), 500):
        marks = ", ".join("?" for _ in chunk)
        rows = store.fetchall(
            "SELECT profile_id, kind, value FROM identities "
            f"WHERE profile_id IN ({marks}) AND kind IN ('user_id', 'anonymous_id') "
            "ORDER BY kind DESC, first_seen_at",
            list(chunk),
        )
        for pid, kind, value in rows:  # user_id sorts after anonymous_id: DESC puts it first
            found.setdefault(pid, {"userId" if kind == "user_id" else "anonymousId": value})
    return {pid: found.get(pid, {"userId": pid}) for pid in profile_ids}


def engagement_message(
    event: str,
    identity: dict[str, str],
    at: datetime,
    properties: dict[str, Any],
    *,
    key: str,
) -> dict[str, Any]:
    """Build one Segment-spec track message.

    Args:
        event: ``Email Delivered``, ``Email Opened``, ``Email Link Clicked`` …
        identity: ``{"userId": …}`` or ``{"anonymousId": …}``.
        at: When it happened.
        properties: The event's properties.
        key: Text that identifies this occurrence; the messageId is derived from it, so a
            repeated submission is deduplicated by intake.
    """
    digest = hashlib.sha256(f"{event}|{key}".encode()).hexdigest()[:32]
    return {
        "type": "track",
        "event": event,
        **identity,
        "timestamp": at.isoformat(),
        "messageId": f"email-{digest}",
        "properties": properties,
        "context": {"library": {"name": "segmint.deliver"}},
    }


def delivered_messages(
    store: Store, campaign: CampaignDef, name: str, rows: Sequence[UnannouncedRow]
) -> list[dict[str, Any]]:
    """Build ``Email Delivered`` messages for sent ledger rows.

    Args:
        store: The store (for each profile's identity).
        campaign: The campaign's definition.
        name: The campaign's name.
        rows: (profile_id, message_id, address, sent_at naive UTC, template) from the
            ledger; the template is the one the row was sent (None: the campaign's).
    """
    out = []
    identities = identities_of(store, [r[0] for r in rows])
    for profile_id, message_id, _address, sent_at, template in rows:
        at = from_store_time(sent_at)
        assert at is not None
        properties = {
            "campaign": name,
            "topic": campaign.topic,
            "template": template or campaign.template,
            "email_id": message_id,
        }
        key = f"{name}|{profile_id}"
        out.append(
            engagement_message("Email Delivered", identities[profile_id], at, properties, key=key)
        )
    return out


Announce = Callable[[list[dict[str, Any]]], object]
"""Submits engagement messages to intake (``Intake.submit`` with ``source="email"``)."""


def email_announcer(intake: Any) -> Announce:
    """An :data:`Announce` that submits through ``intake`` (a :class:`segmint.intake.Intake`)."""

    def announce(messages: list[dict[str, Any]]) -> object:
        return intake.submit(messages, source="email")

    return announce


def announce_ledger(
    store: Store, ledger: SendLedger, definition: CampaignDef, announce: Announce
) -> int:
    """Submit one ledger campaign's unannounced bounces and deliveries, then mark them.

    Campaigns and journey steps both announce this way, from the ledger, so a run that
    died after sending announces nothing twice and loses nothing: the next one submits
    what it left (intake drops a repeat by its messageId).

    Returns:
        How many messages were submitted.
    """
    count = 0
    for bounces in batched(ledger.unannounced_bounces()):
        announce(bounce_messages(store, ledger.campaign, bounces))
        ledger.bounces_announced([b[0] for b in bounces])
        count += len(bounces)
    for chunk in batched(ledger.unannounced()):
        announce(delivered_messages(store, definition, ledger.campaign, chunk))
        ledger.announced([r[0] for r in chunk])
        count += len(chunk)
    return count


def bounce_messages(
    store: Store, name: str, bounces: Sequence[tuple[str, int | None, datetime]]
) -> list[dict[str, Any]]:
    """Build ``Email Bounced`` messages for hard bounces: (profile_id, SMTP code, time)."""
    identities = identities_of(store, [b[0] for b in bounces])
    return [
        engagement_message(
            "Email Bounced",
            identities[pid],
            at,
            {"campaign": name, "code": code, "type": "hard"},
            key=f"{name}|{pid}|bounce",
        )
        for pid, code, at in bounces
    ]


def sent_at_of(store: Store, campaign: str, profile_id: str) -> datetime | None:
    """Return when the ledger says ``campaign`` was sent to ``profile_id``."""
    rows = store.fetchall(
        "SELECT sent_at FROM sends WHERE campaign = ? AND profile_id = ?", [campaign, profile_id]
    )
    return from_store_time(rows[0][0]) if rows else None


def open_message(
    store: Store, data: dict[str, Any], at: datetime, user_agent: str | None
) -> dict[str, Any]:
    """Build the ``Email Opened`` message for a verified open-pixel payload."""
    campaign, profile_id, email_id = data["c"], data["p"], data.get("m")
    machine = is_machine_open(user_agent, at, sent_at_of(store, campaign, profile_id))
    properties = {
        "campaign": campaign,
        "email_id": email_id,
        "machine_open": machine,
        "user_agent": user_agent or "",
    }
    key = f"{campaign}|{profile_id}|{at.isoformat()}|{user_agent}"
    return engagement_message(
        "Email Opened", identity_of(store, profile_id), at, properties, key=key
    )


def click_message(
    store: Store, data: dict[str, Any], at: datetime, user_agent: str | None
) -> dict[str, Any]:
    """Build the ``Email Link Clicked`` message for a verified click payload."""
    campaign, profile_id = data["c"], data["p"]
    properties = {
        "campaign": campaign,
        "email_id": data.get("m"),
        "url": data["u"],
        "machine_click": is_machine_agent(user_agent),
        "user_agent": user_agent or "",
    }
    key = f"{campaign}|{profile_id}|{data['u']}|{at.isoformat()}|{user_agent}"
    return engagement_message(
        "Email Link Clicked", identity_of(store, profile_id), at, properties, key=key
    )


def unsubscribe_message(
    store: Store, profile_id: str, topic: str, campaign: str | None, at: datetime, method: str
) -> dict[str, Any]:
    """Build the ``Email Unsubscribed`` message (``method``: ``one_click``, ``page``, ``api``)."""
    properties = {"campaign": campaign, "topic": topic, "method": method}
    key = f"{campaign}|{profile_id}|{topic}|{at.isoformat()}"
    return engagement_message(
        "Email Unsubscribed", identity_of(store, profile_id), at, properties, key=key
    )

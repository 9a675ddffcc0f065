"""One customer's year in the demo shop: a profile and a timeline of sessions, orders, email.

:func:`simulate` draws everything from a ``random.Random`` seeded by (seed, customer index),
so a customer's events do not depend on how many customers are generated, and the same seed
always gives the same shop.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from typing import Any

from segmint.demo import catalog as cat
from segmint.demo.archetypes import Archetype, pick_archetype
from segmint.demo.messages import Entry, Identity
from segmint.demo.sessions import SessionWriter

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Customer:
    """What the generator decided about one customer (for reports and tests, not ingested).

    Attributes:
        index: The customer's number.
        archetype: The archetype drawn.
        identity: Device id, user id, identification time and time zone.
        email: The email address given when identifying (None if never identified).
        first_name: The first name given, or None (left out on purpose for some).
        consent: The email consent given: True, False, or None when not asked.
        currency: The shop currency of the customer's region.
    """

    index: int
    archetype: Archetype
    identity: Identity
    email: str | None
    first_name: str | None
    consent: bool | None
    currency: str


def simulate(seed: int, index: int, end: float) -> tuple[Customer, list[Entry]]:
    """Simulate one customer up to ``end`` (epoch seconds) and return them and their timeline.

    Args:
        seed: The shop's seed.
        index: The customer's number.
        end: The demo's end instant; every event happens before it.

    Returns:
        The customer and their entries, sorted by time.
    """
    rng = random.Random(f"segmint-demo:{seed}:{index}")  # noqa: S311 (synthetic data)
    arch = pick_archetype(rng)
    zone = rng.choices(cat.ZONES, weights=cat.ZONE_WEIGHTS)[0]
    start = end - rng.uniform(*arch.tenure_days) * DAY - rng.uniform(0, DAY)
    orders = _order_times(rng, arch, start, end)
    start = min([start, *(t - DAY for t in orders[:1])])
    browse_end = max(start + 600, end - rng.uniform(*arch.quiet_days) * DAY - 600)
    browse = sorted(rng.uniform(start, browse_end) for _ in range(rng.randint(*arch.sessions)))
    identified_at = _identified_at(rng, arch, start, browse, orders)
    customer = _make_customer(rng, seed, index, arch, zone, identified_at)
    writer = SessionWriter(rng, arch, zone, seed, index, end)
    for at in browse:
        writer.browse(writer.local_time(at))
    for number, at in enumerate(orders):
        writer.purchase(at, number)
    if rng.random() < arch.recent_abandon:
        writer.browse(end - rng.uniform(0.2, 4.5) * DAY, abandon=True)
    entries = writer.entries
    if identified_at is not None:
        entries.append(Entry(identified_at, "identify", None, _traits(rng, customer, zone)))
        if customer.consent:
            entries.extend(_emails(rng, arch, customer, identified_at, end))
    entries.sort(key=lambda e: e.at)
    return customer, entries


def _order_times(rng: random.Random, arch: Archetype, start: float, end: float) -> list[float]:
    count = rng.randint(*arch.orders)
    if count == 0:
        return []
    last = end - rng.uniform(*arch.last_order_days) * DAY
    first = min(start, last - DAY)
    return sorted([*(rng.uniform(first, last - 3600) for _ in range(count - 1)), last])


def _identified_at(
    rng: random.Random, arch: Archetype, start: float, browse: list[float], orders: list[float]
) -> float | None:
    """When the visitor identifies: at signup, at their first checkout, or from the start."""
    if not orders and rng.random() >= arch.identified:
        return None
    if rng.random() >= arch.starts_anonymous:
        return start - 60
    if orders:
        return orders[0] - 120
    later = browse[1:] or browse or [start]
    return rng.choice(later) + 400


def _make_customer(
    rng: random.Random,
    seed: int,
    index: int,
    arch: Archetype,
    zone: cat.Zone,
    identified_at: float | None,
) -> Customer:
    first = rng.choice(cat.FIRST_NAMES)
    last = rng.choice(cat.LAST_NAMES)
    name = f"{first}.{last}".lower().replace("'", "").replace("ø", "o")
    local = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    email = f"{local}.{index}@{rng.choice(cat.EMAIL_DOMAINS)}"
    roll = rng.random()
    consent = True if roll < arch.consent else (False if roll < (1 + arch.consent) / 2 else None)
    identity = Identity(
        anonymous_id=f"anon-{rng.getrandbits(64):016x}",
        user_id=f"user-{seed}-{index:06d}",
        identified_at=identified_at,
        timezone=zone.name,
    )
    known = identified_at is not None
    return Customer(
        index=index,
        archetype=arch,
        identity=identity,
        email=email if known else None,
        first_name=first if known and rng.random() >= 0.08 else None,
        consent=consent if known else None,
        currency=zone.currency,
    )


def _traits(rng: random.Random, customer: Customer, zone: cat.Zone) -> dict[str, Any]:
    """The traits of the identify call; some are left out on purpose (missing data)."""
    traits: dict[str, Any] = {"email": customer.email}
    if customer.first_name is not None:
        traits["first_name"] = customer.first_name
    if rng.random() >= 0.05:
        traits["timezone"] = zone.name
    if customer.consent is not None:
        traits["email_consent"] = customer.consent
    traits["currency"] = customer.currency
    return traits


SEND_SHARE = 0.15
"""Share of eligible customers each weekly newsletter goes to (sends are targeted)."""


def _emails(
    rng: random.Random, arch: Archetype, customer: Customer, since: float, end: float
) -> list[Entry]:
    """Weekly newsletters after identifying: deliveries, bounces, opens, clicks, unsubscribes."""
    entries: list[Entry] = []
    for week in range(52, 0, -1):
        sent = (end // DAY - week * 7 + 2) * DAY + 14 * 3600
        if sent < since or rng.random() >= SEND_SHARE:
            continue
        kind, subject = cat.NEWSLETTERS[week % len(cat.NEWSLETTERS)]
        props = {
            "email_id": f"{kind}-{week:02d}-{customer.index:06d}",
            "campaign_id": f"{kind}-{week:02d}",
            "campaign_name": subject,
            "email_subject": subject,
        }
        at = sent + rng.uniform(0, 900)
        if rng.random() < arch.bounce_rate:  # the address is dead: the provider stops sending
            bounce = dict(props, recipient=customer.email, bounce_type="hard")
            entries.append(Entry(at, "track", "Email Bounced", bounce, "email"))
            break
        entries.append(Entry(at, "track", "Email Delivered", props, "email"))
        if rng.random() < arch.unsubscribe_rate:
            at = sent + rng.uniform(3600, 2 * DAY)
            if at < end:
                # The provider keeps the unsubscribe; the demo imports its list (consent step).
                entries.append(Entry(at, "track", "Unsubscribed", dict(props), "email"))
            break
        entries.extend(_engagement(rng, arch, props, at, end))
    return entries


def _engagement(
    rng: random.Random, arch: Archetype, props: dict[str, Any], delivered: float, end: float
) -> list[Entry]:
    if rng.random() >= arch.open_rate:
        return []
    opened = delivered + 30 + rng.expovariate(1 / (6 * 3600))
    found = [Entry(opened, "track", "Email Opened", dict(props), "email")]
    if rng.random() < arch.click_rate:
        link = f"{cat.SHOP_URL}/{'sale' if 'sale' in props['campaign_id'] else 'new'}"
        clicked = dict(props, link_url=link)
        found.append(
            Entry(opened + rng.uniform(5, 300), "track", "Email Link Clicked", clicked, "email")
        )
    return [e for e in found if e.at < end]

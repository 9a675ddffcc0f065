"""Customer archetypes of the demo shop: who they are and how each behaves.

Each archetype is a bundle of behaviour parameters; the generator
(:mod:`segmint.demo.customer`) turns one into a timeline of sessions, orders and emails. The
parameters are chosen so the archetypes land in the demo workspace's segments: VIPs spend a
lot, loyal customers buy often and open email, lapsing and churned customers stopped buying
60–150 and 150+ days before the end date, window shoppers browse and never buy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

Range = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Archetype:
    """How one kind of customer behaves over the demo year.

    Attributes:
        name: The archetype's name (recorded nowhere in the events; tests read it from the plan).
        share: Its share of all customers.
        tenure_days: First seen this many days before the end date.
        quiet_days: No browsing in the last this many days before the end date.
        sessions: Browsing sessions over the tenure (purchase sessions come on top).
        views: Product views per session.
        orders: Orders over the tenure.
        last_order_days: The last order is this many days before the end date.
        items: Line items per order.
        premium: Probability that a product picked is from the premium end of its category.
        coupon: Probability that an order uses a coupon.
        cart_rate: Probability that a browsing session adds to a cart (then abandons it).
        recent_abandon: Probability of an abandoned cart in the last few days.
        identified: Probability that the visitor ever identifies (account, signup, checkout).
        starts_anonymous: Probability that the first sessions happen before identifying.
        consent: Probability of saying yes to marketing email when identifying.
        open_rate: Probability of opening a delivered email.
        click_rate: Probability of clicking an opened email.
        unsubscribe_rate: Probability of unsubscribing from a delivered email.
        bounce_rate: Probability that a send hard-bounces (the address died); sends stop.
        loves_sales: Lands on the sale page and buys discounted items.
    """

    name: str
    share: float
    tenure_days: Range
    quiet_days: Range
    sessions: Range
    views: Range
    orders: Range = (0, 0)
    last_order_days: Range = (1, 30)
    items: Range = (1, 2)
    premium: float = 0.25
    coupon: float = 0.1
    cart_rate: float = 0.1
    recent_abandon: float = 0.05
    identified: float = 1.0
    starts_anonymous: float = 0.3
    consent: float = 0.7
    open_rate: float = 0.3
    click_rate: float = 0.2
    unsubscribe_rate: float = 0.004
    bounce_rate: float = 0.002
    loves_sales: bool = False


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        "new_visitor", 0.16, tenure_days=(1, 60), quiet_days=(0, 0), sessions=(1, 2),
        views=(1, 3), cart_rate=0.15, recent_abandon=0.04, identified=0.3,
        starts_anonymous=1.0, consent=0.7, open_rate=0.25,
    ),
    Archetype(
        "window_shopper", 0.13, tenure_days=(40, 365), quiet_days=(0, 10), sessions=(4, 8),
        views=(2, 4), cart_rate=0.3, recent_abandon=0.3, identified=0.85,
        starts_anonymous=0.7, consent=0.6, open_rate=0.3, click_rate=0.25,
    ),
    Archetype(
        "new_customer", 0.10, tenure_days=(3, 45), quiet_days=(0, 5), sessions=(0, 2),
        views=(1, 3), orders=(1, 1), last_order_days=(1, 30), coupon=0.4, cart_rate=0.15,
        recent_abandon=0.1, starts_anonymous=0.85, consent=0.75, open_rate=0.45,
    ),
    Archetype(
        "repeat_buyer", 0.17, tenure_days=(90, 365), quiet_days=(0, 40), sessions=(0, 2),
        views=(1, 3), orders=(2, 4), last_order_days=(5, 55), coupon=0.2, cart_rate=0.15,
        recent_abandon=0.08,
    ),
    Archetype(
        "loyal_customer", 0.10, tenure_days=(240, 365), quiet_days=(0, 10), sessions=(1, 3),
        views=(1, 3), orders=(5, 7), last_order_days=(1, 40), items=(1, 3), premium=0.3,
        coupon=0.15, consent=0.9, open_rate=0.65, click_rate=0.3, unsubscribe_rate=0.001,
    ),
    Archetype(
        "vip", 0.04, tenure_days=(200, 365), quiet_days=(0, 15), sessions=(1, 3),
        views=(2, 4), orders=(4, 8), last_order_days=(1, 28), items=(2, 4), premium=0.9,
        coupon=0.05, consent=0.85, open_rate=0.5, click_rate=0.35, unsubscribe_rate=0.001,
    ),
    Archetype(
        "bargain_hunter", 0.10, tenure_days=(60, 365), quiet_days=(0, 20), sessions=(1, 3),
        views=(2, 3), orders=(2, 4), last_order_days=(3, 50), items=(1, 2), premium=0.0,
        coupon=0.95, cart_rate=0.35, recent_abandon=0.25, consent=0.85, open_rate=0.55,
        click_rate=0.4, loves_sales=True,
    ),
    Archetype(
        "lapsing", 0.08, tenure_days=(200, 365), quiet_days=(45, 120), sessions=(0, 2),
        views=(1, 3), orders=(2, 4), last_order_days=(65, 140), recent_abandon=0.0,
        consent=0.7, open_rate=0.15, click_rate=0.1, unsubscribe_rate=0.01, bounce_rate=0.006,
    ),
    Archetype(
        "churned", 0.12, tenure_days=(260, 365), quiet_days=(160, 240), sessions=(0, 2),
        views=(1, 3), orders=(1, 3), last_order_days=(165, 250), recent_abandon=0.0,
        consent=0.6, open_rate=0.05, click_rate=0.05, unsubscribe_rate=0.03, bounce_rate=0.012,
    ),
)  # fmt: skip
ARCHETYPE_NAMES = tuple(a.name for a in ARCHETYPES)
_WEIGHTS = tuple(a.share for a in ARCHETYPES)


def pick_archetype(rng: random.Random) -> Archetype:
    """Draw one archetype according to the shares."""
    return rng.choices(ARCHETYPES, weights=_WEIGHTS)[0]


def by_name(name: str) -> Archetype:
    """Return the archetype called ``name``.

    Raises:
        KeyError: If no archetype has that name.
    """
    for archetype in ARCHETYPES:
        if archetype.name == name:
            return archetype
    raise KeyError(name)

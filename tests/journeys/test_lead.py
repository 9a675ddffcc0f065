"""A server's lead: messages prepared ahead, each claimed and sent at its own instant.

The engine's clock here moves a little on every reading (the server's loop reads it as
the system clock would move), so "at its instant" is checked against the clock the
engine sees, not the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from segmint.clock import FixedClock
from segmint.deliver.consent import record_consent
from segmint.deliver.transport import SendReceipt, SmtpPool
from segmint.journeys import JourneyEngine
from segmint.journeys.instances import Instances

from .conftest import T0, Shop  # type: ignore[import-not-found]

WAIT = timedelta(hours=2)  # the example's abandoned cart: first_wait 2h, then reminder
STEP = timedelta(milliseconds=4)


class SteppingClock:
    """A clock that moves ``STEP`` at every reading; runs ``hook`` once past its instant."""

    def __init__(self, start: datetime) -> None:
        self.at = start
        self.hook: tuple[datetime, Callable[[], None]] | None = None

    def now(self) -> datetime:
        self.at += STEP
        if self.hook is not None and self.at >= self.hook[0]:
            action, self.hook = self.hook[1], None
            action()
        return self.at


class Recording:
    """The real SMTP transport, noting the engine's clock when each message is handed over."""

    def __init__(self, inner: SmtpPool, clock: SteppingClock, seen: list[tuple[str, datetime]]):
        self.inner, self.clock, self.seen = inner, clock, seen

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> SendReceipt:
        self.seen.append((recipients[0], self.clock.at))
        return await self.inner.send(message, sender, recipients)

    async def close(self) -> None:
        await self.inner.close()


def carts(shop: Shop, users: list[str], gap: timedelta) -> list[datetime]:
    """People who abandon a cart ``gap`` apart, entered; the instants their reminder is due."""
    for user in users:
        shop.person(user)
    starts = [T0 + i * gap for i in range(len(users))]
    for user, at in zip(users, starts, strict=True):
        shop.track(user, "Cart Abandoned", at)
    shop.engine().tick(T0 + timedelta(minutes=1))  # they enter and wait
    return [at + WAIT for at in starts]


def served(shop: Shop, clock: SteppingClock, seen: list[tuple[str, datetime]]) -> JourneyEngine:
    smtp = shop.workspace.definition.email.smtp
    engine = JourneyEngine(shop.workspace, clock,  # type: ignore[arg-type]
                           transport=lambda: Recording(SmtpPool(smtp), clock, seen))  # fmt: skip
    engine.listen(lead=0.2)
    return engine


def run(engine: JourneyEngine, clock: SteppingClock, until: datetime) -> None:
    while clock.at < until:
        engine.tick(clock.now())


def reminders(shop: Shop, user: str) -> list[tuple[str, str | None, datetime]]:
    history = Instances(shop.workspace.store).history(f"abandoned_cart:{shop.profiles[user]}:1")
    return [(h.outcome, h.reason, h.at) for h in history if h.step == "reminder"]


def test_prepared_messages_go_each_at_its_instant_never_before(shop: Shop) -> None:
    users = ["ann", "bea", "cid", "dot", "eve"]
    dues = carts(shop, users, timedelta(milliseconds=70))
    clock, seen = SteppingClock(dues[0] - timedelta(milliseconds=300)), []
    engine = served(shop, clock, seen)
    run(engine, clock, dues[-1] + timedelta(milliseconds=300))
    assert sorted(a for a, _ in seen) == sorted(f"{u}@example.com" for u in users)
    assert shop.received() == {f"{u}@example.com": 1 for u in users}
    for user, due in zip(users, dues, strict=True):
        handed = dict(seen)[f"{user}@example.com"]
        assert due <= handed, (user, due, handed)  # prepared ahead, sent at its instant
        assert reminders(shop, user) == [("sent", None, due)]
    # each counted once: the wait's end, the send, the next wait's start
    assert engine.report.steps == 3 * len(users)


def test_consent_withdrawn_while_prepared_is_read_again_before_the_claim(shop: Shop) -> None:
    (due,) = carts(shop, ["fay"], timedelta(0))
    clock, seen = SteppingClock(due - timedelta(milliseconds=150)), []
    store = shop.workspace.store
    unsubscribe_at = due - timedelta(milliseconds=40)

    def unsubscribe() -> None:  # the window was prepared at the start: consent was granted
        record_consent(store, shop.profiles["fay"], "*", "unsubscribed", source="api",
                       at=unsubscribe_at)  # fmt: skip

    clock.hook = (unsubscribe_at, unsubscribe)
    engine = served(shop, clock, seen)
    run(engine, clock, due + timedelta(milliseconds=200))
    assert seen == [] and shop.received() == {}
    assert reminders(shop, "fay") == [("skipped", "unsubscribed", due)]
    assert store.fetchall(
        "SELECT count(*) FROM sends WHERE campaign LIKE 'journey:abandoned_cart:reminder:%'"
    )[0][0] == 0  # fmt: skip


def test_a_server_whose_clock_stands_still_yields_and_sends_when_it_moves(shop: Shop) -> None:
    (due,) = carts(shop, ["gus"], timedelta(0))
    clock = FixedClock(due - timedelta(milliseconds=100))
    engine = JourneyEngine(shop.workspace, clock)
    engine.listen(lead=0.2)
    engine.tick(clock.now())  # prepared; the loop yields within a second, nothing sent
    assert shop.received() == {}
    assert reminders(shop, "gus") == []
    clock.set(due)
    engine.tick(clock.now())
    assert shop.received() == {"gus@example.com": 1}
    assert reminders(shop, "gus") == [("sent", None, due)]


def _identify(user: str, at: datetime, **traits: object) -> dict[str, object]:
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": at.isoformat()}


def test_an_identify_stating_an_opt_out_while_prepared_stops_the_message(shop: Shop) -> None:
    """The statement is an identify event's consent trait, not yet a consent row."""
    (due,) = carts(shop, ["hal"], timedelta(0))
    clock, seen = SteppingClock(due - timedelta(milliseconds=150)), []
    opt_out_at = due - timedelta(milliseconds=40)

    def opt_out() -> None:  # the window was prepared at the start: consent was granted
        shop.submit([_identify("hal", opt_out_at, email_consent=False)], opt_out_at)

    clock.hook = (opt_out_at, opt_out)
    engine = served(shop, clock, seen)
    run(engine, clock, due + timedelta(milliseconds=200))
    assert seen == [] and shop.received() == {}
    assert [(outcome, at) for outcome, _, at in reminders(shop, "hal")] == [("skipped", due)]
    assert engine.consent_reads == 1


def test_unrelated_events_while_prepared_do_not_read_consent_again(shop: Shop) -> None:
    """A track event, and an identify call stating no consent, change no consent."""
    (due,) = carts(shop, ["ivy"], timedelta(0))
    shop.person("zed")
    clock, seen = SteppingClock(due - timedelta(milliseconds=150)), []
    busy_at = due - timedelta(milliseconds=40)

    def traffic() -> None:
        shop.submit([{"type": "track", "userId": "zed", "event": "Product Viewed",
                      "timestamp": busy_at.isoformat()},
                     _identify("zed", busy_at, first_name="Zed")], busy_at)  # fmt: skip

    clock.hook = (busy_at, traffic)
    engine = served(shop, clock, seen)
    run(engine, clock, due + timedelta(milliseconds=200))
    assert [who for who, _ in seen] == ["ivy@example.com"]
    assert reminders(shop, "ivy") == [("sent", None, due)]
    assert engine.consent_reads == 0

"""Experiments on journey send steps: arms of subject, send time and a holdout, assigned
and recorded like a campaign's, reported per step, with the auto-winner."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from segmint.measure.experiments import experiment_report

from .conftest import T0, Shop, edit  # type: ignore[import-not-found]

H2 = timedelta(hours=2)
ARMS = """      - name: reminder
        send: cart_reminder
        topic: offers
        metric: open
        variants:
          - {name: control}
          - {name: short, subject: "Still there?"}
          - {name: late, delay: 3h}
          - {name: holdout, holdout: true}
"""


def _abandoning(shop: Shop, step: str, prefix: str, count: int) -> dict[str, str]:
    """The cart reminder replaced by ``step``; ``count`` people (users ``prefix``00…)
    abandon a cart at T0. Returns their profile ids by user id."""
    edit(shop.path, "      - {name: reminder, send: cart_reminder, topic: offers}\n", step)
    shop.reopen()
    users = [f"{prefix}{i:02d}" for i in range(count)]
    pids = dict(zip(users, shop.people(users), strict=True))
    for user in users:
        shop.track(user, "Cart Abandoned", T0)
    return pids


def test_a_send_step_splits_into_recorded_arms(shop: Shop) -> None:
    pids = _abandoning(shop, ARMS, "c", 40)
    engine = shop.engine()
    engine.tick(T0 + H2)
    store = shop.workspace.store
    arms = dict(store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments WHERE experiment = "
        "'abandoned_cart.reminder'"
    ))  # fmt: skip
    assert set(arms) == set(pids.values())
    count = Counter(arms.values())
    assert all(count[a] > 0 for a in ("control", "short", "late", "holdout"))
    subjects = {i.recipients[0]: str(i.message["Subject"]) for i in shop.server.handler.received}
    # now: control and short; the late arm waits 3 hours more; the holdout gets nothing
    assert len(subjects) == count["control"] + count["short"]
    for user, pid in pids.items():
        address = f"{user}@example.com"
        if arms[pid] == "short":
            assert subjects[address] == "Still there?"
        elif arms[pid] == "control":
            assert not subjects[address].startswith("Still there")
        else:
            assert address not in subjects
    engine.tick(T0 + H2 + timedelta(hours=3) - timedelta(microseconds=1))
    assert len(shop.server.handler.received) == count["control"] + count["short"]
    engine.tick(T0 + H2 + timedelta(hours=3))
    late_at = store.fetchall(
        "SELECT DISTINCT sent_at FROM sends s JOIN experiment_assignments a "
        "ON a.profile_id = s.profile_id AND a.experiment = 'abandoned_cart.reminder' "
        "WHERE a.arm = 'late' AND s.campaign = 'journey:abandoned_cart:reminder:1'"
    )
    assert late_at == [((T0 + H2 + timedelta(hours=3)).replace(tzinfo=None),)]
    skipped = store.fetchall(
        "SELECT count(*) FROM journey_history WHERE outcome = 'skipped' AND reason = 'holdout'"
    )
    assert skipped == [(count["holdout"],)]
    # one open through the short arm's link: the step's report sees it
    short = next(u for u, p in pids.items() if arms[p] == "short")
    shop.track(short, "Email Opened", T0 + H2 + timedelta(minutes=10),
               campaign="journey:abandoned_cart:reminder:1", machine_open=False)  # fmt: skip
    report = experiment_report(store, shop.workspace.definition, "abandoned_cart.reminder",
                               T0 + timedelta(days=1))  # fmt: skip
    got = {a.name: (a.n, a.opened) for a in report.arms}
    assert got == {"control": (count["control"], 0), "short": (count["short"], 1),
                   "late": (count["late"], 0), "holdout": (count["holdout"], 0)}  # fmt: skip
    assert report.campaign == "journey:abandoned_cart:reminder"


def test_step_arms_are_checked_at_load(shop: Shop) -> None:
    import pytest

    from segmint.config.errors import ConfigError
    from segmint.workspace import Workspace

    bad = ARMS.replace("{name: late, delay: 3h}", "{name: late, template: no_such_tpl}")
    edit(shop.path, "      - {name: reminder, send: cart_reminder, topic: offers}\n", bad)
    shop.workspace.close()
    with pytest.raises(ConfigError) as caught:
        Workspace.open(shop.path)
    assert "unknown template 'no_such_tpl'" in str(caught.value)
    assert "segmint.yaml:" in str(caught.value)  # with its position
    edit(shop.path, "{name: late, template: no_such_tpl}", "{name: late, delay: 3h}")
    shop.workspace = Workspace.open(shop.path)  # (the fixture closes it)


def test_a_typo_in_an_arm_is_reported_once_with_its_position(shop: Shop) -> None:
    import pytest

    from segmint.config.errors import ConfigError
    from segmint.workspace import Workspace

    bad = ARMS.replace("{name: late, delay: 3h}", "{name: late, dealy: 3h}")
    edit(shop.path, "      - {name: reminder, send: cart_reminder, topic: offers}\n", bad)
    shop.workspace.close()
    with pytest.raises(ConfigError) as caught:
        Workspace.open(shop.path)
    text = str(caught.value)
    assert "unknown key 'dealy'" in text and "did you mean 'delay'" in text
    assert "valid string" not in text  # the arm is not also tried as a template name
    edit(shop.path, "dealy: 3h", "delay: 3h")
    shop.workspace = Workspace.open(shop.path)  # (the fixture closes it)


def test_an_arm_with_its_own_template_is_named_by_its_delivery_and_kpis(shop: Shop) -> None:
    """``Email Delivered``, the ledger and the KPIs by template name the arm's template."""
    import orjson

    from segmint.clock import FixedClock
    from segmint.deliver.engagement import email_announcer
    from segmint.intake import Intake
    from segmint.measure.kpis import kpi_report

    arms = """      - name: reminder
        send: cart_reminder
        topic: offers
        variants:
          - {name: control}
          - {name: discount, template: cart_discount}
"""
    users = list(_abandoning(shop, arms, "t", 30))
    announce = email_announcer(Intake(shop.workspace, FixedClock(T0 + H2)))
    shop.engine(announce=announce).tick(T0 + H2)
    store = shop.workspace.store
    chosen = dict(store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments "
        "WHERE experiment = 'abandoned_cart.reminder'"))  # fmt: skip
    count = Counter(chosen.values())
    assert count["control"] > 0 and count["discount"] > 0
    expected = {pid: "cart_discount" if arm == "discount" else "cart_reminder"
                for pid, arm in chosen.items()}  # fmt: skip
    delivered = {pid: orjson.loads(props)["template"] for pid, props in store.fetchall(
        "SELECT profile_id, properties FROM events WHERE event = 'Email Delivered'")}  # fmt: skip
    assert delivered == expected
    ledger = dict(store.fetchall("SELECT profile_id, template FROM sends"))
    assert ledger == {p: (t if t != "cart_reminder" else None) for p, t in expected.items()}
    # the discount arm's messages (and their opens) count for cart_discount
    opener = next(u for u in users if chosen[shop.profiles[u]] == "discount")
    shop.track(opener, "Email Opened", T0 + H2 + timedelta(minutes=5),
               campaign="journey:abandoned_cart:reminder:1", machine_open=False)  # fmt: skip
    report = kpi_report(store, shop.workspace.definition, "template", None, T0 + H2 * 2)
    got = {k: (v.delivered, v.opened) for k, v in report.rows.items()}
    assert got == {"cart_reminder": (count["control"], 0), "cart_discount": (count["discount"], 1)}
    by_step = kpi_report(store, shop.workspace.definition, "campaign", None, T0 + H2 * 2)
    assert by_step.total.to_dict() == report.total.to_dict()
    assert by_step.rows["journey:abandoned_cart:reminder"].delivered == len(users)


def test_the_init_workspaces_win_back_experiment_assigns_and_holds_out(shop: Shop) -> None:
    """``segmint init``'s win-back step is an experiment: lapsing people get their arm."""
    from segmint.membership.service import Membership

    users = [f"w{i:02d}" for i in range(40)]
    shop.people(users, at=T0 - timedelta(days=70))
    for user in users:
        shop.track(user, "Order Completed", T0 - timedelta(days=60), total=40)
    Membership(shop.workspace).refresh(T0)  # they enter lapsing
    report = shop.engine().tick(T0 + H2)
    assert report.entered["entered"] >= len(users)
    store = shop.workspace.store
    arms = dict(store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments WHERE experiment = "
        "'win_back.miss_you'"))  # fmt: skip
    count = Counter(arms.values())
    assert sum(count.values()) == len(users) and set(count) == {"control", "personal", "holdout"}
    sent = dict(store.fetchall(
        "SELECT profile_id, count(*) FROM sends WHERE campaign LIKE 'journey:win_back:miss_you:%' "
        "AND status = 'sent' GROUP BY profile_id"))  # fmt: skip
    assert sent == {p: 1 for p, arm in arms.items() if arm != "holdout"}
    # (the welcome series sends them the template's own subject too)
    subjects = [str(i.message["Subject"]) for i in shop.server.handler.received]
    assert subjects.count("Hello, we miss you") == count["personal"]
    result = experiment_report(store, shop.workspace.definition, "win_back.miss_you", T0 + H2)
    assert {a.name: a.n for a in result.arms} == dict(count)


def test_a_renamed_holdout_arm_of_a_step_still_gets_nothing(shop: Shop) -> None:
    """An instance whose person is recorded in an arm no longer defined got the control's
    message (the arm looked up as unknown counted as no experiment)."""
    pids = _abandoning(shop, ARMS, "h", 30)
    shop.engine().tick(T0 + H2)
    arms = dict(shop.workspace.store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments WHERE experiment = "
        "'abandoned_cart.reminder'"
    ))  # fmt: skip
    held = {u for u, p in pids.items() if arms[p] == "holdout"}
    assert held
    edit(shop.path, "{name: holdout, holdout: true}", "{name: held_out, holdout: true}")
    shop.reopen()
    later = T0 + timedelta(days=8)  # past the journey's re-entry period of 7 days
    for user in held:
        shop.track(user, "Cart Abandoned", later)
    report = shop.engine().tick(later + H2)
    assert report.skipped["arm_removed"] == len(held)
    reminded = shop.workspace.store.fetchall(
        "SELECT profile_id FROM sends WHERE campaign LIKE 'journey:abandoned_cart:reminder:%' "
        "AND status = 'sent'"
    )
    assert not {p for (p,) in reminded} & {pids[u] for u in held}

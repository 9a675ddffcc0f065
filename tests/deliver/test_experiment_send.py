"""A campaign with an experiment: arms get their variant, the holdout arm nothing, the
global holdout no marketing at all; assignment is sticky and recorded."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from segmint.clock import FixedClock
from segmint.deliver.retry import RetryPolicy
from segmint.deliver.service import send_campaign
from segmint.measure.assign import in_global_holdout
from segmint.measure.experiments import experiment_report

from .conftest import T0, Shop  # type: ignore[import-not-found]

EXPERIMENT = """
experiments:
  subject_test:
    campaign: lifecycle_update
    metric: open
    variants:
      - {name: control}
      - {name: urgent, subject: "Last chance, {{ first_name }}"}
      - {name: holdout, holdout: true}
"""


def with_yaml(shop: Shop, extra: str) -> None:
    path: Path = shop.path / "segmint.yaml"
    path.write_text(path.read_text() + extra)
    shop.reopen()


def send(shop: Shop, **options: Any) -> Any:
    return send_campaign(shop.workspace, "lifecycle_update", clock=FixedClock(T0),
                         retry=RetryPolicy(max_attempts=2, base_delay=0.01), **options)  # fmt: skip


def arms(shop: Shop) -> dict[str, str]:
    rows = shop.workspace.store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments WHERE experiment = 'subject_test'"
    )
    return dict(rows)


def test_arms_get_their_variant_and_the_holdout_nothing(shop: Shop) -> None:
    with_yaml(shop, EXPERIMENT)
    users = [f"u{i:02d}" for i in range(30)]
    pids = shop.add_many(users)
    shop.add("nocon", consent=False)  # not eligible: never assigned

    report = send(shop)

    assigned = arms(shop)
    assert set(assigned) == set(pids)  # every eligible recipient, exactly one arm each
    count = Counter(assigned.values())
    assert report.sent == count["control"] + count["urgent"]
    assert report.skipped["holdout"] == count["holdout"] > 0
    subjects = {}
    for item in shop.server.handler.received:
        subjects[item.recipients[0]] = str(item.message["Subject"])
    for user, pid in zip(users, pids, strict=True):
        address = f"{user}@example.com"
        if assigned[pid] == "holdout":
            assert address not in subjects
        elif assigned[pid] == "urgent":
            assert subjects[address] == f"Last chance, {user.title()}"
        else:
            assert not subjects[address].startswith("Last chance")

    # a second run sends nobody again; the holdout stays held out (sticky)
    again = send(shop)
    assert again.sent == 0 and again.skipped["holdout"] == count["holdout"]
    assert arms(shop) == assigned

    result = experiment_report(shop.workspace.store, shop.workspace.definition,
                               "subject_test", T0 + timedelta(days=1))  # fmt: skip
    assert [a.n for a in result.arms] == [count["control"], count["urgent"], count["holdout"]]
    assert sum(a.n for a in result.arms) == len(pids)


def test_dry_run_assigns_the_same_arms_without_recording(shop: Shop) -> None:
    with_yaml(shop, EXPERIMENT)
    shop.add_many([f"d{i}" for i in range(12)])
    report = send(shop, dry_run=True, out=shop.path / "dry")
    assert arms(shop) == {}
    assert report.skipped["holdout"] + report.written == 12


def test_global_holdout_gets_no_marketing(shop: Shop) -> None:
    with_yaml(shop, "\nmeasure:\n  global_holdout_percent: 30\n")
    users = [f"g{i:02d}" for i in range(40)]
    pids = shop.add_many(users)
    held = {p for p in pids if in_global_holdout(p, 30)}
    assert 0 < len(held) < 40

    report = send(shop)

    assert report.skipped["global_holdout"] == len(held)
    got = {item.recipients[0] for item in shop.server.handler.received}
    assert got == {f"{u}@example.com" for u, p in zip(users, pids, strict=True) if p not in held}


SEND_TIME = """
experiments:
  timing_test:
    campaign: lifecycle_update
    variants:
      - {name: now}
      - {name: later, delay: 2h}
"""


def test_a_send_time_arm_goes_out_with_the_first_run_after_its_delay(shop: Shop) -> None:
    with_yaml(shop, SEND_TIME)
    pids = shop.add_many([f"t{i:02d}" for i in range(20)])
    first = send(shop)
    rows = shop.workspace.store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments WHERE experiment = 'timing_test'"
    )
    later = {p for p, arm in rows if arm == "later"}
    assert 0 < len(later) < len(pids)
    assert first.sent == len(pids) - len(later)
    assert first.skipped["variant_delay"] == len(later)
    hour = send_campaign(shop.workspace, "lifecycle_update", clock=FixedClock(T0 + timedelta(
        hours=1, minutes=59)))  # fmt: skip
    assert hour.sent == 0 and hour.skipped["variant_delay"] == len(later)
    due = send_campaign(shop.workspace, "lifecycle_update",
                        clock=FixedClock(T0 + timedelta(hours=2)))  # fmt: skip
    assert due.sent == len(later)
    sent_at = dict(shop.workspace.store.fetchall(
        "SELECT profile_id, sent_at FROM sends WHERE campaign = 'lifecycle_update'"
    ))  # fmt: skip
    assert {sent_at[p] for p in later} == {(T0 + timedelta(hours=2)).replace(tzinfo=None)}


AUTO_WINNER = """
experiments:
  subject_test:
    campaign: lifecycle_update
    metric: open
    auto_winner: {min_sample: 8}
    variants:
      - {name: control}
      - {name: urgent, subject: "Last chance, {{ first_name }}"}
"""


def test_the_auto_winner_goes_to_the_rest_of_the_audience_and_is_recorded(shop: Shop) -> None:
    from segmint.intake import Intake
    from segmint.measure.experiments import recorded_winner

    with_yaml(shop, AUTO_WINNER)
    users = [f"w{i:02d}" for i in range(80)]
    pids = dict(zip(users, shop.add_many(users), strict=True))
    send(shop)
    assigned = arms_of(shop, "subject_test")
    assert recorded_winner(shop.workspace.store, "subject_test") is None  # no evidence yet
    # nine in ten urgent recipients open, a third of the control group
    control = [u for u in users if assigned[pids[u]] == "control"]
    urgent = [u for u in users if assigned[pids[u]] == "urgent"]
    openers = urgent[: len(urgent) * 9 // 10] + control[: len(control) // 3]
    Intake(shop.workspace, FixedClock(T0 + timedelta(hours=3))).submit(
        [{"type": "track", "userId": u, "event": "Email Opened",
          "properties": {"campaign": "lifecycle_update", "machine_open": False},
          "timestamp": (T0 + timedelta(hours=1)).isoformat()} for u in openers],
        source="test",
    )  # fmt: skip
    late = [f"n{i:02d}" for i in range(10)]
    late_pids = shop.add_many(late)
    report = send_campaign(shop.workspace, "lifecycle_update",
                           clock=FixedClock(T0 + timedelta(days=1)))  # fmt: skip
    assert report.winner == "urgent" and report.sent == len(late)
    subjects = {i.recipients[0]: str(i.message["Subject"]) for i in shop.server.handler.received}
    assert all(subjects[f"{u}@example.com"] == f"Last chance, {u.title()}" for u in late)
    assert arms_of(shop, "subject_test") == assigned  # the rest is not part of the test
    assert not set(late_pids) & set(assigned)
    decision = recorded_winner(shop.workspace.store, "subject_test")
    assert decision is not None and decision["arm"] == "urgent"
    assert decision["p_value_holm"] < 0.05 and min(decision["n"].values()) >= 8
    shown = experiment_report(shop.workspace.store, shop.workspace.definition,
                              "subject_test", T0 + timedelta(days=2)).to_dict()  # fmt: skip
    assert shown["winner"]["arm"] == "urgent" and "Winner picked: urgent" in shown["conclusion"]


def arms_of(shop: Shop, experiment: str) -> dict[str, str]:
    rows = shop.workspace.store.fetchall(
        "SELECT profile_id, arm FROM experiment_assignments WHERE experiment = ?", [experiment]
    )
    return dict(rows)


def test_an_arm_sent_another_template_is_named_by_its_delivery(shop: Shop) -> None:
    """The ledger row and ``Email Delivered`` of an arm with a template name that one."""
    import orjson

    with_yaml(shop, EXPERIMENT.replace(
        '{name: urgent, subject: "Last chance, {{ first_name }}"}',
        "{name: urgent, template: cart_reminder}"))  # fmt: skip
    pids = shop.add_many([f"v{i:02d}" for i in range(24)])
    send(shop)
    assigned = arms(shop)
    store = shop.workspace.store
    delivered = {p: orjson.loads(props)["template"] for p, props in store.fetchall(
        "SELECT profile_id, properties FROM events WHERE event = 'Email Delivered'")}  # fmt: skip
    expected = {p: "cart_reminder" if assigned[p] == "urgent" else "lifecycle"
                for p in pids if assigned[p] != "holdout"}  # fmt: skip
    assert delivered == expected and "cart_reminder" in expected.values()
    rows = dict(store.fetchall("SELECT profile_id, template FROM sends WHERE status = 'sent'"))
    assert rows == {p: (t if t == "cart_reminder" else None) for p, t in expected.items()}


def test_a_renamed_holdout_arm_still_gets_nothing(shop: Shop) -> None:
    """Renaming ``holdout`` sent the campaign to everyone recorded in it on the next run."""
    with_yaml(shop, EXPERIMENT)
    pids = shop.add_many([f"r{i:02d}" for i in range(30)])
    first = send(shop)
    held = {p for p, arm in arms(shop).items() if arm == "holdout"}
    assert held and first.skipped["holdout"] == len(held)
    path: Path = shop.path / "segmint.yaml"
    path.write_text(path.read_text().replace("{name: holdout,", "{name: held_out,"))
    shop.reopen()
    shop.add_many([f"n{i:02d}" for i in range(10)])  # newcomers: assigned as usual

    again = send(shop)

    assert again.skipped["arm_removed"] == len(held)
    got = {item.recipients[0] for item in shop.server.handler.received}
    users = {p: f"r{i:02d}@example.com" for i, p in enumerate(pids)}
    assert not got & {users[p] for p in held}
    assert again.sent + again.skipped["holdout"] == 10  # newcomers in the renamed arm

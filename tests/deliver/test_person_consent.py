"""Consent given by email, user id or address is never lost: it resolves, or fails loudly,
and an opt-out for an address nobody has yet stops the send once somebody has it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from segmint.api import create_app
from segmint.clock import FixedClock
from segmint.deliver.service import send_campaign
from segmint.intake import Intake
from segmint.intake.keys import create_key

from .conftest import T0, Shop, ThreadServer  # type: ignore[import-not-found]

Result = Any  # the root conftest's CliResult
BEFORE = (T0 - timedelta(days=1)).isoformat()  # after the identify calls' consent trait


def run(shop: Shop, cli: Callable[..., Result], *args: str) -> Result:
    """Run ``segmint -w SHOP ARGS`` with the shop's workspace closed meanwhile."""
    shop.workspace.close()
    try:
        return cli("-w", str(shop.path), *args)
    finally:
        shop.reopen()


def send(shop: Shop, cli: Callable[..., Result]) -> dict[str, Any]:
    result = run(shop, cli, "campaign", "send", "lifecycle_update", "--as-of", T0.isoformat(),
                 "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = orjson.loads(result.stdout)
    return report


def consent_rows(shop: Shop) -> list[tuple[Any, ...]]:
    store = shop.workspace.store
    return [
        *store.fetchall("SELECT profile_id, topic, status FROM consents WHERE source = 'cli'"),
        *store.fetchall("SELECT address, topic, status FROM address_consents"),
    ]


def test_opt_out_by_address_before_the_person_is_known_stops_the_send(
    shop: Shop, cli: Callable[..., Result]
) -> None:
    shop.add("ann")
    said = run(shop, cli, "consent", "set", "Zoe@Example.com ", "denied", "--topic", "offers",
               "--as-of", BEFORE)  # fmt: skip
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith("email:zoe@example.com (no profile has it yet): offers denied")
    shop.add("zoe")  # identify: email zoe@example.com, email_consent true (a month earlier)
    report = send(shop, cli)
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}
    assert report["skipped"] == {"no_consent": 1}
    assert shop.statuses()["zoe"] == ("skipped", "no_consent")


@pytest.mark.parametrize("ref", ["ZOE@example.com", "zoe", "email:zoe@example.com"])
def test_opt_out_by_email_or_user_id_of_a_known_person_stops_the_send(
    shop: Shop, cli: Callable[..., Result], ref: str
) -> None:
    shop.add("ann")
    zoe = shop.add("zoe")
    said = run(shop, cli, "consent", "set", ref, "denied", "--topic", "offers", "--as-of", BEFORE)
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith(f"{zoe}: offers denied")
    assert consent_rows(shop) == [(zoe, "offers", "denied")]
    send(shop, cli)
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}
    assert shop.statuses()["zoe"] == ("skipped", "no_consent")


def test_a_later_grant_by_the_person_outweighs_an_older_address_opt_out(
    shop: Shop, cli: Callable[..., Result]
) -> None:
    older = (T0 - timedelta(days=60)).isoformat()  # before the identify's consent trait
    said = run(shop, cli, "consent", "set", "zoe@example.com", "denied", "--as-of", older)
    assert said.returncode == 0, said.stderr
    shop.add("zoe")
    send(shop, cli)
    assert shop.server.handler.by_recipient() == {"zoe@example.com": 1}


def test_consent_for_nobody_fails_loudly_and_stores_nothing(
    shop: Shop, cli: Callable[..., Result]
) -> None:
    shop.add("ann")
    for ref in ("nobody", "user_id:nobody", "email:not-an-address", "emial:ann@example.com"):
        said = run(shop, cli, "consent", "set", ref, "denied", "--topic", "offers")
        assert said.returncode == 1, ref
        assert "error:" in said.stderr and ref.split(":")[-1] in said.stderr
        shown = run(shop, cli, "consent", "show", ref)
        assert shown.returncode == 1 and shown.stdout == "", ref
    typo = run(shop, cli, "consent", "set", "ann", "denied", "--topic", "offerz")
    assert typo.returncode == 1 and "did you mean 'offers'?" in typo.stderr
    assert consent_rows(shop) == []
    unknown_address = run(shop, cli, "consent", "show", "nobody@example.com")
    assert unknown_address.returncode == 1
    assert "no person and no consent statement" in unknown_address.stderr


def test_consent_show_gives_every_source_and_where_it_came_from(
    shop: Shop, cli: Callable[..., Result]
) -> None:
    zoe = shop.add("zoe")  # consent trait: email_consent true, not yet recorded
    intake = Intake(shop.workspace, FixedClock(T0))
    intake.submit([{"type": "track", "event": "Viewed", "anonymousId": "tablet",
                    "timestamp": "2026-02-10T00:00:00Z"}], source="web")  # fmt: skip
    tablet = str(
        shop.workspace.store.fetchall("SELECT profile_id FROM identities WHERE value = 'tablet'")[
            0
        ][0]
    )
    assert run(shop, cli, "consent", "set", "tablet", "denied", "--topic", "newsletter",
               "--as-of", "2026-02-11T00:00:00Z").returncode == 0  # fmt: skip
    intake = Intake(shop.workspace, FixedClock(T0))
    intake.submit([{"type": "identify", "userId": "zoe", "anonymousId": "tablet",
                    "timestamp": "2026-02-12T00:00:00Z"}], source="web")  # fmt: skip
    assert shop.workspace.store.fetchall(
        "SELECT merged_into FROM profiles WHERE profile_id = ?", [tablet]
    ) == [(zoe,)]
    assert run(shop, cli, "consent", "set", "zoe@example.com", "granted", "--topic", "offers",
               "--as-of", "2026-02-13T00:00:00Z").returncode == 0  # fmt: skip

    shown = run(shop, cli, "consent", "show", "ZOE@example.com", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    history = [
        (h["topic"], h["status"], h["source"], h["recorded_under"], h["recorded"])
        for h in orjson.loads(shown.stdout)
    ]
    assert history == [
        ("*", "granted", "identify:test", zoe, False),
        ("newsletter", "denied", "cli", tablet, True),
        ("offers", "granted", "cli", zoe, True),
    ]
    [trait] = [h for h in orjson.loads(shown.stdout) if h["source"] == "identify:test"]
    assert trait["event_id"] is not None
    table = run(shop, cli, "consent", "show", "zoe")
    assert table.returncode == 0
    assert "not yet" in table.stdout and "merged" in table.stdout  # cells wrap at 80 columns

    send(shop, cli)  # the send records the consent trait
    again = run(shop, cli, "consent", "show", zoe, "--format", "json")
    assert [h["recorded"] for h in orjson.loads(again.stdout)] == [True, True, True]


def test_consent_import_resolves_rows_and_keeps_unknown_addresses(
    shop: Shop, cli: Callable[..., Result], tmp_path: Path
) -> None:
    ann = shop.add("ann")
    csv_file = tmp_path / "crm.csv"
    csv_file.write_text(
        "user_id,email,topic,status,occurred_at\n"
        ",ANN@example.com,newsletter,no,2026-02-20T00:00:00Z\n"
        ",Zoe@Example.com,offers,no,2026-02-20T00:00:00Z\n"
        "nobody,,offers,no,\n"
        ",not-an-address,offers,no,\n"
    )
    result = run(shop, cli, "consent", "import", str(csv_file))
    assert "recorded 2 consent change(s)" in result.stdout
    assert "crm.csv:4: no person has user_id 'nobody'" in result.stderr
    assert "crm.csv:5:" in result.stderr
    store = shop.workspace.store
    assert store.fetchall("SELECT profile_id, topic FROM consents WHERE source LIKE 'import%'") == [
        (ann, "newsletter")
    ]
    assert store.fetchall("SELECT address, topic FROM address_consents") == [
        ("zoe@example.com", "offers")
    ]
    shop.add("zoe")
    send(shop, cli)
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}


@dataclass
class Api:
    """The shop's app served over HTTP, a client, and a write and a read key."""

    shop: Shop
    client: httpx.Client
    write: dict[str, str]
    read: dict[str, str]

    def consent(self, **body: Any) -> httpx.Response:
        body = {"status": "denied", "topic": "offers", **body}
        return self.client.post("/v1/consent", json=body, headers=self.write)


@pytest.fixture
def api(shop: Shop) -> Iterator[Api]:
    _, write = create_key(shop.workspace.store, "crm", now=T0)
    _, read = create_key(shop.workspace.store, "dash", scopes=("read",), now=T0)
    app = create_app(shop.workspace, FixedClock(T0 - timedelta(hours=1)))
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield Api(shop, client, {"authorization": f"Bearer {write}"},
                  {"authorization": f"Bearer {read}"})  # fmt: skip


def test_consent_api_resolves_or_answers_404_naming_the_field(api: Api) -> None:
    shop = api.shop
    ann = shop.add("ann")
    unknown = [("profileId", "p-x"), ("userId", "nobody"), ("anonymousId", "a-x"),
               ("profileId", "emial:ann@example.com")]  # fmt: skip
    for field, value in unknown:
        answer = api.consent(**{field: value})
        assert answer.status_code == 404, (field, value)
        error = answer.json()["error"]
        assert error["code"] == "not_found" and error["field"] == field
        assert value.split(":")[-1] in error["message"]
    invalid = [({"profileId": "ann", "email": "ann@example.com"}, "email"), ({}, "profileId"),
               ({"email": "ann"}, "email"), ({"userId": ""}, "userId")]  # fmt: skip
    for body, field in invalid:
        answer = api.consent(**body)
        assert answer.status_code == 422, body
        assert field in answer.json()["error"]["field"]
    assert shop.workspace.store.fetchall("SELECT count(*) FROM consents") == [(0,)]

    for field, value in (("profileId", "ANN@example.com"), ("userId", "ann"),
                         ("email", " Ann@Example.com"), ("profileId", ann)):  # fmt: skip
        answer = api.consent(**{field: value})
        assert answer.status_code == 200, answer.text
        assert answer.json()["profileId"] == ann and answer.json()["address"] is None


def test_consent_api_keeps_an_address_nobody_has_and_the_send_honours_it(api: Api) -> None:
    shop = api.shop
    shop.add("ann")
    answer = api.consent(email="Zoe@Example.com")
    assert answer.status_code == 200
    assert answer.json()["profileId"] is None and answer.json()["address"] == "zoe@example.com"
    bare = api.consent(profileId="yan@example.com", topic="*")
    assert bare.status_code == 200 and bare.json()["address"] == "yan@example.com"
    shop.add("zoe")
    shop.add("yan")
    send_campaign(shop.workspace, "lifecycle_update", clock=FixedClock(T0))
    assert shop.server.handler.by_recipient() == {"ann@example.com": 1}


def test_profile_lookup_endpoint_takes_every_id(api: Api) -> None:
    ann = api.shop.add("ann", segments=("vip",))
    for path in (f"/v1/profiles/{ann}/segments", "/v1/profiles/ANN@example.com/segments",
                 "/v1/profiles/ann/segments", "/v1/profiles/ann/segments?by=user_id",
                 "/v1/profiles/email:ann@example.com/segments"):  # fmt: skip
        answer = api.client.get(path, headers=api.read)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json() == {"profile_id": ann, "segments": ["vip"]}
    for path in ("/v1/profiles/nobody/segments", "/v1/profiles/ann/segments?by=email"):
        missing = api.client.get(path, headers=api.read)
        assert missing.status_code == 404
        assert missing.json()["error"]["field"] == "profile_id"


def test_preference_page_of_a_profile_merged_away_shows_the_survivors_consent(api: Api) -> None:
    from segmint.deliver.links import LinkSigner

    shop = api.shop
    ann = shop.add("ann")  # email_consent true: every topic granted
    bob = shop.add("bob", consent=None)
    Intake(shop.workspace, FixedClock(T0)).submit(
        [{"type": "alias", "userId": "bob", "previousId": "ann"}], source="app"
    )
    assert shop.workspace.store.fetchall(
        "SELECT merged_into FROM profiles WHERE profile_id = ?", [ann]
    ) == [(bob,)]
    signer = LinkSigner.from_email(shop.workspace.definition.email)
    path = signer.preferences_url(ann).removeprefix("http://127.0.0.1:8000")  # an old email
    page = api.client.get(path)
    assert page.status_code == 200 and page.text.count("checked") == 2


@pytest.mark.parametrize(
    ("header", "named"),
    [("who,topic", "no profile_id or user_id or email and no status column"),
     ("email,topic", "no status column"), ("", "its header: none, the file is empty")],
)  # fmt: skip
def test_a_consent_file_without_its_columns_is_refused_whole(
    workspace: Any, cli: Callable[..., Result], tmp_path: Path, header: str, named: str
) -> None:
    """It recorded nothing and blamed each row's status ('status None is not one of …')."""
    csv_file = tmp_path / "crm.csv"
    csv_file.write_text(f"{header}\nann@example.com,offers\n" if header else "")
    result = cli("-w", str(workspace.path), "consent", "import", str(csv_file))
    assert result.returncode == 1
    assert named in result.stderr and "status None" not in result.stderr


def test_suppressing_what_is_not_an_address_is_refused(
    workspace: Any, cli: Callable[..., Result]
) -> None:
    """``consent suppress not-an-email`` was recorded, blocking nobody."""
    result = cli("-w", str(workspace.path), "consent", "suppress", "ann.example.com")
    assert result.returncode == 1
    assert "'ann.example.com' is not an email address" in result.stderr
    assert workspace.store.fetchall("SELECT count(*) FROM suppressions") == [(0,)]
    fine = cli("-w", str(workspace.path), "consent", "suppress", "Ann@Example.com")
    assert fine.returncode == 0, fine.stderr

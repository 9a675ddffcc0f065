"""The management API for traits, templates, campaigns, journeys and experiments.

One mechanism for every kind: what is saved is in the workspace file (or template file),
the rest of the file is untouched, and a refusal carries the loader's own positions.
"""

from __future__ import annotations

import pytest

from segmint.config.errors import ConfigError
from segmint.workspace import Workspace

from . import test_manage
from .test_manage import Api

api = test_manage.api  # the fixture: ten customers, read/admin/write keys, a live server

YAML_KINDS = {
    "traits": ("big_orders", {"count": "events", "event": "Order Completed",
                              "where": "total > 500"}),
    "campaigns": ("vip_news", {"segment": "vip", "template": "lifecycle",
                               "from": "Shop <shop@example.com>", "topic": "newsletter"}),
    "journeys": ("vip_welcome", {"trigger": {"segment_entry": "vip"},
                                 "from": "Shop <shop@example.com>",
                                 "steps": [{"name": "hello", "send": "lifecycle"},
                                           {"name": "pause", "wait": "1d"}]}),
    "experiments": ("vip_subjects", {"campaign": "lifecycle_update", "metric": "open",
                                     "variants": [{"name": "control"},
                                                  {"name": "short", "subject": "Hi"}]}),
}  # fmt: skip


def _loaded(ws: Workspace) -> Workspace:
    """The workspace as ``segmint`` would load it from disk now."""
    return Workspace.open(ws.path)


@pytest.mark.parametrize("kind", sorted(YAML_KINDS))
def test_create_read_update_archive_each_kind(api: Api, kind: str) -> None:
    name, definition = YAML_KINDS[kind]
    path = api.ws.path / "segmint.yaml"
    before = path.read_text()
    made = api.client.post(f"/v1/manage/{kind}", json={"name": name, "definition": definition},
                           headers=api.admin)  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["definition"] == definition
    after = path.read_text()
    assert set(before.splitlines()) <= set(after.splitlines())  # nothing else changed
    assert name in getattr(_loaded(api.ws).definition, kind)
    assert name in getattr(api.ws.definition, kind)  # this process took it too
    listed = api.client.get(f"/v1/manage/{kind}", headers=api.read).json()
    assert name in [row["name"] for row in listed[kind]]
    read = api.client.get(f"/v1/manage/{kind}/{name}", headers=api.read).json()
    assert after.splitlines()[read["line"] - 1].strip().startswith(f"{name}:")
    changed = dict(definition, description="changed through the API")
    put = api.client.put(f"/v1/manage/{kind}/{name}",
                         json={"definition": changed, "version": read["version"]},
                         headers=api.admin)  # fmt: skip
    assert put.status_code == 200, put.text
    assert "changed through the API" in path.read_text()
    gone = api.client.post(f"/v1/manage/{kind}/{name}/archive", headers=api.admin)
    assert gone.status_code == 200, gone.text
    assert path.read_text() == before
    assert f"{name}:" in (api.ws.path / "archive" / f"{kind}.yaml").read_text()
    assert name not in getattr(api.ws.definition, kind)


def _loader_problems(ws: Workspace, text: str) -> list[tuple[int | None, int | None, str]]:
    """What the loader says about ``text`` as segmint.yaml: (line, column, key path)."""
    scratch = ws.path.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    (scratch / "segmint.yaml").write_text(text)
    (scratch / "templates").symlink_to(ws.path / "templates")
    with pytest.raises(ConfigError) as caught:
        Workspace.open(scratch)
    errors = getattr(caught.value, "errors", [caught.value])
    out = []
    for e in errors:
        loc = e.location
        out.append((loc.line if loc else None, loc.column if loc else None, e.key_path))
    return out


@pytest.mark.parametrize(
    ("kind", "definition", "expect"),
    [
        ("traits", {"count": "events", "evnt": "Order Completed"}, "did you mean 'event'"),
        ("campaigns", {"segment": "vipp", "template": "lifecycle", "from": "a@b.c"}, "vip"),
        ("journeys", {"trigger": {"segment_entry": "vip"}, "from": "a@b.c",
                      "steps": [{"name": "s", "send": "no_such_template"}]}, "no_such_template"),
        ("experiments", {"campaign": "lifecycle_update", "variants": [{"name": "a"}]},
         "at least two arms"),
    ],
)  # fmt: skip
def test_a_bad_definition_is_refused_at_the_loaders_positions(
    api: Api, kind: str, definition: dict[str, object], expect: str
) -> None:
    path = api.ws.path / "segmint.yaml"
    before = path.read_text()
    body = {"name": "bad_one", "definition": definition}
    checked = api.client.post(f"/v1/manage/{kind}/validate", json=body, headers=api.read)
    assert checked.status_code == 200
    result = checked.json()
    assert result["valid"] is False
    assert any(expect in p["detail"] for p in result["problems"]), result
    refused = api.client.post(f"/v1/manage/{kind}", json=body, headers=api.admin)
    assert refused.status_code == 422
    assert expect in refused.json()["error"]["message"]
    assert path.read_text() == before  # nothing written


def test_validate_positions_equal_the_loaders(api: Api) -> None:
    """Validation through the API reports what loading the hand-edited file reports."""
    from ruamel.yaml import YAML

    from segmint.config.edit import DefinitionEditor

    definition = {"count": "events", "evnt": "Order Completed"}
    body = {"name": "typo", "definition": definition}
    problems = api.client.post("/v1/manage/traits/validate", json=body, headers=api.read).json()
    got = [(p["line"], p["column"], p["key_path"]) for p in problems["problems"]]
    editor = DefinitionEditor(api.ws.path)
    data, text = editor.read()
    yaml = YAML()
    assert data["traits"]  # the same edit made by hand: the entry appended to traits
    lines = text.splitlines(keepends=True)
    last = max(data["traits"].lc.key(k)[0] for k in data["traits"])
    entry = "  typo:\n    count: events\n    evnt: Order Completed\n"
    by_hand = "".join(lines[: last + 1]) + entry + "".join(lines[last + 1 :])
    assert yaml.load(by_hand)["traits"]["typo"]["evnt"] == "Order Completed"
    assert got and got == _loader_problems(api.ws, by_hand)


def test_templates_are_files_linted_like_template_lint(api: Api) -> None:
    folder = api.ws.path / "templates"
    source = "{% block subject %}Hello {{ first_name | default('you') }}{% endblock %}<p>Hi</p>"
    made = api.client.post("/v1/manage/templates", json={"name": "hello", "source": source},
                           headers=api.admin)  # fmt: skip
    assert made.status_code == 201, made.text
    assert (folder / "hello.html").read_text() == source
    listed = api.client.get("/v1/manage/templates", headers=api.read).json()["templates"]
    assert "hello" in [t["name"] for t in listed]
    broken = "{% block subject %}Hi {{ first_nam }}{% endblock %}<p>{% if %}</p>"
    body = {"name": "hello", "source": broken}
    checked = api.client.post("/v1/manage/templates/validate", json=body, headers=api.read)
    problems = checked.json()["problems"]
    assert problems and problems[0]["file"] == str(folder / "hello.html")
    assert problems[0]["line"] == 1
    stale = api.client.put("/v1/manage/templates/hello",
                           json={"source": source + "!", "version": "0" * 16},
                           headers=api.admin)  # fmt: skip
    assert stale.status_code == 409
    used = api.client.post("/v1/manage/templates/lifecycle/archive", headers=api.admin)
    assert used.status_code == 422 and "lifecycle_update" in used.json()["error"]["message"]
    assert (folder / "lifecycle.html").exists()
    gone = api.client.post("/v1/manage/templates/hello/archive", headers=api.admin)
    assert gone.status_code == 200
    assert not (folder / "hello.html").exists()
    assert (api.ws.path / "archive" / "templates" / "hello.html").read_text() == source


def test_roles_names_and_unknown_entries(api: Api) -> None:
    name, definition = YAML_KINDS["traits"]
    body = {"name": name, "definition": definition}
    assert api.client.post("/v1/manage/traits", json=body, headers=api.read).status_code == 403
    assert api.client.post("/v1/manage/traits", json=body).status_code == 401
    bad_name = api.client.post("/v1/manage/traits", json=body | {"name": "a b"},
                               headers=api.admin)  # fmt: skip
    assert bad_name.status_code == 422 and bad_name.json()["error"]["field"] == "name"
    dup = api.client.post("/v1/manage/traits", json=body | {"name": "orders"}, headers=api.admin)
    assert dup.status_code == 409
    missing = api.client.get("/v1/manage/traits/ordrs", headers=api.read)
    assert missing.status_code == 404 and "did you mean 'orders'" in missing.text
    assert api.client.get("/v1/manage/widgets", headers=api.read).status_code == 422


def test_archiving_a_journey_with_instances_says_what_ends_them(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archived, a journey's active instances end at the next tick (definition_changed),
    and the answer said nothing of it."""
    from segmint.clock import FixedClock
    from segmint.journeys.insight import list_journeys
    from segmint.journeys.service import run_journeys

    from .test_manage import NOW

    monkeypatch.setenv("SEGMINT_SECRET", "a-secret-of-at-least-16-characters")
    run_journeys(api.ws, FixedClock(NOW), NOW)  # (no mail server: the sends fail, wait)
    busy = [j for j in list_journeys(api.ws) if j["active"]]
    assert busy, list_journeys(api.ws)
    name, active = busy[0]["name"], busy[0]["active"]
    gone = api.client.post(f"/v1/manage/journeys/{name}/archive", headers=api.admin)
    assert gone.status_code == 200, gone.text
    (note,) = gone.json()["notes"]
    assert f"ends {active} active instance(s)" in note and "definition_changed" in note
    other = api.client.post("/v1/manage/campaigns/lifecycle_update/archive", headers=api.admin)
    assert "notes" not in other.json()


def test_a_model_trait_is_named_as_the_models(api: Api) -> None:
    """``GET /v1/manage/traits/churn_risk`` said 'unknown traits entry', though rules read
    the trait: it is written by a model, declared under ``models:``."""
    path = api.ws.path / "segmint.yaml"
    path.write_text(path.read_text() + "\nmodels:\n  churn_risk: {kind: propensity}\n")
    with Workspace.open(api.ws.path) as loaded:
        api.ws.replace_definition(loaded.definition)
    got = api.client.get("/v1/manage/traits/churn_risk", headers=api.read)
    error = got.json()["error"]
    assert got.status_code == 404 and error["field"] == "name"
    assert "written by model 'churn_risk'" in error["message"]
    assert "segmint models score churn_risk" in error["message"]
    other = api.client.get("/v1/manage/traits/churn_rsk", headers=api.read)
    assert "unknown traits entry 'churn_rsk'" in other.json()["error"]["message"]


@pytest.mark.parametrize(
    ("name", "says"),
    [("last_seen_at", "built-in trait"), ("profile_id", "profile key"),
     ("not", "keyword of the rule language"), ("NULL", "keyword of the rule language")],
)  # fmt: skip
def test_a_trait_named_like_a_built_in_or_a_keyword_is_refused(
    api: Api, name: str, says: str
) -> None:
    """Saved (201), the trait shadowed the built-in or could never be read by a rule."""
    yaml = (api.ws.path / "segmint.yaml").read_text()
    body = {"name": name, "definition": {"from": "identify", "type": "string"}}
    r = api.client.post("/v1/manage/traits", json=body, headers=api.admin)
    error = r.json()["error"]
    assert r.status_code == 422 and error["field"] == f"traits.{name}", r.text
    assert says in error["message"] and f"trait name '{name}'" in error["message"]
    assert (api.ws.path / "segmint.yaml").read_text() == yaml

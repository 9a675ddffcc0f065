"""Rendering: layouts, partials, blocks, context, CSS inlining, the text part, links."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.personalize import (
    RenderedEmail,
    Renderer,
    TemplateError,
    TemplateNotFound,
    TemplateRenderError,
    TemplateSyntaxError,
)
from segmint.personalize.htmltext import html_to_text
from segmint.profiles import Profile
from segmint.workspace import Workspace

from .conftest import defaults

Render = Callable[..., RenderedEmail]
Write = Callable[[str, str], None]

EXTRA = {"unsubscribe_url": "https://shop.example/u/abc"}


def lifecycle(renderer: Renderer, traits: dict[str, object], segments: set[str]) -> RenderedEmail:
    profile = Profile("p1", traits, frozenset(segments))
    return renderer.compile("lifecycle").render(profile, extra=EXTRA, **defaults())


def test_example_template_per_segment(renderer: Renderer) -> None:
    vip = lifecycle(renderer, {"first_name": "Ada"}, {"vip", "high_value"})
    assert vip.subject == "Ada, something picked for you"
    assert vip.preheader == "A note from Example Shop"
    assert "early access" in vip.html and "early access" in vip.text
    loyal = lifecycle(renderer, {"orders": 5}, {"loyal_customer"})
    assert loyal.subject == "Hello, something picked for you"
    assert "Hi there," in loyal.text
    assert "shopping with us 5 times" in loyal.text
    newbie = lifecycle(renderer, {}, set())  # no membership: the group's default segment
    assert "Welcome! Here is 10% off" in newbie.text


def test_segment_takes_highest_priority_member_of_the_group(renderer: Renderer) -> None:
    both = lifecycle(renderer, {}, {"loyal_customer", "vip"})
    assert "early access" in both.text
    assert "shopping with us" not in both.text


def test_layout_styles_are_inlined_into_child_blocks(renderer: Renderer) -> None:
    email = lifecycle(renderer, {}, set())
    assert "<style" not in email.html
    assert '<p class="footer" style="color: #888;font-size: 12px;">' in email.html
    assert 'style="font-family: Helvetica, Arial, sans-serif;color: #222;"' in email.html


def test_compile_is_cached_and_inlines_once(renderer: Renderer) -> None:
    assert renderer.compile("lifecycle") is renderer.compile("lifecycle.html")


def test_layout_partials_super_and_descendant_selectors(write: Write, workspace) -> None:  # type: ignore[no-untyped-def]
    write(
        "base.html",
        "<html><head><style>.content p { color: red } td.cell { padding: 4px }"
        "@media (max-width: 600px) { .content { width: 100% } }</style></head>"
        '<body><div class="content">{% block content %}<p>base</p>{% endblock %}</div>'
        '{% include "partials/footer.html" %}</body></html>',
    )
    write("partials/footer.html", '<p class="foot">Bye {{ first_name | default("you") }}</p>')
    write(
        "child.html",
        '{% extends "base.html" %}{% block subject %}Hi {{ first_name }}{% endblock %}'
        "{% block content %}{{ super() }}<p>child</p><table>"
        '{% for item in favorite_items %}<tr><td class="cell">{{ item }}</td></tr>'
        "{% endfor %}</table>{% endblock %}",
    )
    renderer = Renderer(workspace.templates_dir, workspace.definition)
    profile = Profile("p1", {"first_name": "Ada", "favorite_items": ["hat", "scarf"]})
    email = renderer.compile("child").render(profile, **defaults())
    assert email.subject == "Hi Ada"
    assert '<p style="color: red;">base</p><p style="color: red;">child</p>' in email.html
    # A loop inside a <table> stays inside it (no HTML foster parenting at compile time).
    assert '<td class="cell" style="padding: 4px;">hat</td>' in email.html
    assert email.html.index("<table") < email.html.index("hat") < email.html.index("</table>")
    assert '<p class="foot">Bye Ada</p>' in email.html
    assert "@media (max-width: 600px)" in email.html  # responsive rules stay in <style>
    assert "base\n\nchild" in email.text
    assert "hat" in email.text and "scarf" in email.text


@pytest.fixture
def write(write_template: Write) -> Write:
    return write_template


def test_text_part_from_html(render: Render) -> None:
    body = (
        "<html><head><title>x</title></head><body><h1>Big &amp; bold</h1>"
        '<p>Read <a href="https://shop.example/a?x=1&amp;y=2">our news</a> today.</p>'
        "<ul><li>one</li><li>two</li></ul><p>line<br>break</p>"
        '<p><a href="https://shop.example/b">https://shop.example/b</a></p>'
        '<div style="display:none">hidden</div><img src="logo.png" alt="Logo"></body></html>'
    )
    text = render(body).text
    assert text.startswith("Big & bold\n\nRead our news (https://shop.example/a?x=1&y=2) today.")
    assert "- one\n- two" in text
    assert "line\nbreak" in text
    assert "hidden" not in text and "Logo" in text


def test_text_part_conditionals_leave_no_gaps(render: Render) -> None:
    body = "<p>Hi</p>{% if vip %}<p>VIP</p>{% endif %}<p>Bye</p>"
    assert render(body.replace("vip", "'vip' in segments")).text == "Hi\n\nBye\n"
    member = render(body.replace("vip", "'vip' in segments"), segments=frozenset({"vip"}))
    assert member.text == "Hi\n\nVIP\n\nBye\n"


def test_values_are_escaped_in_html_and_raw_in_text(render: Render) -> None:
    email = render("<p>{{ first_name }}</p>", {"first_name": "<b>Tom & Jerry</b>"})
    assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in email.html
    assert "<b>Tom & Jerry</b>" in email.text


def test_link_rewriter_applies_to_both_parts_once_per_url(render: Render) -> None:
    calls: list[str] = []

    def rewrite(url: str) -> str:
        calls.append(url)
        return "https://t.example/c?to=" + url.replace("&", "%26")

    body = (
        '<p><a href="https://shop.example/p?a=1&amp;b=2">shop</a> '
        '<a href="{{ unsubscribe_url }}">unsub</a> <a href="mailto:help@shop.example">mail</a> '
        '<a href="#top">top</a></p>'
    )
    email = render(body, extra=EXTRA, link_rewriter=rewrite)
    assert calls == ["https://shop.example/p?a=1&b=2", "https://shop.example/u/abc"]
    assert 'href="https://t.example/c?to=https://shop.example/p?a=1%26b=2"' in email.html
    assert 'href="mailto:help@shop.example"' in email.html
    assert "shop (https://t.example/c?to=https://shop.example/p?a=1%26b=2)" in email.text


def test_only_template_links_are_rewritten(render: Render) -> None:
    seen: list[str] = []
    email = render(
        '<p>{{ first_name }} <a href="https://shop.example/{{ favorite_category }}">x</a></p>',
        {"first_name": 'https://evil.example "<a href=https://evil.example>"',
         "favorite_category": 'hats?a=1&b="2"'},
        link_rewriter=lambda u: seen.append(u) or "https://t.example/c/1",
    )  # fmt: skip
    assert seen == ['https://shop.example/hats?a=1&b="2"']
    assert email.html.count("https://t.example/c/1") == 1
    assert "&lt;a href=https://evil.example&gt;" in email.html
    assert "x (https://t.example/c/1)" in email.text


def test_open_pixel_and_preheader(render: Render) -> None:
    body = (
        "{% block preheader %}Only {{ orders }} left{% endblock %}"
        "<html><body><p>x</p></body></html>"
    )
    email = render(body, {"orders": 2}, open_pixel_url="https://t.example/o/1.gif")
    assert email.preheader == "Only 2 left"
    assert email.html.index("Only 2 left") < email.html.index("<p>x</p>")
    assert email.html.rstrip().endswith(
        '<img src="https://t.example/o/1.gif" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px"></body></html>'
    )
    assert "Only 2 left" not in email.text and "1.gif" not in email.text


def test_subject_is_one_line_and_unescaped(render: Render) -> None:
    body = "{% block subject %}\n  Tom &amp; {{ first_name }}\n{% endblock %}<p>x</p>"
    assert render(body, {"first_name": "A\nB & C"}).subject == "Tom & A B & C"


def test_subject_override_and_missing_subject(workspace, write_template: Write) -> None:  # type: ignore[no-untyped-def]
    write_template("nosubject.html", "<p>x</p>")
    renderer = Renderer(workspace.templates_dir, workspace.definition)
    with pytest.raises(TemplateError, match="no subject"):
        renderer.compile("nosubject")
    compiled = renderer.compile("nosubject", subject="Hello {{ first_name }}")
    email = compiled.render(Profile("p", {"first_name": "Bo"}), **defaults())
    assert email.subject == "Hello Bo"


def test_compile_errors(workspace, write_template: Write) -> None:  # type: ignore[no-untyped-def]
    renderer = Renderer(workspace.templates_dir, workspace.definition)
    with pytest.raises(TemplateNotFound):
        renderer.compile("missing")
    write_template("bad.html", "{% block subject %}x{% endblock %}\n<p>{% if x %}</p>\n")
    with pytest.raises(TemplateSyntaxError) as caught:
        renderer.compile("bad")
    assert str(caught.value.location) == "templates/bad.html:2:7"  # points at 'if'
    assert "2 | <p>{% if x %}</p>\n" in caught.value.detailed_message() + "\n"
    write_template("dyn.html", "{% extends layout_name %}")
    with pytest.raises(TemplateError, match="in quotes"):
        renderer.compile("dyn")
    (workspace.templates_dir / "latin1.html").write_bytes(
        b"{% block subject %}caf\xe9{% endblock %}"
    )
    with pytest.raises(TemplateError, match="not UTF-8"):
        renderer.compile("latin1")
    write_template("styled.html", "<style>p { color: {{ c }} }</style><p>x</p>")
    with pytest.raises(TemplateError, match="inside <style>"):
        renderer.compile("styled")


def test_render_error_fails_one_recipient(renderer: Renderer, write_template: Write) -> None:
    write_template("div.html", "{% block subject %}s{% endblock %}<p>{{ 100 / orders }}</p>")
    compiled = Renderer(renderer.templates_dir, renderer.definition).compile("div")
    ok = compiled.render(Profile("a", {"orders": 4}), **defaults())
    assert "25.0" in ok.html
    with pytest.raises(TemplateRenderError) as caught:
        compiled.render(Profile("b", {"orders": 0}), **defaults())
    assert caught.value.reason == "error" and "ZeroDivisionError" in str(caught.value)
    again = compiled.render(Profile("c", {"orders": 5}), **defaults())
    assert "20.0" in again.html


def test_date_is_required(renderer: Renderer) -> None:
    args = defaults()
    del args["date"]
    with pytest.raises(TemplateRenderError, match="date"):
        renderer.compile("lifecycle").render(Profile("p"), **args)
    args["extra"] = {"date": defaults()["date"]}
    assert renderer.compile("lifecycle").render(Profile("p"), **args).subject


def test_extra_and_builtins_in_context(render: Render) -> None:
    body = "<p>{{ profile_id }}|{{ segments | join(',') }}|{{ coupon }}|{{ segment }}</p>"
    email = render(body, segments=frozenset({"vip", "churned"}), extra={"coupon": "X1"})
    assert "p1|churned,vip|X1|vip" in email.text


def test_segments_print_as_a_list_and_still_test_membership(render: Render) -> None:
    body = (
        "<p>In: {{ segments }}.</p>{% if 'vip' in segments %}<p>VIP</p>{% endif %}"
        "<p>{{ segments | length }} / {{ segments | first }} / "
        "{% for s in segments %}[{{ s }}]{% endfor %}</p>"
    )
    email = render(body, segments=frozenset({"vip", "churned"}))
    assert "In: churned, vip." in email.text and "In: churned, vip." in email.html
    assert "VIP" in email.text
    assert "2 / churned / [churned][vip]" in email.text
    assert "(" not in email.text and "&#39;" not in email.html
    nobody = render(body)
    assert "In: ." in nobody.text and "VIP" not in nobody.text
    subject = render("{% block subject %}You: {{ segments }}{% endblock %}<p>x</p>",
                     segments=frozenset({"a", "b"}))  # fmt: skip
    assert subject.subject == "You: a, b"


@settings(max_examples=30, deadline=None)
@given(segments=st.sets(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), max_size=5))
def test_segments_text_is_the_sorted_names_joined(
    quick_render: Callable[..., RenderedEmail], segments: set[str]
) -> None:
    body = "<p>[{{ segments }}]{% if 'vip' in segments %} member{% endif %}</p>"
    email = quick_render(body, segments=frozenset(segments))
    assert f"[{', '.join(sorted(segments))}]" in email.text
    assert (" member" in email.text) == ("vip" in segments)


def test_trait_default_from_workspace(render: Render) -> None:
    assert "UTC" in render("<p>{{ timezone }}</p>").text


_PIECES = [*"ab Zé€<>&\"'{}%#=\n\t", "{{", "{%", "&amp;", "<b>", "http://x.y/?a=1&b=2"]
tricky_text = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)


@settings(max_examples=40, deadline=None)
@given(
    first_name=st.one_of(st.none(), tricky_text),
    category=tricky_text,
    segments=st.sets(st.sampled_from(["vip", "loyal_customer", "churned", "high_value"])),
    orders=st.integers(min_value=0, max_value=3),
)
def test_text_template_agrees_with_converting_the_rendered_html(
    text_agreement: Renderer,
    first_name: str | None,
    category: str,
    segments: set[str],
    orders: int,
) -> None:
    profile = Profile(
        "p1",
        {"first_name": first_name, "favorite_category": category, "orders": orders},
        frozenset(segments),
    )
    email = text_agreement.compile("mixed").render(profile, extra=EXTRA, **defaults())

    def words(text: str) -> list[str]:
        return text.split()

    assert words(email.text) == words(html_to_text(email.html))


@pytest.fixture(scope="module")
def text_agreement(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    ws = Workspace.init(tmp_path_factory.mktemp("agree") / "ws", name="agree")
    (ws.templates_dir / "mixed.html").write_text(
        '{% extends "layout.html" %}{% block subject %}s{% endblock %}{% block content %}'
        "<h1>Hi {{ first_name | default('there') }}</h1>"
        "<table><tr><td>{{ favorite_category }}</td><td>{{ orders }}</td></tr>"
        "{% for s in segments %}<tr><td>{{ s }}</td></tr>{% endfor %}</table>"
        '{% if segment == "vip" %}<p>VIP '
        '<a href="https://shop.example/v?c={{ favorite_category }}">'
        "go {{ favorite_category }}</a></p>{% elif orders > 1 %}<ul><li>{{ orders }}</li>"
        "<li>{{ orders | pluralize('order', 'orders') }}</li></ul>{% endif %}"
        "<p>{{ first_name }}<br>{{ favorite_category | upper }}</p>{% endblock %}",
        encoding="utf-8",
    )
    renderer = Renderer(ws.templates_dir, ws.definition)
    ws.close()
    return renderer


def test_tags_in_awkward_places_survive_compilation(write: Write, workspace: Workspace) -> None:
    write("macros.html", "{% macro badge(n) %}<b>{{ n }}</b>{% endmacro %}")
    write(
        "odd.html",
        '{% import "macros.html" as m %}{% block subject %}S{% endblock %}'
        "<html><head><title>{{ subject }} · {{ first_name }}</title>"
        "<style>td { color: blue }</style></head><body>"
        "{# a comment #}{% raw %}<p>{{ not_a_tag }}</p>{% endraw %}"
        '<table><tr><td {% if orders > 1 %}class="many"{% endif %} '
        'title="{% if orders %}has{% else %}none{% endif %}">'
        "{{- m.badge(orders) -}}</td></tr></table>"
        "<p>{{ '{{' }} literal</p></body></html>",
    )
    renderer = Renderer(workspace.templates_dir, workspace.definition)
    compiled = renderer.compile("odd")
    many = compiled.render(Profile("p", {"first_name": "Ada", "orders": 3}), **defaults())
    assert "<title>S · Ada</title>" in many.html
    assert "<p>{{ not_a_tag }}</p>" in many.html
    assert "a comment" not in many.html
    assert '<td class="many"  title="has" style="color: blue;"><b>3</b></td>' in many.html
    assert "{{ literal" in many.html and "{{ literal" in many.text
    none = compiled.render(Profile("p", {"orders": 0}), **defaults())
    assert '<td  title="none" style="color: blue;"><b>0</b></td>' in none.html
    assert "{{ not_a_tag }}" in none.text


def test_fragment_template_gets_a_document(render: Render) -> None:
    email = render("<p>Just a paragraph</p>", open_pixel_url="https://t.example/o.gif")
    assert email.html.startswith("<html><head></head><body>")
    assert email.html.endswith('height:1px"></body></html>')
    assert email.text == "Just a paragraph\n"


def test_css_is_inlined_at_compile_time_only(
    renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import css_inline

    compiled = renderer.compile("lifecycle")

    class Refuse:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("css-inline called while rendering")

    monkeypatch.setattr(css_inline, "CSSInliner", Refuse)
    monkeypatch.setattr(css_inline, "inline", Refuse)
    for name in ("Ada", "Bo", "Cy"):
        email = compiled.render(Profile(name, {"first_name": name}), **defaults())
        assert 'style="color: #888;font-size: 12px;"' in email.html


def test_segment_is_none_without_an_email_group(workspace: Workspace) -> None:
    path = workspace.path / "segmint.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("\n  group: lifecycle ", "\n  group: null "),
        encoding="utf-8",
    )
    ws = Workspace.open(workspace.path)
    assert ws.definition.email.group is None
    renderer = Renderer(ws.templates_dir, ws.definition)
    email = renderer.compile("lifecycle").render(Profile("p", {}, frozenset({"vip"})), **defaults())
    assert "Welcome!" in email.text  # segment is None: the template's else branch


def test_statements_in_head_and_hidden_parts_serve_the_text(render: Render) -> None:
    body = (
        "<html><head>{% set greeting = 'Howdy' %}"
        "{% macro shout(s) %}{{ s | upper }}!{% endmacro %}<title>{% set n = 2 %}T</title></head>"
        '<body><div style="display:none">{% set tail = "bye" %}hidden</div>'
        "<p>{{ greeting }} {{ shout(first_name) }} {{ n }} {{ tail }}</p></body></html>"
    )
    email = render(body, {"first_name": "ada"})
    assert "<p>Howdy ADA! 2 bye</p>" in email.html
    assert email.text == "Howdy ADA! 2 bye\n"


def test_macros_imported_or_defined_first_give_text_in_the_text_part(
    write: Write, workspace: Workspace
) -> None:
    write("ui.html", '{% macro button(url, label) %}<a class="btn" href="{{ url }}">'
                     "<b>{{ label }}</b></a>{% endmacro %}")  # fmt: skip
    write(
        "m.html",
        '{% import "ui.html" as ui %}'
        "{% macro line(x) %}<p><i>{{ x }}</i></p>{% endmacro %}"
        "{% set footer %}<p>Small <b>print</b></p>{% endset %}"
        "{% block subject %}S{% endblock %}<!doctype html><html><head>"
        "<style>.btn { color: red } p { margin: 0 }</style></head><body>"
        "{{ line(first_name) }}{{ ui.button('https://shop.example/x', 'Go') }}{{ footer }}"
        "</body></html>",
    )
    renderer = Renderer(workspace.templates_dir, workspace.definition)
    email = renderer.compile("m").render(
        Profile("p", {"first_name": "Ada"}), link_rewriter=lambda u: u + "?t=1", **defaults()
    )
    assert email.html.startswith("<!DOCTYPE html><html><head>")
    assert '<p style="margin: 0;"><i>Ada</i></p>' not in email.html  # macro output: no CSS
    assert "<p><i>Ada</i></p>" in email.html
    # imported at render time: no CSS, but links still reach the rewriter, in both parts
    assert '<a class="btn" href="https://shop.example/x?t=1"><b>Go</b></a>' in email.html
    assert email.text == "Ada\n\nGo (https://shop.example/x?t=1)\n\nSmall print\n"

"""The message bytes, checked with the standard library's parser (policy.default)."""

from __future__ import annotations

from collections.abc import Callable
from email.headerregistry import Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmint.personalize import RenderedEmail, Renderer, TemplateRenderError
from segmint.personalize.mime import Skeleton, address_header, text_header
from segmint.profiles import Profile

from .conftest import AS_OF, defaults, parse

Render = Callable[..., RenderedEmail]


def test_structure_and_headers(renderer: Renderer) -> None:
    profile = Profile("p1", {"first_name": "Zoë"}, frozenset({"vip"}))
    email = renderer.compile("lifecycle").render(
        profile,
        sender="Boutique Ünïcode <shop@example.com>",
        to='"Zoë Ω" <zoe@example.com>',
        message_id="abc.123@example.com",
        date=AS_OF,
        list_unsubscribe=("https://shop.example/u/1", "mailto:unsub@shop.example?subject=1"),
    )
    raw = email.as_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert raw.isascii()
    message = parse(email)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "Zoë, something picked for you"
    sender = message["From"].addresses[0]
    assert sender == Address("Boutique Ünïcode", "shop", "example.com")
    assert message["To"].addresses[0] == Address("Zoë Ω", "zoe", "example.com")
    assert message["Message-ID"] == "<abc.123@example.com>"
    assert message["Date"].datetime == AS_OF
    assert message["MIME-Version"] == "1.0"
    assert message["List-Unsubscribe"] == (
        "<https://shop.example/u/1>, <mailto:unsub@shop.example?subject=1>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = message.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert text.get_content().replace("\r\n", "\n") == email.text
    assert html.get_content().replace("\r\n", "\n") == email.html
    assert "Zoë" in html.get_content()


def test_no_list_unsubscribe_post_without_http(renderer: Renderer) -> None:
    args = defaults() | {"list_unsubscribe": ("", "mailto:u@shop.example")}
    message = parse(renderer.compile("lifecycle").render(Profile("p"), **args))
    assert message["List-Unsubscribe"] == "<mailto:u@shop.example>"
    assert message["List-Unsubscribe-Post"] is None


def test_plain_ascii_headers_stay_readable(renderer: Renderer) -> None:
    raw = renderer.compile("lifecycle").render(Profile("p"), **defaults()).as_bytes()
    assert b"Subject: Hello, something picked for you\r\n" in raw
    assert b"From: Example Shop <shop@example.com>\r\n" in raw


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sender", "Shop <shop@example.com>\r\nBcc: victim@example.com"),
        ("to", "no-at-sign"),
        ("message_id", "has space@example.com"),
    ],
)
def test_bad_header_values_fail_the_recipient(renderer: Renderer, field: str, value: str) -> None:
    with pytest.raises(TemplateRenderError):
        renderer.compile("lifecycle").render(Profile("p"), **(defaults() | {field: value}))


def test_subject_cannot_inject_headers(render: Render) -> None:
    body = "{% block subject %}{{ first_name }}{% endblock %}<p>x</p>"
    email = render(body, {"first_name": "Hi\r\nBcc: victim@example.com"})
    message = parse(email)
    assert message["Bcc"] is None
    assert message["Subject"] == "Hi Bcc: victim@example.com"


def test_long_subject_is_folded(render: Render) -> None:
    words = " ".join(["word"] * 40)
    body = "{% block subject %}" + words + " ünï " + words + "{% endblock %}<p>x</p>"
    email = render(body)
    raw = email.as_bytes()
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n"))
    assert parse(email)["Subject"] == email.subject


header_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=120
).filter(lambda s: s.strip() != "")


@settings(max_examples=80, deadline=None)
@given(header_text)
def test_subject_header_round_trips(value: str) -> None:
    from email import message_from_bytes, policy

    raw = text_header("Subject", value) + b"\r\n"
    assert raw.isascii()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == " ".join(value.split())


display_names = (
    st.text(
        st.characters(whitelist_categories=("L", "N"), whitelist_characters=" .-'&!"),
        min_size=1,
        max_size=60,
    )
    .map(lambda s: " ".join(s.split()))
    .filter(bool)
)


@settings(max_examples=60, deadline=None)
@given(display_names)
def test_display_name_round_trips(name: str) -> None:
    from email import message_from_bytes, policy

    raw = address_header("From", f'"{name}" <a@example.com>')
    assert raw.isascii()
    parsed = message_from_bytes(raw + b"\r\n", policy=policy.default)
    address = parsed["From"].addresses[0]
    assert address.addr_spec == "a@example.com"
    if name.isascii() or len(name.encode()) <= 39:
        assert address.display_name == name
    else:
        # Several encoded words: RFC 2047 decoders drop the folding space between them;
        # the stdlib's phrase parser keeps one, so compare without spaces.
        assert address.display_name.replace(" ", "") == name.replace(" ", "")


bodies = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)


@settings(max_examples=80, deadline=None)
@given(bodies, bodies)
def test_parts_round_trip_through_the_stdlib_parser(text: str, html: str) -> None:
    from email import message_from_bytes, policy

    raw = Skeleton.for_template("t").assemble(b"Subject: x\r\n", text, html)
    assert raw.isascii()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    plain, rich = message_from_bytes(raw, policy=policy.default).iter_parts()

    def norm(s: str) -> str:
        return s.replace("\r\n", "\n").replace("\r", "\n")

    # The parser may add a final newline to a 7bit part; the content is otherwise exact.
    assert norm(plain.get_content()).removesuffix("\n") == norm(text).removesuffix("\n")
    assert norm(rich.get_content()).removesuffix("\n") == norm(html).removesuffix("\n")


def test_ascii_parts_go_unencoded_and_others_as_base64(render: Render) -> None:
    ascii_raw = render("<p>plain</p>").as_bytes()
    assert ascii_raw.count(b"Content-Transfer-Encoding: 7bit") == 2
    assert b"<p>plain</p>" in ascii_raw
    mixed = render("<p>{{ lifetime_value | money('EUR') }}</p>", {"lifetime_value": 5})
    assert mixed.as_bytes().count(b"Content-Transfer-Encoding: base64") == 2
    text, html = parse(mixed).iter_parts()
    assert "€5.00" in text.get_content() and "€5.00" in html.get_content()


def test_a_value_cannot_forge_the_boundary(render: Render) -> None:
    boundary = Skeleton.for_template("t.html").tail.strip().removesuffix(b"--").decode()
    email = render("<p>{{ first_name }}</p>", {"first_name": boundary})
    message = parse(email)
    assert len(list(message.iter_parts())) == 2
    assert boundary in message.get_body(("html",)).get_content()

"""The console answers wrong input with its own error page, never a 500 or JSON."""

from __future__ import annotations

import re
from html import unescape

import pytest

from .test_console_pages import Console
from .test_console_pages import console as console  # the fixture, on both backends

NUL_URLS = [
    "/ui/segments/vi%00p",
    "/ui/profiles/u%001",
    "/ui/profiles/u1/email?template=we%00lcome",
    "/ui/profiles/u%001/email?template=welcome",
    "/ui/profiles/u%001/email.html?template=welcome",
    "/ui/profiles?q=u%001",
    "/ui/builder?segment=vi%00p",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_nul_in_path_or_query_is_a_400_page(console: Console, url: str) -> None:
    c, _ = console.login("read")
    r = c.get(url)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "400 · invalid_request" in r.text and "NUL character" in r.text
    assert "Back to the segments" in r.text  # the console's page, not JSON


def test_nul_in_archive_path_is_a_400_page(console: Console) -> None:
    c, token = console.login("admin")
    r = c.post("/ui/segments/vi%00p/archive", data={"csrf": token})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("text/html")


def error_of(html: str) -> str:
    found = re.search(r'<pre class="error" id="error">(.*?)</pre>', html, re.S)
    assert found, html
    return unescape(found.group(1))


@pytest.mark.parametrize("page", ["email", "email.html"])
def test_email_preview_without_a_template_says_which_to_name(console: Console, page: str) -> None:
    c, _ = console.login("read")
    r = c.get(f"/ui/profiles/u1/{page}")
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")  # was FastAPI's JSON
    assert error_of(r.text).startswith("template: name the template to preview")


def test_builder_with_a_blank_segment_is_a_new_segment(console: Console) -> None:
    c, _ = console.login("admin")
    r = c.get("/ui/builder?segment=")
    assert r.status_code == 200  # was 404 "unknown segment ''"


@pytest.mark.parametrize(
    ("as_of", "said"),
    [("garbage", "as_of: "), ("0000-01-01", "as_of: "), ("2026-02-30", "as_of: ")],
)
def test_profile_page_bad_as_of_is_a_422_page(console: Console, as_of: str, said: str) -> None:
    c, _ = console.login("read")
    r = c.get("/ui/profiles/u1", params={"as_of": as_of})
    assert r.status_code == 422, r.text
    assert error_of(r.text).startswith(said)


def test_profile_page_as_of_shows_the_profile_then(console: Console) -> None:
    c, _ = console.login("read")
    r = c.get("/ui/profiles/u1", params={"as_of": "2026-03-01T12:00:00Z"})
    assert r.status_code == 200
    assert "as of 2026-03-01 12:00:00" in r.text
    earlier = c.get("/ui/profiles/u1", params={"as_of": "2020-01-01T00:00:00Z"})
    assert "as of 2020-01-01 00:00:00" in earlier.text  # was: the server's now, as_of ignored


def test_archived_segment_page_says_so_and_offers_no_archive(console: Console) -> None:
    from segmint.api import manage

    manage.archive_segment(console.ws, "high_value")
    c, _ = console.login("admin")
    r = c.get("/ui/segments/high_value")
    assert r.status_code == 200
    assert "archived" in r.text and "archived: false" in r.text
    assert "Archive</button>" not in r.text and "Edit in the builder" not in r.text

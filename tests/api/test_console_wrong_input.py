"""The console answers wrong input with its own error page, never a 500 or JSON."""

from __future__ import annotations

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

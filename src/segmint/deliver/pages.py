"""The small HTML pages of the unsubscribe and preference links (no scripts, no assets)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font-family:Helvetica,Arial,sans-serif;max-width:32rem;margin:3rem auto;
padding:0 1rem;color:#222}}button{{font-size:1rem;padding:.5rem 1rem}}</style>
</head><body><h1>{title}</h1>{body}</body></html>"""


def page(title: str, body_html: str) -> str:
    """Wrap trusted ``body_html`` in the page frame, with ``title`` escaped."""
    return _PAGE.format(title=escape(title), body=body_html)


def unsubscribe_form(topic: str, action: str, preferences: str) -> str:
    """The GET page of an unsubscribe link: a confirmation button (scanners do not POST)."""
    label = "all email" if topic == "*" else f"“{escape(topic)}” email"
    return page(
        "Unsubscribe",
        f'<p>Stop receiving {label}?</p><form method="post" action="{escape(action)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
        f'<p><a href="{escape(preferences)}">Choose which email you receive</a></p>',
    )


def unsubscribed(topic: str, preferences: str) -> str:
    """The page shown after unsubscribing."""
    label = "any more email" if topic == "*" else f"more “{escape(topic)}” email"
    return page(
        "You are unsubscribed",
        f"<p>You will not receive {label} from us.</p>"
        f'<p><a href="{escape(preferences)}">Change your preferences</a></p>',
    )


def preferences_form(action: str, subscribed: Mapping[str, bool], saved: bool = False) -> str:
    """The preference page: one checkbox per topic."""
    boxes = "".join(
        f'<p><label><input type="checkbox" name="topic" value="{escape(t)}"'
        f"{' checked' if on else ''}> {escape(t)}</label></p>"
        for t, on in subscribed.items()
    )
    note = "<p><strong>Saved.</strong></p>" if saved else ""
    return page(
        "Email preferences",
        f'{note}<form method="post" action="{escape(action)}">{boxes}'
        '<button type="submit">Save</button></form>',
    )


def refused() -> str:
    """The page for a tampered or truncated link."""
    return page(
        "Link not valid", "<p>This link is not valid. Please use the link in the email.</p>"
    )

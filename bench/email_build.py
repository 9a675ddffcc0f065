"""Message building: complete MIME messages per second from one compiled template.

Figure: complete messages/s (render subject, preheader, HTML and text parts, then the RFC 5322
bytes with ``as_bytes()``) for a ~5 KB template (layout + content) with 10 merge tags and 2
conditional blocks, each message for a different profile, on one core, as a campaign builds
them: links through a rewriter, an open pixel, List-Unsubscribe.
Baseline: a bare Jinja2 render (``Template.render``, plain ``Environment``, same files, same
filters) of the same template for the same profiles: what the HTML alone costs.
Context: the same message built with the standard library's ``EmailMessage``
(``set_content`` + ``add_alternative`` + ``as_bytes``), from already-rendered parts.
The three are timed in alternating rounds, best round each, so a shared machine's load
shifts do not favour one of them.
Goal: >= 5,000 messages/s.

Size: ``SEGMINT_BENCH_SCALE`` multiplies the default 20,000 messages.
(The SMTP half of issue 7's benchmark is ``bench/delivery.py``.)
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

# This file is named like the standard library's ``email`` package: take the bench folder
# off the import path first, or ``import email`` would find this script.
from email import policy
from email.message import EmailMessage
from pathlib import Path

import jinja2

import common
from segmint.personalize import Renderer
from segmint.personalize.filters import FILTERS
from segmint.profiles import Profile
from segmint.workspace import Workspace

N = int(20_000 * float(os.environ.get("SEGMINT_BENCH_SCALE", "1")))
AS_OF = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
CATEGORIES = ("shoes", "shirts", "bags", "hats", "outerwear", "accessories")
SEGMENTS = ("vip", "loyal_customer", "churned", "new_customer")

LAYOUT = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title>
<style>
body { margin: 0; padding: 0; background: #f4f4f4; font-family: Helvetica, Arial, sans-serif; }
.wrapper { width: 100%; background: #f4f4f4; }
.container { max-width: 600px; margin: 0 auto; background: #ffffff; }
.header { padding: 24px; background: #111; color: #fff; font-size: 20px; }
.content p { font-size: 15px; line-height: 22px; color: #222; margin: 0 0 16px 0; }
.button { display: inline-block; padding: 12px 20px; background: #e63; color: #fff; }
.footer { padding: 24px; color: #888; font-size: 12px; text-align: center; }
.product td { padding: 8px; border-bottom: 1px solid #eee; }
@media (max-width: 600px) { .container { width: 100% !important; } }
</style></head>
<body><table class="wrapper" role="presentation"><tr><td>
<table class="container" role="presentation">
<tr><td class="header">Example Shop</td></tr>
<tr><td class="content">{% block content %}{% endblock %}</td></tr>
<tr><td class="footer">
<p>You receive this email because you shop with us. Example Shop, 1 Market Street, Springfield.</p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> ·
<a href="{{ preferences_url }}">Preferences</a></p>
</td></tr></table></td></tr></table></body></html>
"""

FILLER = (
    "<p>Our winter collection has arrived, with warm coats, soft knitwear and boots built "
    "for long walks. Every piece is made to last, and every order ships free.</p>\n"
)

CONTENT = (
    """{% extends "layout.html" %}
{% block subject %}{{ first_name | default("Hello") }}, {{ favorite_category | default("new") }}
picks for you{% endblock %}
{% block preheader %}{{ orders }} order{{ orders | pluralize }} and counting{% endblock %}
{% block content %}
<p>Hi {{ first_name | default("there") }},</p>
{% if segment == 'vip' %}
<p>As one of our best customers ({{ lifetime_value | money('EUR') }} so far) you get early
access to the winter collection, two days before everyone else.</p>
<p><a class="button" href="https://shop.example/early?c={{ favorite_category }}">Shop early</a></p>
{% elif segment == 'loyal_customer' %}
<p>Thank you for shopping with us {{ orders }} {{ orders | pluralize("time", "times") }}.
Your average order is {{ avg_order_value | money('EUR') }}.</p>
{% else %}
<p>Welcome! Here is 10% off your next order with the code WELCOME10.</p>
{% endif %}
"""
    + FILLER * 16
    + """{% if last_purchase_at %}
<p>Your last order was on {{ last_purchase_at | date('long') }}; we hope you enjoy it.</p>
{% endif %}
<table class="product"><tr><td>{{ favorite_category | default("Bestsellers") | title }}</td>
<td><a href="https://shop.example/c/{{ favorite_category }}">See more</a></td></tr></table>
<p>You opened {{ emails_opened_30d }} of our emails this month.</p>
{% endblock %}
"""
)


def profiles(count: int) -> list[Profile]:
    out = []
    for i in range(count):
        traits = {
            "first_name": f"Customer{i}" if i % 7 else None,
            "email": f"c{i}@example.com",
            "orders": i % 9,
            "lifetime_value": 37.5 * (i % 50),
            "avg_order_value": 12.25 + i % 30,
            "last_purchase_at": AS_OF - timedelta(days=i % 120) if i % 5 else None,
            "favorite_category": CATEGORIES[i % len(CATEGORIES)],
            "emails_opened_30d": i % 4,
            "timezone": ("Europe/Berlin", "America/New_York", "UTC")[i % 3],
        }
        out.append(Profile(f"p{i}", traits, frozenset({SEGMENTS[i % len(SEGMENTS)]})))
    return out


def extra_for(profile: Profile) -> dict[str, str]:
    return {
        "unsubscribe_url": f"https://shop.example/u/{profile.profile_id}",
        "preferences_url": f"https://shop.example/p/{profile.profile_id}",
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws", name="bench")
        (ws.templates_dir / "layout.html").write_text(LAYOUT, encoding="utf-8")
        (ws.templates_dir / "promo.html").write_text(CONTENT, encoding="utf-8")
        size = len(LAYOUT.encode()) + len(CONTENT.encode())
        renderer = Renderer(ws.templates_dir, ws.definition)
        compiled = renderer.compile("promo")
        people = profiles(min(N, 5_000))
        extras = [extra_for(p) for p in people]

        def track(url: str) -> str:
            return "https://t.shop.example/c/" + url.rpartition("/")[2]

        def build(i: int) -> bytes:
            p = people[i % len(people)]
            return compiled.render(
                p,
                sender="Example Shop <shop@example.com>",
                to=p.traits["email"],
                message_id=f"m{i}@shop.example",
                date=AS_OF,
                extra=extras[i % len(people)],
                link_rewriter=track,
                open_pixel_url=f"https://t.shop.example/o/{i}.gif",
                list_unsubscribe=(extras[i % len(people)]["unsubscribe_url"], ""),
            ).as_bytes()

        sample = build(0)
        bare_env = jinja2.Environment(  # noqa: S701 (baseline only; the bench output is unused)
            loader=jinja2.FileSystemLoader(str(ws.templates_dir)), autoescape=True
        )
        bare_env.filters.update(FILTERS)
        bare = bare_env.get_template("promo.html")
        segments = renderer.context

        def bare_render(i: int) -> str:
            p = people[i % len(people)]
            traits = {k: v for k, v in p.traits.items() if v is not None}
            return bare.render(
                traits,
                segment=segments.group_segment(p.segments),
                segments=tuple(p.segments),
                **extras[i % len(people)],
            )

        rendered = [
            compiled.render(p, sender="a@example.com", to="b@example.com", message_id="x@y",
                            date=AS_OF, extra=e)
            for p, e in zip(people[:2000], extras, strict=False)
        ]  # fmt: skip

        def stdlib_build(i: int) -> bytes:
            email = rendered[i % len(rendered)]
            msg = EmailMessage(policy=policy.SMTP)
            msg["From"] = "Example Shop <shop@example.com>"
            msg["To"] = f"c{i}@example.com"
            msg["Subject"] = email.subject
            msg["Date"] = AS_OF
            msg["Message-ID"] = f"<m{i}@shop.example>"
            msg.set_content(email.text)
            msg.add_alternative(email.html, subtype="html")
            return msg.as_bytes()

        ours, baseline, stdlib = interleaved(
            [(build, N), (bare_render, N), (stdlib_build, max(N // 10, 800))]
        )
        ws.close()
    print(f"template: {size:,} bytes (layout + content), 10 merge tags, 2 conditional blocks")
    print(f"messages: {N:,} (SEGMINT_BENCH_SCALE={os.environ.get('SEGMINT_BENCH_SCALE', '1')})")
    print(f"message size: {len(sample):,} bytes")
    common.report(
        "email build: complete messages per second (one core)",
        ours,
        "msg/s",
        baseline=baseline,
        baseline_name="bare Jinja2 render of the same template",
        ratio=ours / baseline,
        goal=">= 5,000 msg/s",
    )
    common.report(
        "email build: cost per complete message",
        1e3 / ours,
        "ms",
        baseline=1e3 / stdlib,
        baseline_name="stdlib EmailMessage build from rendered parts, no render",
        ratio=(1e3 / stdlib) / (1e3 / ours),
        goal="context only",
    )


def interleaved(jobs: list[tuple[Callable[[int], object], int]], rounds: int = 8) -> list[float]:
    """Calls per second of each ``fn(i)`` for ``count`` calls, timed in alternating rounds.

    Each job runs ``count / rounds`` calls per round, jobs taking turns; the best round of
    each counts (as ``timeit`` takes the minimum). Alternating keeps a shared machine's
    changing load from favouring one job over another.
    """
    best = [float("inf")] * len(jobs)
    for _ in range(rounds):
        for k, (fn, count) in enumerate(jobs):
            per_round = max(count // rounds, 1)
            start = time.perf_counter()
            for i in range(per_round):
                fn(i)
            best[k] = min(best[k], (time.perf_counter() - start) / per_round)
    return [1 / b for b in best]


if __name__ == "__main__":
    main()

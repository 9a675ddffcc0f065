"""The console's pages under ``/ui``: server-rendered Jinja2 (autoescaped) and one script.

Every figure a page shows comes from the management API's Python functions
(:mod:`segmint.api.manage`) or from the stages they call; the pages only lay them out. The
builder's script talks to ``/ui/api/…``, thin wrappers over the same functions that check
the session's CSRF token. Pages need a session (``/ui/login``); changes need an admin key.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from segmint.api import manage, reports
from segmint.api.errors import ApiError, error_response
from segmint.api.inputs import instant
from segmint.api.state import now_of, workspace_of
from segmint.web import charts
from segmint.web.session import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_SECONDS,
    Sessions,
    User,
    console_secret,
    same_token,
)

router = APIRouter(prefix="/ui", include_in_schema=False)
HERE = Path(__file__).parent
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@cache
def _env() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["instant"] = _instant
    env.filters["sparkline"] = charts.sparkline
    env.policies["json.dumps_function"] = _dumps  # tojson: instants as ISO text
    return env


def _dumps(value: Any, **_: Any) -> str:
    import orjson

    return orjson.dumps(value, default=str).decode()


def _instant(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def sessions(request: Request) -> Sessions:
    """The app's sessions (created on first use)."""
    found: Sessions | None = getattr(request.app.state, "sessions", None)
    if found is None:
        secret = console_secret(workspace_of(request).state_dir)
        found = request.app.state.sessions = Sessions(secret)
    return found


def render(
    request: Request, name: str, user: User | None, status: int = 200, **ctx: Any
) -> Response:
    """Render template ``name`` for ``user``."""
    ws = workspace_of(request)
    html = (
        _env()
        .get_template(name)
        .render(
            user=user, csrf=user.session.csrf if user else "", workspace=ws.definition.name, **ctx
        )
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _error_page(request: Request, user: User | None, exc: ApiError) -> Response:
    return render(request, "error.html", user, status=exc.status, error=exc)


def _page_user(request: Request) -> User | Response:
    """The logged-in user of a page, or the response to give instead.

    That is the login page for no session, and the error page (400) for a NUL character in
    the path or query: PostgreSQL cannot compare text holding one (it answered 500), and no
    name or id holds one (the API refuses it alike, :func:`segmint.api.inputs.refuse_nul`).
    """
    user = sessions(request).user(request)
    if user is None:
        return _login_redirect(request)
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if "\x00" in name or "\x00" in str(value):
            field = name.replace("\x00", "\\x00")
            refused = ApiError(400, "invalid_request", f"{field}: contains a NUL character", field)
            return _error_page(request, user, refused)
    return user


# -- log in and out ------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home() -> Response:
    """The segments list."""
    return RedirectResponse("/ui/segments", status_code=303)


@router.get("/login")
async def login_page(request: Request, next: str = "/ui/segments") -> Response:  # noqa: A002
    """The login form (its CSRF token is a double-submit cookie)."""
    import secrets

    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, login_csrf=token, next=_safe_next(next))
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/ui")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key and start a session."""
    form = await _form(request)
    cookie = request.cookies.get(LOGIN_COOKIE)
    if cookie is None or not same_token(form.get(CSRF_FIELD), cookie):
        exc = ApiError(403, "forbidden", "the login form expired: load it again", CSRF_FIELD)
        return _error_page(request, None, exc)
    try:
        _, cookie_value = await run_in_threadpool(
            sessions(request).login, request.app.state.keys, form.get("key", "")
        )
    except ApiError as exc:
        return render(request, "login.html", None, status=exc.status, error=str(exc),
                      login_csrf=cookie, next=_safe_next(form.get("next", "")))  # fmt: skip
    response = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    response.set_cookie(COOKIE, cookie_value, max_age=SESSION_SECONDS, httponly=True,
                        samesite="strict", path="/")  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    user = sessions(request).user(request)
    if user is not None and same_token((await _form(request)).get(CSRF_FIELD), user.session.csrf):
        sessions(request).logout(user.session.sid)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only paths of the console itself (no open redirect)."""
    return target if target.startswith("/ui/") and "//" not in target else "/ui/segments"


# -- pages ---------------------------------------------------------------------------------


@router.get("/segments")
def segments_page(request: Request) -> Response:
    """Every segment with its size."""
    user = _page_user(request)
    if isinstance(user, Response):
        return user
    board = manage.segments_board(workspace_of(request))
    names = [row["name"] for row in board["segments"]]
    cells = {(p["a"], p["b"]): (p["both"], p["jaccard"]) for p in board["overlap"]}
    return render(request, "segments.html", user, segments=board["segments"],
                  heatmap=charts.heatmap(names, cells) if len(names) > 1 else None)  # fmt: skip


@router.get("/segments/{name}")
def segment_page(request: Request, name: str) -> Response:
    """A segment: rule, size, recent enters and exits with causes, members."""
    user = _page_user(request)
    if isinstance(user, Response):
        return user
    try:
        info = manage.segment_detail(workspace_of(request), name, members=50)
    except ApiError as exc:
        return _error_page(request, user, exc)
    return render(request, "segment.html", user, segment=info)


@router.post("/segments/{name}/archive")
async def archive(request: Request, name: str) -> Response:
    """Archive a segment (admin; the form carries the CSRF token)."""
    user = _page_user(request)
    if isinstance(user, Response):
        return user
    form = await _form(request)
    try:
        _require_change(user, form.get(CSRF_FIELD))
        ws = workspace_of(request)
        await run_in_threadpool(manage.archive_segment, ws, name, form.get("version") or None)
    except ApiError as exc:
        return _error_page(request, user, exc)
    return RedirectResponse("/ui/segments", status_code=303)


KPI_SERIES = {"sent": "sent", "opened": "opened", "clicked": "clicked",
              "conversions": "conversions"}  # fmt: skip
RATE_SERIES = {"open rate": "open_rate", "click rate": "click_rate",
               "conversion rate": "conversion_rate"}  # fmt: skip


@router.get("/dashboards")
def dashboards_page(request: Request) -> Response:
    """Campaign, journey and experiment dashboards: KPIs and their charts."""
    from segmint.journeys.insight import list_journeys

    user = _page_user(request)
    if isinstance(user, Response):
        return user
    ws = workspace_of(request)
    now = now_of(request)
    kpis = reports.kpis(ws, "campaign", None, now)
    groups = [str(row["campaign"]) for row in kpis["rows"]]
    journeys = list_journeys(ws)
    experiments = [reports.experiment(ws, e["experiment"], now)
                   for e in reports.experiments(ws)]  # fmt: skip
    return render(
        request, "dashboards.html", user, kpis=kpis, journeys=journeys, experiments=experiments,
        kpi_chart=_chart(kpis["rows"], groups, KPI_SERIES),
        rate_chart=_chart(kpis["rows"], groups, RATE_SERIES, percent=True),
        journey_chart=_journey_chart(journeys),
        experiment_charts={e["experiment"]: _arms_chart(e) for e in experiments},
    )  # fmt: skip


def _chart(
    rows: list[dict[str, Any]], groups: list[str], series: dict[str, str], *, percent: bool = False
) -> Any:
    if not rows:
        return None
    data = {label: [row.get(key) for row in rows] for label, key in series.items()}
    return charts.bars(groups, data, percent=percent)


def _journey_chart(journeys: list[dict[str, Any]]) -> Any:
    if not journeys:
        return None
    series = {k: [j[k] for j in journeys] for k in ("entered", "sent", "exited")}
    return charts.bars([j["name"] for j in journeys], series)


def _arms_chart(report: dict[str, Any]) -> Any:
    arms = report.get("arms") or []
    names = [str(a.get("arm")) for a in arms]
    return charts.bars(names, {"rate": [a.get("rate") for a in arms]}, width=360, height=180,
                       percent=report.get("metric") != "revenue")  # fmt: skip


@router.get("/builder")
def builder_page(request: Request, segment: str | None = None) -> Response:
    """The visual rule builder (new segment, or ``?segment=NAME`` to edit one)."""
    user = _page_user(request)
    if isinstance(user, Response):
        return user
    ws = workspace_of(request)
    from segmint.rules import workspace_schema

    existing = None
    if segment:  # ?segment= (blank) is a new segment, as no parameter is
        try:
            existing = manage.segment_detail(ws, segment, members=0)
        except ApiError as exc:
            return _error_page(request, user, exc)
    schema = workspace_schema(ws.definition)
    plan = ws.definition.tracking_plan
    events = sorted(plan.events) if plan is not None else []
    events += [e for (e,) in ws.store.fetchall(
        "SELECT DISTINCT event FROM events WHERE event IS NOT NULL ORDER BY event LIMIT 200"
    ) if e not in events]  # fmt: skip
    if existing is not None and existing.get("tree"):
        existing["tree"] = labelled(existing["tree"])
    config = {
        "traits": dict(sorted(schema.types.items())),
        "segments": sorted(ws.definition.segments),
        "events": events,
        "segment": existing,
        "version": manage.definitions_version(ws),
    }
    return render(request, "builder.html", user, config=config, editing=existing)


@router.get("/profiles")
def profile_search(request: Request, q: str = "") -> Response:
    """Find a profile by id, user id, email or ``KIND:VALUE``."""
    user = _page_user(request)
    if isinstance(user, Response):
        return user
    if not q.strip():
        return render(request, "search.html", user, query="")
    try:
        found = manage.search_profiles(workspace_of(request), q)
    except ApiError as exc:
        return render(request, "search.html", user, status=exc.status, query=q, error=exc)
    return RedirectResponse(f"/ui/profiles/{quote(found['profile_id'])}", status_code=303)


@router.get("/profiles/{ref}")
def profile_page(request: Request, ref: str, as_of: str | None = None) -> Response:
    """A profile: traits, segments with why, events, consents, sends, email preview.

    ``?as_of=`` shows the traits at another instant (ISO 8601, ``now`` or ``-7d``), as the
    management API's profile view does.
    """
    user = _page_user(request)
    if isinstance(user, Response):
        return user
    ws = workspace_of(request)
    now = now_of(request)
    try:
        view = manage.profile_view(ws, ref, instant(as_of, "as_of", now, now=now))
    except ApiError as exc:
        return _error_page(request, user, exc)
    templates = sorted({c.template for c in ws.definition.campaigns.values()})
    return render(request, "profile.html", user, profile=view, templates=templates)


@router.get("/profiles/{ref}/email")
def email_page(request: Request, ref: str, template: str = "") -> Response:
    """A template rendered for this profile, at desktop and mobile widths."""
    user = _page_user(request)
    if isinstance(user, Response):
        return user
    try:
        rendered = email_preview(request, ref, template)
    except ApiError as exc:
        return _error_page(request, user, exc)
    return render(request, "email.html", user, email=rendered, ref=ref, template=template)


@router.get("/profiles/{ref}/email.html")
def email_body(request: Request, ref: str, template: str = "") -> Response:
    """The rendered HTML alone (framed by the email page; no script may run in it)."""
    user = _page_user(request)
    if isinstance(user, Response):
        return user
    try:
        rendered = email_preview(request, ref, template)
    except ApiError as exc:  # shown in the frame: the console's page, not JSON
        return _error_page(request, user, exc)
    headers = {"Content-Security-Policy": "sandbox; default-src 'none'; img-src * data:; "
               "style-src 'unsafe-inline'", "X-Content-Type-Options": "nosniff"}  # fmt: skip
    return HTMLResponse(rendered["html"], headers=headers)


def email_preview(request: Request, ref: str, template: str) -> dict[str, str]:
    """Render ``template`` for profile ``ref`` with :func:`render_previews` (nothing sent).

    Raises:
        ApiError: 404 for an unknown profile, 422 for no template or one that fails.
    """
    from segmint.personalize.errors import TemplateError
    from segmint.personalize.preview import PreviewRequest, render_previews

    ws = workspace_of(request)
    if not template.strip():
        named = sorted({c.template for c in ws.definition.campaigns.values()})
        some = f" (the campaigns use {', '.join(named)})" if named else ""
        message = f"template: name the template to preview, as ?template=NAME{some}"
        raise ApiError(422, "invalid_request", message, "template")
    from segmint.api.profiles import person_or_error

    pid = person_or_error(ws, ref, "id", erased_too=True)
    with tempfile.TemporaryDirectory(prefix="segmint-preview-") as out:
        asked = PreviewRequest(template, None, pid, 1, Path(out), None, now_of(request))
        try:
            result = render_previews(ws, asked)
        except TemplateError as exc:
            raise ApiError(422, "invalid_template", str(exc), "template") from None
        if not result.written:
            reason = result.failed[0]["reason"] if result.failed else "nothing rendered"
            raise ApiError(422, "invalid_template", reason, "template")
        written = result.written[0]
        html = Path(written["html"]).read_text(encoding="utf-8")
    return {"subject": written["subject"], "html": html}


# -- the builder's script ------------------------------------------------------------------


def _api_user(request: Request, *, change: bool = False) -> User:
    user = sessions(request).user(request)
    if user is None:
        raise ApiError(401, "unauthorized", "log in again: the session ended", "session")
    token = request.headers.get(CSRF_HEADER)
    if change:
        _require_change(user, token)
    elif not same_token(token, user.session.csrf):
        raise ApiError(403, "forbidden", "missing or wrong CSRF token", CSRF_HEADER)
    return user


def _require_change(user: User, token: str | None) -> None:
    if not same_token(token, user.session.csrf):
        raise ApiError(403, "forbidden", "missing or wrong CSRF token: reload the page", "csrf")
    if not user.admin:
        raise ApiError(403, "forbidden", f"key {user.name} is read-only: "
                       "log in with an admin key to change definitions")  # fmt: skip


@router.post("/api/preview")
def api_preview(request: Request, body: manage.PreviewBody) -> dict[str, Any]:
    """Size, sample, canonical text and tree of the rule being built."""
    _api_user(request)
    found = manage.preview(workspace_of(request), body, now_of(request))
    return found | {"tree": labelled(found["tree"])}


def labelled(tree: Any) -> Any:
    """The JSON tree with each node's canonical text as ``__text``.

    The builder shows the nodes it has no form for as that text; the script strips the
    labels before it sends a tree back.
    """
    from segmint.rules import from_json

    if isinstance(tree, list):
        return [labelled(t) for t in tree]
    if not isinstance(tree, dict) or "type" not in tree:
        return tree
    out = {k: labelled(v) for k, v in tree.items()}
    out["__text"] = str(from_json(tree))
    return out


@router.post("/api/segments")
def api_save(request: Request, body: manage.SegmentBody, create: bool = False) -> dict[str, Any]:
    """Save the built segment into ``segmint.yaml``."""
    _api_user(request, change=True)
    if not body.name:
        raise ApiError(422, "invalid_request", "name: a segment needs a name", "name")
    return manage.save_segment(workspace_of(request), body.name, body, create=create)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The console's script and style sheet (vendored, no build step)."""
    if name not in STATIC:
        return error_response(404, "not_found", f"no static file {name!r}")
    body = (HERE / "static" / name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

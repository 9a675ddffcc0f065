"""KPI and experiment reports as JSON, from the functions of :mod:`segmint.measure`.

They are the figures of ``segmint report kpis`` and ``segmint experiments report``.

``GET /v1/reports/kpis?by=campaign|template|segment|journey&from=…&to=…&churn_to=…``,
``GET /v1/reports/experiments`` and ``GET /v1/reports/experiments/{name}?as_of=…``; a key
with the ``read`` scope. The console's dashboards draw the same data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from segmint.api.auth import require_read
from segmint.api.errors import ApiError
from segmint.api.inputs import instant, refuse_nul
from segmint.api.state import now_of, workspace_of
from segmint.common import did_you_mean
from segmint.workspace import Workspace

router = APIRouter(prefix="/v1/reports", tags=["reports"], dependencies=[Depends(refuse_nul)])


def kpis(
    ws: Workspace, by: str, start: datetime | None, end: datetime, churn_to: str | None = None
) -> dict[str, Any]:
    """The KPI report of the period ``(start, end]`` grouped ``by``.

    Raises:
        ApiError: 422 naming ``by``, ``from`` or ``churn_to``.
    """
    from segmint.measure.attribution import built_as_of
    from segmint.measure.errors import MeasureError
    from segmint.measure.kpis import GROUPINGS, kpi_report

    if by not in GROUPINGS:
        hint = did_you_mean(by, GROUPINGS) or f"one of {', '.join(GROUPINGS)}"
        raise ApiError(422, "invalid_request", f"by: unknown grouping {by!r}; {hint}", "by")
    if churn_to is not None and by != "segment":
        msg = "churn_to: counts exits of segments: use it with by=segment"
        raise ApiError(422, "invalid_request", msg, "churn_to")
    if start is not None and start >= end:
        raise ApiError(422, "invalid_request", "from: must be before to", "from")
    try:
        report = kpi_report(ws.store, ws.definition, by, start, end, churn_to=churn_to)
    except MeasureError as exc:
        raise ApiError(422, "invalid_request", f"churn_to: {exc}", "churn_to") from None
    built = built_as_of(ws.store)
    return report.to_dict() | {"attribution_built_as_of": built}


def experiments(ws: Workspace) -> list[dict[str, Any]]:
    """Every experiment: its campaign, metric and arms, then the global holdout if set."""
    from segmint.measure.experiments import experiment_list

    return experiment_list(ws.definition)


def experiment(ws: Workspace, name: str, as_of: datetime) -> dict[str, Any]:
    """One experiment's report at ``as_of``, with its plain-words summary.

    Raises:
        ApiError: 404 for an unknown experiment (with a suggestion).
    """
    from segmint.measure.errors import UnknownExperimentError
    from segmint.measure.experiments import experiment_report, summary_lines

    try:
        data = experiment_report(ws.store, ws.definition, name, as_of).to_dict()
    except UnknownExperimentError as exc:
        raise ApiError(404, "not_found", str(exc), "name") from None
    headline, _ = summary_lines(data)
    return data | {"headline": headline}


@router.get("/kpis", dependencies=[Depends(require_read)])
def kpis_route(
    request: Request,
    by: str = "campaign",
    start: str | None = None,
    to: str | None = None,
    churn_to: str | None = None,
) -> dict[str, Any]:
    """Sends, opens, clicks, unsubscribes, conversions and revenue, grouped ``by``.

    ``start`` (alias ``from``) is exclusive, ``to`` inclusive (default: now).
    """
    now = now_of(request)
    begin = instant(request.query_params.get("from", start), "from", None, now=now)
    end = instant(to, "to", now, now=now)
    return kpis(workspace_of(request), by, begin, end, churn_to)


@router.get("/experiments", dependencies=[Depends(require_read)])
def experiments_route(request: Request) -> dict[str, Any]:
    """Every experiment: campaign, metric and arms."""
    return {"experiments": experiments(workspace_of(request))}


@router.get("/experiments/{name}", dependencies=[Depends(require_read)])
def experiment_route(name: str, request: Request, as_of: str | None = None) -> dict[str, Any]:
    """Per arm: size, rate, lift with its interval, p-value, chance to win, SRM verdict."""
    now = now_of(request)
    at = instant(as_of, "as_of", now, now=now)
    return experiment(workspace_of(request), name, at)

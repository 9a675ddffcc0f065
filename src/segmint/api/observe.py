"""Observability: ``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz``.

Each app has its own registry (two apps in one process never share counters). Requests are
counted and timed per route template by a middleware (the tracking endpoints' counts and
latency are the intake rate and latency); everything kept in the store is read when
``/metrics`` is scraped: events stored, membership changes by kind, sends by status, the
webhook backlog, quarantined input, real-time failures and real-time lag (events stored but
not yet folded into saved trait state; on a server, also events not yet applied and the
seconds the oldest has waited, :mod:`segmint.api.backpressure`). The group commit gives
its queue depth, commits and time spent committing. ``/healthz`` says the process answers;
``/readyz`` says the store answers a query and the group commit is running (503
otherwise, in the one error shape).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from segmint.api.errors import error_response
from segmint.intake.groupcommit import GroupCommitter
from segmint.store import Store, read_meta

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SEQ_KEY = "trait_state.events_seq"
"""The meta key where the real-time engine records the last event folded into saved state."""


class StoreCollector(Collector):
    """Figures read from the store (and the group commit) at scrape time."""

    def __init__(self, store: Store, committer: GroupCommitter, state: Any = None) -> None:
        self.store = store
        self.committer = committer
        self.state = state  # the app's state: its real-time lag, when it has one

    def collect(self) -> Iterator[Any]:
        """Yield every metric family (read at scrape time)."""
        one = self._one
        yield _counter("segmint_events", "Events stored.", one("SELECT count(*) FROM events"))
        changes = CounterMetricFamily(
            "segmint_membership_changes", "Segment enters and exits recorded.", labels=["change"]
        )
        for change, count in self._rows(
            "SELECT change, count(*) FROM membership_changes GROUP BY change"
        ):
            changes.add_metric([str(change)], float(count))
        yield changes
        sends = GaugeMetricFamily("segmint_sends", "Send ledger rows by status.", labels=["status"])
        for status, count in self._rows("SELECT status, count(*) FROM sends GROUP BY status"):
            sends.add_metric([str(status)], float(count))
        yield sends
        backlog = one("SELECT count(*) FROM webhook_outbox WHERE status = 'pending'")
        yield _gauge("segmint_webhook_backlog", "Webhook deliveries not yet made.", backlog)
        yield _gauge("segmint_quarantined", "Input set aside as invalid.",
                     one("SELECT count(*) FROM quarantine"))  # fmt: skip
        yield _gauge("segmint_realtime_failures", "Profiles whose real-time step failed.",
                     one("SELECT count(*) FROM realtime_failures"))  # fmt: skip
        newest = one("SELECT coalesce(max(seq), 0) FROM events")
        saved = float(read_meta(self.store, SEQ_KEY) or 0)
        yield _gauge("segmint_realtime_lag_events",
                     "Events stored after the last real-time trait state checkpoint.",
                     max(newest - saved, 0.0))  # fmt: skip
        lag = getattr(self.state, "lag", None)
        if lag is not None:  # a server applying events in real time
            now = lag()
            yield _gauge("segmint_realtime_unapplied_events",
                         "Events accepted or committed and not yet applied in real time.",
                         float(now.events))  # fmt: skip
            yield _gauge("segmint_realtime_lag_seconds",
                         "How long the oldest event not yet applied in real time has waited.",
                         now.seconds)  # fmt: skip
        yield _gauge("segmint_intake_queue_depth", "Messages waiting for the group commit.",
                     float(self.committer.pending))  # fmt: skip
        yield _counter("segmint_intake_commits", "Group commits made.",
                       float(self.committer.commits))  # fmt: skip
        yield _counter("segmint_intake_commit_seconds", "Time spent in group commits.",
                       self.committer.commit_seconds)  # fmt: skip

    def _one(self, sql: str) -> float:
        return float(self.store.fetchall(sql)[0][0] or 0)

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.store.fetchall(sql)]


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def install(app: FastAPI) -> None:
    """Add the metrics middleware and ``/metrics``, ``/healthz``, ``/readyz`` to ``app``."""
    registry = CollectorRegistry()
    requests = Counter("segmint_http_requests", "HTTP requests answered.",
                       ["route", "method", "status"], registry=registry)  # fmt: skip
    latency = Histogram("segmint_http_request_seconds", "HTTP request latency.", ["route"],
                        registry=registry)  # fmt: skip
    registry.register(StoreCollector(app.state.workspace.store, app.state.committer, app.state))
    app.state.metrics = registry

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        requests.labels(path, request.method, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", tags=["meta"], include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus text format."""
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE)

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["meta"])
    async def readyz() -> Response:
        """Readiness: the store answers and the group commit runs."""
        try:
            await run_in_threadpool(app.state.workspace.store.fetchall, "SELECT 1")
        except Exception as exc:  # any failure of the store means not ready
            return error_response(503, "unavailable", f"the store does not answer: {exc}")
        if app.state.committer.closed:
            return error_response(503, "unavailable", "the group commit has stopped")
        return Response(b'{"status":"ready"}', media_type="application/json")

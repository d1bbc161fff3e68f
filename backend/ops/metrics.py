"""Prometheus metrics, and the per-request middleware that counts, times and logs requests.

Two kinds of metric, chosen so that the numbers are right with any number of
uvicorn workers behind one port (a scrape reaches one of them at random):

- Events counted where they happen — requests, latencies, anchor failures —
  are prometheus_client counters and histograms. Under ``serve --workers N``
  they live in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's own variable,
  which it reads itself; ``serve`` sets it up) and every worker's scrape sums
  all workers' files.
- State — log size, pending records, checkpoint age, ledger reachability — is
  computed from the database and the ledger at scrape time by
  :class:`ServiceCollector`, so it is exact whichever worker answers.

Labels are bounded: the route *template* (``/api/records/{record_id}``, never
the raw path), a known HTTP method, the status code. This module must never
put a user-supplied string into a label.
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.ops import logs

access_log = logging.getLogger("honest_metering.access")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The *_created series double the output and no dashboard reads them.
disable_created_metrics()

# Our own registry (not prometheus_client's global one): in multiprocess mode only the
# files count, and in one process only these metrics are ours to expose.
REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "hm_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "hm_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
ANCHOR_FAILURES = Counter(
    "hm_anchor_failures",
    "Failed anchoring passes, by reason: ledger_unavailable, halted (database and chain "
    "disagree), lock (cannot take the anchoring lock), error (anything else).",
    ["reason"],
    registry=REGISTRY,
)
GROUP_COMMIT_SIZE = Histogram(
    "hm_group_commit_size",
    "Writes committed together in one transaction (backend.groupcommit), by kind of write.",
    ["group"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
HEADER_TIMEOUTS = Counter(
    "hm_header_timeouts",
    "Connections closed because request headers were late (HM_HEADER_READ_TIMEOUT_S), by "
    "whether a started request was answered 408 or an idle connection closed. Never in "
    "hm_http_requests: no request reached the app.",
    ["outcome"],
    registry=REGISTRY,
)
CHECKPOINTS_ANCHORED = Counter(
    "hm_checkpoints_anchored",
    "Checkpoints this service anchored on the ledger.",
    registry=REGISTRY,
)

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"
# Probes and scrapes: counted, but their access lines are debug-level noise.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def route_template(scope: Scope) -> str:
    """The matched route's path template, or ``<unmatched>``; never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


# --- the request middleware ---------------------------------------------------------------


class RequestMetrics:
    """Request id, per-request log context, metrics and one access log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope.get("method", "GET")
        method = method if method in KNOWN_METHODS else "OTHER"
        request_id = logs.new_request_id(Headers(scope=scope).get("x-request-id"))
        info = logs.RequestInfo(request_id=request_id, method=method, scope=scope)
        token = logs.set_request_context(info)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_DURATION.labels(route, method).observe(elapsed)
            quiet = scope.get("path") in QUIET_PATHS and status < 500
            access_log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %s %d %.1fms",
                method,
                route,
                status,
                elapsed * 1000,
                extra={
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            logs.reset_request_context(token)


# --- scrape-time state ----------------------------------------------------------------------

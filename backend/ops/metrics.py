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
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
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


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class ServiceCollector:
    """Gauges read from the database and the ledger when scraped (exact across workers)."""

    def __init__(self, ctx: Any, *, ledger_timeout_s: float = 2.0) -> None:
        self.ctx = ctx
        self.ledger_timeout_s = ledger_timeout_s

    def collect(self) -> Iterator[Metric]:
        yield from self._log_state()
        yield from self._ledger_state()

    def _log_state(self) -> Iterator[Metric]:
        from backend.ledger.anchoring import last_checkpoint, pending_summary

        try:
            with self.ctx.db.read() as s:
                size, pending, oldest = pending_summary(s)
                last = last_checkpoint(s)
        except Exception as exc:
            logging.getLogger(__name__).warning(
                "metrics: cannot read the database: %s", type(exc).__name__
            )
            yield _gauge("hm_database_up", "1 if the database answered this scrape.", 0)
            return
        now = datetime.now(UTC)
        yield _gauge("hm_database_up", "1 if the database answered this scrape.", 1)
        yield _gauge("hm_log_tree_size", "Records in the log.", size)
        yield _gauge(
            "hm_log_pending_leaves", "Records appended but not yet covered by a checkpoint.",
            pending,
        )
        yield _gauge(
            "hm_log_oldest_pending_age_seconds",
            "Age of the oldest record not yet anchored (0 when none is pending).",
            (now - oldest).total_seconds() if oldest is not None else 0.0,
        )
        yield _gauge(
            "hm_checkpoints", "Checkpoints recorded (anchored on the ledger).",
            0 if last is None else last.seq + 1,
        )
        if last is not None:
            anchored = last.anchored_at
            if anchored.tzinfo is None:
                anchored = anchored.replace(tzinfo=UTC)
            yield _gauge(
                "hm_last_checkpoint_age_seconds",
                "Seconds since the newest checkpoint's block (absent before the first).",
                max(0.0, (now - anchored).total_seconds()),
            )
            yield _gauge(
                "hm_last_checkpoint_tree_size", "Tree size of the newest checkpoint.",
                last.tree_size,
            )

    def _ledger_state(self) -> Iterator[Metric]:
        up, head = self._probe_ledger()
        yield _gauge("hm_ledger_up", "1 if the ledger answered eth_blockNumber this scrape.", up)
        if head is not None:
            yield _gauge("hm_ledger_block_number", "The ledger's latest block number.", head)

    def _probe_ledger(self) -> tuple[int, int | None]:
        settings = self.ctx.settings
        if settings.embedded_chain:
            try:
                return 1, self.ctx.require_ledger().block_number()
            except Exception:
                return 0, None
        import httpx

        assert settings.ledger_url is not None
        try:
            resp = httpx.post(
                settings.ledger_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
                timeout=self.ledger_timeout_s,
            )
            head = int(resp.json()["result"], 16)
        except Exception:
            return 0, None
        return 1, head


class _Local:
    """This process's counters (one-process mode)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def render(ctx: Any) -> bytes:
    """The text exposition of every metric, for GET /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Local())  # type: ignore[arg-type]
    registry.register(ServiceCollector(ctx))  # type: ignore[arg-type]
    return generate_latest(registry)

"""What ``GET /metrics`` renders: this process's (or every worker's) counters, and
gauges read from the database and the ledger when scraped.

The metric definitions themselves are in :mod:`backend.ops.metrics` (core: any
layer may count); this module reads the ledger's state, so it sits on the top layer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from backend.ledger.anchoring import last_checkpoint, pending_summary
from backend.ledger.witnessing import witness_status
from backend.ops.metrics import REGISTRY, multiprocess_dir


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
        if self.ctx.settings.witnesses:
            yield from self._witness_state(0 if last is None else last.tree_size)

    def _witness_state(self, published: int) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "hm_witness_lag_leaves",
            "Leaves the newest checkpoint has beyond what each witness (HM_WITNESSES) last "
            "cosigned (0: up to date).",
            labels=["witness"],
        )
        ok = GaugeMetricFamily(
            "hm_witness_up", "1 if the last request to the witness succeeded.", labels=["witness"]
        )
        with self.ctx.db.read() as s:
            for w in self.ctx.settings.witnesses:
                st = witness_status(s, w)
                lag.add_metric([w.name], st.lag(published))
                ok.add_metric([w.name], 0 if st.last_error else 1)
        yield lag
        yield ok

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
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Local())  # type: ignore[arg-type]
    registry.register(ServiceCollector(ctx))  # type: ignore[arg-type]
    return generate_latest(registry)

"""``honest-metering serve``: uvicorn with the service's timeouts, logging and workers.

With ``--workers N`` (N > 1) every worker accepts writes and runs an anchoring
worker; the anchoring lock (``backend/ledger/anchoring.py``) lets exactly one
of them anchor at a time and another take over when it dies. Before the
workers start, the parent migrates the database once and prepares
``PROMETHEUS_MULTIPROC_DIR`` so that /metrics sums every worker's counters.

This module must never start several workers on the embedded chain: each would
open its own copy of the chain's state and they would diverge.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from backend.config import Settings
from backend.db import Database
from backend.ops import logs, metrics
from backend.ops import workers as balanced
from backend.ops.header_timeout import http_protocol
from backend.privatefiles import private_dir

MULTIPROC_SUBDIR = "metrics-multiproc"


class ServeRefused(RuntimeError):
    """The settings cannot be served as asked (the message says what to change)."""


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Server options shared by ``serve`` and tests that run the app under uvicorn."""

    return {
        # httptools with a header-read timeout (uvicorn has none: slowloris).
        "http": http_protocol(settings.header_read_timeout_s),
        "timeout_keep_alive": settings.timeout_keep_alive_s,
        "log_config": logs.logging_config(settings),
        # backend/ops/metrics.py logs one line per request (route template, status,
        # duration, request id) instead of uvicorn's line with the client address.
        "access_log": False,
        "server_header": False,
    }


def check_workers(settings: Settings, workers: int) -> None:
    if workers < 1:
        raise ServeRefused(f"--workers must be at least 1, not {workers}")
    if workers > 1 and settings.embedded_chain:
        raise ServeRefused(
            f"--workers {workers} needs a JSON-RPC node (HM_LEDGER_URL): the embedded chain "
            "lives in one process; run one worker, or point the service at a node"
        )


def prepare_multiprocess_metrics(settings: Settings) -> Path:
    """An empty ``PROMETHEUS_MULTIPROC_DIR`` for this run, exported to the workers."""
    configured = metrics.multiprocess_dir()
    path = Path(configured) if configured else settings.data_dir / MULTIPROC_SUBDIR
    path.mkdir(parents=True, exist_ok=True)
    # Files of an earlier run would be summed into this run's counters.
    for stale in path.glob("*.db"):
        stale.unlink()
    # prometheus_client reads this variable itself in each worker at import time.
    os.environ[metrics.MULTIPROC_ENV] = str(path.resolve())
    return path


def serve(settings: Settings, *, host: str, port: int, workers: int) -> int:
    import uvicorn

    try:
        check_workers(settings, workers)
    except ServeRefused as exc:
        print(f"honest-metering serve: {exc}", file=sys.stderr)
        return 2
    logs.configure_logging(settings)
    if workers > 1:

        private_dir(settings.data_dir)
        db = Database(settings.db_url)
        try:
            db.migrate()
        finally:
            db.dispose()
        prepare_multiprocess_metrics(settings)
    # The app factory builds its Settings from the environment (in each worker
    # process too): hand it the address actually served, so links, QR codes and
    # proof bundles name this host and port unless HM_PUBLIC_BASE_URL says otherwise.
    os.environ["HM_HOST"] = host
    os.environ["HM_PORT"] = str(port)
    options: dict[str, Any] = {
        "factory": True, "host": host, "port": port, "workers": workers,
        **uvicorn_options(settings),
    }
    if workers == 1:
        uvicorn.run("backend.app:create_app", **options)
    elif balanced.reuse_port_supported():
        balanced.run(balanced.WorkerConfig("backend.app:create_app", **options))
    else:
        from uvicorn.supervisors import Multiprocess

        config = balanced.WorkerConfig("backend.app:create_app", **options)
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0

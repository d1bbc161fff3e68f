"""Sending the published checkpoints to the witnesses and keeping their cosignatures.

A worker thread hands the newest anchored tree head, signed by the log key, to every
witness in ``HM_WITNESSES`` (c2sp.org/tlog-witness ``add-checkpoint``) with a
consistency proof from the size that witness last cosigned. A witness that is down
is skipped and tried again on the next pass, from the size it knows, so it catches up
in one request when it returns; anchoring never waits for witnesses. Each cosignature
is checked against the witness's key before it is kept; the published checkpoint
(``GET /checkpoint``, version 2 bundles) carries every cosignature kept for its size.

State lives in ``ledger_state`` rows: ``cosig:<size>:<witness>`` holds a signature line,
``witness:<witness>`` what that witness last cosigned and its last error, so /readyz
and /metrics report each witness's lag the same from any worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import Session

from backend.background import BackgroundThread
from backend.config import Settings, WitnessConfig
from backend.context import AppContext
from backend.ledger import checkpoint as cps
from backend.ledger import log as ledger_log
from backend.ledger import note as notes
from backend.ledger.checkpoint import SIZE_CONTENT_TYPE, format_request
from backend.ledger.logkey import load_log_key
from backend.ledger.models import LedgerState
from backend.ledger.published import cosignatures, published_head

logger = logging.getLogger("honest_metering.witnessing")

REQUEST_TIMEOUT_S = 5.0
POLL_S = 1.0


def _cosig_key(size: int, name: str) -> str:
    return f"cosig:{size}:{name}"


@dataclass(frozen=True)
class WitnessStatus:
    name: str
    url: str
    cosigned_size: int  # the largest tree size this witness cosigned for us (0: none)
    last_error: str | None
    last_contact_at: str | None

    def lag(self, published_size: int) -> int:
        return max(0, published_size - self.cosigned_size)


def witness_status(session: Session, w: WitnessConfig) -> WitnessStatus:
    row = session.get(LedgerState, f"witness:{w.name}")
    data: dict[str, Any] = json.loads(row.value) if row is not None else {}
    return WitnessStatus(
        name=w.name,
        url=w.url,
        cosigned_size=int(data.get("size", 0)),
        last_error=data.get("error"),
        last_contact_at=data.get("at"),
    )


def witnessed_summary(settings: Settings, cosigned: int) -> str:
    n, k = len(settings.witnesses), settings.quorum
    if k == 0:
        return "no witnesses configured"
    state = "witnessed" if cosigned >= k else "not yet witnessed"
    return f"{state}: cosigned by {cosigned} of {n} witnesses, {k} required"


def report(session: Session, settings: Settings, published_size: int) -> dict[str, Any]:
    """Each witness's lag behind the published checkpoint, for /readyz."""
    out = []
    for w in settings.witnesses:
        st = witness_status(session, w)
        out.append(
            {
                "name": st.name,
                "url": st.url,
                "cosigned_size": st.cosigned_size,
                "lag_leaves": st.lag(published_size),
                "last_error": st.last_error,
                "last_contact_at": st.last_contact_at,
            }
        )
    cosigned = len(cosignatures(session, published_size)) if published_size else 0
    return {
        "published_size": published_size,
        "quorum": settings.quorum,
        "summary": witnessed_summary(settings, cosigned),
        "witnesses": out,
    }


class WitnessRefused(RuntimeError):
    pass


class Witnessing:
    """One pass: offer the published checkpoint to every witness that lacks it."""

    def __init__(self, ctx: AppContext, *, http: httpx.Client | None = None) -> None:
        self.ctx = ctx
        self.http = http or httpx.Client(timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def run_once(self) -> dict[str, str]:
        """Returns each witness's outcome (``cosigned``, ``up to date`` or the error)."""
        settings = self.ctx.settings
        key = load_log_key(settings)
        with self.ctx.db.read() as s:
            cp = published_head(s, key.name)
            if cp.size == 0:
                return {}
            statuses = {w.name: witness_status(s, w) for w in settings.witnesses}
            have = {sig.name for sig in cosignatures(s, cp.size)}
        note = cps.sign_checkpoint(cp, key)
        outcome = {}
        for w in settings.witnesses:
            st = statuses[w.name]
            if st.cosigned_size == cp.size and w.name in have:
                outcome[w.name] = "up to date"
                continue
            try:
                self._submit(w, st.cosigned_size, cp, note)
                outcome[w.name] = "cosigned"
            except (httpx.HTTPError, WitnessRefused, ValueError) as exc:
                message = f"{type(exc).__name__}: {exc}"
                logger.warning("witness %s: %s", w.name, message)
                self._remember(w, st.cosigned_size, error=message)
                outcome[w.name] = message
        return outcome

    def _submit(self, w: WitnessConfig, known: int, head: cps.TreeHead, note: notes.Note) -> None:
        verifier = notes.parse_vkey(w.key)
        for _ in range(2):  # a 409 tells us the size the witness knows: try once more from it
            with self.ctx.db.read() as s:
                proof = (
                    ledger_log.consistency_proof(s, known, head.size)
                    if 0 < known < head.size
                    else []
                )
            r = self.http.post(
                w.url.rstrip("/") + "/add-checkpoint",
                content=format_request(known, proof, note.format()),
            )
            if r.status_code == 409 and r.headers.get("content-type", "").startswith(
                SIZE_CONTENT_TYPE
            ):
                theirs = int(r.text.strip())
                if theirs > head.size:
                    raise WitnessRefused(
                        f"the witness has cosigned a tree of {theirs} leaves, larger than "
                        f"ours ({head.size}): it has seen another history of this log"
                    )
                known = theirs
                continue
            if r.status_code != 200:
                raise WitnessRefused(f"HTTP {r.status_code}: {r.text.strip()[:300]}")
            sigs = [notes.parse_signature_line(line) for line in r.text.splitlines(True)]
            good = notes.verified_by(notes.Note(head.text, tuple(sigs)), [verifier])
            if verifier not in good:
                raise WitnessRefused("the witness answered without a cosignature by its key")
            line = next(
                g.line for g in sigs if (g.name, g.key_id) == (verifier.name, verifier.key_id)
            )
            with self.ctx.db.session() as s:
                key = _cosig_key(head.size, w.name)
                if s.get(LedgerState, key) is None:
                    s.add(LedgerState(key=key, value=line))
                s.commit()
            self._remember(w, head.size, error=None)
            return
        raise WitnessRefused("the witness kept answering 409")

    def _remember(self, w: WitnessConfig, size: int, *, error: str | None) -> None:
        value = json.dumps(
            {"size": size, "error": error, "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        )
        with self.ctx.db.session() as s:
            row = s.get(LedgerState, f"witness:{w.name}")
            if row is None:
                s.add(LedgerState(key=f"witness:{w.name}", value=value))
            else:
                row.value = value
            s.commit()


class WitnessWorker(BackgroundThread):
    """Offers checkpoints to the witnesses, in the process that is the anchorer only
    (under ``serve --workers N`` the others would send the same checkpoints again)."""

    thread_name = "witnessing-worker"

    def __init__(self, ctx: AppContext, *, is_anchorer: Callable[[], bool]) -> None:
        super().__init__()
        self.witnessing = Witnessing(ctx)
        self.is_anchorer = is_anchorer
        self.last: dict[str, str] = {}

    def run(self) -> None:
        try:
            while not self.stopping:
                self.step()
                self.pause(POLL_S)
        finally:
            self.witnessing.close()

    def step(self) -> None:
        if not self.is_anchorer():
            self.last = {}
            return
        try:
            self.last = self.witnessing.run_once()
        except Exception:
            logger.exception("witnessing pass failed")


def install(app: FastAPI) -> None:
    """Run the worker with the app when witnesses are configured (and anchoring is on)."""

    def is_anchorer() -> bool:
        worker = getattr(app.state, "anchor_worker", None)
        return worker is not None and worker.status.state == "anchorer"

    def start(ctx: AppContext) -> None:
        app.state.witness_worker = None
        if ctx.settings.witnesses and ctx.settings.anchor_enabled:
            app.state.witness_worker = WitnessWorker(ctx, is_anchorer=is_anchorer).start()

    def stop(ctx: AppContext) -> None:
        worker = getattr(app.state, "witness_worker", None)
        if worker is not None:
            worker.stop()
            app.state.witness_worker = None

    app.state.witness_worker = None
    app.state.startup_hooks.append(start)
    app.state.shutdown_hooks.append(stop)

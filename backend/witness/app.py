"""The witness's HTTP interface (c2sp.org/tlog-witness): add-checkpoint and the
monitoring checkpoint per log. Thin: parse, call :class:`backend.witness.core.Witness`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from backend.witness.core import Answer, Witness

MAX_BODY = 64 * 1024


def _reply(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.content_type)


def create_witness_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="honest-metering witness", docs_url=None, redoc_url=None)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _reply(Answer(413, f"the request is larger than {MAX_BODY} bytes\n"))
        return _reply(witness.add_checkpoint(body))

    @app.get("/{origin_hash}/checkpoint")
    def checkpoint(origin_hash: str) -> Response:
        return _reply(witness.checkpoint_of(origin_hash))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "key": witness.key.verifier.vkey}

    return app

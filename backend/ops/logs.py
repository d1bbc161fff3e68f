"""Logging: plain text or one JSON object per line, always with secrets redacted.

``HM_LOG_JSON=true`` makes every log line a JSON object with ``time``, ``level``,
``logger``, ``message``, ``pid`` and, inside a request, ``request_id``, ``method`` and
``route`` (the route template, never the raw path with its query string); the
per-request access line adds ``status`` and ``duration_ms``.

:class:`RedactSecrets` is attached to the handler, so it sees every record from
every logger (ours, uvicorn's, SQLAlchemy's, web3's): values of secret-looking
fields (password, token, authorization, cookie, keys, phone numbers, contact
details) are replaced, bearer tokens, JWTs, ``key=value`` secrets and mainland
mobile numbers and SQL parameters (in database errors and their tracebacks) inside
messages are masked. Log calls should not pass such
values in the first place; the filter is the net under them.

This module must never log a request body, a header value or a client address.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backend.config import Settings

REDACTED = "[REDACTED]"

# Field names whose values never reach a log (matched case-insensitively, as substrings
# of the name after removing "-" and "_": "X-Api-Key", "contact_phone", "HM_SECRET_KEY").
SECRET_FIELD_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "apikey",
    "privatekey",
    "ledgerkey",
    "keystore",
    "mnemonic",
    "seed",
    "phone",
    "mobile",
    "contact",
    "idnumber",
    "idcard",
)

_SECRET_WORDS = (
    r"[\w-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|authorization"
    r"|cookie|ledger[_-]?key|mnemonic|phone|mobile|contact)[\w-]*"
)
# "password": "x"  /  'token': 'x'  (JSON, Python reprs)
_QUOTED_SECRET = re.compile(
    r"(?i)([\"']" + _SECRET_WORDS + r"[\"']\s*:\s*)([\"'])((?:(?!\2).)*)\2"
)
# password=x  /  token: x  /  api_key="x"  /  password 'x'  (query strings, messages)
_KV_SECRET = re.compile(
    r"(?i)\b(" + _SECRET_WORDS + r")(\s*=\s*|:\s*|\s+(?=[\"']))(?!\[REDACTED)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,;&}\]\)]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
# Mainland mobile numbers, optionally +86 and separators; never inside hex or longer numbers.
_PHONE = re.compile(
    r"(?<![0-9A-Za-z.])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?![0-9A-Za-z])"
)
# Credentials in URLs (postgresql://user:password@host, https://user:token@node).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^/\s@]+@")
# SQL parameters in database errors: SQLAlchemy's "[parameters: {...}]" line (our engines
# hide them, hide_parameters=True; others may not), and PostgreSQL's
# "DETAIL:  Key (username)=(alice) already exists." and "Failing row contains (...)".
# The values are people's data.
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*\]")
_SQL_KEY_DETAIL = re.compile(r"(\bKey \([^)\n]*\)=\()[^\n]*?(\) (?:already exists|is not present))")
_SQL_ROW_DETAIL = re.compile(r"(\bFailing row contains \()[^\n]*(\))")


def is_secret_field(name: str) -> bool:
    key = name.lower().replace("-", "").replace("_", "")
    return any(part in key for part in SECRET_FIELD_PARTS)


def redact_text(text: str) -> str:
    """Mask secrets and phone numbers inside free text."""
    text = _URL_CREDENTIALS.sub(r"\1:" + REDACTED + "@", text)
    text = _SQL_PARAMETERS.sub("[parameters: " + REDACTED + "]", text)
    text = _SQL_KEY_DETAIL.sub(r"\1" + REDACTED + r"\2", text)
    text = _SQL_ROW_DETAIL.sub(r"\1" + REDACTED + r"\2", text)
    text = _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _QUOTED_SECRET.sub(lambda m: m.group(1) + m.group(2) + REDACTED + m.group(2), text)
    text = _KV_SECRET.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _PHONE.sub("[REDACTED-PHONE]", text)


def redact(value: Any, *, depth: int = 0) -> Any:
    """A copy of ``value`` with secret fields replaced and secrets in strings masked."""
    if depth > 6:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_field(k) else redact(v, depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, depth=depth + 1) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value))


# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message", "taskName"}
)
# Fields our formatter reads from ``extra`` / the request context.
CONTEXT_FIELDS = ("request_id", "method", "route", "status", "duration_ms")


class RedactSecrets(logging.Filter):
    """Rewrites each record so that no secret or phone number is formatted into a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what can be shown
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact_text(message)
        record.args = None
        for name, value in list(vars(record).items()):
            if name in _STANDARD_ATTRS or name in CONTEXT_FIELDS:
                continue
            record.__dict__[name] = REDACTED if is_secret_field(name) else redact(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        # The traceback is now text (redacted); stop formatters rendering it raw again.
        record.exc_info = None
        # uvicorn's coloured variant of the message would bypass the redaction above.
        record.__dict__.pop("color_message", None)
        return True


# --- request context ---------------------------------------------------------------------


@dataclass(frozen=True)
class RequestInfo:
    """What every log line inside a request says about it (set by the request middleware)."""

    request_id: str
    method: str
    scope: Any  # the ASGI scope: the route template is known only after routing

    def route(self) -> str | None:
        path = getattr(self.scope.get("route"), "path", None)
        return path if isinstance(path, str) else None


_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "hm_request", default=None
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class _RequestIds:
    """Request ids unique across processes: a random prefix per process and a counter.

    Not ``secrets.token_hex`` per request: ``os.urandom`` releases the GIL, and the
    event loop then waits for it behind another thread (the group commit's writer)
    for up to a switch interval on every request. A request id needs to be unique,
    not unpredictable.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(4)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


_ids = _RequestIds()


def new_request_id(given: str | None) -> str:
    """The client's ``X-Request-ID`` if it is a plain token, else a fresh unique one."""
    if given and _REQUEST_ID.match(given):
        return given
    return _ids.next()


def set_request_context(info: RequestInfo | None) -> contextvars.Token[RequestInfo | None]:
    return _request.set(info)


def reset_request_context(token: contextvars.Token[RequestInfo | None]) -> None:
    _request.reset(token)


class RequestContext(logging.Filter):
    """Adds the current request's id, method and route to every record logged inside it."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = _request.get()
        if info is not None:
            record.__dict__.setdefault("request_id", info.request_id)
            record.__dict__.setdefault("method", info.method)
            route = info.route()
            if route is not None:
                record.__dict__.setdefault("route", route)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which worker, under serve --workers N
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and name not in out and not name.startswith("_"):
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        if rid is None:
            return line
        extra = f" [{rid}"
        if getattr(record, "status", None) is not None:
            extra += f" {record.status} {getattr(record, 'duration_ms', '?')}ms"  # type: ignore[attr-defined]
        return line + extra + "]"


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service (uvicorn applies it in each worker)."""
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "backend.ops.logs.RequestContext"},
            "redact": {"()": "backend.ops.logs.RedactSecrets"},
        },
        "formatters": {
            "main": {
                "()": "backend.ops.logs.JsonFormatter"
                if settings.log_json
                else "backend.ops.logs.TextFormatter"
            }
        },
        "handlers": {
            "main": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                # Order matters: the context first, so redaction sees the whole record.
                "filters": ["context", "redact"],
            }
        },
        "root": {"level": level, "handlers": ["main"]},
        "loggers": {
            # Our own per-request line (backend/ops/metrics.py) replaces uvicorn's access log,
            # which would show client addresses and raw query strings.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Apply :func:`logging_config` in this process (the CLI's commands)."""
    import logging.config

    logging.config.dictConfig(logging_config(settings))

"""Domain errors and their one HTTP shape: ``{"error": "<Name>", "detail": "..."}``
(plus ``detail_zh``, the Chinese of ``backend/zherrors.py``).

Services raise these; they never import FastAPI's ``HTTPException``. The
handlers in ``backend/app.py`` render them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class DomainError(Exception):
    """Base of every error a client may see; carries its HTTP status."""

    status_code: ClassVar[int] = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.name, "detail": self.detail}
        if self.extra:
            body.update(self.extra)
        return body


class ErrorResponse(BaseModel):
    """The body of every error response, as OpenAPI documents it. Some errors add
    fields (``errors`` of a bulk import, ``unmet`` of a refused credit repair)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="the error's name, e.g. MerchantNotFound")
    detail: str = Field(description="what went wrong and what to do about it")
    detail_zh: str | None = Field(
        default=None,
        description="the same in Chinese, naming the field (what the pages show a person)",
    )


ERROR_DESCRIPTIONS = {
    400: "The body could not be parsed (e.g. not UTF-8 JSON)",
    401: "Not logged in, or the token is malformed, forged, expired or no longer valid",
    403: "Logged in, but this role or account may not do this (or a browser form without "
    "its CSRF token)",
    404: "No such object",
    409: "Conflicts with the current state",
    413: "The request body is too large",
    415: "The body's Content-Type is not one this operation reads",
    422: "Invalid input: the name says which rule, the detail which field",
    429: "Too many attempts; retry after the Retry-After header's seconds",
    503: "The ledger node (or the database) does not answer; retry later",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the one error shape
    (``APIRouter(responses=error_responses(401, 403, 404))``)."""
    return {
        code: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[code]} for code in codes
    }


class ValidationFailed(DomainError):
    status_code = 422


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class RateLimited(DomainError):
    status_code = 429


class PayloadTooLarge(DomainError):
    status_code = 413


class ServiceUnavailable(DomainError):
    status_code = 503


class RecordNotFound(NotFound):
    pass


class RecordNotAnchored(Conflict):
    pass


class InvalidTreeSize(ValidationFailed):
    pass


class LedgerUnavailable(ServiceUnavailable):
    pass


class DatabaseUnavailable(ServiceUnavailable):
    """The database connection was lost or could not be had (rendered by backend/app.py)."""

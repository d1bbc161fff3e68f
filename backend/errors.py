"""Domain errors and their one HTTP shape: ``{"error": "<Name>", "detail": "..."}``.

Services raise these; they never import FastAPI's ``HTTPException``. The
handlers in ``backend/app.py`` render them.
"""

from __future__ import annotations

from typing import Any, ClassVar


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

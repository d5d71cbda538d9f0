"""API errors in the Kubernetes ``Status`` shape.

ApiError                    any refused request; carries code, reason and causes
├── BadRequestError         400 BadRequestError
├── UnauthorizedError       401 UnauthorizedError
├── ForbiddenError          403 ForbiddenError
├── NotFoundError           404 NotFoundError
├── MethodNotAllowedError   405 MethodNotAllowedError
├── AlreadyExistsError      409 AlreadyExistsError
├── ConflictError           409 Conflict (stale resourceVersion)
├── GoneError               410 Expired (resourceVersion too old)
├── UnsupportedMediaTypeError 415 UnsupportedMediaTypeError
├── InvalidError            422 Invalid, with field causes
└── PatchFailedError        422 Invalid (a patch that cannot apply)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One field-level reason, as in ``details.causes``."""

    reason: str
    message: str
    field: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(Exception):
    """A refused request; ``status()`` renders it as a Kubernetes ``Status``."""

    code = 500
    reason = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        name: str = "",
        group: str = "",
        kind: str = "",
        causes: tuple[Cause, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [cause.as_dict() for cause in self.causes]
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


class NotFoundError(ApiError):
    code = 404
    reason = "NotFound"


class AlreadyExistsError(ApiError):
    code = 409
    reason = "AlreadyExists"


class ConflictError(ApiError):
    code = 409
    reason = "Conflict"


class InvalidError(ApiError):
    code = 422
    reason = "Invalid"


class BadRequestError(ApiError):
    code = 400
    reason = "BadRequest"


class GoneError(ApiError):
    code = 410
    reason = "Expired"


class ForbiddenError(ApiError):
    code = 403
    reason = "Forbidden"


class PatchFailedError(ApiError):
    code = 422
    reason = "Invalid"


class MethodNotAllowedError(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class UnauthorizedError(ApiError):
    code = 401
    reason = "Unauthorized"


class UnsupportedMediaTypeError(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


def success_status(
    *, name: str = "", group: str = "", kind: str = "", uid: str = ""
) -> dict[str, Any]:
    """The ``Status`` a delete answers with when the object is gone at once."""
    details = {
        key: value
        for key, value in (("name", name), ("group", group), ("kind", kind), ("uid", uid))
        if value
    }
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }

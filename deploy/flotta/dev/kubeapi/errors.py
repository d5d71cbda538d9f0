"""API errors in the Kubernetes ``Status`` shape.

ApiError            any request the API refuses; carries code, reason and causes
├── NotFound        404 NotFound
├── AlreadyExists   409 AlreadyExists
├── Conflict        409 Conflict (stale resourceVersion)
├── Invalid         422 Invalid, with field causes
├── BadRequest      400 BadRequest
├── Gone            410 Expired (resourceVersion too old)
├── Forbidden       403 Forbidden
├── PatchFailed     422 Invalid (a patch that cannot apply)
├── Unauthorized    401 Unauthorized
├── UnsupportedMediaType 415
└── MethodNotAllowed 405 MethodNotAllowed
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


class NotFound(ApiError):
    code = 404
    reason = "NotFound"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError):
    code = 409
    reason = "Conflict"


class Invalid(ApiError):
    code = 422
    reason = "Invalid"


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Gone(ApiError):
    code = 410
    reason = "Expired"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class PatchFailed(ApiError):
    code = 422
    reason = "Invalid"


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class UnsupportedMediaType(ApiError):
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

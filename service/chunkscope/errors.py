"""Domain errors and the one table that maps them to gRPC status codes.

Engine, store and servicers raise these; the error interceptor (api/interceptors.py) turns them
into a gRPC status with rich details (google.rpc.ErrorInfo, BadRequest, ...). Anything that is not
a ChunkscopeError is a bug and becomes INTERNAL. Must not import torch or grpc.aio servicers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

DOMAIN = "chunkscope.dev"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: its path (e.g. "source_path") and how to fix it."""

    field: str
    description: str


class ChunkscopeError(Exception):
    """Base of every error a request can cause. `reason` is UPPER_SNAKE_CASE (AIP-193)."""

    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(ChunkscopeError):
    """The request is wrong whatever the server's state; names each bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        violations: list[FieldViolation] | FieldViolation,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        items = [violations] if isinstance(violations, FieldViolation) else list(violations)
        if not items:
            raise ValueError("InvalidArgument needs at least one field violation")
        message = "; ".join(f"{v.field}: {v.description}" for v in items)
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = items

    @classmethod
    def field(cls, name: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls(FieldViolation(name, description), reason=reason)


class NotFound(ChunkscopeError):
    reason = "NOT_FOUND"


class AlreadyExists(ChunkscopeError):
    reason = "ALREADY_EXISTS"


class Unauthenticated(ChunkscopeError):
    """No valid API key with the call."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(ChunkscopeError):
    reason = "PERMISSION_DENIED"


class FailedPrecondition(ChunkscopeError):
    """The request is valid but the system is not in a state to serve it (fix that, retry)."""

    reason = "FAILED_PRECONDITION"


class ResourceExhausted(ChunkscopeError):
    reason = "RESOURCE_EXHAUSTED"


class Unavailable(ChunkscopeError):
    reason = "UNAVAILABLE"


# The one table from domain error to gRPC status. INTERNAL is reserved for bugs (non-domain errors).
STATUS_CODES: dict[type[ChunkscopeError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: ChunkscopeError) -> grpc.StatusCode:
    """The gRPC status for a domain error (its nearest class in STATUS_CODES)."""
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


def check(violations: list[FieldViolation]) -> None:
    """Raise one InvalidArgument carrying every collected violation, if there are any."""
    if violations:
        raise InvalidArgument(violations)


class Slots:
    """At most `limit` of one kind of work at once (counted on the event loop); one more is
    refused at once with RESOURCE_EXHAUSTED instead of queueing without bound."""

    def __init__(self, limit: int, what: str, flag: str, reason: str) -> None:
        self.limit, self.what, self.flag, self.reason = limit, what, flag, reason
        self.used = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        if self.used >= self.limit:
            raise ResourceExhausted(
                f"{self.used} {self.what} are running ({self.flag} {self.limit}); "
                "retry when one has finished",
                reason=self.reason,
                metadata={"limit": str(self.limit)},
            )
        self.used += 1
        try:
            yield
        finally:
            self.used -= 1

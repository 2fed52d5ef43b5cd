"""The project's one error hierarchy. HTTP mapping happens once, in :mod:`payrail.http`."""

from __future__ import annotations

from typing import Any


class PayrailError(Exception):
    """Base of every error the product raises on purpose."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class ValidationFailed(PayrailError):
    status = 400
    slug = "validation-error"
    title = "The request is not valid"

    def __init__(self, detail: str | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


class Unauthorized(PayrailError):
    status = 401
    slug = "unauthorized"
    title = "Authentication is required"


class Forbidden(PayrailError):
    status = 403
    slug = "forbidden"
    title = "This request is not allowed"


class NotFound(PayrailError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(PayrailError):
    """A condition on a write failed: the item exists, changed, or is held by someone else."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class Unprocessable(PayrailError):
    status = 422
    slug = "unprocessable"
    title = "The request cannot be processed"


class RateLimited(PayrailError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class DependencyFailure(PayrailError):
    """A dependency (AWS or a provider) failed in a way worth retrying later."""

    status = 503
    slug = "dependency-unavailable"
    title = "A dependency is unavailable"
    retryable = True


class RetryLater(PayrailError):
    """The work cannot be done now and should be tried again in ``seconds`` (0: at once).

    A queue consumer turns it into a visibility change of the record, so the message comes back
    then (not after the queue's whole visibility timeout). ``quiet`` is for the expected cases
    (another run holds the item, the invocation is nearly out of time): logged at info, not as a
    warning."""

    status = 503
    slug = "retry-later"
    title = "Try again later"

    def __init__(self, detail: str, seconds: float, quiet: bool = False) -> None:
        super().__init__(detail)
        self.seconds = max(0, min(43_200, int(seconds)))
        self.quiet = quiet


class Postpone(RetryLater):
    """The work is held back by something outside its message (an open breaker, a dependency asking
    to slow down), not failing: a queue consumer sends ``body`` as a new message delayed by
    ``seconds`` (SQS allows at most 900) and deletes this one. A visibility change would spend one
    of the queue's receives, and enough waiting would dead-letter a message that never failed."""

    MAX_DELAY_SECONDS = 900

    def __init__(self, detail: str, seconds: float, body: dict[str, Any]) -> None:
        super().__init__(detail, min(seconds, self.MAX_DELAY_SECONDS), quiet=True)
        self.body = body

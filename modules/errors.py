"""Errors as values: each carries its HTTP status and OpenAI error type.

Everything that can go wrong because of a request raises one of these; the API and
the UI render them in one place each. Anything else escaping a handler is a bug and
is logged with a traceback and answered as a 500 in the same shape.
"""

from __future__ import annotations

MAX_MESSAGE = 4000  # characters


def shown(value: str, limit: int = 200) -> str:
    """A value from a request as an error message quotes it: at most `limit` characters."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


class HearthError(Exception):
    """Base class: a message for the user, an HTTP status and an OpenAI error type."""

    status = 500
    type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if len(message) > MAX_MESSAGE:  # a message that echoes a huge input stays readable
            message = message[: MAX_MESSAGE - 1] + "…"
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def to_dict(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(HearthError):
    status = 400
    type = "invalid_request_error"


class ContextOverflow(InvalidRequest):
    """The prompt plus the requested tokens do not fit in the model's context."""

    def __init__(self, message: str, *, param: str | None = "max_tokens") -> None:
        super().__init__(message, param=param, code="context_length_exceeded")


class TooManyTokens(InvalidRequest):
    """A text has more tokens than a limit; raised without tokenizing all of it."""

    def __init__(self, at_least: int, limit: int, *, param: str | None = None) -> None:
        super().__init__(
            f"The text has more than {limit} tokens (at least {at_least}).",
            param=param,
            code="context_length_exceeded",
        )
        self.at_least = at_least
        self.limit = limit


class Unauthorized(HearthError):
    status = 401
    type = "invalid_request_error"

    def __init__(self, message: str = "Invalid or missing API key.") -> None:
        super().__init__(message, code="invalid_api_key")


class Forbidden(HearthError):
    """Refused whatever the key: from the wrong place (another machine, another site)."""

    status = 403
    type = "invalid_request_error"


class NotFound(HearthError):
    status = 404
    type = "invalid_request_error"


class ModelNotFound(NotFound):
    def __init__(self, name: str, available: list[str]) -> None:
        listing = ", ".join(available) if available else "none"
        super().__init__(
            f"The model '{shown(name)}' does not exist. Available models: {listing}.",
            param="model",
            code="model_not_found",
        )


class MethodNotAllowed(HearthError):
    status = 405
    type = "invalid_request_error"


class PayloadTooLarge(HearthError):
    status = 413
    type = "invalid_request_error"


class Overloaded(HearthError):
    """The queue is full; the client should retry after a pause."""

    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, code="queue_full", headers={"Retry-After": str(retry_after)})


class NotInstalled(HearthError):
    """An optional feature whose dependencies are missing."""

    status = 501
    type = "not_implemented_error"


class Unavailable(HearthError):
    """Temporarily unable to serve, e.g. while a model loads."""

    status = 503
    type = "server_error"


class UpstreamFailed(HearthError):
    """An upstream server (modules/engines/remote) failed, or none could be reached, while
    serving a request."""

    status = 502
    type = "server_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="upstream_error")


class Cancelled(HearthError):
    """A generation was stopped before it finished (client gone, stop request, shutdown)."""

    status = 499
    type = "cancelled"


class EngineFailure(HearthError):
    """The engine itself failed (a bug or a broken model file), not the request."""

    status = 500
    type = "server_error"

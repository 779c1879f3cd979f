"""The exceptions vbs_async raises.

Every exception derives from `VBSError` and carries the project and, for list
calls, the offset it happened at. Messages are built from values the client
chose to keep; no credential ever reaches one.
"""

from __future__ import annotations

from typing import Any


class VBSError(Exception):
    """Base class of every error raised by vbs_async.

    Attributes:
        message: What went wrong, for humans.
        project_id: The project the failing call was about, if any.
        offset: The `offset` of the failing list request, if it was one.
    """

    def __init__(
        self,
        message: str,
        *,
        project_id: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.project_id = project_id
        self.offset = offset

    def _context(self) -> list[str]:
        context = []
        if self.project_id:  # never an empty "(project )"
            context.append(f"project {self.project_id}")
        if self.offset is not None:
            context.append(f"offset {self.offset}")
        return context

    def __str__(self) -> str:
        context = self._context()
        return f"{self.message} ({', '.join(context)})" if context else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default pickling.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[VBSError], state: dict[str, Any]) -> VBSError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class APIError(VBSError):
    """The service answered with a status that is not 2xx.

    Attributes:
        status: The HTTP status code.
        code: The service's error code (`VolumeBackup.0041`, `APIGW.0301`), if given.
        request_id: The request id from the body or the `X-Request-Id` header, if given.
        retry_after: Seconds the server asked to wait (`Retry-After` on 429/503), if any.
        request_sent: False for a call failed before its request was sent: `status` is what the
            gateway answered earlier requests (a 429 naming a quota spent past the call's
            deadline), and the message says "not sent", not "HTTP 429".
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        project_id: str | None = None,
        offset: int | None = None,
        request_sent: bool = True,
    ) -> None:
        super().__init__(message, project_id=project_id, offset=offset)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.request_sent = request_sent

    def __str__(self) -> str:
        # IAM's code is the status again ({"error": {"code": 401, ...}}): not "HTTP 401 401".
        code = f" {self.code}" if self.code and self.code != str(self.status) else ""
        context = [*self._context()]
        if self.request_id:
            context.append(f"request {self.request_id}")
        where = f" ({', '.join(context)})" if context else ""
        # A call failed before sending: no answer of its own to quote (an outsider read
        # "HTTP 429" as the gateway's answer to a request it never saw).
        said = f"HTTP {self.status}{code}" if self.request_sent else "not sent"
        return f"{said}: {self.message}{where}"


class BadRequestError(APIError):
    """400: the service refused the request as malformed."""


class ClientClosedError(VBSError, RuntimeError):
    """The client was closed: before the call, or while the call, listing or crawl ran.

    A `RuntimeError` too, as using a closed client was before.
    """


class EventLoopError(VBSError, RuntimeError):
    """The client was used from an event loop other than the one it first ran in.

    A client's connections, limits and tokens belong to one event loop: make
    the client inside the `asyncio.run()` that uses it.
    """


class AuthenticationError(APIError):
    """401: the credentials were missing, wrong or expired, or IAM refused a project's token.

    Attributes:
        credentials_refused: True when the credentials themselves were refused
            (IAM refused a password, or a delegated user's credentials, for
            which it never issued a token): every other project would be
            refused too. False when IAM refused a token for this project only
            (no role there, or no such project) after it accepted the same
            credentials for another: other projects may well succeed. None
            when the answer does not say (a 401 from VBS itself).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        project_id: str | None = None,
        offset: int | None = None,
        credentials_refused: bool | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            code=code,
            request_id=request_id,
            retry_after=retry_after,
            project_id=project_id,
            offset=offset,
        )
        self.credentials_refused = credentials_refused


class PermissionDeniedError(APIError):
    """403: the credentials do not allow this call on this project."""


class NotFoundError(APIError):
    """404: the project, sharing or path does not exist."""


class ConflictError(APIError):
    """409: the request conflicts with the current state (for instance, already shared)."""


class RateLimitedError(APIError):
    """429: the gateway's rate limit held after every retry."""


class ServerError(APIError):
    """5xx: the service failed after every retry."""


class TransportError(VBSError):
    """The request did not complete: connection failure, timeout or a body cut short.

    Attributes:
        request_sent: False when the failure happened before any byte of the
            request left, so that even a non-idempotent call may be retried.
        retryable: False when trying again cannot help (a certificate that
            does not verify).
        answered: True when the call had HTTP answers before this failure (429s it
            waited out, then its deadline cut a request on the wire): the endpoint
            answers, however this one ended.
    """

    def __init__(
        self,
        message: str,
        *,
        request_sent: bool = True,
        retryable: bool = True,
        project_id: str | None = None,
        offset: int | None = None,
        answered: bool = False,
    ) -> None:
        super().__init__(message, project_id=project_id, offset=offset)
        self.request_sent = request_sent
        self.retryable = retryable
        self.answered = answered


class RequestTimeoutError(TransportError, TimeoutError):
    """One request took longer than the client's `timeout`."""


class ResponseDecodeError(VBSError, ValueError):
    """A 2xx answer whose body is not the documented JSON shape, or is too large."""


class ConfigurationError(VBSError, ValueError):
    """`VBSClient.from_env` found a setting missing or contradicting another."""


class PaginationError(VBSError):
    """The server's pages cannot be trusted: a repeated page, a page longer than the limit."""


_ERROR_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}


def error_class_for_status(status: int) -> type[APIError]:
    """The `APIError` subclass that stands for an HTTP status."""
    if status >= 500:  # noqa: PLR2004
        return ServerError
    return _ERROR_BY_STATUS.get(status, APIError)

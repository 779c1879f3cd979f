"""Deciding what a response means, as plain functions of status, headers and body.

`check_response` turns a non-2xx answer into the right `APIError`; the
`read_*` functions turn a 2xx body into models or raise `ResponseDecodeError`.
Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson

from ._converter import StructureError, structure_sharing, structure_sharings
from ._errors import APIError, PaginationError, ResponseDecodeError, error_class_for_status
from ._models import MOS_PROJECT, Project, region_of
from ._retry import parse_retry_after

if TYPE_CHECKING:
    from ._models import BackupSharing
    from ._requests import Request

_MESSAGE_PREVIEW: Final = 200
_REQUEST_ID_HEADERS: Final = ("X-Request-Id", "X-Openstack-Request-Id")


@attrs.frozen
class Response:
    """An HTTP answer, fully read.

    Attributes:
        status: The HTTP status code.
        headers: The response headers (case-insensitive mapping).
        body: The raw body.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


def check_response(response: Response, request: Request) -> None:
    """Raise the `APIError` subclass for a non-2xx response; return for a 2xx one."""
    if 200 <= response.status < 300:  # noqa: PLR2004
        return
    raise api_error(response, project_id=request.project_id, offset=request.offset)


def api_error(response: Response, *, project_id: str | None, offset: int | None) -> APIError:
    """Build the error for a non-2xx response from whichever error body form it has."""
    code, message, request_id = _parse_error_body(response.body)
    if request_id is None:
        request_id = next(
            (response.headers[name] for name in _REQUEST_ID_HEADERS if name in response.headers),
            None,
        )
    if 300 <= response.status < 400:  # noqa: PLR2004
        message = "the service answered with a redirect, which vbs_async never follows"
    elif message is None:
        message = _preview(response.body) or "(no body)"
    if _is_expired_signature(response.status, code, message):
        message += _clock_hint(response.headers.get("Date"), now=time.time())
    return error_class_for_status(response.status)(
        message,
        status=response.status,
        code=code,
        request_id=request_id,
        retry_after=parse_retry_after(response.status, response.headers.get("Retry-After")),
        project_id=project_id,
        offset=offset,
    )


_SIGNATURE_TIME_WORDS: Final = ("expired", "x-sdk-date", "date", "time", "out of range")
SIGNATURE_SKEW: Final = 15 * 60
"""Seconds the API gateway allows between a signature's X-Sdk-Date and its own clock."""


def _is_expired_signature(status: int, code: str | None, message: str) -> bool:
    """A 401 of the API gateway (`APIG...` codes) refusing a signature for its time.

    An expired token (the message names it) is no matter of the clock.
    """
    lowered = message.lower()
    return (
        status == 401  # noqa: PLR2004
        and (code or "").upper().startswith("APIG")
        and "token" not in lowered
        and any(word in lowered for word in _SIGNATURE_TIME_WORDS)
    )


def _clock_hint(server_date: str | None, *, now: float) -> str:
    """What to tell about this machine's clock, measured against the server's `Date`."""
    rule = (
        f"the gateway refuses signatures more than {SIGNATURE_SKEW // 60} minutes from its "
        "clock: set this machine's clock right (NTP)"
    )
    try:
        server = parsedate_to_datetime(server_date).timestamp() if server_date else None
    except (TypeError, ValueError, IndexError, OverflowError):
        server = None
    if server is None:
        return f" (is this machine's clock off? {rule})"
    skew = now - server
    if abs(skew) < 60:  # noqa: PLR2004 - a minute: not what the gateway refuses
        return " (this machine's clock agrees with the server's Date header: check the keys)"
    side = "ahead of" if skew > 0 else "behind"
    return (
        f" (this machine's clock is {abs(skew) / 60:.0f} minutes {side} the server's "
        f"Date header; {rule})"
    )


def _preview(body: bytes) -> str:
    return body[: _MESSAGE_PREVIEW * 4].decode("utf-8", "replace")[:_MESSAGE_PREVIEW].strip()


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _parse_error_body(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(code, message, request_id) from one of the three error body forms, else Nones."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(document, dict):
        return None, None, None
    # API gateway: {"error_msg": ..., "error_code": ..., "request_id": ...}
    if "error_msg" in document or "error_code" in document:
        return (
            _text(document.get("error_code")),
            _text(document.get("error_msg")),
            _text(document.get("request_id")),
        )
    # VBS {"error": {...}} and OpenStack {"badRequest": {...}}, {"itemNotFound": {...}}.
    for value in document.values():
        if isinstance(value, dict) and ("message" in value or "code" in value):
            return _text(value.get("code")), _text(value.get("message")), None
    return None, None, None


def _load_object(body: bytes, request: Request) -> dict[str, Any]:
    not_json: str | None = None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        not_json = exc.msg
    if not_json is not None:
        # Raised outside the handler: orjson's error holds the whole body (an echoed
        # credential too) and must not ride along as the error's __context__.
        raise _decode_error(f"the body is not JSON ({not_json})", request)
    if not isinstance(document, dict):
        raise _decode_error(f"the body is a JSON {type(document).__name__}, not an object", request)
    return document


def _decode_error(reason: str, request: Request) -> ResponseDecodeError:
    return ResponseDecodeError(
        f"unexpected answer to {request.method} {request.path}: {reason}",
        project_id=request.project_id or None,
        offset=request.offset,
    )


def _shared(body: bytes, request: Request, expected: type, shape: str) -> Any:
    """The `shared` member of the answer, checked to be of the `expected` JSON type."""
    value = _load_object(body, request).get("shared")
    if not isinstance(value, expected):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise _decode_error(f"'shared' must be {shape}, it is {got}", request)
    return value


def read_sharing_list(
    body: bytes, request: Request, *, limit: int | None = None
) -> tuple[BackupSharing, ...]:
    """The sharings of a list (or share) answer: `{"shared": [ ... ]}`.

    Raises:
        PaginationError: More items than `limit`, found before any is built.
        ResponseDecodeError: The body is not of that shape.
    """
    items = _shared(body, request, list, "a list")
    if limit is not None and len(items) > limit:
        raise PaginationError(
            f"the server returned {len(items)} items for limit {limit}",
            project_id=request.project_id,
            offset=request.offset,
        )
    try:
        return structure_sharings(items)
    except StructureError as exc:
        raise _decode_error(str(exc), request) from None


def read_sharing(body: bytes, request: Request) -> BackupSharing:
    """The sharing of a get answer: `{"shared": { ... }}`."""
    item = _shared(body, request, dict, "an object")
    try:
        return structure_sharing(item)
    except StructureError as exc:
        raise _decode_error(str(exc), request) from None


def read_count(body: bytes, request: Request) -> int:
    """The number in a count answer: `{"count": int}`."""
    count = _load_object(body, request).get("count")
    if type(count) is not int or count < 0:
        raise _decode_error(f"'count' must be a non-negative integer, got {count!r:.40}", request)
    return count


def read_projects(body: bytes, request: Request, *, mos: bool = False) -> list[Project]:
    """The projects of IAM's `{"projects": [{"id", "name", "enabled", "domain_id"}, ...]}`.

    IAM's built-in MOS project is left out unless `mos`; a `domain_id` that
    is not text is none.
    """
    items = _load_object(body, request).get("projects")
    if not isinstance(items, list):
        raise _decode_error("'projects' must be a list", request)
    projects = []
    for item in items:
        if not isinstance(item, dict):
            raise _decode_error("a project is not an object", request)
        project_id, name, enabled = item.get("id"), item.get("name"), item.get("enabled", True)
        if not isinstance(project_id, str) or not project_id or not isinstance(name, str):
            raise _decode_error("a project has no text id or name", request)
        if not isinstance(enabled, bool):
            raise _decode_error(f"project {project_id}'s 'enabled' is not a bool", request)
        if name == MOS_PROJECT and not mos:
            continue
        domain_id = item.get("domain_id")
        if not isinstance(domain_id, str) or not domain_id:
            domain_id = None
        projects.append(Project(project_id, name, region_of(name), enabled, domain_id))
    return projects

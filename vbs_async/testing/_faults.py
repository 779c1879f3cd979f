"""Failures the emulator can inject, scripted or at a seeded random rate.

The kinds are what a gateway in front of VBS really does: 5xx answers in the
three error body forms, 429 with `Retry-After`, connections dropped before
any answer, and bodies cut short.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from typing import Any, Final, Literal

import attrs
import orjson

FaultKind = Literal["status", "drop", "truncate"]

# Throttling is not a random fault: the emulator's `quota` models it as a gateway does.
_RANDOM_STATUSES: Final = (500, 502, 503, 504)


def error_body(status: int, message: str, *, form: str = "error", code: str | None = None) -> bytes:
    """An error body in one of the forms VBS and its gateway use.

    Args:
        status: The HTTP status (used for the OpenStack form's code).
        message: The human message.
        form: `error` (`{"error": {"message", "code"}}`), `openstack`
            (`{"badRequest": {"message", "code"}}`, keyed by status) or
            `gateway` (`{"error_msg", "error_code", "request_id"}`).
        code: The service's error code; a plausible one when omitted.
    """
    if form == "gateway":
        return orjson.dumps(
            {
                "error_msg": message,
                "error_code": code or f"APIGW.{status:04d}",
                "request_id": uuid.uuid4().hex,
            }
        )
    if form == "openstack":
        key = {400: "badRequest", 404: "itemNotFound", 409: "conflictingRequest"}.get(
            status, "computeFault"
        )
        return orjson.dumps({key: {"message": message, "code": status}})
    return orjson.dumps({"error": {"message": message, "code": code or "VolumeBackup.0001"}})


@attrs.frozen
class Fault:
    """One injected failure.

    Attributes:
        kind: `status` (answer with `status`, `headers` and `body`), `drop`
            (close the connection without answering) or `truncate` (send
            half the real body, then close).
        status: The status to answer with, for `status`.
        headers: Extra headers, for `status` (`Retry-After` on a 429).
        body: The body, for `status`.
    """

    kind: FaultKind = "status"
    status: int = 500
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes = b""

    @classmethod
    def answer(
        cls,
        status: int,
        *,
        form: str = "error",
        message: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """An error answer with a body in `form` (see `error_body`)."""
        body = error_body(status, message or f"injected failure {status}", form=form, code=code)
        return cls("status", status, headers or {}, body)

    @classmethod
    def raw(cls, status: int, body: bytes, headers: dict[str, str] | None = None) -> Fault:
        """An answer with exactly this body (for malformed bodies, 2xx included)."""
        return cls("status", status, headers or {}, body)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def truncate(cls) -> Fault:
        """Answer 200 with half the real body and a Content-Length for all of it."""
        return cls("truncate", 200)


class FaultPlan:
    """Which request fails, and how: scripted faults first, then a seeded random rate.

    Attributes:
        rate: The share of requests (0 to 1) that fail at random.
        retry_after: The `Retry-After` seconds sent with a random 429.
        injected: How many faults were served.
    """

    def __init__(self, rate: float = 0.0, *, seed: int = 0, retry_after: int = 1) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"fault_rate must be between 0 and 1, got {rate}")
        self.rate = rate
        self.retry_after = retry_after
        self.injected = 0
        self._rng = random.Random(f"faults-{seed}")  # noqa: S311 - test faults, not secrets
        self._scripted: deque[tuple[Fault, str | None]] = deque()

    def script(self, fault: Fault, *, times: int = 1, project_id: str | None = None) -> None:
        """Serve `fault` to the next `times` requests (of `project_id` only, if given)."""
        self._scripted.extend([(fault, project_id)] * times)

    def next(self, project_id: str) -> Fault | None:
        """The fault for a request of `project_id`, or None to answer normally."""
        for index, (fault, only_for) in enumerate(self._scripted):
            if only_for is None or only_for == project_id:
                del self._scripted[index]
                self.injected += 1
                return fault
        if self.rate and self._rng.random() < self.rate:
            self.injected += 1
            return self._random_fault()
        return None

    def _random_fault(self) -> Fault:
        pick = self._rng.randrange(len(_RANDOM_STATUSES) + 2)
        if pick == len(_RANDOM_STATUSES):
            return Fault.drop()
        if pick == len(_RANDOM_STATUSES) + 1:
            return Fault.truncate()
        status = _RANDOM_STATUSES[pick]
        form = self._rng.choice(("error", "openstack", "gateway"))
        headers: dict[str, Any] = {}
        if status == 503:  # noqa: PLR2004
            headers["Retry-After"] = str(self.retry_after)
        return Fault.answer(status, form=form, headers=headers)

"""When to retry, how long to wait, and how much retrying the client may do.

`RetryPolicy` carries stamina's knobs and computes stamina's backoff.
`is_transient` says whether a failure is transient for a given request.
`RetryBudget` caps retries across the whole client, so that a failing
service cannot set off a retry storm. `is_throttling` tells the gateway's
flow control (429) from failures: it is waited out, not retried.

The retry loop itself is the session's (`Session.call`), not stamina's:
stamina's instrumentation is process-wide (`set_on_retry_hooks`) and logs
every retry at WARNING to the `stamina` logger, with the exception (and so
whatever a server echoed) attached, which a library cannot turn off without
changing its host's global configuration; and stamina counts every retry as
an attempt, where a throttled request must not spend one. The client still
honours `stamina.set_active(False)`, the switch applications use to turn
retries off in their tests.
"""

from __future__ import annotations

import math
import random
import re
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Final

import attrs

from ._adaptive import BLACKOUT_RUN, BLACKOUT_TRICKLE
from ._errors import APIError, TransportError
from ._validation import check_int, check_positive_number, validator

if TYPE_CHECKING:
    from ._requests import Request

TRANSIENT_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_DELTA_SECONDS: Final = re.compile(r"[0-9]{1,9}", re.ASCII)
THROTTLING_CODES: Final = frozenset({"APIG.0308", "APIGW.0308"})
"""The API gateway's error codes for 'over the throttling threshold'."""
THROTTLE_FLOOR: Final = 1 / BLACKOUT_TRICKLE
THROTTLE_FLOOR_MAX: Final = 1.0
"""After `BLACKOUT_RUN` 429s in a row, a request waits at least `THROTTLE_FLOOR` seconds,
doubling with each further 429 up to `THROTTLE_FLOOR_MAX`, whatever the policy's waits:
nothing gets through, and `wait_max=0` (fine for a failure, which `attempts` bounds)
sent 4,388 requests in 3 s to a gateway refusing everything. The first ones keep the
policy's waits: a burst's refusals are spaced by the pace, not by waiting."""


def _check_non_negative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if value == math.inf:
        raise ValueError(f"{name} must be finite")  # a wait past every deadline


@attrs.frozen
class RetryPolicy:
    """How transient failures are retried (the names mean what they mean in `stamina.retry`).

    Attributes:
        attempts: Tries in all, the first included; 1 means no retry.
        timeout: Seconds a call may take with all its retries; None for no bound.
        wait_initial: The first backoff, in seconds.
        wait_max: The longest backoff; also caps a server's `Retry-After`.
        wait_jitter: Up to this many random seconds are added to each backoff.
    """

    attempts: int = attrs.field(
        default=5, validator=validator(check_int, "RetryPolicy.attempts", minimum=1)
    )
    timeout: float | None = attrs.field(
        default=60.0,
        validator=validator(check_positive_number, "RetryPolicy.timeout", allow_none=True),
    )
    wait_initial: float = attrs.field(
        default=0.1, validator=validator(_check_non_negative, "RetryPolicy.wait_initial")
    )
    wait_max: float = attrs.field(
        default=5.0, validator=validator(_check_non_negative, "RetryPolicy.wait_max")
    )
    wait_jitter: float = attrs.field(
        default=1.0, validator=validator(_check_non_negative, "RetryPolicy.wait_jitter")
    )

    def backoff_after(self, attempt: int, retry_after: float | None) -> float:
        """The wait after failed attempt `attempt` whose answer said `Retry-After`.

        The server's wait is a floor, never a licence: `Retry-After: 0` (or a
        date in the past) waits as long as no header would. Capped at `wait_max`.
        """
        wait = self.backoff(attempt)
        if retry_after is None:
            return wait
        return max(wait, self._spread(retry_after))

    def _spread(self, retry_after: float) -> float:
        """A server's `Retry-After`, jittered by up to `wait_jitter`, within `wait_max`.

        Jittered under the cap, not clipped to it: `Retry-After: 30` capped at 5 s
        sent every request refused together back together 5 s later, a herd the
        gateway refused again (a 20/s bucket with a burst of 5: 21 requests each 5 s,
        16 refused, 25.5 s for a crawl of 3.8; an outsider's gateway).
        """
        width = min(self.wait_jitter, self.wait_max)
        low = retry_after if retry_after < self.wait_max else self.wait_max - width
        return random.uniform(low, min(low + width, self.wait_max))  # noqa: S311

    def throttle_backoff(self, throttles: int, retry_after: float | None) -> float:
        """The wait after the `throttles`-th consecutive 429 of one request.

        Doubling from `wait_initial` up to `wait_max`, with jitter of up to as
        much again (never more than `wait_jitter`): a 429 is flow control, the
        pace does the spacing, and a second of jitter on each would cost a crawl
        more than the throttling. Once that reaches `wait_max`, anywhere up to
        it. `Retry-After` lengthens it, never shortens it.
        After `BLACKOUT_RUN` in a row, never under `THROTTLE_FLOOR` (doubling to
        `THROTTLE_FLOOR_MAX`), whatever the policy says.
        """
        try:
            base = min(self.wait_max, self.wait_initial * 2.0 ** (throttles - 1))
        except OverflowError:
            base = self.wait_max
        width = min(self.wait_jitter, base)
        if base + width <= self.wait_max or not width:
            wait = base + random.uniform(0, width)  # noqa: S311
        else:
            # At the cap, spread over the whole of it ("full jitter"), not clipped to
            # it: retries exactly `wait_max` apart kept a request in the same phase of
            # a gateway open one second in five (7 of 10 calls failed in 30 s), and
            # a second of spread under the cap locked onto a period of 4 s instead.
            wait = random.uniform(0, self.wait_max)  # noqa: S311
        if retry_after is not None:
            wait = max(wait, self._spread(retry_after))
        if throttles <= BLACKOUT_RUN:
            return wait
        floor = THROTTLE_FLOOR * 2.0 ** min(throttles - BLACKOUT_RUN - 1, 64)
        return max(wait, min(floor, THROTTLE_FLOOR_MAX))

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (from 1), as stamina computes it."""
        jitter = random.uniform(0, self.wait_jitter)  # noqa: S311 - spreading, not secrecy
        try:
            return float(min(self.wait_max, self.wait_initial * 2.0 ** (attempt - 1) + jitter))
        except OverflowError:
            return self.wait_max


def is_throttling(status: int, code: str | None) -> bool:
    """Whether an answer is the gateway's flow control: 429, or a throttling error code."""
    return status == 429 or code in THROTTLING_CODES  # noqa: PLR2004


def is_transient(error: Exception, request: Request) -> bool:
    """Whether `error` may go away if `request` is sent again.

    Idempotent calls retry connection failures, timeouts, bodies cut short and
    429/500/502/503/504. A POST retries only failures that happened before the
    request left, since the service may have acted on it otherwise.
    """
    if isinstance(error, TransportError):
        return error.retryable and (request.idempotent or not error.request_sent)
    if isinstance(error, APIError):
        return request.idempotent and error.status in TRANSIENT_STATUSES
    return False


def parse_retry_after(status: int, value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header on a 429 or 503, if it has a usable one.

    Accepts delta-seconds and HTTP dates; a date in the past means no wait.
    """
    if value is None or status not in _RETRY_AFTER_STATUSES:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class RetryBudget:
    """A token bucket of retries shared by the whole client.

    Modelled on botocore's retry quota: each retry spends tokens (a timeout
    more, as it held a connection the longest), each success earns one back.
    When the bucket cannot pay, the call fails at once with its last error.
    stamina has no such quota, so it lives here.
    """

    __slots__ = ("_tokens", "capacity", "retry_cost", "success_refund", "timeout_cost")

    def __init__(
        self,
        capacity: int = 500,
        *,
        retry_cost: int = 5,
        timeout_cost: int = 10,
        success_refund: int = 1,
    ) -> None:
        self.capacity = check_int("retry budget capacity", capacity, minimum=0)
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.success_refund = success_refund
        self._tokens = capacity

    @property
    def tokens(self) -> int:
        """Tokens left."""
        return self._tokens

    def spend(self, error: Exception) -> bool:
        """Take the cost of retrying after `error`; False if the budget cannot pay."""
        cost = self.timeout_cost if isinstance(error, TimeoutError) else self.retry_cost
        if cost > self._tokens:
            return False
        self._tokens -= cost
        return True

    def refund(self) -> None:
        """A request succeeded: earn a token back, up to the capacity."""
        if self._tokens < self.capacity:
            self._tokens = min(self.capacity, self._tokens + self.success_refund)

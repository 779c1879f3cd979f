"""The path every request takes, knowing no service's calls: `Session.call`.

A `Session` holds what all requests of a client share — the transport, the
auth, the limiter, the retry policy and its budget — and sends one request
until it succeeds or fails for good, the way botocore's
`Endpoint.make_request` sends what `BaseClient._make_api_call` built. Every
request goes through `call`, IAM's token requests included, so that they
share the limits, the retry budget and the redaction of credentials.

The layers of one call, outermost first:

- `call`: the deadline (`RetryPolicy.timeout`) and redaction of the error
  that leaves;
- `_attempts`: retries of transient failures, under the policy and budget;
- `_attempt`: where the request goes (its own endpoint, the session's, the
  token's catalog), the auth flow (a 401 refreshes once) and the gateway's
  throttling (429s waited out, spending no attempt);
- `_exchange`: one request through the transport, in a limiter slot.

Which service it talks to is data (`Service`): its name, catalog types,
endpoint variable and known endpoints; a second service over the same
session shares one limiter and one token cache behind one gateway quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

import attrs
import stamina
from yarl import URL

from ._announced import parse_quota
from ._endpoints import KNOWN_REGIONS, VBS_SERVICE_TYPES, catalog_endpoint
from ._errors import (
    APIError,
    ClientClosedError,
    ConfigurationError,
    EventLoopError,
    NotFoundError,
    RateLimitedError,
    RequestTimeoutError,
    TransportError,
    VBSError,
)
from ._models import ListingStats
from ._redaction import redact_error, sent_secrets
from ._responses import Response, api_error
from ._retry import is_throttling, is_transient

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._adaptive import Ticket
    from ._auth import Auth
    from ._limits import RequestLimiter
    from ._requests import Request
    from ._retry import RetryBudget, RetryPolicy
    from ._transport import Transport

logger: Final = logging.getLogger("vbs_async")
_DEADLINE_HINT: Final = "(RetryPolicy.timeout; --deadline on the command)"
_FAILURES_OF_CALLS_ON_OUR_BEHALF: Final = (APIError, TransportError)
"""What a call made for this one (an IAM token, a catalog) raises after its own retries."""


@attrs.frozen
class Service:
    """What a session needs to know of a service to find it.

    Attributes:
        name: How messages name it (`VBS`).
        catalog_types: Its types in a token's service catalog, by preference.
        endpoint_variable: The setting that names its endpoint (`VBS_ENDPOINT`).
        known_endpoints: Its public endpoint per known region (None: none published).
    """

    name: str
    catalog_types: tuple[str, ...]
    endpoint_variable: str
    known_endpoints: Mapping[str, str | None]

    def known_endpoint(self, region: str | None) -> str | None:
        """The published endpoint of `region`, if the table knows one."""
        return self.known_endpoints.get(region) if region is not None else None


VBS_SERVICE: Final = Service(
    "VBS",
    VBS_SERVICE_TYPES,
    "VBS_ENDPOINT",
    {region: endpoints.vbs for region, endpoints in KNOWN_REGIONS.items()},
)


class _Deadline:
    """A call's deadline that runs only while the call is the server's business.

    Time on the wire and in back-off counts; time queued for the client's own
    limits (`max_concurrency`, `rate_limit`, the pace learned or announced)
    does not: the deadline is stopped around it, so a healthy server never
    makes a call time out, however deep the client's own queue. Unless the
    gateway has let nothing through for as long as the deadline
    (`Session._queued`): then the clock runs while queued (`count_queue`),
    and the time is given back as soon as anything gets through
    (`forgive_queue`): a call never fails in the queue while the gateway
    serves others, nor while it waits out a window that reopens within a
    deadline (a minute's quota spent in its first second).

    Attributes:
        wire: Seconds its requests spent on the wire.
        backoff: Seconds it spent in back-off (throttled waits included).
        queued: Seconds queued that counted (the gateway letting nothing through).
    """

    def __init__(self, timeout: asyncio.Timeout) -> None:
        self._timeout = timeout
        self._left: float | None = None  # seconds left while stopped (or when the queue began)
        self._counting_since: float | None = None  # queued, the clock running, since
        self.wire = 0.0
        self.backoff = 0.0
        self.queued = 0.0
        self.expired_queued: float | None = None

    def remaining(self) -> float:
        """Seconds left (inf without a deadline)."""
        if self._left is not None and self._counting_since is None:
            return self._left
        when = self._timeout.when()
        return math.inf if when is None else when - _now()

    def stop(self) -> None:
        """Stop the deadline's clock (until `run`)."""
        timeout = self._timeout
        if self._left is None and timeout.when() is not None and not timeout.expired():
            self._left = self.remaining()
            timeout.reschedule(None)

    def run(self) -> None:
        """Run the deadline's clock again, with the time it had left when stopped."""
        left, self._left = self._left, None
        self._counting_since = None
        if left is not None and not self._timeout.expired():
            self._timeout.reschedule(_now() + left)

    def count_queue(self, since: float) -> None:
        """Queued (stopped) while the gateway lets nothing through: the clock runs from `since`.

        `since` may be later than now: the clock runs from then (see `Session._queued`).
        """
        if self._left is not None and self._counting_since is None:
            self._counting_since = max(since, _now())
            if not self._timeout.expired():
                self._timeout.reschedule(self._counting_since + self._left)

    def forgive_queue(self) -> None:
        """Something got through: the queue's counted time is given back, the clock stopped."""
        if self._counting_since is not None:
            self._counting_since = None
            if not self._timeout.expired():
                self._timeout.reschedule(None)

    def leave_queue(self) -> None:
        """The call's turn came: the clock runs on, the queue's counted time kept.

        Left because the deadline passed while queued: `expired_queued` says how long
        the queue counted.
        """
        if self._counting_since is not None and self._timeout.expired():
            self.expired_queued = _now() - self._counting_since
        if self._counting_since is not None and self._left is not None:
            counted = max(0.0, _now() - self._counting_since)
            self.queued += counted
            self._left = max(0.0, self._left - counted)
        self.run()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the deadline's clock for the duration of the block."""
        if self._left is not None:
            yield  # stopped already
            return
        self.stop()
        try:
            yield
        finally:
            self.run()

    @contextlib.contextmanager
    def measuring(self, what: str) -> Iterator[None]:
        """Add the block's duration to `wire` or `backoff`."""
        began = _now()
        try:
            yield
        finally:
            setattr(self, what, getattr(self, what) + _now() - began)

    def spent(self) -> str:
        """What the call's deadline went to, in words: wire, back-off, the queue that counted."""
        queued = self.queued
        words = f"{self.wire:.2f} s on the wire, {self.backoff:.2f} s in back-off"
        if queued >= 0.005:  # noqa: PLR2004 - what shows as 0.01 s
            words += f", {queued:.2f} s queued while none of the client's requests got through"
        return words


def _now() -> float:
    return asyncio.get_running_loop().time()


@attrs.define
class _CallState:
    """What one call (all its attempts) has been through."""

    deadline: _Deadline
    attempt: int = 1
    throttles: int = 0
    throttled: APIError | None = None  # its last refusal, while its last answer was one
    sent: int = 0  # the number of its last request among those sent to its host
    on_the_wire: bool = False  # a request of it is out, unanswered
    outcome_unknown: bool = False  # an attempt may have reached the service, its answer lost
    retrying: bool = False  # its next request repeats a failed one: a retry, once sent


class _AlreadyRetried(Exception):  # noqa: N818 - a carrier, never leaves the session
    """A failure of a call made on this call's behalf (IAM's token), retried there already.

    Retrying it here too would multiply the retries: with `attempts=3`, nine
    token requests for one call.
    """

    def __init__(self, error: VBSError) -> None:
        super().__init__(error)
        self.error = error


class _GiveUp(_AlreadyRetried):
    """A failure that no retry can help before the deadline (a quota's window reopens after it)."""


def _may_have_acted(error: VBSError) -> bool:
    """Whether the service may have carried out a request that ended in `error`."""
    if isinstance(error, TransportError):
        return error.request_sent
    return isinstance(error, APIError) and error.status in {500, 502, 503, 504}


def _error_headers(error: APIError) -> dict[str, str]:
    """Headers for the answer that stands in for a DELETE's 404 (its request id, if any)."""
    return {"X-Request-Id": error.request_id} if error.request_id else {}


class Session:
    """Sends requests of one service under shared limits, retries and auth.

    Args:
        service: The service the requests without an endpoint of their own go to.
        auth: How requests are authenticated, unless a call names another.
        transport: What sends the requests.
        limiter: The limits every request is sent under.
        retry: How transient failures are retried.
        budget: The retry quota shared by every call.
        endpoint: The service's endpoint, or None to ask each token's catalog.
        region: The region, for the catalog and the known endpoints.

    Attributes:
        closed: Set when the client closes; later calls are refused.
        listings: Every listing's requests, retries and throttled answers so far,
            counted as each is sent or answered (a crawl stopped midway has no
            figures of its own for the projects it stopped).
    """

    def __init__(
        self,
        service: Service,
        *,
        auth: Auth,
        transport: Transport,
        limiter: RequestLimiter,
        retry: RetryPolicy,
        budget: RetryBudget,
        endpoint: str | None = None,
        region: str | None = None,
    ) -> None:
        self.service = service
        self.auth = auth
        self.transport = transport
        self.limiter = limiter
        self.retry = retry
        self.budget = budget
        self.endpoint = endpoint
        self.region = region
        # The known table's endpoint, used when no catalog names the service.
        self.fallback_endpoint = service.known_endpoint(region)
        self.closed = False
        self.listings = ListingStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Tasks inside `call` now; those `close()` cancelled, to tell its
        # cancellation from any other.
        self._running: set[asyncio.Task[object]] = set()
        self._cancelled_by_close: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        # Hosts whose last answer was a throttling one (nothing gets through), since
        # when, and the deadlines of calls queued for their turn to one of them.
        self._refusing: dict[str, float] = {}
        # Requests sent to each host, and how many had been when one last got through:
        # a refusal of a request sent before that says only that a burst was too big.
        self._sent: dict[str, int] = {}
        self._sent_when_served: dict[str, int] = {}
        self._out: dict[str, int] = {}  # requests on the wire to each host
        self._queued_calls: dict[_Deadline, str] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the session first ran in, if it ran."""
        return self._loop

    def check_loop(self, project_id: str | None = None) -> None:
        """Bind the session to the running loop on first use; refuse any other loop after.

        Raises:
            EventLoopError: The session ran in another event loop before.
        """
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            state = "now closed" if self._loop.is_closed() else "still running"
            raise EventLoopError(
                f"this client first ran in another event loop ({state}); its connections, "
                "limits and tokens belong to that loop: create the client inside the "
                "asyncio.run() (or loop) that uses it",
                project_id=project_id,
            )

    async def cancel_calls(self, timeout: float = 5.0) -> None:
        """Cancel every call in flight (each raises `ClientClosedError`) and let them end."""
        current = asyncio.current_task()
        cancelled = [task for task in self._running if task is not current]
        for task in cancelled:
            self._cancelled_by_close.add(task)
            task.cancel()
        if cancelled and any(task in self._running for task in cancelled):
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while any(task in self._running for task in cancelled):
                        await self._idle.wait()
                        self._idle.clear()

    async def call(
        self, request: Request, stats: ListingStats | None = None, *, auth: Auth | None = None
    ) -> Response:
        """Send `request` until it succeeds; return its 2xx answer or raise the right error.

        Transient failures are retried under the policy and the budget; the
        gateway's throttling (429) is waited out under the learned rate and
        spends neither. Both are bounded by `RetryPolicy.timeout`. Every
        credential the session knows is masked in the error that leaves.

        Args:
            request: What to send.
            stats: A listing's counters to update (requests, retries, throttled).
            auth: Who authenticates it instead of the session's auth (an
                agency token request is signed by the delegated user).
        """
        if self.closed:
            raise ClientClosedError(
                "the client is closed", project_id=request.project_id or None, offset=request.offset
            )
        self.check_loop(request.project_id or None)
        task = asyncio.current_task()
        if task is None or task in self._running:  # no task, or a call inside a call
            return await self._call(request, stats, auth)
        self._running.add(task)
        try:
            return await self._call(request, stats, auth)
        except asyncio.CancelledError:
            if task not in self._cancelled_by_close:
                raise
            task.uncancel()
            raise ClientClosedError(
                "cancelled: the client was closed while this call ran",
                project_id=request.project_id or None,
                offset=request.offset,
            ) from None
        finally:
            self._running.discard(task)
            self._cancelled_by_close.discard(task)
            self._idle.set()

    @contextlib.contextmanager
    def _queued(self, state: _CallState, host: str) -> Iterator[None]:
        """Wait for a turn under the client's limits, the deadline stopped meanwhile.

        Unless the gateway at `host` has let nothing through (its last answer
        throttled, none through since) for as long as the deadline: then the
        wait is the gateway's and counts, until anything gets through (the
        time waited so far is given back: a call never fails while the gateway
        serves others). A crawl against a gateway refusing everything ended
        after projects times the deadline, one request a second taking turns,
        when that wait did not count; counted from the first refusal, a call
        refused as a minute's window was spent could not wait for the next
        one under the default deadline of a minute (10 of 50 calls failed
        behind 20 a minute, begun as a calendar minute rolled over).
        """
        deadline = state.deadline
        self._queued_calls[deadline] = host
        deadline.stop()
        if host in self._refusing:
            deadline.count_queue(self._refusing[host] + self._grace(host))
        try:
            yield
        finally:
            del self._queued_calls[deadline]
            deadline.leave_queue()

    def _answered(self, host: str, sent: int, *, throttled: bool) -> None:
        """The gateway at `host` answered request number `sent` to it.

        Queued calls' deadlines run while it lets nothing through: refused a
        request sent after one last got through (or none ever did); they stop,
        the time given back, once one gets through.
        """
        if not throttled:
            self._sent_when_served[host] = self._sent.get(host, 0)
        elif sent <= self._sent_when_served.get(host, 0):
            return  # sent with others that got through: a burst too big, not a refusal of all
        if throttled == (host in self._refusing):
            return
        if throttled:
            self._refusing[host] = _now()
            runs_from = self._refusing[host] + self._grace(host)  # once, not per queued call
        else:
            del self._refusing[host]
        for deadline, queued_for in self._queued_calls.items():
            if queued_for == host:
                if throttled:
                    deadline.count_queue(runs_from)
                else:
                    deadline.forgive_queue()

    def _grace(self, host: str) -> float:
        """Seconds the gateway at `host` may let nothing through before queued calls' deadlines run.

        As long as a deadline: a window that reopens within one is waited out.
        And one window more of a quota `host` announced that reopens within a
        deadline: others sharing the quota (processes of the same account) may
        spend a rollover whole, and a process that lost one, a minute after the
        last success of its own, failed every call it had queued (3 crawls of 40
        projects at 20 a minute, virtual clock: 9 of 48 shapes failed calls).
        """
        timeout = self.retry.timeout
        if timeout is None:
            return 0.0
        periods = (quota.period for at, quota in self.limiter.quotas if at == host)
        return timeout + max(map(self._window_more, periods), default=0.0)

    def _window_more(self, period: float) -> float:
        """A window of `period` more to wait, if it reopens within a deadline (else none)."""
        timeout = self.retry.timeout
        return period if timeout is not None and period <= timeout else 0.0

    def _grace_left(self, host: str) -> float:
        """Seconds before a call queued now for `host` would have its deadline run."""
        now = _now()
        return max(0.0, self._refusing.get(host, now) + self._grace(host) - now)

    async def _call(
        self, request: Request, stats: ListingStats | None, auth: Auth | None
    ) -> Response:
        """`call` within its deadline, the error that leaves redacted."""
        policy = self.retry
        signer = auth or request.signer or self.auth
        state: _CallState | None = None
        try:
            async with asyncio.timeout(policy.timeout) as timeout:
                state = _CallState(_Deadline(timeout))
                return await self._attempts(request, signer, state, stats)
        except _AlreadyRetried as failed:
            raise redact_error(failed.error, self.auth.secrets()) from None
        except TimeoutError as exc:
            if isinstance(exc, VBSError):
                raise redact_error(exc, self.auth.secrets()) from None
            if state is None:
                raise
            raise redact_error(self._deadline_error(request, state), self.auth.secrets()) from None
        except VBSError as error:
            raise redact_error(error, self.auth.secrets()) from None

    def _deadline_error(self, request: Request, state: _CallState) -> VBSError:
        """What a call whose deadline passed raises, with what its deadline went to."""
        timeout = self.retry.timeout
        deadline = state.deadline
        spent = deadline.spent()
        queue = deadline.expired_queued
        if queue is not None:
            if state.throttled is None and not (deadline.wire or deadline.backoff):
                # Never sent: the whole deadline went by in the queue, nothing through.
                why = (
                    "the gateway refused every request of the client while this call waited "
                    "for its turn"
                )
            else:
                waiting = "its retry" if state.throttled is not None else "it"
                why = (
                    f"{waiting} queued while the gateway let none of the client's requests "
                    f"through: {spent}"
                )
            if state.throttled is not None:
                return self._still_throttled(state.throttled, why)
            return RateLimitedError(
                f"{why}, until the call's deadline of {timeout}s {_DEADLINE_HINT}",
                status=HTTPStatus.TOO_MANY_REQUESTS,
                project_id=request.project_id or None,
                offset=request.offset,
            )
        if state.throttled is not None and not state.on_the_wire:
            return self._still_throttled(state.throttled, spent)
        # Nothing but the wire: the words say it all.
        what = ""
        if deadline.backoff or deadline.queued or state.throttles:
            unanswered = ", its request in flight unanswered" if state.on_the_wire else ""
            what = f" ({spent}, {state.throttles} refused with 429{unanswered})"
        return RequestTimeoutError(
            f"the call did not finish within its deadline of {timeout}s, retries "
            f"included{what} {_DEADLINE_HINT}",
            project_id=request.project_id,
            offset=request.offset,
            answered=state.throttles > 0,
        )

    def _still_throttled(self, refusal: APIError, why: str) -> APIError:
        """`refusal`, told that the call's deadline ends its waiting, and what it went to."""
        refusal.message += (
            f" ({why}) (still throttled at the call's deadline of {self.retry.timeout}s: "
            "RetryPolicy.timeout; --deadline on the command)"
        )
        return refusal

    async def _attempts(
        self, request: Request, auth: Auth, state: _CallState, stats: ListingStats | None
    ) -> Response:
        """Attempt `request` until it succeeds, or fails in a way not worth retrying."""
        while True:
            try:
                return await self._attempt(request, auth, state, stats)
            except NotFoundError as error:
                if request.method == "DELETE" and state.outcome_unknown:
                    # An earlier attempt may have deleted it, its answer lost:
                    # the 404 proves the state asked for.
                    return Response(HTTPStatus.NO_CONTENT, _error_headers(error), b"")
                raise
            except VBSError as error:
                state.throttled = None  # its last answer (or failure) is this one
                wait = self._retry_wait(error, request, state.attempt)
                if wait is None:
                    raise
                state.outcome_unknown |= _may_have_acted(error)
                _log_retry(request, error, state.attempt, wait)
                state.retrying = True  # counted once sent: a call stopped in its back-off
                # counted retries it never sent (32 for 12, an outsider's Ctrl-C)
                with state.deadline.measuring("backoff"):
                    await asyncio.sleep(wait)
                state.attempt += 1

    def _retry_wait(self, error: VBSError, request: Request, attempt: int) -> float | None:
        """Seconds to wait before trying `request` again after `error`, or None to give up."""
        policy = self.retry
        if (
            attempt >= policy.attempts
            or not stamina.is_active()
            or not is_transient(error, request)
            or not self.budget.spend(error)
        ):
            return None
        return policy.backoff_after(attempt, getattr(error, "retry_after", None))

    async def _attempt(
        self, request: Request, auth: Auth, state: _CallState, stats: ListingStats | None
    ) -> Response:
        """One attempt: authenticate, send under the limits, wait out throttling, check."""
        # Calls made for this one (a token, a catalog) run under their own
        # deadline: this one's pauses meanwhile, so that theirs decides.
        try:
            with state.deadline.paused():
                url = URL(await self._endpoint_for(request) + request.target, encoded=True)
        except _FAILURES_OF_CALLS_ON_OUR_BEHALF as error:
            raise _AlreadyRetried(error) from None
        refreshed = False
        while True:
            try:
                with state.deadline.paused():
                    credentials = (
                        await auth.headers(request, url, self.call) if request.authenticate else {}
                    )
            except _FAILURES_OF_CALLS_ON_OUR_BEHALF as error:
                raise _AlreadyRetried(error) from None
            ticket, response = await self._exchange(request, url, credentials, state, stats)
            host = _route(url, request)[0]
            if 200 <= response.status < 300:  # noqa: PLR2004
                self._answered(host, state.sent, throttled=False)
                self.limiter.adaptive.succeeded(ticket)
                self.budget.refund()
                return response
            # Masked at once, not only as it leaves the call: its code and message go
            # into log lines first (a 429 whose code echoed the token, shown by -v).
            refusal = redact_error(
                api_error(response, project_id=request.project_id or None, offset=request.offset),
                (*self.auth.secrets(), *sent_secrets(credentials)),
            )
            throttling = is_throttling(refusal.status, refusal.code)
            self._answered(host, state.sent, throttled=throttling)
            state.throttled = None  # its last answer is this one
            if throttling:
                # Flow control, not failure: the gateway did not act on it.
                self._learn(refusal, url, request, ticket)
                state.throttled = refusal
                if stats is not None:
                    stats.throttled += 1
                    self.listings.throttled += 1
                wait = self._throttle_wait(refusal, state)
                remaining = state.deadline.remaining()
                self._check_quota_reopens(refusal, url, request, state)
                if wait >= remaining:
                    # No use waiting: the deadline comes first.
                    raise _GiveUp(
                        self._still_throttled(
                            refusal,
                            f"its next wait, {wait:.2f} s, would pass the deadline: "
                            f"{remaining:.2f} s left after {state.deadline.spent()}",
                        )
                    )
                with state.deadline.measuring("backoff"):
                    await asyncio.sleep(wait)
                continue
            self.limiter.adaptive.succeeded(ticket)
            if (
                response.status == HTTPStatus.UNAUTHORIZED
                and request.authenticate
                and not refreshed
                and auth.invalidate(request.project_id, credentials)
            ):
                refreshed = True
                continue
            raise refusal

    async def _endpoint_for(self, request: Request) -> str:
        """Where `request` goes: its own endpoint (IAM), the session's, or the catalog's."""
        if request.endpoint is not None:
            return request.endpoint
        if self.endpoint is not None:
            return self.endpoint
        service = self.service
        catalog = await self.auth.catalog(request.project_id, self.call)
        found = catalog_endpoint(catalog, service.catalog_types, self.region)
        if found is None and self.region is not None:
            # A project of another region: its token's catalog names its own region's
            # endpoint only, which serves it (the configured region's would not).
            found = catalog_endpoint(catalog, service.catalog_types, None)
        if found is not None:
            return found
        if self.fallback_endpoint is not None:
            return self.fallback_endpoint
        region = f" in region {self.region}" if self.region else ""
        types = " or ".join(service.catalog_types)
        raise ConfigurationError(
            f"the token's service catalog names no {service.name} endpoint (type {types})"
            f"{region}; set {service.endpoint_variable}",
            project_id=request.project_id,
        )

    def _learn(self, refusal: APIError, url: URL, request: Request, ticket: Ticket) -> None:
        """What a throttling answer teaches: the quota it names, else the learned rate."""
        quota = parse_quota(refusal.message)
        host, api = _route(url, request)
        if quota is not None and self.limiter.doubts(host, api, quota):
            logger.info(
                "the gateway at %s refuses this client much more than the quota it names"
                " would (%s; others may spend it, another limit may hold, or its 429s come at"
                " random); learning its rate from its 429s instead",
                host,
                quota,
                extra={"vbs_quota": str(quota)},
            )
        if quota is None or not self.limiter.believes(host, api, quota):
            self.limiter.adaptive.throttled(ticket)
            return
        self.limiter.adaptive.refused_under_quota(ticket)
        if self.limiter.announced(host, api, quota, ticket.started, request.project_id):
            logger.info(
                "the gateway at %s announced its quota: %s (%s); pacing under it",
                host,
                quota,
                f"policy {quota.scope}" if quota.scope else "no policy named",
                extra={"vbs_quota": str(quota)},
            )

    def _check_quota_reopens(
        self, refusal: APIError, url: URL, request: Request, state: _CallState
    ) -> None:
        """Raise `refusal` at once if an announced quota lets nothing through before the deadline.

        A quota per hour or day refused until its window rolls over on the
        calendar: waiting for it would only end at the deadline. The deadline
        of a call queued runs only after its grace (`_grace_left`): a minute's
        window is waited out under a deadline of a minute.
        """
        host, api = _route(url, request)
        # With requests of its burst still out, only a window that reopens a period past
        # what it can wait: their answers may show the gateway serving this client, and
        # give its calls' time back. (Processes sharing a minute's quota: the refusals
        # at a rollover, answered first, failed at once, where successes came after.)
        closed = self._closed_past_deadline(
            host, api, request, state, others_out=bool(self._out.get(host))
        )
        if closed is not None:
            refusal.message += f" ({closed})"
            raise _GiveUp(refusal)

    def _check_quota_open(self, host: str, api: str, request: Request, state: _CallState) -> None:
        """Raise at once, before queueing, if an announced quota opens only past the deadline.

        Calls that queued behind a quota per hour or day the gateway said was
        spent each waited out their deadline (and its grace) in the queue: a
        crawl of 100 projects behind 20 an hour failed 16 of them a minute.
        """
        closed = self._closed_past_deadline(host, api, request, state)
        if closed is not None:
            raise _GiveUp(
                RateLimitedError(
                    closed,
                    status=HTTPStatus.TOO_MANY_REQUESTS,
                    project_id=request.project_id or None,
                    offset=request.offset,
                    request_sent=False,
                )
            )

    def _closed_past_deadline(
        self,
        host: str,
        api: str,
        request: Request,
        state: _CallState,
        *,
        others_out: bool = False,
    ) -> str | None:
        """Why a request waiting now for its turn would wait past its call's deadline, if so.

        An announced quota whose window reopens only after the deadline has run
        out, counting the grace before a queued call's deadline runs (and a
        period more, with `others_out`: other requests to `host` on the wire,
        if the period is within a deadline).
        """
        quotas = self.limiter.quotas_for(host, api, request.project_id)
        if not quotas:
            return None  # every request asks: most are under no quota named
        now = asyncio.get_running_loop().time()
        remaining = state.deadline.remaining()
        waitable = remaining + self._grace_left(host)
        for pacer in quotas:
            opens = pacer.reopens() - now  # a probe of where it rolls over is no opening
            # A period more only for a window that reopens within a deadline (a minute's,
            # as the grace): an hour's kept refused calls waiting their deadline in the
            # queue, a refused request not asked again (15 of 16 failed after 2 minutes).
            more = self._window_more(pacer.quota.period) if others_out else 0.0
            if opens >= waitable + more:
                when = datetime.fromtimestamp(time.time() + opens, UTC)
                # An hour's or a day's rollover is not looked for: the calendar's is assumed
                # (an outsider's gateway rolled its hour over 25 s on; the words said 47 min).
                calendar = " (its window taken to roll over on the calendar)"
                assumed = calendar if pacer.calendar_assumed else ""
                return (
                    f"the gateway's quota ({pacer.quota}) lets no request through before "
                    f"{when:%Y-%m-%d %H:%M:%S} UTC{assumed}, in {opens:.1f} s: past the "
                    f"call's deadline of {self.retry.timeout}s (RetryPolicy.timeout; "
                    f"--deadline on the command), which has {remaining:.2f} s left after "
                    f"{state.deadline.spent()}"
                )
        return None

    def _pace_text(self) -> str:
        """The pace requests start at, for a log line: learned, or under a quota named."""
        rate = self.limiter.adaptive.rate
        if rate != math.inf:
            return f"at {rate:.1f}/s (learned)"
        named = ", ".join(str(quota) for _, quota in self.limiter.quotas)
        return f"under the quota named ({named})" if named else "unpaced"

    def _throttle_wait(self, refusal: APIError, state: _CallState) -> float:
        """Seconds a throttled request waits before it queues again for its turn."""
        state.throttles += 1
        # Consecutive 429s of one request back off exponentially, whatever the
        # learned rate: a gateway refusing everything (or a controller that is
        # wrong) is never hammered. `Retry-After` only lengthens the wait.
        wait = self.retry.throttle_backoff(state.throttles, refusal.retry_after)
        # pragma: no mutate start (a debug log line: its words are no behaviour)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "throttled (%s) for project %s offset=%s, waiting %.3fs, then %s",
                refusal.code or refusal.status,
                refusal.project_id,
                refusal.offset,
                wait,
                self._pace_text(),
                extra={"vbs_throttle_wait": wait},
            )
        # pragma: no mutate end
        return wait

    async def _exchange(
        self,
        request: Request,
        url: URL,
        credentials: dict[str, str],
        state: _CallState,
        stats: ListingStats | None,
    ) -> tuple[Ticket, Response]:
        """Send once through the transport, under the limits; (its start, answer)."""
        headers = {"Accept": "application/json", **credentials}
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        host, api = _route(url, request)
        # A listing's next page, or a request the gateway refused, is work under
        # way: paced first, so that a large project's sequential pages are not
        # a tail of single requests at the crawl's end.
        urgent = bool(request.offset) or state.throttles > 0

        def queued() -> contextlib.AbstractContextManager[None]:
            return self._queued(state, host)

        if not state.throttles:  # a refused request was checked at its refusal
            self._check_quota_open(host, api, request, state)
        async with self.limiter.slot(
            host, api, project=request.project_id, queued=queued, urgent=urgent
        ) as ticket:
            if stats is not None:
                stats.requests += 1
                self.listings.requests += 1
                stats.retries += state.retrying
                self.listings.retries += state.retrying
            state.retrying = False
            state.sent = self._sent[host] = self._sent.get(host, 0) + 1
            began = time.perf_counter()
            state.on_the_wire = True
            self._out[host] = self._out.get(host, 0) + 1
            try:
                with state.deadline.measuring("wire"):
                    response = await self.transport.send(request, url, headers)
            except VBSError as error:
                _log(request, state.attempt, began, type(error).__name__)
                raise
            finally:
                self._out[host] -= 1
                if not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    state.on_the_wire = False
        _log(request, state.attempt, began, response.status)
        return ticket, response


# Debug log lines only (their words are no behaviour): left out of mutation.
def _log_retry(
    request: Request, error: VBSError, attempt: int, wait: float
) -> None:  # pragma: no mutate block
    if logger.isEnabledFor(logging.DEBUG):
        outcome = error.status if isinstance(error, APIError) else type(error).__name__
        logger.debug(
            "retry %d of %s %s for project %s offset=%s after %s, waiting %.3fs",
            attempt,
            request.method,
            request.path,
            request.project_id,
            request.offset,
            outcome,
            wait,
            extra={"vbs_retry_wait": wait},
        )


def _log(
    request: Request, attempt: int, began: float, outcome: object
) -> None:  # pragma: no mutate block
    if logger.isEnabledFor(logging.DEBUG):
        # The path only: IDs, never a credential (none travels in a URL).
        logger.debug(
            "%s %s offset=%s -> %s in %.3fs (attempt %d)",
            request.method,
            request.path,
            request.offset,
            outcome,
            time.perf_counter() - began,
            attempt,
        )


_ID_SEGMENT: Final = re.compile(r"[0-9a-fA-F-]{16,}|[0-9]+|[A-Za-z]{2}-[A-Za-z0-9-]+_[A-Za-z0-9]+")


def _route(url: URL, request: Request) -> tuple[str, str]:
    """(host, API) of a request, for quotas a gateway keeps per host or per API."""
    host = f"{url.host}:{url.port}" if url.port else str(url.host)
    segments = (
        "{}" if _ID_SEGMENT.fullmatch(segment) else segment for segment in request.path.split("/")
    )
    return host, f"{request.method} {'/'.join(segments)}"

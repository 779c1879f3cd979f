"""Models of API gateways' throttling, to rehearse a throttled crawl against.

Open Telekom Cloud's gateway counts requests per policy (a user, an app, an
IP, an API) and answers 429 in its own error form, quickly and usually
without `Retry-After`, when a request finds the quota spent; its message
names the policy (`limit:50,time:1 second`). Gateways written elsewhere
throttle in other ways; each model here is one of them, and any model can
announce its quota or not and send any form of `Retry-After`:

- `GatewayQuota` (alias `TokenBucket`): `rate` tokens a second, `burst` saved up;
- `FixedWindow`: `limit` requests per `period` seconds, windows on the calendar;
- `SlidingWindow`: at most `limit` requests admitted in any `period` seconds;
- `PenaltyBox`: another model, and after any refusal everything refused for a while;
- `InFlightCap`: at most `limit` requests being handled at once;
- `Sporadic`: a share of requests refused at random (an overloaded backend);
- `Schedule`: models that take over from each other as time passes (a quota change);
- `AllOf`: a request must pass every model.

`parse_gateway` reads them from text, as `vbs-async emulator --quota` takes them.
Every model takes the time as an argument (`now`, a monotonic clock), so the
same model serves the emulator and a simulation on a fake clock.
"""

from __future__ import annotations

import abc
import collections
import math
import random
import time
from email.utils import formatdate
from typing import Final

import orjson

THROTTLING_CODE: Final = "APIGW.0308"
RETRY_AFTER_FORMS: Final = ("none", "zero", "past", "now", "huge", "garbage")
"""How a model may say `Retry-After`: not at all, `0`, a date in the past, the
current second as a date, an hour, or text that means nothing. An integer is
sent as that many seconds."""


def _now(now: float | None) -> float:
    return time.monotonic() if now is None else now


class GatewayModel(abc.ABC):
    """One way a gateway throttles: admits a request or refuses it with 429.

    Args:
        announce: Name the quota in the 429's message (`limit:N,time:K unit`).
        retry_after: A `RETRY_AFTER_FORMS` name, or seconds to send.
        scope: The policy the message names (`user`, `app`, `ip`, `api`).

    Attributes:
        admitted: Requests let through.
        throttled: Requests refused with 429.
    """

    def __init__(
        self, *, announce: bool = True, retry_after: str | int | None = None, scope: str = "user"
    ) -> None:
        if isinstance(retry_after, str) and retry_after not in RETRY_AFTER_FORMS:
            raise ValueError(f"retry_after must be one of {RETRY_AFTER_FORMS} or seconds")
        self.announce = announce
        self.retry_after = retry_after
        self.scope = scope
        self.admitted = 0
        self.throttled = 0

    def admit(self, now: float | None = None) -> bool:
        """Whether a request arriving `now` goes through (counted either way)."""
        admitted = self._admit(_now(now))
        if admitted:
            self.admitted += 1
        else:
            self.throttled += 1
        return admitted

    @abc.abstractmethod
    def _admit(self, now: float) -> bool: ...

    def release(self, now: float | None = None) -> None:  # noqa: B027 - most count no in-flight
        """A request this model admitted has been answered."""

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        """The quota in force, as the gateway would name it: (limit, `1 second`)."""
        del now
        return None

    def refusal(self, request_id: str, now: float | None = None) -> tuple[bytes, dict[str, str]]:
        """The 429 body and headers, in the gateway's form."""
        named = self.quota(now) if self.announce else None
        message = "The throttling threshold has been reached"
        if named is not None:
            limit, period = named
            message += f": policy {self.scope} over ratelimit,limit:{limit},time:{period}"
        body = orjson.dumps(
            {"error_msg": message, "error_code": THROTTLING_CODE, "request_id": request_id}
        )
        headers = {"Content-Type": "application/json"}
        value = _retry_after(self.retry_after)
        if value is not None:
            headers["Retry-After"] = value
        return body, headers


def _retry_after(form: str | int | None) -> str | None:
    if form is None or form == "none":
        return None
    if isinstance(form, int):
        return str(form)
    wall = time.time()
    return {
        "zero": "0",
        "past": formatdate(wall - 3600, usegmt=True),
        "now": formatdate(wall, usegmt=True),
        "huge": "3600",
        "garbage": "soon, maybe",
    }[form]


def _period_text(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} second"


class GatewayQuota(GatewayModel):
    """A token bucket of requests: `rate` per second, `burst` at most at once.

    Args:
        rate: Requests per second the gateway lets through in the long run.
        burst: Requests it lets through at once after a quiet spell (default: `rate`).
        retry_after: Seconds (or a `RETRY_AFTER_FORMS` name) to send as
            `Retry-After` with each 429, or None to send none (the gateway's
            usual behaviour).
        announce: Name the quota in the 429's message (as `limit:RATE,time:1 second`).
        scope: The policy the message names.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        retry_after: str | int | None = None,
        announce: bool = True,
        scope: str = "user",
    ) -> None:
        super().__init__(announce=announce, retry_after=retry_after, scope=scope)
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"quota rate must be > 0, got {rate}")
        burst = rate if burst is None else burst
        if not burst >= 1 or math.isinf(burst):
            raise ValueError(f"quota burst must be >= 1, got {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._updated: float | None = None

    def _admit(self, now: float) -> bool:
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        """`rate` per second, as the gateway names it."""
        del now
        return max(1, round(self.rate)), "1 second"


TokenBucket = GatewayQuota


class _Window(GatewayModel):
    """At most `limit` requests per `period` seconds, counted as the subclass says."""

    _kind = "a window"

    def __init__(
        self,
        limit: int,
        period: float = 1.0,
        *,
        retry_after: str | int | None = None,
        announce: bool = True,
        scope: str = "user",
    ) -> None:
        super().__init__(announce=announce, retry_after=retry_after, scope=scope)
        if limit < 1 or not period > 0:
            raise ValueError(f"{self._kind} needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = float(period)
        self._start_counting()

    @abc.abstractmethod
    def _start_counting(self) -> None:
        """Set up what the window counts with."""

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        """`limit` per `period`, as the gateway names it."""
        del now
        return self.limit, _period_text(self.period)


class FixedWindow(_Window):
    """At most `limit` requests per window of `period` seconds, windows on the calendar.

    A window may be spent in a burst; then everything is refused until it
    rolls over (at a multiple of `period` of wall-clock time).
    """

    _kind = "a fixed window"

    def _start_counting(self) -> None:
        self._wall_offset = time.time() - time.monotonic()
        self._window = -1
        self._count = 0

    def _admit(self, now: float) -> bool:
        window = math.floor((now + self._wall_offset) / self.period)
        if window != self._window:
            self._window, self._count = window, 0
        if self._count < self.limit:
            self._count += 1
            return True
        return False


class SlidingWindow(_Window):
    """At most `limit` requests admitted in any `period` seconds: a sliding window.

    Unlike `FixedWindow`, nothing rolls over on the calendar: a request is
    admitted once fewer than `limit` were admitted in the `period` before it
    arrived (refusals count nothing).
    """

    _kind = "a sliding window"

    def _start_counting(self) -> None:
        self._admitted: collections.deque[float] = collections.deque()

    def _admit(self, now: float) -> bool:
        admitted = self._admitted
        while admitted and admitted[0] <= now - self.period:
            admitted.popleft()
        if len(admitted) < self.limit:
            admitted.append(now)
            return True
        return False


class PenaltyBox(GatewayModel):
    """`inner`'s quota, and after any refusal everything is refused for `penalty` seconds.

    It names the quota and sends `Retry-After` as `inner` does unless told otherwise, as
    `Schedule` and `AllOf` do (announcing by default around a quiet bucket, it was no
    rehearsal of an unknown quota: the suite's own two tests of one were announced).
    """

    def __init__(
        self,
        inner: GatewayModel,
        penalty: float = 2.0,
        *,
        retry_after: str | int | None = None,
        announce: bool | None = None,
    ) -> None:
        super().__init__(
            announce=inner.announce if announce is None else announce,
            retry_after=inner.retry_after if retry_after is None else retry_after,
            scope=inner.scope,
        )
        self.inner = inner
        self.penalty = penalty
        self._until = -math.inf

    def _admit(self, now: float) -> bool:
        if now < self._until:
            return False
        if self.inner.admit(now):
            return True
        self._until = now + self.penalty
        return False

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        """The inner model's quota."""
        return self.inner.quota(now)


class InFlightCap(GatewayModel):
    """At most `limit` requests being handled at once (the emulator releases each)."""

    def __init__(
        self, limit: int, *, retry_after: str | int | None = None, announce: bool = False
    ) -> None:
        super().__init__(announce=announce, retry_after=retry_after)
        if limit < 1:
            raise ValueError("an in-flight cap needs limit >= 1")
        self.limit = limit
        self.in_flight = 0

    def _admit(self, now: float) -> bool:
        del now
        if self.in_flight < self.limit:
            self.in_flight += 1
            return True
        return False

    def release(self, now: float | None = None) -> None:
        """One admitted request is answered."""
        del now
        self.in_flight = max(0, self.in_flight - 1)


class Sporadic(GatewayModel):
    """A `share` of requests refused at random, whatever the rate (an overloaded backend).

    Announcing, it names `limit` per second (a quota far above what it refuses at).
    """

    def __init__(
        self,
        share: float,
        *,
        seed: int = 0,
        limit: int = 1000,
        retry_after: str | int | None = None,
        announce: bool = False,
    ) -> None:
        super().__init__(announce=announce, retry_after=retry_after)
        if not 0 <= share <= 1:
            raise ValueError("the share of 429s must be between 0 and 1")
        self.share = share
        self.limit = limit
        self._random = random.Random(f"sporadic-{seed}")  # noqa: S311 - test refusals

    def _admit(self, now: float) -> bool:
        del now
        return self._random.random() >= self.share

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        """The quota it says it has."""
        del now
        return self.limit, "1 second"


class Schedule(GatewayModel):
    """Models taking over from each other: `(from_second, model)`, from the first request on."""

    def __init__(self, phases: list[tuple[float, GatewayModel]]) -> None:
        if not phases or phases[0][0] != 0:
            raise ValueError("a schedule starts with a model from second 0")
        first = phases[0][1]
        super().__init__(announce=first.announce, retry_after=first.retry_after, scope=first.scope)
        self.phases = sorted(phases, key=lambda phase: phase[0])
        self._began: float | None = None
        self._last: GatewayModel = first

    def current(self, now: float | None = None) -> GatewayModel:
        """The model in force at `now`."""
        now = _now(now)
        if self._began is None:
            self._began = now
        elapsed = now - self._began
        model = self.phases[0][1]
        for start, phase in self.phases:
            if elapsed >= start:
                model = phase
        return model

    def _admit(self, now: float) -> bool:
        self._last = self.current(now)
        return self._last.admit(now)

    def release(self, now: float | None = None) -> None:
        """Released to the model that admitted it."""
        self._last.release(now)

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        """The quota of the model in force."""
        return self.current(now).quota(now)

    def refusal(self, request_id: str, now: float | None = None) -> tuple[bytes, dict[str, str]]:
        """As the model in force refuses."""
        return self.current(now).refusal(request_id, now)


class AllOf(GatewayModel):
    """Every model must admit a request (a quota and sporadic refusals, say)."""

    def __init__(self, models: list[GatewayModel]) -> None:
        if not models:
            raise ValueError("AllOf needs at least one model")
        super().__init__(
            announce=models[0].announce, retry_after=models[0].retry_after, scope=models[0].scope
        )
        self.models = models
        self._refused_by: GatewayModel = models[0]
        self._admitted_by: list[GatewayModel] = []

    def _admit(self, now: float) -> bool:
        passed: list[GatewayModel] = []
        for model in self.models:
            if not model.admit(now):
                for admitted in passed:
                    admitted.release(now)
                self._refused_by = model
                return False
            passed.append(model)
        return True

    def release(self, now: float | None = None) -> None:
        """Released to every model."""
        for model in self.models:
            model.release(now)

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        """The quota of the model that refused last."""
        return self._refused_by.quota(now)

    def refusal(self, request_id: str, now: float | None = None) -> tuple[bytes, dict[str, str]]:
        """As the model that refused."""
        return self._refused_by.refusal(request_id, now)


def parse_gateway(spec: str) -> GatewayModel:
    """A gateway model from text, as `vbs-async emulator --quota` takes it.

    Forms (options after the model, separated by commas):

    - `RATE[:BURST]` or `bucket:RATE[:BURST]`: a token bucket;
    - `window:LIMIT/SECONDS`: a fixed window on the calendar;
    - `sliding:LIMIT/SECONDS`: a sliding window (LIMIT in any SECONDS);
    - `inflight:LIMIT`: a cap on requests in flight;
    - `random:SHARE`: 429 on a share of requests at random;
    - `penalty:SECONDS+MODEL`: a penalty box around another model;
    - `A&B`: both models; `0=A;5=B;10=A`: models from the given seconds on;
    - options: `announce=on|off`, `retry-after=none|zero|past|now|huge|garbage|SECONDS`.

    Raises:
        ValueError: The text is none of these.
    """
    model_text, *options = [part.strip() for part in spec.split(",")]
    settings: dict[str, str] = {}
    for option in options:
        name, equals, value = option.partition("=")
        if not equals or name not in {"announce", "retry-after"}:
            raise ValueError(f"unknown gateway option {option!r}")
        settings[name] = value
    model = _parse_model(model_text)
    if "announce" in settings:
        if settings["announce"] not in {"on", "off"}:
            raise ValueError("announce must be on or off")
        _set(model, "announce", settings["announce"] == "on")
    if "retry-after" in settings:
        value = settings["retry-after"]
        retry_after: str | int = int(value) if value.isdigit() else value
        if isinstance(retry_after, str) and retry_after not in RETRY_AFTER_FORMS:
            raise ValueError(f"retry-after must be one of {RETRY_AFTER_FORMS} or seconds")
        _set(model, "retry_after", retry_after)
    return model


def _set(model: GatewayModel, name: str, value: object) -> None:
    setattr(model, name, value)
    for inner in _inner_models(model):
        _set(inner, name, value)


def _inner_models(model: GatewayModel) -> list[GatewayModel]:
    if isinstance(model, Schedule):
        return [phase for _, phase in model.phases]
    if isinstance(model, AllOf):
        return list(model.models)
    if isinstance(model, PenaltyBox):
        return [model.inner]
    return []


_FORMS: Final = (
    "RATE[:BURST], bucket:RATE[:BURST], window:LIMIT/SECONDS, sliding:LIMIT/SECONDS, "
    "inflight:LIMIT, random:SHARE, "
    "penalty:SECONDS+MODEL, A&B, 0=A;5=B"
)


def _parse_model(text: str) -> GatewayModel:
    if ";" in text:
        phases = []
        for part in text.split(";"):
            start, equals, inner = part.partition("=")
            if not equals:
                raise ValueError(f"a schedule's phase is SECONDS=MODEL, got {part!r}")
            phases.append((float(start), _parse_model(inner)))
        return Schedule(phases)
    if "&" in text:
        return AllOf([_parse_model(part) for part in text.split("&")])
    kind, _, rest = text.partition(":")
    try:
        return _SIMPLE_MODELS.get(kind, _bucket)(rest if kind in _SIMPLE_MODELS else text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a gateway model: {_FORMS} ({exc})") from None


def _bucket(text: str) -> GatewayModel:
    rate_text, _, burst_text = text.removeprefix("bucket:").partition(":")
    return GatewayQuota(float(rate_text), float(burst_text) if burst_text else None)


def _window(text: str) -> GatewayModel:
    limit, _, seconds = text.partition("/")
    return FixedWindow(int(limit), float(seconds.rstrip("s") or 1))


def _sliding(text: str) -> GatewayModel:
    limit, _, seconds = text.partition("/")
    return SlidingWindow(int(limit), float(seconds.rstrip("s") or 1))


def _penalty(text: str) -> GatewayModel:
    seconds, plus, inner = text.partition("+")
    if not plus:
        raise ValueError("penalty:SECONDS+MODEL")
    return PenaltyBox(_parse_model(inner), float(seconds.rstrip("s")))


_SIMPLE_MODELS: Final = {
    "window": _window,
    "sliding": _sliding,
    "inflight": lambda text: InFlightCap(int(text)),
    "random": lambda text: Sporadic(float(text)),
    "penalty": _penalty,
}

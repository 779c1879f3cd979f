"""The API gateway's throttling: a request quota shared by every call of an account.

Open Telekom Cloud's gateway counts requests per account and answers 429 in
its own error form, quickly and usually without `Retry-After`, when a
request finds the quota spent. `GatewayQuota` is that quota as a token
bucket: `rate` tokens a second, at most `burst` saved up.
"""

from __future__ import annotations

import time
from typing import Final

import orjson

THROTTLING_CODE: Final = "APIGW.0308"


class GatewayQuota:
    """A token bucket of requests: `rate` per second, `burst` at most at once.

    Args:
        rate: Requests per second the gateway lets through in the long run.
        burst: Requests it lets through at once after a quiet spell (default: `rate`).
        retry_after: Seconds to send as `Retry-After` with each 429, or None
            to send none (the gateway's usual behaviour).

    Attributes:
        admitted: Requests let through.
        throttled: Requests refused with 429.
    """

    def __init__(
        self, rate: float, burst: float | None = None, *, retry_after: int | None = None
    ) -> None:
        if not rate > 0:
            raise ValueError(f"quota rate must be > 0, got {rate}")
        burst = rate if burst is None else burst
        if not burst >= 1:
            raise ValueError(f"quota burst must be >= 1, got {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.retry_after = retry_after
        self.admitted = 0
        self.throttled = 0
        self._tokens = self.burst
        self._updated = time.monotonic()

    def admit(self) -> bool:
        """Take a token for one request; False when the quota is spent."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            self.admitted += 1
            return True
        self.throttled += 1
        return False

    def refusal(self, request_id: str) -> tuple[bytes, dict[str, str]]:
        """The 429 body and headers, in the gateway's form."""
        limit = f"{self.rate:g}"
        body = orjson.dumps(
            {
                "error_msg": "The throttling threshold has been reached: "
                f"policy user over ratelimit,limit:{limit},time:1 second",
                "error_code": THROTTLING_CODE,
                "request_id": request_id,
            }
        )
        headers = {"Content-Type": "application/json"}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return body, headers

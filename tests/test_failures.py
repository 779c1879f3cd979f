"""When the command stops a crawl early (`cli/_failures`): the decisions, on plain values."""

from __future__ import annotations

import pytest

from vbs_async import (
    AgencyAuth,
    AKSKAuth,
    AuthenticationError,
    PasswordAuth,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TokenAuth,
    TransportError,
)
from vbs_async.cli._failures import (
    CREDENTIALS_IN_A_ROW,
    CrawlStoppedError,
    FailurePolicy,
    what_to_check,
)

ENDPOINT = "https://vbs.eu-de.example"


def policy(max_failures: int | None = None, window: int = 3) -> FailurePolicy:
    return FailurePolicy(
        TokenAuth("t" * 20), ENDPOINT, max_failures=max_failures, unreachable_window=window
    )


def refused(*, credentials_refused: bool | None = None) -> AuthenticationError:
    return AuthenticationError(
        "HTTP 401: bad token", status=401, credentials_refused=credentials_refused
    )


def forbidden() -> PermissionDeniedError:
    return PermissionDeniedError("HTTP 403: no", status=403)


def broken() -> ServerError:
    return ServerError("HTTP 500: oops", status=500)


def unreachable() -> TransportError:
    return TransportError("could not connect", request_sent=False)


def test_a_401_before_any_success_stops_at_once_naming_what_to_check():
    with pytest.raises(CrawlStoppedError) as caught:
        policy().failed(refused())
    assert str(caught.value).startswith("credentials refused (HTTP 401: ")
    assert str(caught.value).endswith(
        "; check the token (OS_AUTH_TOKEN / OS_TOKEN): is it valid and scoped to these projects?"
    )


def test_a_401_after_a_success_counts_toward_five_in_a_row():
    watcher = policy()
    watcher.succeeded()
    for _ in range(CREDENTIALS_IN_A_ROW - 1):
        watcher.failed(refused())
    with pytest.raises(CrawlStoppedError, match="credentials refused"):
        watcher.failed(refused())


def test_credentials_refused_stop_even_after_successes_and_one_project_s_refusal_never():
    watcher = policy()
    watcher.succeeded()
    with pytest.raises(CrawlStoppedError, match="credentials refused"):
        watcher.failed(refused(credentials_refused=True))
    alone = policy()
    for _ in range(2 * CREDENTIALS_IN_A_ROW):
        alone.failed(refused(credentials_refused=False))  # that project's, not the user's


def test_five_403s_in_a_row_stop_four_do_not_and_anything_else_resets_the_count():
    watcher = policy()
    for _ in range(3):
        for _ in range(CREDENTIALS_IN_A_ROW - 1):
            watcher.failed(forbidden())
        watcher.failed(broken())
    watcher.succeeded()
    for _ in range(CREDENTIALS_IN_A_ROW - 1):
        watcher.failed(forbidden())
    watcher.succeeded()
    for _ in range(CREDENTIALS_IN_A_ROW - 1):
        watcher.failed(forbidden())
    with pytest.raises(CrawlStoppedError, match="credentials refused"):
        watcher.failed(forbidden())


def test_an_endpoint_that_never_answered_stops_at_once_one_that_stopped_after_the_window():
    with pytest.raises(CrawlStoppedError) as caught:
        policy().failed(unreachable())
    assert str(caught.value) == (
        f"the endpoint {ENDPOINT} does not answer: could not connect; check --endpoint "
        "(VBS_ENDPOINT) and the network, or raise --timeout for a slow one"
    )
    watcher = policy(window=3)
    watcher.succeeded()
    watcher.failed(unreachable())
    watcher.failed(unreachable())
    watcher.succeeded()  # an answer resets the window
    watcher.failed(unreachable())
    watcher.failed(broken())  # so does an answered failure
    watcher.failed(unreachable())
    watcher.failed(unreachable())
    with pytest.raises(CrawlStoppedError) as caught:
        watcher.failed(unreachable())
    assert str(caught.value) == (
        f"the endpoint {ENDPOINT} stopped answering: the last 3 projects failed without an "
        "answer (could not connect); check the endpoint and the network (proxy, firewall)"
    )


def test_a_deadline_run_out_behind_a_throttling_endpoint_is_not_an_endpoint_that_never_answered():
    # Every request answered 429, `--deadline 5`: the calls failed as throttled, then one
    # as cut at its deadline mid-request. It read "the endpoint ... does not answer: ...
    # check --endpoint ... and the network" (an outsider's gateway: 443 requests answered).
    watcher = policy(window=3)
    for _ in range(5):
        watcher.failed(RateLimitedError("HTTP 429: throttled", status=429))
    watcher.failed(RequestTimeoutError("no answer within the call's deadline"))
    # Nor is a call answered with 429s, then cut at its deadline with a request on the
    # wire (a gateway answering in 1 s): first, or ten in a row, not "does not answer",
    # not "stopped answering".
    slow = policy(window=3)
    for _ in range(10):
        slow.failed(RequestTimeoutError("deadline (5 refused with 429)", answered=True))
    # Nor does a call failed before it was sent (behind a quota) count as an answer.
    never = policy()
    never.failed(RateLimitedError("not sent: the quota", status=429, request_sent=False))
    with pytest.raises(CrawlStoppedError, match="does not answer"):
        never.failed(RequestTimeoutError("no answer within the call's deadline"))


def test_max_failures_counts_every_failed_project_once():
    watcher = policy(max_failures=3)
    watcher.failed(broken())
    watcher.succeeded()
    watcher.failed(broken())
    with pytest.raises(CrawlStoppedError, match=r"^3 projects failed \(--max-failures 3\)$"):
        watcher.failed(broken())
    unlimited = policy(max_failures=None, window=1000)
    for _ in range(100):
        unlimited.failed(broken())


def test_what_to_check_names_the_settings_of_each_auth_kind():
    password = PasswordAuth("https://iam.example/v3", "alice", "pw-0123456789", "domain")
    keys = AKSKAuth("AK1", "sk-0123456789abcdef")
    agency = AgencyAuth(password, agency_domain="other", agency_name="auditor")
    assert what_to_check(TokenAuth("t" * 20)) == (
        "the token (OS_AUTH_TOKEN / OS_TOKEN): is it valid and scoped to these projects?"
    )
    assert what_to_check(password) == (
        "the user name, password and domain (OS_USERNAME, OS_PASSWORD, "
        "OS_USER_DOMAIN_NAME, or the cloud's auth in clouds.yaml)"
    )
    assert what_to_check(keys) == (
        "the access key, secret key and security token (OS_ACCESS_KEY, OS_SECRET_KEY, "
        "OS_SECURITY_TOKEN), and this machine's clock"
    )
    assert what_to_check(agency) == (
        "the agency (agency_name, agency_domain_name) and the delegated user's credentials"
    )


def test_the_window_counts_from_zero_answers_cut_short_included():
    watcher = policy(window=2)
    watcher.failed(TransportError("the answer's body was cut short"))  # sent: not "never answered"
    with pytest.raises(CrawlStoppedError, match="the last 2 projects failed without an answer"):
        watcher.failed(TransportError("the answer's body was cut short"))

"""Bad arguments raise ValueError before any request reaches the wire."""

from __future__ import annotations

import pytest

from vbs_async import PasswordAuth, RetryPolicy, TokenAuth, VBSClient


@pytest.mark.parametrize(
    "keywords",
    [
        {"sort_key": "colour"},
        {"sort_dir": "sideways"},
        {"page_size": 0},
        {"page_size": -5},
        {"start_offset": -1},
        {"max_items": -1},
        {"end_check": "whenever"},
        {"prefetch": -1},
        {"share_to_me": "true"},
        {"volume_id": "../etc"},
        {"name": ""},
        {"verify": "yes"},
        {"volume_id": "."},
    ],
)
async def test_listing_arguments_are_checked_before_any_request(make_client, emulator, keywords):
    client = make_client(emulator)
    with pytest.raises(ValueError):  # noqa: PT011 - each message is checked in test_requests
        client.iter_sharings(emulator.project_ids[0], **keywords)
    with pytest.raises(ValueError):  # noqa: PT011
        await client.list_sharings(emulator.project_ids[0], **keywords)
    assert emulator.requests_received == 0


@pytest.mark.parametrize("project_id", ["", ".", "a/b", "a?b", "a#b", "50%", "a b", "..", "x\r\ny"])
async def test_every_call_refuses_a_project_id_that_is_not_a_plain_id(
    make_client, emulator, project_id
):
    client = make_client(emulator)
    calls = [
        lambda: client.list_sharings(project_id),
        lambda: client.count_sharings(project_id),
        lambda: client.get_sharing(project_id, "s1"),
        lambda: client.share_backup(project_id, "b1", ["p2"]),
        lambda: client.cancel_sharing(project_id, "s1"),
        lambda: client.cancel_backup_sharings(project_id, "b1"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="project_id"):
            await call()
    assert emulator.requests_received == 0


async def test_unknown_keyword_is_a_type_error(make_client, emulator):
    with pytest.raises(TypeError, match="colour"):
        make_client(emulator).iter_sharings(emulator.project_ids[0], colour="blue")


async def test_share_backup_needs_targets(make_client, emulator):
    with pytest.raises(ValueError, match="at least one"):
        await make_client(emulator).share_backup(emulator.project_ids[0], "b1", [])
    assert emulator.requests_received == 0


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("http://vbs.eu-de.otc.t-systems.com", "plain http"),
        ("http://10.0.0.1:8080", "plain http"),
        ("ftp://vbs.example", "https://host"),
        ("vbs.eu-de.otc.t-systems.com", "https://host"),
        ("https://vbs.example/v2", "scheme, host and port only"),
        ("https://vbs.example?x=1", "scheme, host and port only"),
        ("https://user:secret@vbs.example", "must not carry a user name"),
    ],
)
def test_endpoints_are_checked(endpoint, message):
    with pytest.raises(ValueError, match=message) as caught:
        VBSClient(endpoint, auth=TokenAuth("t"))
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:8080", "http://127.5.6.7", "http://localhost:1", "http://[::1]:8080"],
)
def test_plain_http_is_allowed_on_loopback(endpoint):
    assert VBSClient(endpoint, auth=TokenAuth("t")).endpoint == endpoint


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": -1.5}, "rate_limit"),
        ({"timeout": 0}, "timeout"),
        ({"auth": "token"}, "auth must be a vbs_async auth object"),
        ({"retry": {"attempts": 3}}, "retry must be a RetryPolicy"),
        ({"session": object()}, "session must be an aiohttp.ClientSession"),
        ({"retry_budget": 5}, "retry_budget must be a RetryBudget, got int"),
    ],
)
def test_client_settings_are_checked(keywords, message):
    keywords.setdefault("auth", TokenAuth("t"))
    with pytest.raises(ValueError, match=message):
        VBSClient("https://vbs.example", **keywords)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"attempts": 0}, "attempts"),
        ({"timeout": 0}, "timeout"),
        ({"wait_initial": -1}, "wait_initial"),
        ({"wait_max": -0.1}, "wait_max"),
        ({"wait_jitter": "1"}, "wait_jitter"),
    ],
)
def test_retry_policy_is_checked(keywords, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**keywords)


@pytest.mark.parametrize("token", ["", "a\r\nX-Evil: 1", None])
def test_token_must_be_a_header_safe_string(token):
    with pytest.raises(ValueError, match="token"):
        TokenAuth(token)


_NOT_FINITE = [float("inf"), float("nan")]


@pytest.mark.parametrize("value", _NOT_FINITE, ids=["inf", "nan"])
@pytest.mark.parametrize(
    ("build", "name"),
    [
        (
            lambda v: VBSClient("https://vbs.example", auth=TokenAuth("t"), rate_limit=v),
            "rate_limit",
        ),
        (lambda v: VBSClient("https://vbs.example", auth=TokenAuth("t"), timeout=v), "timeout"),
        (lambda v: RetryPolicy(timeout=v), "RetryPolicy.timeout"),
        (
            lambda v: PasswordAuth("https://iam.example", "user", "pw", "domain", refresh_margin=v),
            "refresh_margin",
        ),
    ],
    ids=["rate_limit", "timeout", "RetryPolicy.timeout", "refresh_margin"],
)
def test_infinite_or_nan_seconds_and_rates_are_refused(build, name, value):
    # An infinite timeout never fires and an infinite rate is no limit at all:
    # both are refused by name, like zero, before a client exists to send anything.
    with pytest.raises(ValueError, match=name):
        build(value)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1e19, r"^rate_limit must be at most 1000000 requests a second \(None for no cap\)"),
        (1e308, r"^rate_limit must be at most 1000000 requests a second \(None for no cap\)"),
        (1e-300, r"^rate_limit must be at least one request an hour \(1/3600\)"),
        (1 / 3601, r"^rate_limit must be at least one request an hour \(1/3600\)"),
    ],
)
def test_an_absurd_rate_limit_is_refused_by_name_not_overflowed_or_hung(value, words):
    # 1e19 overflowed a C size inside the limiter (OverflowError); 1e-300 sent one
    # request and then waited 1e300 seconds for the next.
    with pytest.raises(ValueError, match=words):
        VBSClient("https://vbs.example", auth=TokenAuth("t"), rate_limit=value)


@pytest.mark.parametrize("value", [1 / 3600, 0.01, 1e6])
def test_the_bounds_of_rate_limit_themselves_are_accepted(value):
    assert VBSClient("https://vbs.example", auth=TokenAuth("t"), rate_limit=value)


@pytest.mark.parametrize("name", ["wait_initial", "wait_max", "wait_jitter"])
def test_an_infinite_wait_is_refused_like_an_infinite_timeout(name):
    # wait_max=inf let a 429 wait past the call's deadline (5.8 s for timeout=4).
    with pytest.raises(ValueError, match=rf"^RetryPolicy.{name} must be finite"):
        RetryPolicy(**{name: float("inf")})

"""Real-cloud authentication: project tokens from IAM, AK/SK signing, secrets kept out."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from yarl import URL

import vbs_async._signing
import vbs_async._tokens
import vbs_async.testing._identity
from vbs_async import (
    AKSKAuth,
    AuthenticationError,
    NotFoundError,
    PasswordAuth,
    RateLimitedError,
    ResponseDecodeError,
    RetryPolicy,
    TokenAuth,
    VBSClient,
    VBSError,
)
from vbs_async._endpoints import read_catalog
from vbs_async._errors import error_class_for_status
from vbs_async._requests import (
    SharingFilters,
    SortOrder,
    cancel_sharing_request,
    count_sharings_request,
    get_sharing_request,
    list_sharings_request,
    share_backup_request,
)
from vbs_async._tokens import Token, TokenCache, iam_failure, read_token
from vbs_async.testing import Emulator, MockTransport, SentRequest, response

from ._helpers import EchoServer

if TYPE_CHECKING:
    from vbs_async._responses import Response

PASSWORD = "pa55-VERY-SECRET-word"
SECRET_KEY = "sk-VERY-SECRET-0123456789abcdef"


def password_auth(emu: Emulator, password: str = PASSWORD) -> PasswordAuth:
    return PasswordAuth(emu.url + "/v3", "alice", password, "emulator-domain")


# -- PasswordAuth --------------------------------------------------------------------


async def test_a_concurrent_crawl_asks_for_exactly_one_token_per_project(make_client):
    async with Emulator(
        projects=20, sharings_per_project=30, users={"alice": PASSWORD}, latency=0.002
    ) as emu:
        auth = password_auth(emu)
        client = make_client(emu, auth=auth, max_concurrency=32)
        results = [
            r
            async for r in client.crawl(emu.project_ids, max_projects=20, page_size=10, prefetch=3)
        ]
        assert [str(r.error) for r in results if not r.ok] == []
        assert sum(len(r.sharings) for r in results) == 600
        assert sorted(p for _, p in emu.identity.token_requests) == sorted(emu.project_ids)
        assert auth.token_requests == 20
        assert emu.unauthorized == 0


async def test_tokens_are_refreshed_before_expiry_during_a_listing(make_client, monkeypatch):
    """On a clock that only the client and IAM read, each read a step later than the last.

    The client reads it before each request, the emulator's IAM as it checks
    the token: the token is refused if the client used it too close to its
    expiry. A real clock made this race the machine's load (a token of 0.3 s
    with a margin of 0.03 s, refused once when a request took longer).
    """
    now = [1000.0]

    def monotonic() -> float:
        now[0] += 0.02  # one read a step after the previous one: the latency in between
        return now[0]

    ticking = SimpleNamespace(monotonic=monotonic, time=time.time)
    monkeypatch.setattr(vbs_async._tokens, "time", ticking)
    monkeypatch.setattr(vbs_async.testing._identity, "time", ticking)
    async with Emulator(
        projects=1, sharings_per_project=120, users={"alice": PASSWORD}, token_lifetime=0.3
    ) as emu:
        auth = password_auth(emu)
        iterator = make_client(emu, auth=auth).iter_sharings(emu.project_ids[0], page_size=10)
        got = [s async for s in iterator]
        assert len(got) == 120
        assert now[0] - 1000.0 > 0.3 * 2  # the listing outlived two tokens
        # Each token serves the pages of its lifetime less a tenth, not one page each.
        assert 3 <= auth.token_requests <= 5
        assert emu.unauthorized == 0  # refreshed ahead of time, never refused


async def test_a_401_refreshes_the_token_once_and_retries(make_client):
    async with Emulator(projects=1, sharings_per_project=30, users={"alice": PASSWORD}) as emu:
        auth = password_auth(emu)
        client = make_client(emu, auth=auth)
        project = emu.project_ids[0]
        assert await client.count_sharings(project) == 30
        emu.identity.revoke_all()  # the cached token is now refused
        assert await client.count_sharings(project) == 30
        assert auth.token_requests == 2
        assert emu.unauthorized == 1


async def test_a_token_is_accepted_only_for_its_project(make_client):
    async with Emulator(projects=2, sharings_per_project=3, users={"alice": PASSWORD}) as emu:
        client = make_client(emu, auth=password_auth(emu))
        first, second = emu.project_ids
        await client.count_sharings(first)
        token = next(iter(emu.identity._tokens))
        other = make_client(emu, auth=TokenAuth(token))
        with pytest.raises(AuthenticationError, match="another project"):
            await other.count_sharings(second)


async def test_iam_refusal_is_an_authentication_error_with_iams_message(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    async with Emulator(projects=1, sharings_per_project=3, users={"alice": "right"}) as emu:
        auth = password_auth(emu, password=PASSWORD)
        with pytest.raises(AuthenticationError) as caught:
            await make_client(emu, auth=auth).list_sharings(emu.project_ids[0])
        error = caught.value
        assert "The username or password is wrong." in str(error)
        assert error.message.startswith("IAM refused a token for this project: ")
        assert error.project_id == emu.project_ids[0]
        for text in (str(error), repr(error), repr(auth), caplog.text):
            assert PASSWORD not in text
        assert auth.token_requests == 1  # a refusal is not retried
        assert error.credentials_refused is True
        with pytest.raises(AuthenticationError, match="not sent again") as again:
            await make_client(emu, auth=auth).list_sharings(emu.project_ids[0])
        assert again.value.credentials_refused is True
        assert auth.token_requests == 1


# -- IAM's token answer, read ---------------------------------------------------------

ISSUED = {"issued_at": "2030-01-01T00:00:00.000000Z", "expires_at": "2030-01-01T01:00:00.000000Z"}


UNREADABLE = "IAM's answer has no readable token.expires_at"


def iam_answer(status: int = 201, token: object = ISSUED, **headers: str) -> Response:
    return response(status, {"token": token}, {"X-Subject-Token": "tok-1", **headers})


@pytest.mark.parametrize(
    ("margin", "refresh_at"),
    [(60.0, 1000 + 3600 - 60), (600.0, 1000 + 3600 - 360), (360.0, 1000 + 3600 - 360)],
)
def test_a_token_is_replaced_a_margin_before_expiry_at_most_a_tenth_of_its_life(margin, refresh_at):
    token = read_token(iam_answer(), began=1000.0, refresh_margin=margin, project_id="p1")
    assert token.value == "tok-1"
    assert token.refresh_at == refresh_at  # IAM's own two clocks: ours does not matter


def test_without_issued_at_a_token_s_life_is_counted_on_the_local_clock():
    expires = datetime.fromtimestamp(time.time() + 7200, UTC).isoformat()
    token = read_token(
        iam_answer(token={"expires_at": expires}), began=0.0, refresh_margin=60, project_id="p"
    )
    assert token.refresh_at == pytest.approx(7200 - 60, abs=30)


@pytest.mark.parametrize(
    "token",
    [
        {"issued_at": "2030-01-01T01:00:00Z", "expires_at": "2030-01-01T01:00:00Z"},
        {"issued_at": "2030-01-01T02:00:00Z", "expires_at": "2030-01-01T01:00:00Z"},
        {"expires_at": "2001-01-01T00:00:00Z"},
    ],
    ids=["no-life", "expired-by-iam-s-clocks", "expired-by-ours"],
)
def test_a_token_expired_on_arrival_is_kept_30_seconds_with_a_warning(token, caplog):
    catalog = [{"type": "vbs", "endpoints": [{"interface": "public", "url": "https://v.x/"}]}]
    with caplog.at_level(logging.WARNING, logger="vbs_async"):
        kept = read_token(
            iam_answer(token={**token, "catalog": catalog}),
            began=50.0,
            refresh_margin=60,
            project_id="p7",
        )
    assert (kept.value, kept.refresh_at) == ("tok-1", 80.0)
    assert kept.catalog == read_catalog({"catalog": catalog})
    assert [r.getMessage() for r in caplog.records] == [
        (
            "IAM issued a token for project p7 that expires in 0 s: is IAM's clock "
            "(or this machine's) right? It is kept for 30 s"
        )
    ]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (iam_answer(200), "IAM answered 200 to a token request, not 201"),
        (iam_answer(202), "IAM answered 202 to a token request, not 201"),
        (response(201, {"token": ISSUED}), "IAM answered without X-Subject-Token"),
        (iam_answer(**{"X-Subject-Token": ""}), "IAM answered without X-Subject-Token"),
        (iam_answer(token={"issued_at": ISSUED["issued_at"]}), UNREADABLE),
        (iam_answer(token={"expires_at": "soon"}), UNREADABLE),
        (iam_answer(token=["a list"]), UNREADABLE),
        (response(201, b"not json", {"X-Subject-Token": "t"}), UNREADABLE),
        (response(201, {"tokens": ISSUED}, {"X-Subject-Token": "t"}), UNREADABLE),
    ],
)
def test_an_unreadable_token_answer_is_a_decode_error_naming_the_project(answer, message):
    with pytest.raises(ResponseDecodeError) as caught:
        read_token(answer, began=0.0, refresh_margin=60, project_id="p9")
    assert str(caught.value) == f"{message} (project p9)"
    assert caught.value.project_id == "p9"


def test_a_token_brings_its_catalog():
    catalog = [{"type": "vbs", "endpoints": [{"interface": "public", "url": "https://vbs.x/v2/"}]}]
    token = read_token(
        iam_answer(token={**ISSUED, "catalog": catalog}), began=0, refresh_margin=1, project_id="p"
    )
    assert token.catalog == read_catalog({"catalog": catalog})
    assert token.catalog


@pytest.mark.parametrize(
    ("status", "scope", "refused"),
    [
        (400, "p1", "IAM refused a token for this project: no"),
        (401, None, "IAM refused an account-wide token: no"),
        (499, "p1", "IAM refused a token for this project: no"),
    ],
)
def test_iam_s_4xx_is_an_authentication_error_saying_what_was_refused(status, scope, refused):
    failure = error_class_for_status(status)
    error = iam_failure(
        failure("no", status=status, code="IAM.1", request_id="r1", project_id="p1"), scope
    )
    assert type(error) is AuthenticationError
    assert (error.message, error.status, error.code) == (refused, status, "IAM.1")
    assert (error.request_id, error.project_id) == ("r1", "p1")


@pytest.mark.parametrize("status", [429, 500, 503, 399])
def test_iam_s_throttling_and_5xx_stay_what_they_are_named_as_iam_s(status):
    original = error_class_for_status(status)("busy", status=status, project_id="p1")
    error = iam_failure(original, "p1")
    assert error is original
    assert error.message == "IAM: busy"
    assert not isinstance(error, AuthenticationError)


# -- the token cache: one fetch at a time per scope, bounded, every issued token remembered


def fresh(value: str, life: float = 3600.0) -> Token:
    return Token(value, time.monotonic() + life)


async def test_waiters_for_one_scope_share_one_fetch_and_a_cancelled_one_leaves_it_running():
    cache = TokenCache(max_tokens=4)
    release = asyncio.Event()
    fetches: list[str | None] = []

    async def fetch() -> Token:
        fetches.append("p1")
        await release.wait()
        return fresh("tok-p1")

    waiters = [asyncio.ensure_future(cache.get("p1", fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    release.set()
    assert [(await w).value for w in waiters[1:]] == ["tok-p1", "tok-p1"]
    assert fetches == ["p1"]
    assert (await cache.get("p1", fetch)).value == "tok-p1"  # cached now
    assert fetches == ["p1"]
    assert len(cache) == 1


async def test_a_token_due_for_refresh_is_fetched_again_and_a_failed_fetch_is_not_kept():
    cache = TokenCache(max_tokens=4)
    answers = [fresh("old", life=-1), RuntimeError("IAM down"), fresh("new")]

    async def fetch() -> Token:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert (await cache.get("p", fetch)).value == "old"
    with pytest.raises(RuntimeError, match="IAM down"):
        await cache.get("p", fetch)  # "old" is due: fetched again, and that fails
    assert (await cache.get("p", fetch)).value == "new"  # the failure was not kept
    assert answers == []


async def test_forgetting_drops_only_the_token_that_was_refused():
    cache = TokenCache(max_tokens=4)
    await cache.get("p", lambda: asyncio.sleep(0, fresh("tok-2")))
    cache.forget("p", "tok-1")  # refused earlier: the cache holds a newer one
    cache.forget("other", "tok-2")
    assert len(cache) == 1
    cache.forget("p", "tok-2")
    assert len(cache) == 0


async def test_the_cache_drops_expired_tokens_first_then_the_least_recently_used():
    cache = TokenCache(max_tokens=3)

    async def put(scope: str, token: Token) -> None:
        await cache.get(scope, lambda: asyncio.sleep(0, token))

    await put("a", fresh("tok-a"))
    await put("expired", fresh("tok-x", life=-1))
    await put("b", fresh("tok-b"))
    await put("c", fresh("tok-c"))  # over the bound: the expired one goes, not "a"
    assert len(cache) == 3
    again: list[str] = []

    def refetch(value: str):  # type: ignore[no-untyped-def]
        again.append(value)
        return asyncio.sleep(0, fresh(value))

    await cache.get("a", lambda: refetch("tok-a2"))  # used: "b" is now the least recent
    await put("d", fresh("tok-d"))
    for scope in ("a", "c", "d"):
        await cache.get(scope, lambda: refetch("never"))
    assert again == []
    await cache.get("b", lambda: refetch("tok-b2"))
    assert again == ["tok-b2"]
    assert cache.issued == ("tok-a", "tok-x", "tok-b", "tok-c", "tok-d", "tok-b2")


async def test_the_issued_tokens_remembered_are_bounded_to_four_times_the_cache():
    cache = TokenCache(max_tokens=2)
    for index in range(11):
        await cache.get(f"p{index}", lambda i=index: asyncio.sleep(0, fresh(f"tok-{i}")))
    assert cache.issued == tuple(f"tok-{i}" for i in range(3, 11))
    assert len(cache) == 2


async def test_closing_the_cache_cancels_a_fetch_in_flight():
    cache = TokenCache(max_tokens=2)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def fetch() -> Token:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError  # pragma: no cover - never reached

    waiter = asyncio.ensure_future(cache.get("p", fetch))
    await started.wait()
    await cache.aclose()
    assert cancelled.is_set()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_token_fetch_failing_after_its_waiter_left_is_never_reported_unretrieved():
    reported: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    try:
        cache = TokenCache(max_tokens=2)
        started, fail = asyncio.Event(), asyncio.Event()

        async def fetch() -> Token:
            started.set()
            await fail.wait()
            raise RuntimeError("IAM down")

        waiter = asyncio.ensure_future(cache.get("p", fetch))
        await started.wait()
        waiter.cancel()
        fail.set()
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert reported == []


async def test_iam_s_unreadable_answer_and_refusal_in_catalog_mode_name_the_project():
    def iam(sent: SentRequest) -> Response:
        if sent.request.project_id == "unreadable":
            return response(201, {"token": ISSUED})  # no X-Subject-Token
        return response(403, {"error": {"message": "no", "code": 403}})

    auth = PasswordAuth("https://iam.example/v3", "alice", "pw-123456", "domain")
    async with VBSClient(auth=auth, region="eu-de", transport=MockTransport(iam)) as client:
        with pytest.raises(ResponseDecodeError) as unreadable:
            await client.count_sharings("unreadable")
        with pytest.raises(AuthenticationError) as refused:
            await client.count_sharings("refused")
    assert unreadable.value.project_id == "unreadable"
    assert refused.value.project_id == "refused"
    assert refused.value.message == "IAM refused a token for this project: no"


# -- IAM refusals scoped to what was refused -------------------------------------------


async def test_a_project_iam_refuses_fails_alone_in_a_crawl_of_60(make_client):
    async with Emulator(projects=60, sharings_per_project=3, users={"alice": PASSWORD}) as emu:
        denied = emu.project_ids[37]
        emu.identity.denied_projects.add(denied)
        client = make_client(emu, auth=password_auth(emu))
        results = [result async for result in client.crawl(emu.project_ids, max_projects=16)]
    listed = [result for result in results if result.ok]
    failed = [result for result in results if not result.ok]
    assert len(listed) == 59
    assert all(len(result.sharings) == 3 for result in listed)
    assert [result.project_id for result in failed] == [denied]
    error = failed[0].error
    assert isinstance(error, AuthenticationError)
    assert error.project_id == denied
    assert error.credentials_refused is False
    assert f"The user has no role in project {denied}." in str(error)
    assert denied in str(error)


async def test_a_project_refused_after_the_password_was_accepted_refuses_nothing_else(
    make_client,
):
    async with Emulator(projects=3, sharings_per_project=2, users={"alice": PASSWORD}) as emu:
        first, denied, last = emu.project_ids
        emu.identity.denied_projects.add(denied)
        auth = password_auth(emu)
        client = make_client(emu, auth=auth)
        assert len(await client.list_sharings(first)) == 2
        with pytest.raises(AuthenticationError) as caught:
            await client.list_sharings(denied)
        assert caught.value.credentials_refused is False
        assert caught.value.project_id == denied
        assert len(await client.list_sharings(last)) == 2
        # No extra request to prove the password: IAM had accepted it already.
        assert [p for _, p in emu.identity.token_requests] == [first, last]


async def test_a_first_token_refused_is_taken_for_the_password_and_never_sent_again(make_client):
    # Keystone's 401 does not tell a wrong password from a project without a
    # role: before any token was issued, the password is taken as refused.
    async with Emulator(projects=2, sharings_per_project=2, users={"alice": PASSWORD}) as emu:
        denied, other = emu.project_ids
        emu.identity.denied_projects.add(denied)
        auth = password_auth(emu)
        client = make_client(emu, auth=auth)
        with pytest.raises(AuthenticationError) as caught:
            await client.list_sharings(denied)
        assert caught.value.credentials_refused is True
        with pytest.raises(AuthenticationError, match="not sent again"):
            await client.list_sharings(other)
        assert auth.token_requests == 1


def test_password_auth_checks_its_arguments():
    with pytest.raises(ValueError, match="auth_url"):
        PasswordAuth("http://iam.example.com/v3", "u", "p", "d")
    with pytest.raises(ValueError, match="password"):
        PasswordAuth("https://iam.example.com/v3", "u", "", "d")
    with pytest.raises(ValueError, match=r"^refresh_margin "):
        PasswordAuth("https://iam.example.com/v3", "u", "p", "d", refresh_margin=0)
    with pytest.raises(ValueError, match=r"^max_tokens "):
        PasswordAuth("https://iam.example.com/v3", "u", "p", "d", max_tokens=0)
    PasswordAuth("https://iam.example.com/v3", "u", "p", "d", max_tokens=1)
    auth = PasswordAuth("https://iam.example.com/v3/", "u", "p", "d")
    assert repr(auth) == (
        "PasswordAuth(auth_url='https://iam.example.com', username='u', password=<redacted>, domain_name='d')"
    )


# -- AKSKAuth ------------------------------------------------------------------------


async def test_signed_requests_are_accepted_for_every_call(make_client):
    async with Emulator(
        projects=2, sharings_per_project=25, access_keys={"AK1": SECRET_KEY}
    ) as emu:
        client = make_client(emu, auth=AKSKAuth("AK1", SECRET_KEY))
        project = emu.project_ids[0]
        listed = await client.list_sharings(project, page_size=10, name="backup", sort_key="name")
        assert len(listed) == 25
        assert await client.count_sharings(project, availability_zone="eu-de-01") >= 0
        assert (await client.get_sharing(project, listed[0].id)).id == listed[0].id
        created = await client.share_backup(project, listed[0].backup_id, ["ffff"])
        await client.cancel_sharing(project, created[0].id)
        await client.cancel_backup_sharings(project, listed[1].backup_id)
        assert emu.unauthorized == 0


@pytest.mark.parametrize(
    ("part", "broken"),
    [
        ("canonical_uri", lambda path: path.rstrip("/")),
        ("canonical_uri", lambda path: path.upper()),
        ("canonical_query", lambda query: query.replace("%", "%25")),  # encoded twice
        ("canonical_query", lambda query: "&".join(reversed(query.split("&")))),  # unsorted
    ],
    ids=["uri-without-trailing-slash", "uri-upper-cased", "query-encoded-twice", "query-unsorted"],
)
async def test_the_emulator_catches_a_signer_that_gets_the_canonical_request_wrong(
    make_client, monkeypatch, part, broken
):
    real = getattr(vbs_async._signing, part)
    monkeypatch.setattr(vbs_async._signing, part, lambda value: broken(real(value)))
    async with Emulator(projects=1, sharings_per_project=1, access_keys={"AK1": SECRET_KEY}) as emu:
        client = make_client(emu, auth=AKSKAuth("AK1", SECRET_KEY))
        with pytest.raises(AuthenticationError, match="signature"):
            await client.list_sharings(emu.project_ids[0], name="bäckup ü")


async def test_a_wrong_secret_key_is_refused_in_the_gateways_form(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    async with Emulator(projects=1, sharings_per_project=1, access_keys={"AK1": SECRET_KEY}) as emu:
        wrong = "sk-WRONG-but-also-secret"
        with pytest.raises(AuthenticationError) as caught:
            await make_client(emu, auth=AKSKAuth("AK1", wrong)).count_sharings(emu.project_ids[0])
        assert caught.value.code == "APIGW.0301"
        assert "signature" in caught.value.message
        for text in (str(caught.value), repr(caught.value), caplog.text):
            assert wrong not in text
            assert SECRET_KEY not in text


async def test_temporary_keys_are_signed_with_their_security_token_and_accepted(make_client):
    token = "sts-TEMPORARY-token-0123456789"
    async with Emulator(projects=1, sharings_per_project=3, access_keys={"AK1": SECRET_KEY}) as emu:
        auth = AKSKAuth("AK1", SECRET_KEY, security_token=token)
        assert len(await make_client(emu, auth=auth).list_sharings(emu.project_ids[0])) == 3
        assert emu.unauthorized == 0
    assert token not in repr(auth)
    assert repr(auth).endswith("security_token=<redacted>)")


def test_aksk_repr_hides_the_secret_key():
    assert (
        repr(AKSKAuth("AKIDEXAMPLE", SECRET_KEY))
        == "AKSKAuth(access_key='AKID'..., secret_key=<redacted>)"
    )


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        (("", "sk"), "access_key"),
        (("ak", ""), "secret_key"),
        (("ak", "sk", ""), "security_token"),
        (("ak", "sk", None, ""), "domain_id"),
    ],
)
def test_aksk_auth_refuses_an_empty_credential_by_its_name(arguments, name):
    access_key, secret_key, *rest = arguments
    security_token = rest[0] if rest else None
    domain_id = rest[1] if len(rest) > 1 else None
    with pytest.raises(ValueError, match="must be a non-empty string") as caught:
        AKSKAuth(access_key, secret_key, security_token, domain_id=domain_id)
    assert str(caught.value) == f"{name} must be a non-empty string"


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://vbs.eu-de.otc.t-systems.com", "vbs.eu-de.otc.t-systems.com"),
        ("https://vbs.example:443", "vbs.example"),
        ("http://vbs.example:80", "vbs.example"),
        ("https://vbs.example:8443", "vbs.example:8443"),
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
    ],
)
def test_the_host_signed_is_the_one_sent_with_the_port_only_when_not_the_default(endpoint, host):
    auth = AKSKAuth("AK", SECRET_KEY)
    request = count_sharings_request("p1", SharingFilters())
    signed = auth.sign(request, URL(endpoint + request.target), datetime(2026, 1, 1, tzinfo=UTC))
    assert signed["Host"] == host


def test_a_body_s_content_type_is_signed_and_only_with_a_body():
    auth = AKSKAuth("AK", SECRET_KEY)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    url = URL("https://vbs.example/v2/p1/x")
    posted = auth.sign(share_backup_request("p1", "b1", ["p2"]), url, now)
    got = auth.sign(count_sharings_request("p1", SharingFilters()), url, now)
    assert posted["Content-Type"] == "application/json"
    assert "SignedHeaders=content-type;host;x-project-id;x-sdk-date," in posted["Authorization"]
    assert "Content-Type" not in got
    assert "SignedHeaders=host;x-project-id;x-sdk-date," in got["Authorization"]


def test_the_signing_time_is_utc_whatever_the_machine_s_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        berlin = timezone(timedelta(hours=2))
        signed = AKSKAuth("AK", SECRET_KEY).sign(
            count_sharings_request("p1", SharingFilters()),
            URL("https://vbs.example/v2/p1/x"),
            datetime(2026, 6, 1, 12, 30, 5, tzinfo=berlin),
        )
    finally:
        monkeypatch.undo()
        time.tzset()
    assert signed["X-Sdk-Date"] == "20260601T103005Z"


def test_a_trailing_slash_of_the_path_is_kept_once():
    assert vbs_async._signing.canonical_uri("/v2/p1/") == "/v2/p1/"
    assert vbs_async._signing.canonical_uri("/v2/p1") == "/v2/p1/"


async def test_a_temporary_key_s_security_token_never_shows_in_an_error():
    token = "security-token-VERY-SECRET-42"
    async with EchoServer(500) as server:
        auth = AKSKAuth("AK", SECRET_KEY, security_token=token)
        retry = RetryPolicy(attempts=1)
        async with VBSClient(server.url, auth=auth, retry=retry) as client:
            with pytest.raises(VBSError) as caught:
                await client.count_sharings("p1")
    assert token in server.received[0]  # the server echoed it back
    assert token not in str(caught.value)
    assert token not in repr(caught.value)


WORDS = [
    "plain",
    "with space",
    "ünïcödé",
    "a&b=c",
    "100%",
    "x+y",
    "slash/inside",
    "tilde~ok",
    "quote'\"",
    "emoji ☃",
]


# IDs are checked, not trusted: these pass the check and must go on the wire
# percent-encoded, exactly as signed.
ODD_IDS = ["sharing-", "ünïcödé-", "a<b>-", 'q"{}|^\\`-', "tilde~ok-", "dot.in.id-", "x+y=z&-"]


def generated_requests(count: int):
    rng = random.Random(20261126)
    project = "c13f5220dc1949b0b741ea81a7cd5554"
    for index in range(count):
        kind = index % 5
        if kind == 0:
            filters = SharingFilters(
                share_to_me=rng.choice([None, True, False]),
                name=rng.choice(WORDS),
                status=rng.choice([None, *WORDS]),
                availability_zone=rng.choice([None, "eu-de-01", "zone ü"]),
            )
            sort = SortOrder(
                rng.choice([None, "name", "created_at"]), rng.choice([None, "asc", "desc"])
            )
            yield list_sharings_request(
                project, filters, sort, offset=rng.randrange(1000), limit=rng.randrange(1, 500)
            )
        elif kind == 1:
            yield count_sharings_request(project, SharingFilters(name=rng.choice(WORDS)))
        elif kind == 2:
            yield get_sharing_request(project, rng.choice(ODD_IDS) + str(index))
        elif kind == 3:
            yield share_backup_request(
                project, f"backup-{index}", [f"target-{i}" for i in range(rng.randrange(1, 4))]
            )
        else:
            yield cancel_sharing_request(
                project, rng.choice(ODD_IDS) + str(index), is_backup_id=rng.random() < 0.5
            )


@pytest.mark.parametrize("security_token", [None, "sts-TEMPORARY-token-0123456789"])
@pytest.mark.parametrize(
    "endpoint", ["https://vbs.eu-de.otc.t-systems.com", "http://127.0.0.1:8443"]
)
def test_signatures_equal_the_reference_implementations(endpoint, security_token):
    auth = AKSKAuth("AKEXAMPLE", SECRET_KEY, security_token=security_token)
    now = datetime(2026, 11, 26, 18, 0, 0, tzinfo=UTC)
    compared = 0
    for request in generated_requests(120):
        url = URL(endpoint + request.target, encoded=True)
        ours = auth.sign(request, url, now)
        sdk = SdkRequest(
            method=request.method,
            schema=url.scheme,
            host=ours["Host"],
            resource_path=request.path,
            query_params=list(request.query),
            header_params={k: v for k, v in ours.items() if k != "Authorization"},
            body=request.body,
        )
        # What huaweicloudsdkcore's Credentials.sign_request does with temporary keys:
        # X-Security-Token joins the headers, and every header is signed.
        assert ("X-Security-Token" in ours) == (security_token is not None)
        Signer(SimpleNamespace(ak="AKEXAMPLE", sk=SECRET_KEY)).sign(sdk)
        assert ours["Authorization"] == sdk.header_params["Authorization"], request
        if security_token is not None:
            assert "x-security-token" in ours["Authorization"]
        compared += 1
    assert compared == 120


async def test_an_odd_id_goes_on_the_wire_encoded_and_signed_as_sent(make_client):
    async with Emulator(projects=1, sharings_per_project=1, access_keys={"AK1": SECRET_KEY}) as emu:
        client = make_client(emu, auth=AKSKAuth("AK1", SECRET_KEY))
        for odd in ODD_IDS:
            with pytest.raises(NotFoundError):
                await client.get_sharing(emu.project_ids[0], odd + "1")
        assert emu.unauthorized == 0
        paths = [r.path.rsplit("/", 1)[1] for r in emu.requests]
        assert paths == [odd + "1" for odd in ODD_IDS]  # what the server decoded is the ID


# -- all three kinds: no secret anywhere ------------------------------------------------


async def test_no_auth_kind_leaks_its_secret_into_logs_or_errors(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    token = "tok-VERY-SECRET-abcdef"
    async with Emulator(
        projects=1,
        sharings_per_project=5,
        users={"alice": PASSWORD},
        access_keys={"AK1": SECRET_KEY},
        token=token,
        fault_rate=0.3,
        fault_seed=2,
        retry_after=0,
    ) as emu:
        errors: list[VBSError] = []
        for auth in (TokenAuth(token), password_auth(emu), AKSKAuth("AK1", SECRET_KEY)):
            # One attempt: the injected faults become errors instead of being retried away.
            client = make_client(emu, auth=auth, retry=RetryPolicy(attempts=1))
            failed = 0
            for _ in range(8):
                try:
                    await client.list_sharings(emu.project_ids[0], page_size=2)
                except VBSError as error:
                    errors.append(error)
                    failed += 1
            assert failed > 0, f"no error was raised with {auth!r}"
            for secret in (token, PASSWORD, SECRET_KEY):
                assert secret not in repr(auth)
        await asyncio.sleep(0)
        assert len(errors) >= 3
        for text in [caplog.text, *(str(e) for e in errors), *(repr(e) for e in errors)]:
            for secret in (token, PASSWORD, SECRET_KEY):
                assert secret not in text


async def test_iam_throttling_past_the_deadline_is_throttling_not_refused_credentials():
    # IAM's Retry-After outlasts the call's deadline: the call ends throttled.
    # The wait asked for (capped at wait_max, 600 s) is far past the deadline (10 s): the
    # call gives up at once, however slow the machine, without waiting at all.
    async with EchoServer(429, {"Retry-After": "3600"}) as iam:
        auth = PasswordAuth(iam.url + "/v3", "alice", PASSWORD, "emulator-domain")
        retry = RetryPolicy(attempts=3, timeout=10, wait_initial=0.01, wait_max=600)
        async with VBSClient(iam.url, auth=auth, retry=retry) as client:
            with pytest.raises(VBSError) as caught:
                await client.list_sharings("eu-de_p00001")
    assert len(iam.received) == 1
    assert not isinstance(caught.value, AuthenticationError)
    assert isinstance(caught.value, RateLimitedError)
    assert "still throttled at the call's deadline" in str(caught.value)


async def test_a_403_for_the_first_project_fails_it_alone_in_a_crawl_of_60(make_client):
    # A 403 from IAM: the password was accepted, the scope forbidden. Even
    # before any token was issued, that is the project's failure only.
    async with Emulator(projects=60, sharings_per_project=3, users={"alice": PASSWORD}) as emu:
        forbidden = emu.project_ids[0]
        emu.identity.forbidden_projects.add(forbidden)
        client = make_client(emu, auth=password_auth(emu))
        results = [result async for result in client.crawl(emu.project_ids, max_projects=16)]
    failed = [result for result in results if not result.ok]
    assert len([result for result in results if result.ok]) == 59
    assert [result.project_id for result in failed] == [forbidden]
    error = failed[0].error
    assert isinstance(error, AuthenticationError)
    assert error.credentials_refused is False
    assert error.project_id == forbidden


async def test_a_401_for_the_first_project_is_named_as_that_project_s_in_the_others_errors(
    make_client,
):
    async with Emulator(projects=3, sharings_per_project=2, users={"alice": PASSWORD}) as emu:
        denied, other, _ = emu.project_ids
        emu.identity.denied_projects.add(denied)
        client = make_client(emu, auth=password_auth(emu))
        with pytest.raises(AuthenticationError):
            await client.list_sharings(denied)
        with pytest.raises(AuthenticationError) as caught:
            await client.list_sharings(other)
    message = str(caught.value)
    assert caught.value.project_id == other
    assert f"when asked for a token of project {denied} (" in message
    assert "not sent again" in message

"""A server that echoes every secret it receives: none comes back out of the client.

The echo server puts each request's headers, query and body into its error
answers (message, code, `X-Openstack-Request-Id`), as some gateways do, so a
credential that reaches the wire comes back in the answer. Every auth kind is
driven into it (token, password, AK/SK permanent and temporary, agency over
a password and over a key pair), through the library and through the command.
Without the redaction on the call path these tests fail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from vbs_async import (
    AgencyAuth,
    AKSKAuth,
    PasswordAuth,
    RetryPolicy,
    TokenAuth,
    VBSClient,
    VBSError,
)
from vbs_async.testing import Emulator

from ._helpers import VBS_ASYNC, EchoServer, served_in_thread

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from vbs_async import Auth

TOKEN = "tok-ECHOED-SECRET-0123456789"
PASSWORD = "pw-ECHOED-SECRET-0123456789"
SECRET_KEY = "sk-ECHOED-SECRET-0123456789abcdef"
SECURITY_TOKEN = "st-ECHOED-SECRET-0123456789abcdef"
SECRETS = (TOKEN, PASSWORD, SECRET_KEY, SECURITY_TOKEN)
PROJECT = "eu-de_p00001"
ONCE = RetryPolicy(attempts=2, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)


@pytest.fixture(params=[400, 401, 403, 404, 500, 200])
async def echo(request) -> AsyncIterator[EchoServer]:
    async with EchoServer(request.param) as server:
        yield server


@pytest.fixture
async def iam() -> AsyncIterator[Emulator]:
    """A real IAM (the emulator's) that issues tokens to alice, AK1 and AK2 and to the agency."""
    async with Emulator(
        projects=1,
        users={"alice": PASSWORD},
        access_keys={"AK1": SECRET_KEY, "AK2": SECRET_KEY},
        security_tokens={"AK2": SECURITY_TOKEN},
        agencies=[("other-domain", "auditor")],
    ) as emulator:
        yield emulator


def texts_of(error: BaseException) -> list[str]:
    """Every text a user may see of an error: str, repr, args, attributes, its chain."""
    texts = [str(error), repr(error), *map(str, error.args)]
    texts += [str(v) for v in vars(error).values()]
    texts.append(pickle.dumps(error).decode("latin-1"))
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            texts += texts_of(linked)
    return texts


async def raised_by(client: VBSClient) -> VBSError:
    """The error of one list call (every answer of the echo server is an error)."""
    with pytest.raises(VBSError) as caught:
        await client.list_sharings(PROJECT)
    return caught.value


def assert_nothing_secret(texts: list[str], secrets: tuple[str, ...] = SECRETS) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{secret} shown in {text[:300]!r}"


async def drive(auth: Auth, endpoint: str, echo: EchoServer, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with VBSClient(endpoint, auth=auth, retry=ONCE) as client:
        error = await raised_by(client)
    assert echo.received, "the echo server was never asked"
    secrets = (*SECRETS, *echo.credentials)  # tokens issued by IAM too
    assert any(secret in text for text in echo.received for secret in secrets)
    assert_nothing_secret([*texts_of(error), caplog.text], secrets)


async def test_a_token_echoed_back_is_never_shown(echo, caplog):
    await drive(TokenAuth(TOKEN), echo.url, echo, caplog)


async def test_a_password_echoed_back_by_iam_is_never_shown(echo, caplog):
    auth = PasswordAuth(echo.url + "/v3", "alice", PASSWORD, "emulator-domain")
    await drive(auth, echo.url, echo, caplog)


async def test_a_token_issued_by_iam_echoed_back_is_never_shown(echo, iam, caplog):
    auth = PasswordAuth(iam.url + "/v3", "alice", PASSWORD, "emulator-domain")
    await drive(auth, echo.url, echo, caplog)
    assert iam.identity.token_requests  # a real token was issued, then echoed


@pytest.mark.parametrize("security_token", [None, SECURITY_TOKEN])
async def test_key_pairs_echoed_back_are_never_shown(echo, security_token, caplog):
    auth = AKSKAuth("AK1", SECRET_KEY, security_token)
    if security_token is None:
        # A permanent key pair sends no secret at all: only its signature, good for its
        # request for minutes, which an echo printed whole (an outsider's, with -v).
        caplog.set_level(logging.DEBUG)
        async with VBSClient(echo.url, auth=auth, retry=ONCE) as client:
            error = await raised_by(client)
        assert_nothing_secret([*texts_of(error), caplog.text, *echo.received])
        signatures = tuple(
            found.group(1)
            for text in echo.received
            if (found := re.search(r"Signature=([0-9a-f]+)", text)) is not None
        )
        assert signatures
        assert_nothing_secret([*texts_of(error), caplog.text], signatures)
        return
    await drive(auth, echo.url, echo, caplog)


async def test_an_agency_over_a_password_echoed_back_by_iam_is_never_shown(echo, caplog):
    base = PasswordAuth(echo.url + "/v3", "alice", PASSWORD, "emulator-domain")
    auth = AgencyAuth(base, agency_domain="other-domain", agency_name="auditor")
    await drive(auth, echo.url, echo, caplog)


@pytest.mark.parametrize("base_kind", ["password", "temporary keys"])
async def test_an_agency_token_echoed_back_is_never_shown(echo, iam, base_kind, caplog):
    base: PasswordAuth | AKSKAuth = (
        PasswordAuth(iam.url + "/v3", "alice", PASSWORD, "emulator-domain")
        if base_kind == "password"
        else AKSKAuth("AK2", SECRET_KEY, SECURITY_TOKEN)
    )
    auth = AgencyAuth(
        base, agency_domain="other-domain", agency_name="auditor", auth_url=iam.url + "/v3"
    )
    await drive(auth, echo.url, echo, caplog)


@pytest.mark.parametrize("kind", ["token", "key pair"])
async def test_credentials_echoed_back_in_a_throttling_answer_are_never_logged(caplog, kind):
    # The 429's code, echoing the request, went into the "throttled (CODE) for project"
    # line of `--verbose` and `--debug` as it came: only errors leaving a call were
    # masked (an outsider's gateway, its token in `error_code`); and a key pair's
    # signature, good for its request for minutes, was not masked at all.
    caplog.set_level(logging.DEBUG)
    policy = RetryPolicy(attempts=2, wait_initial=0.05, wait_max=0.05, wait_jitter=0, timeout=0.5)
    auth: Auth = TokenAuth(TOKEN) if kind == "token" else AKSKAuth("AK1", SECRET_KEY)
    async with (
        EchoServer(429) as echo,
        VBSClient(echo.url, auth=auth, retry=policy) as client,
    ):
        error = await raised_by(client)
    assert len(echo.received) >= 2
    assert "throttled (" in caplog.text  # the line that showed the code
    signatures = tuple(
        found.group(1)
        for text in echo.received
        if (found := re.search(r"Signature=([0-9a-f]+)", text)) is not None
    )
    assert bool(signatures) == (kind == "key pair")
    assert_nothing_secret([*texts_of(error), caplog.text], (*SECRETS, *signatures))


# -- through the command: its output, its log lines, its error line -------------------------


def run_command(environment: dict[str, str], tmp_path, *options: str) -> tuple[int, str]:
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [*VBS_ASYNC, "crawl", "-o", str(out), "--attempts", "1", *options, PROJECT],
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    shown = result.stdout + result.stderr + (out.read_text() if out.exists() else "")
    return result.returncode, shown


@pytest.mark.parametrize("verbosity", ["--verbose", "--debug"])
@pytest.mark.parametrize(
    "credentials",
    [
        {"OS_AUTH_TOKEN": TOKEN},
        {"OS_AK": "AK1", "OS_SK": SECRET_KEY, "OS_SECURITY_TOKEN": SECURITY_TOKEN},
        {"OS_USERNAME": "alice", "OS_PASSWORD": PASSWORD, "OS_USER_DOMAIN_NAME": "d"},
    ],
    ids=["token", "temporary keys", "password"],
)
@pytest.mark.parametrize("answer", [403, 429])
def test_the_command_shows_no_echoed_secret(
    tmp_path, verbosity, credentials: dict[str, Any], answer: int
):
    with echo_in_thread(answer) as url:
        environment = dict(os.environ, VBS_ENDPOINT=url, OS_AUTH_URL=url + "/v3")
        environment.update(OS_PROJECT_ID=PROJECT, OS_REGION_NAME="eu-de", **credentials)
        status, shown = run_command(environment, tmp_path, verbosity, "--deadline", "1")
    assert status != 0
    assert "headers: " in shown  # the echo reached the user,
    assert "***" in shown  # with its secrets masked
    assert_nothing_secret([shown])


def echo_in_thread(status: int):
    """An echo server serving from a thread, for the command run as a process."""

    @contextlib.contextmanager
    def serving():
        server = EchoServer(status)
        with served_in_thread(server.__aenter__, lambda: server.__aexit__(None, None, None)):
            yield server.url

    return serving()

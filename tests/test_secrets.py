"""No credential in a log line, a repr or an error message; DEBUG logs one line per request."""

from __future__ import annotations

import logging
import pickle

import pytest

from vbs_async import RequestTimeoutError, RetryPolicy, TokenAuth, VBSClient, VBSError
from vbs_async._redaction import redact, redact_error
from vbs_async.testing import Emulator, Fault, MockTransport

from ._helpers import closed_port

SECRET = "tok-VERY-SECRET-0123456789"


@pytest.fixture
async def emu():
    async with Emulator(projects=2, sharings_per_project=12, token=SECRET) as emulator:
        yield emulator


async def test_debug_log_has_one_line_per_request_and_never_the_token(emu, make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="vbs_async")
    project = emu.project_ids[0]
    emu.inject(Fault.answer(503), times=1)
    await make_client(emu, auth=TokenAuth(SECRET)).list_sharings(project, page_size=10)
    lines = [r.getMessage() for r in caplog.records if " -> " in r.getMessage()]
    assert len(lines) == emu.requests_received == 3
    path = f"/v2/{project}/os-vendor-backup-sharing/detail"
    assert lines[0].startswith(f"GET {path} offset=0 -> 503 in ")
    assert lines[0].endswith("(attempt 1)")
    assert lines[1].startswith(f"GET {path} offset=0 -> 200 in ")
    assert lines[1].endswith("(attempt 2)")
    assert all(SECRET not in line for line in caplog.text.splitlines())


async def test_no_error_text_ever_holds_the_token(emu, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(
        emu, auth=TokenAuth(SECRET), retry=RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0)
    )
    project = emu.project_ids[0]
    errors: list[VBSError] = []
    for fault in (
        Fault.answer(400),
        Fault.answer(503),
        Fault.drop(),
        Fault.truncate(),
        Fault.raw(200, b"{"),
    ):
        emu.inject(fault, times=4)
        with pytest.raises(VBSError) as caught:
            await client.list_sharings(project)
        errors.append(caught.value)
        emu.faults._scripted.clear()
    for error in errors:
        for text in (str(error), repr(error), str(error.__cause__), str(error.__context__)):
            assert SECRET not in text
        assert SECRET.encode() not in pickle.dumps(error)
    assert SECRET not in caplog.text


async def test_transport_errors_do_not_keep_aiohttps_exceptions(caplog):
    port = closed_port()
    async with VBSClient(
        f"http://127.0.0.1:{port}", auth=TokenAuth(SECRET), retry=RetryPolicy(attempts=1)
    ) as client:
        with pytest.raises(VBSError) as caught:
            await client.list_sharings("p1")
    assert f"could not connect to 127.0.0.1:{port}" in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert SECRET not in caplog.text


def test_errors_survive_pickling_with_their_fields():
    error = VBSError("boom", project_id="p1", offset=200)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (type(copy), str(copy), copy.project_id, copy.offset) == (
        VBSError,
        str(error),
        "p1",
        200,
    )


# -- what redaction replaces -------------------------------------------------------------


def test_a_secret_inside_a_longer_one_leaves_nothing_of_the_longer_one():
    # The longer secret is replaced first, whatever order the secrets come in
    # and however they sort as text.
    short, long = "wxyz-1234", "a-wxyz-1234-b"
    for order in ([short, long], [long, short]):
        assert redact(f"sent {long} and {short}", order) == "sent *** and ***"


def test_secrets_of_four_characters_are_masked_shorter_ones_are_not():
    assert redact("pin wxyz here", ["wxyz"]) == "pin *** here"
    assert redact("the cat sat", ["cat"]) == "the cat sat"  # would blank out words
    assert redact("nothing here", ["absent-secret"]) == "nothing here"


def test_an_error_s_args_are_redacted_and_other_args_kept():
    error = VBSError(f"HTTP 400: echoed {SECRET}")
    error.args = (*error.args, 42)
    redact_error(error, [SECRET])
    assert error.args == ("HTTP 400: echoed ***", 42)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)


@pytest.mark.parametrize("request_sent", [False, True], ids=["not-sent", "sent"])
async def test_a_timeout_from_a_transport_that_names_what_it_sent_holds_no_token(
    request_sent, caplog
):
    # The built-in transport's timeouts say only how long it waited; a transport of the
    # caller's (`transport=`) may name what it sent. The error that leaves is masked too.
    def handler(sent):
        token = sent.headers["X-Auth-Token"]
        raise RequestTimeoutError(
            f"no answer within 1s for token {token}", request_sent=request_sent
        )

    client = VBSClient(
        "https://vbs.example",
        auth=TokenAuth(SECRET),
        transport=MockTransport(handler),
        retry=RetryPolicy(attempts=1),
    )
    with pytest.raises(RequestTimeoutError) as caught:
        await client.count_sharings("p1")
    assert "no answer within 1s for token" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert SECRET not in caplog.text
    await client.close()

"""No credential in a log line, a repr or an error message; DEBUG logs one line per request."""

from __future__ import annotations

import logging
import pickle
import socket

import pytest

from vbs_async import RetryPolicy, TokenAuth, VBSClient, VBSError
from vbs_async.testing import Emulator, Fault

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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
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

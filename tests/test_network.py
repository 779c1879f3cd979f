"""Reaching the service from a corporate network: proxies from the environment."""

from __future__ import annotations

import base64
import warnings

import aiohttp
from aiohttp import web
from yarl import URL

from vbs_async import AKSKAuth, PasswordAuth, RetryPolicy, TokenAuth, VBSClient
from vbs_async._requests import Request
from vbs_async._transport import AiohttpTransport
from vbs_async.testing import Emulator

from ._helpers import EchoServer


async def recording_proxy(relayed: list[str]) -> web.AppRunner:
    """A plain HTTP proxy on 127.0.0.1 that records each absolute URL it relays."""

    async def relay(request: web.Request) -> web.Response:
        relayed.append(str(request.url))
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in {"host", "proxy-connection"}
        }
        async with (
            aiohttp.ClientSession() as upstream,
            upstream.request(
                request.method, request.url, headers=headers, data=await request.read()
            ) as answer,
        ):
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                headers={
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() in {"content-type", "x-subject-token"}
                },
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_requests_and_token_requests_go_through_the_proxy_the_environment_names(monkeypatch):
    relayed: list[str] = []
    proxy = await recording_proxy(relayed)
    try:
        async with Emulator(projects=1, sharings_per_project=3, users={"alice": "pw-1"}) as emu:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.addresses[0][1]}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            url, project = emu.url, emu.project_ids[0]
            auth = PasswordAuth(url, "alice", "pw-1", "emulator-domain")
            async with VBSClient(url, auth=auth) as client:
                assert len(await client.list_sharings(project)) == 3
    finally:
        await proxy.cleanup()
    # The token request, then the listing (a short page, and the request that confirms it).
    assert [relayed_url.split(url, 1)[1].split("?")[0] for relayed_url in relayed] == [
        "/v3/auth/tokens",
        f"/v2/{project}/os-vendor-backup-sharing/detail",
        f"/v2/{project}/os-vendor-backup-sharing/detail",
    ]


async def test_no_proxy_is_honoured(monkeypatch):
    relayed: list[str] = []
    proxy = await recording_proxy(relayed)
    try:
        async with Emulator(projects=1, sharings_per_project=3) as emu:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.addresses[0][1]}")
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            async with VBSClient(emu.url, auth=TokenAuth(emu.token)) as client:
                assert len(await client.list_sharings(emu.project_ids[0])) == 3
    finally:
        await proxy.cleanup()
    assert relayed == []


async def test_netrc_credentials_are_never_sent(monkeypatch, tmp_path):
    # aiohttp's trust_env would add ~/.netrc's login as an Authorization header:
    # a credential sent where it does not belong, and a clash with AK/SK signing.
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret-123\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    async with (
        Emulator(
            projects=1, sharings_per_project=2, access_keys={"AK1": "SK1-secret-value"}
        ) as emu,
        VBSClient(emu.url, auth=AKSKAuth("AK1", "SK1-secret-value")) as client,
    ):
        assert await client.count_sharings(emu.project_ids[0]) == 2


class _SlowToConnect(aiohttp.TCPConnector):
    """A connector whose first `failures` connections time out before any byte is sent."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def connect(self, req, traces, timeout):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise aiohttp.ConnectionTimeoutError("connection timeout to host")
        return await super().connect(req, traces, timeout)


async def test_a_post_whose_connection_timed_out_is_sent_again():
    """A connect timeout happened before the request left: even a share is retried."""
    async with Emulator(projects=1, sharings_per_project=1) as emu:
        project, target = emu.project_ids[0], "ffff"
        backup = emu.sharings(project)[0]["backup_id"]
        retry = RetryPolicy(attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)
        async with (
            aiohttp.ClientSession(connector=_SlowToConnect(failures=2)) as session,
            VBSClient(emu.url, auth=TokenAuth(emu.token), session=session, retry=retry) as client,
        ):
            created = await client.share_backup(project, backup, [target])
        assert [s.to_project_id for s in created] == [target]
        assert [r.method for r in emu.requests] == ["POST"]  # sent once, when it connected


async def test_the_proxy_of_an_origin_is_read_from_the_environment_once(monkeypatch):
    relayed: list[str] = []
    proxy = await recording_proxy(relayed)
    try:
        async with Emulator(projects=1, sharings_per_project=3) as emu:
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            async with VBSClient(emu.url, auth=TokenAuth(emu.token)) as client:
                assert await client.count_sharings(emu.project_ids[0]) == 3
                # Named after the client's first request: not taken up by this client.
                monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.addresses[0][1]}")
                assert await client.count_sharings(emu.project_ids[0]) == 3
    finally:
        await proxy.cleanup()
    assert relayed == []


async def test_the_proxy_s_credentials_in_its_url_are_sent_to_the_proxy(monkeypatch):
    # The echo server stands for the proxy: it answers the absolute URL itself.
    async with EchoServer(200) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://corp:proxy-pw@"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        transport = AiohttpTransport()
        try:
            request = Request("GET", "/v2/p/x", project_id="p")
            with warnings.catch_warnings():
                # aiohttp 3.14 deprecates `proxy_auth` (its v4 drops it): not this test's matter.
                warnings.simplefilter("ignore", DeprecationWarning)
                await transport.send(request, URL("http://vbs.example/v2/p/x"), {})
        finally:
            await transport.close()
    (received,) = proxy.received
    credentials = base64.b64encode(b"corp:proxy-pw").decode()
    assert f"Proxy-Authorization: Basic {credentials}" in received

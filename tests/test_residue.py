"""Smaller promises of the README kept: a DELETE whose answer was lost, settings refused
as configuration errors, the endpoint a region decided, a clock that is off, an empty timestamp."""

from __future__ import annotations

import asyncio
import contextlib
import time
from email.utils import formatdate
from typing import TYPE_CHECKING

import pytest

from vbs_async import (
    AKSKAuth,
    AuthenticationError,
    ConfigurationError,
    PasswordAuth,
    TokenAuth,
    VBSClient,
)
from vbs_async.testing import MockTransport, response

from ._helpers import FAST_RETRY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

PROJECT = "c13f5220dc1949b0b741ea81a7cd5554"
SHARING = "e842bf23-1e05-4c2c-b0f9-25222f4686da"
_BODY = b'{"error": {"code": "VBS.1", "message": "The sharing was not found"}}'
NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BODY)}\r\n\r\n".encode()
    + _BODY
)


@contextlib.asynccontextmanager
async def deleting_then_hanging_up() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that carries out the first DELETE, then closes without answering; 404 after."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received.append(head.split(b"\r\n", 1)[0])
                if len(received) == 1:
                    return  # acted on it, and the answer is lost
                writer.write(NOT_FOUND)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.close()
        await server.wait_closed()


async def test_a_delete_whose_answer_was_lost_then_404_succeeds():
    async with (
        deleting_then_hanging_up() as (url, received),
        VBSClient(url, auth=TokenAuth("t"), retry=FAST_RETRY) as client,
    ):
        assert await client.cancel_sharing(PROJECT, SHARING) is None
    assert len(received) == 2
    assert all(line.startswith(b"DELETE ") for line in received)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_delete_answered_5xx_then_404_succeeds(status):
    """A 5xx may come after the service acted: the 404 that follows proves it did."""
    answers = iter(
        [
            response(status, {"error": {"message": "boom"}}),
            response(404, {"error": {"code": "VBS.1", "message": "gone"}}),
        ]
    )
    transport = MockTransport(lambda _sent: next(answers))
    async with VBSClient(
        "https://vbs.example", auth=TokenAuth("t"), transport=transport, retry=FAST_RETRY
    ) as client:
        assert await client.cancel_sharing(PROJECT, SHARING) is None
    assert len(transport.sent) == 2


@pytest.mark.parametrize(("shift", "side"), [(20 * 60, "behind"), (-20 * 60, "ahead of")])
async def test_a_signature_refused_as_expired_names_the_clock_and_its_skew(shift, side):
    date = formatdate(time.time() + shift, usegmt=True)
    refusal = response(
        401,
        {
            "error_code": "APIGW.0301",
            "error_msg": "Incorrect IAM authentication information: x-sdk-date expired",
        },
        {"Date": date},
    )
    transport = MockTransport(lambda _sent: refusal)
    async with VBSClient(
        "https://vbs.example", auth=AKSKAuth("AK", "SK-secret"), transport=transport
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.count_sharings(PROJECT)
    message = str(caught.value)
    assert f"this machine's clock is 20 minutes {side} the server's Date header" in message
    assert "15 minutes" in message


async def test_without_a_date_header_an_expired_signature_still_points_at_the_clock():
    refusal = response(401, {"error_code": "APIG.0301", "error_msg": "Signature expired"})
    transport = MockTransport(lambda _sent: refusal)
    async with VBSClient(
        "https://vbs.example", auth=AKSKAuth("AK", "SK-secret"), transport=transport
    ) as client:
        with pytest.raises(AuthenticationError, match="is this machine's clock off"):
            await client.count_sharings(PROJECT)


async def test_an_expired_token_is_not_blamed_on_the_clock():
    refusal = response(401, {"error_code": "APIGW.0301", "error_msg": "the token has expired"})
    transport = MockTransport(lambda _sent: refusal)
    async with VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=transport) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.count_sharings(PROJECT)
    assert "clock" not in str(caught.value)


# -- settings refused as configuration errors, the endpoint the region decided ---------


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        (
            "    auth:\n      token: abc\n    region_name: eu-de\n    vbs_endpoint_override: 123\n",
            "vbs_endpoint_override",
        ),
        (
            (
                "    auth:\n      auth_url: htps://user:pw-SECRET@iam\n      username: u\n"
                "      password: p\n      user_domain_name: d\n    region_name: eu-de\n"
            ),
            "auth.auth_url",
        ),
    ],
)
def test_a_malformed_url_setting_is_a_configuration_error_naming_its_key(
    tmp_path, monkeypatch, entry, key
):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  c:\n" + entry)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    with pytest.raises(ConfigurationError) as caught:
        VBSClient.from_env(cloud="c")
    assert key in str(caught.value)
    assert "pw-SECRET" not in str(caught.value)


async def test_the_endpoint_the_region_table_decided_is_the_clients_endpoint():
    async with VBSClient(auth=TokenAuth("t"), region="eu-de") as client:
        assert client.endpoint == "https://vbs.eu-de.otc.t-systems.com"
    async with VBSClient(
        auth=PasswordAuth("https://iam.example", "u", "p", "d"), region="eu-de"
    ) as client:
        assert client.endpoint is None  # each token's catalog comes first


def test_eu_nl_without_a_catalog_is_refused_without_calling_it_unknown():
    with pytest.raises(ConfigurationError) as caught:
        VBSClient(auth=TokenAuth("t"), region="eu-nl")
    message = str(caught.value)
    assert "region 'eu-nl' publishes no VBS endpoint" in message
    assert "not a known one" not in message
    assert "region_name: eu-de, eu-ch2" in message


# -- an empty timestamp -----------------------------------------------------------------


@pytest.mark.parametrize("empty", ["", " "])
async def test_one_item_with_an_empty_updated_at_decodes_as_none(empty):
    items = [
        {"id": "a", "backup_id": "b", "from_project_id": PROJECT, "to_project_id": "q"},
        {
            "id": "b",
            "backup_id": "b",
            "from_project_id": PROJECT,
            "to_project_id": "q",
            "updated_at": empty,
            "created_at": "2017-08-10T12:25:40.480424",
            "backup": {"id": "b", "updated_at": empty},
        },
    ]
    transport = MockTransport(lambda _sent: response(200, {"shared": items}))
    async with VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=transport) as client:
        results = [result async for result in client.crawl([PROJECT])]
    assert results[0].ok
    second = results[0].sharings[1]
    assert second.updated_at is None
    assert second.backup is not None
    assert second.backup.updated_at is None
    assert second.created_at is not None

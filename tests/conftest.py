"""Shared fixtures: an emulator on 127.0.0.1 and clients that retry without real waiting."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import ClientResponse
from aioresponses import aioresponses

from vbs_async import RetryPolicy, TokenAuth, VBSClient
from vbs_async.testing import Emulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

# Tiny waits: retries are exercised for real, but never sleep noticeably.
FAST_RETRY = RetryPolicy(attempts=4, wait_initial=0.001, wait_max=0.002, wait_jitter=0.0)
# For fault rates of 25-30 %: ten tries make a page failing them all a one-in-a-million event.
PATIENT_RETRY = RetryPolicy(attempts=10, wait_initial=0.001, wait_max=0.002, wait_jitter=0.0)


CREDENTIAL_VARIABLES = [
    "OS_CLOUD", "OS_AUTH_TOKEN", "OS_ACCESS_KEY", "OS_SECRET_KEY", "OS_AUTH_URL", "OS_USERNAME",
    "OS_PASSWORD", "OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME", "OS_REGION_NAME", "VBS_ENDPOINT",
    "OS_CLIENT_CONFIG_FILE", "OS_TOKEN", "OS_PROJECT_NAME", "OS_PROJECT_ID", "OS_CACERT",
    "OS_INSECURE", "OS_USER_DOMAIN_ID", "OS_SECURITY_TOKEN", "OS_AGENCY_NAME",
    "OS_AGENCY_DOMAIN_NAME", "OS_DELEGATED_PROJECT", "OS_CLIENT_SECURE_FILE",
]  # fmt: skip
"""The settings the command reads from the environment: `clean_env` clears them."""

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client honours proxy variables; tests talk to 127.0.0.1 unless they set one."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """Three projects with 0 sharings each; tests add what they need."""
    async with Emulator(projects=3, sharings_per_project=0, seed=7) as emu:
        yield emu


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., VBSClient]]:
    """Build clients for an emulator; all are closed at the end of the test."""
    clients: list[VBSClient] = []

    def make(emu: Emulator, **options: Any) -> VBSClient:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("auth", TokenAuth(emu.token))
        client = VBSClient(emu.url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(emulator: Emulator, make_client: Callable[..., VBSClient]) -> VBSClient:
    return make_client(emulator)


class _StreamWriterCompatResponse(ClientResponse):
    """aiohttp 3.14 made `stream_writer` a required argument that aioresponses
    0.7.9 does not pass (pnuckowski/aioresponses#289); supply a finished one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(*args, **kwargs)


class _CompatAioresponses(aioresponses):
    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _StreamWriterCompatResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    """aioresponses, intercepting every aiohttp request of the test."""
    with _CompatAioresponses() as mock:
        yield mock


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch

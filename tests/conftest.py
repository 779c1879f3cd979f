"""Shared fixtures: an emulator on 127.0.0.1 and clients that retry without real waiting."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import ClientResponse
from aioresponses import aioresponses
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

import vbs_async
from vbs_async import TokenAuth, VBSClient, _config
from vbs_async.testing import Emulator

from ._helpers import FAST_RETRY, FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

# Hypothesis keeps its examples in a temporary folder, never in the working directory.
# Hypothesis's own storage (its constants cache, and its example database unless told
# otherwise) goes to a temporary folder, never `.hypothesis/` in the working directory.
# Both are removed when the run ends (`pytest_unconfigure`).
_HYPOTHESIS_FOLDER = Path(tempfile.mkdtemp(prefix="vbs-async-hypothesis-"))
set_hypothesis_home_dir(str(_HYPOTHESIS_FOLDER / "home"))

# In CI (CI=true) the examples are derandomised: a run of the same commit draws the same
# examples, so a landing is never refused by a new draw; developers' runs keep exploring,
# and what they find is kept as a written regression test (see tests/test_bound.py).
if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    settings.register_profile("isolated", derandomize=True, database=None)
else:
    settings.register_profile(
        "isolated",
        database=DirectoryBasedExampleDatabase(str(_HYPOTHESIS_FOLDER / "examples")),
    )
settings.load_profile("isolated")


def pytest_unconfigure() -> None:
    """Remove Hypothesis's temporary folder: a run leaves nothing in the temporary folder."""
    shutil.rmtree(_HYPOTHESIS_FOLDER, ignore_errors=True)


def _variables_the_configuration_reads() -> list[str]:
    """Every environment variable the library or the command may consult.

    Derived from the code, not written by hand: every `OS_*`/`VBS_*` name that
    appears in the package's source (the configuration reader's table of names
    and any variable read outside it, such as `OS_CLOUD` or `OS_INSECURE`),
    wherever a rewrite moves the reader.
    """
    names: set[str] = set()
    for module in Path(vbs_async.__file__).parent.rglob("*.py"):
        names.update(re.findall(r"\b(?:OS|VBS)_[A-Z_]+[A-Z]\b", module.read_text()))
    return sorted(names)


CREDENTIAL_VARIABLES = _variables_the_configuration_reads()
"""The settings the command reads from the environment: every test starts without them."""

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _machine_files_intact() -> list[str]:
    """The machine's files a broken output path would replace first (CI runs as root)."""
    harmed = []
    if not Path("/dev/null").is_char_device():
        harmed.append("/dev/null is no longer a character device")
    stdout = Path("/dev/stdout")
    if os.path.lexists(stdout) and not stdout.is_symlink():
        harmed.append("/dev/stdout is no longer a symlink")
    return harmed


@pytest.fixture(autouse=True)
def the_machine_s_files_are_left_alone() -> Iterator[None]:
    """Fail the very test that replaced /dev/null or /dev/stdout, not a later program."""
    before = _machine_files_intact()
    yield
    assert _machine_files_intact() == before, "this test harmed the machine's files"


@pytest.fixture(autouse=True)
def isolated_from_the_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the machine's cloud settings, home or configuration folders.

    Every variable the configuration reads (and any other `OS_*`/`VBS_*` one) is
    removed, and `HOME` and the XDG folders point at an empty temporary folder,
    so a developer's `clouds.yaml`, `OS_AK` or `OS_CLOUD` changes no result;
    subprocesses inherit the same environment.
    """
    for name in list(os.environ):
        if name.startswith(("OS_", "VBS_")):
            monkeypatch.delenv(name)
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(name, str(home / name.lower()))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(home / "xdg_config_dirs"))
    # /etc/openstack and /etc/xdg/openstack: a temporary folder, never the machine's.
    monkeypatch.setattr(_config, "SYSTEM_CONFIG_ROOT", home / "etc")
    # A relative path a test or its subprocess writes lands in a temporary folder too.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


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
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock that `asyncio.sleep` advances instead of waiting (for an injected clock)."""
    clock = FakeClock()
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, result: object = None) -> object:
        clock.now += max(0.0, seconds)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return clock

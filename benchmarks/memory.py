"""Peak RSS growth while listing 1,000,000 sharings of one project: streaming vs a list.

Each mode runs in a child process of its own (`python -m benchmarks.memory MODE URL`),
so that one measurement cannot inherit the other's heap.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys

from vbs_async import TokenAuth, VBSClient

from ._harness import ROOT, TOKEN, Row, page_server
from .page_server import project_id

PER_PROJECT, PAGE_SIZE = 1_000_000, 1000


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:  # noqa: PTH123 - Linux only
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Make the peak RSS (VmHWM) start again from the current RSS (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:  # noqa: PTH123 - Linux only
        clear_refs.write("5")


async def _child(mode: str, url: str) -> None:
    async with VBSClient(url, auth=TokenAuth(TOKEN)) as client:
        # Warm up: one page, so imports, the session and the converter are counted out.
        await client.list_sharings(project_id(0), page_size=PAGE_SIZE, max_items=PAGE_SIZE)
        gc.collect()
        # Growth is the peak during the listing over what was resident before
        # it; the peak is reset so that the warm-up's own peak does not count.
        _reset_peak()
        before = _status_mib("VmRSS")
        if mode == "stream":
            found = 0
            async for _ in client.iter_sharings(project_id(0), page_size=PAGE_SIZE):
                found += 1
        else:
            found = len(await client.list_sharings(project_id(0), page_size=PAGE_SIZE))
        sys.stdout.write(f"{found} {_status_mib('VmHWM') - before:.1f}\n")


def _measure(mode: str, url: str) -> tuple[int, float]:
    command = [sys.executable, "-m", "benchmarks.memory", mode, url]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603
    found, growth = output.stdout.split()
    return int(found), float(growth)


async def run(runs: int) -> list[Row]:
    """Stream and list in two child processes against one page server."""
    del runs  # one run each: a million records take a while
    with page_server(1, PER_PROJECT) as url:
        streamed, stream_growth = await asyncio.to_thread(_measure, "stream", url)
        listed, list_growth = await asyncio.to_thread(_measure, "list", url)
    assert streamed == listed == PER_PROJECT
    return [
        Row(
            "memory: stream 1M sharings (peak RSS growth)",
            f"{stream_growth:.0f} MiB",
            f"list_sharings {list_growth:.0f} MiB",
            list_growth / max(stream_growth, 1.0),
            "stream <= 64 MiB",
            stream_growth <= 64,
        ),
    ]


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))

"""Crawl every project of the embedded emulator and print what was found.

Run: python examples/crawl_emulator.py
"""

from __future__ import annotations

import asyncio
import time

from vbs_async import TokenAuth, VBSClient
from vbs_async.testing import Emulator


async def main() -> None:
    async with Emulator(projects=50, sharings_per_project=120, seed=1) as emulator:
        started = time.perf_counter()
        found = failed = requests = 0
        async with VBSClient(emulator.url, auth=TokenAuth(emulator.token)) as client:
            async for result in client.crawl(emulator.project_ids, max_projects=16):
                requests += result.stats.requests
                if result.ok:
                    found += len(result.sharings)
                    expected = len(emulator.sharings(result.project_id))
                    if len(result.sharings) != expected:
                        raise SystemExit(f"{result.project_id}: {expected} held, got fewer")
                else:
                    failed += 1
                    print(f"{result.project_id}: {result.error}")
        elapsed = time.perf_counter() - started
        print(
            f"crawled {len(emulator.project_ids)} projects at {emulator.url}: "
            f"{found} sharings ({len(emulator.store)} held), {failed} failed, "
            f"{requests} requests in {elapsed:.2f}s"
        )


if __name__ == "__main__":
    asyncio.run(main())

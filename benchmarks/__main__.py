"""Run every benchmark and print a table: `python -m benchmarks [--runs N] [--only NAME ...]`."""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import version

from . import (
    big_project,
    command,
    decode,
    fanout,
    gateway,
    inventory,
    memory,
    rate,
    simulated,
    throughput,
)
from ._harness import Row, markdown

BENCHMARKS = {
    "decode": decode.run,
    "throughput": throughput.run,
    "fanout": fanout.run,
    "big_project": big_project.run,
    "memory": memory.run,
    "rate": rate.run,
    "gateway": gateway.run,
    "simulated": simulated.run,
    "command": command.run,
    "inventory": inventory.run,
}


def machine() -> str:
    """Where the figures were taken."""
    import os  # noqa: PLC0415

    packages = ", ".join(
        f"{name} {version(name)}" for name in ("aiohttp", "attrs", "cattrs", "orjson")
    )
    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {packages}"
    )


async def main(names: list[str], runs: int) -> list[Row]:
    """Run the named benchmarks, printing each row as it comes."""
    rows: list[Row] = []
    for name in names:
        sys.stderr.write(f"running {name}...\n")
        rows.extend(await BENCHMARKS[name](runs))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per timing (the best counts)")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=list(BENCHMARKS))
    arguments = parser.parse_args()
    table = asyncio.run(main(arguments.only, arguments.runs))
    sys.stdout.write(f"{machine()}\n\n{markdown(table)}\n")

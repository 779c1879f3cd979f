"""Run the emulator until interrupted: `python -m vbs_async.testing --port 8080 --projects 50`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from ._emulator import DEFAULT_TOKEN, Emulator
from ._serve import serve


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vbs_async.testing",
        description="Serve the VBS backup-sharing API on 127.0.0.1 with synthetic data.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument("--projects", type=int, default=10, help="synthetic projects")
    parser.add_argument("--sharings", type=int, default=100, help="sharings per project")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the X-Auth-Token to accept")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests failing")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    return parser.parse_args(argv)


def _emulator(arguments: argparse.Namespace) -> Emulator:
    return Emulator(
        projects=arguments.projects,
        sharings_per_project=arguments.sharings,
        seed=arguments.seed,
        token=arguments.token,
        host=arguments.host,
        port=arguments.port,
        fault_rate=arguments.fault_rate,
        latency=arguments.latency,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the emulator until Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(_emulator(_arguments(argv)), sys.stdout))


if __name__ == "__main__":
    main()

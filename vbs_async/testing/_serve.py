"""Serving an emulator until interrupted (`python -m vbs_async.testing`, `vbs-async emulator`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TextIO

    from ._emulator import Emulator


async def serve(emulator: Emulator, out: TextIO) -> None:
    """Start `emulator`, say where it is and which token to use, and serve until cancelled."""
    async with emulator:
        out.write(
            f"VBS emulator at {emulator.url} (token: {emulator.token}), "
            f"{len(emulator.project_ids)} projects, {len(emulator.store)} sharings.\n"
            "Press Ctrl-C to stop.\n"
        )
        out.flush()
        await asyncio.Event().wait()

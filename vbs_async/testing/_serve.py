"""Serving an emulator until interrupted (`python -m vbs_async.testing`, `vbs-async emulator`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TextIO

    from ._emulator import Emulator


class IdsFileError(Exception):
    """The file for the project IDs cannot be written (the port is not at fault)."""


async def serve(emulator: Emulator, out: TextIO, *, ids_file: Path | None = None) -> None:
    """Start `emulator`, say where it is, which token to use and which projects it serves.

    The project IDs go one per line after the first line (and into `ids_file`,
    if given, ready for `vbs-async crawl --projects-file`).
    """
    async with emulator:
        if ids_file is not None:
            ids = "".join(f"{project_id}\n" for project_id in emulator.project_ids)
            try:
                await asyncio.to_thread(ids_file.write_text, ids)
            except OSError as exc:
                raise IdsFileError(f"--ids-file {ids_file}: {exc.strerror or exc}") from None
        out.write(
            f"VBS emulator at {emulator.url} (token: {emulator.token}), "
            f"{len(emulator.project_ids)} projects, {len(emulator.store)} sharings.\n"
            "Press Ctrl-C to stop. Project IDs:\n"
            + "".join(f"{project_id}\n" for project_id in emulator.project_ids)
        )
        out.flush()
        await asyncio.Event().wait()

"""The `vbs-async` command line tool (click for the commands, rich for the terminal)."""

from __future__ import annotations

from ._commands import cli


def run() -> None:
    """The `vbs-async` console script."""
    cli.main(prog_name="vbs-async")


__all__ = ["cli", "run"]

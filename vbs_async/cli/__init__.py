"""The `vbs-async` command line tool (click for the commands, rich for the terminal).

click and rich come with the `cli` extra (`pip install 'vbs-async[cli]'`); the
library itself never imports them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._commands import cli

_EXTRA_MODULES = frozenset({"click", "rich", "yaml"})


def _standard_streams_open() -> None:
    """Give a closed stdin, stdout or stderr (`2>&-`) /dev/null.

    Otherwise the next file the command opens takes that descriptor, and rich,
    finding no stderr, writes the progress and summary to stdout: into the data.
    """
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != descriptor:
                os.dup2(opened, descriptor)
                os.close(opened)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115, PTH123 - lives as long as the process


def run(args: list[str] | None = None, prog_name: str = "vbs-async") -> None:
    """The `vbs-async` console script (`args`: the command line, else `sys.argv`)."""
    _standard_streams_open()
    try:
        from ._commands import cli  # noqa: PLC0415 - only the command needs click
    except ModuleNotFoundError as exc:
        if exc.name not in _EXTRA_MODULES:
            raise
        sys.stderr.write(
            f"vbs-async: error: the command needs {exc.name}, which comes with the cli extra: "
            "pip install 'vbs-async[cli]'\n"
        )
        raise SystemExit(2) from None
    cli.main(args, prog_name=prog_name)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from ._commands import cli  # noqa: PLC0415

        return cli
    raise AttributeError(name)


__all__ = ["cli", "run"]

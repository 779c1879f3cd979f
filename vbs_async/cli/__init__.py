"""The `vbs-async` command line tool (click for the commands, rich for the terminal).

click and rich come with the `cli` extra (`pip install 'vbs-async[cli]'`); the
library itself never imports them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._commands import cli

_EXTRA_MODULES = frozenset({"click", "rich", "yaml"})


def run() -> None:
    """The `vbs-async` console script."""
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
    cli.main(prog_name="vbs-async")


def __getattr__(name: str) -> Any:
    if name == "cli":
        from ._commands import cli  # noqa: PLC0415

        return cli
    raise AttributeError(name)


__all__ = ["cli", "run"]

"""Stopping cleanly on a signal: Ctrl-C (SIGINT), SIGTERM, and SIGHUP (a closed ssh session).

The first signal cancels the command's main task, which then finishes what
it can (renames its output, writes its report, removes its temporary
files) and ends with a closing line and the status a shell gives a process
killed by that signal (128 + its number: 130, 143, 129). A second signal
of any of them while it does so ends the process at once, as the default
action would.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Final, Self

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
NAMES: Final = {
    signal.SIGINT: "SIGINT (Ctrl-C)",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


class StopSignals:
    """While entered, the stop signals cancel the current task (once), remembering which came.

    Attributes:
        signal: The number of the first signal received, or None.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._installed: list[int] = []
        self._task: asyncio.Task[object] | None = None

    @property
    def status(self) -> int:
        """The exit status for the signal received (128 + its number)."""
        assert self.signal is not None  # noqa: S101 - asked only after a signal
        return 128 + self.signal

    @property
    def name(self) -> str:
        """The signal received, as an operator knows it."""
        assert self.signal is not None  # noqa: S101 - asked only after a signal
        return NAMES.get(signal.Signals(self.signal), f"signal {self.signal}")

    def __enter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for signum in STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, self._received, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or not a Unix loop
            self._installed.append(signum)
        return self

    def _received(self, signum: int) -> None:
        if self.signal is not None:
            # Asked twice: stop now, as the signal's default action would.
            self.__exit__()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signal = signum
        if self._task is not None:
            self._task.cancel()

    def __exit__(self, *_: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._installed:
            loop.remove_signal_handler(signum)
        self._installed = []
        if self.signal is not None and self._task is not None:
            self._task.uncancel()
            self._task = None

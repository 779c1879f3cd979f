"""What the command tells the operator on stderr besides progress: warnings, retries, requests.

- default: the library's warnings (TLS not verified, a skewed IAM clock);
- `--verbose`: also one line per retry and per throttled request, with the
  project, the offset, what happened and the wait, and a line when the gateway
  announces its quota or is found to let through much less than it names;
- `--debug`: every request, with timestamps;
- `--quiet`: errors only.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Any, Final, Literal

from ._text import printable

if TYPE_CHECKING:
    from collections.abc import Iterator

Verbosity = Literal["quiet", "normal", "verbose", "debug"]
_LOGGER: Final = "vbs_async"
_EVENTS: Final = ("vbs_retry_wait", "vbs_throttle_wait", "vbs_quota")
"""The `extra` keys the client puts on its retry, throttle and quota records."""


class _PrintableFormatter(logging.Formatter):
    """Log lines with server text escaped: one line each, no escape sequences."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return printable(super().formatMessage(record))


class _VerboseFilter(logging.Filter):
    """Warnings, and the client's retry, throttle and quota lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or any(hasattr(record, k) for k in _EVENTS)


class _StderrNow(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stderr` as it is when a line is logged, not as it was at the start.

    While the progress bar is live, rich points `sys.stderr` at its own proxy,
    which prints a line above the bar: a handler holding the real stderr would
    glue its line to the bar (`...ETA ?vbs-async: retry 1 of GET ...`).
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """The current stderr."""
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        del value  # logging sets it once; the current stderr is always used


@contextlib.contextmanager
def operator_logging(verbosity: Verbosity) -> Iterator[None]:
    """Send the library's log lines to stderr at `verbosity` while the command runs."""
    logger = logging.getLogger(_LOGGER)
    handler = _StderrNow()
    if verbosity == "debug":
        handler.setFormatter(
            _PrintableFormatter("%(asctime)s.%(msecs)03d %(levelname)s %(message)s", "%H:%M:%S")
        )
        level = logging.DEBUG
    else:
        handler.setFormatter(_PrintableFormatter("vbs-async: %(message)s"))
        level = {"quiet": logging.ERROR, "normal": logging.WARNING}.get(verbosity, logging.DEBUG)
        if verbosity == "verbose":
            handler.addFilter(_VerboseFilter())
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # once, on stderr: not again through the root logger
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]

"""Records/s of the library's converter against building the same models by hand."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from vbs_async._converter import structure_sharings

from ._baselines import build_by_hand
from ._harness import Row
from .page_server import render_item

if TYPE_CHECKING:
    from collections.abc import Callable

PAGE = 100


def _rate(build: Callable[[], object], seconds: float = 1.0) -> float:
    """Pages per second of `build`, best of several short rounds."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(50):
            build()
        best = max(best, 50 / (time.perf_counter() - started))
    return best


async def run(runs: int) -> list[Row]:
    """The converter vs hand-built models on a parsed 100-item page."""
    body = ("[" + ",".join(render_item("p00000", 0, i) for i in range(PAGE)) + "]").encode()
    items = orjson.loads(body)
    assert structure_sharings(items) == tuple(build_by_hand(items))
    seconds = 0.5 * runs
    library = _rate(lambda: structure_sharings(items), seconds) * PAGE
    by_hand = _rate(lambda: build_by_hand(items), seconds) * PAGE
    return [
        Row(
            "decode: converter vs models built by hand",
            f"{library:,.0f} rec/s",
            f"{by_hand:,.0f} rec/s",
            library / by_hand,
            ">= 1.00",
            library / by_hand >= 1.0,
        ),
    ]

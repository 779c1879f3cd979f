"""Fanning a listing out over many projects, with a bounded number at once.

Project IDs are read lazily, one per free worker, so an iterable of 100,000
IDs is never scheduled at once; what they produce (whole projects, or pages)
passes through a bounded queue, so a slow consumer holds the workers (and
memory) back. Everything runs in a
TaskGroup: when the consumer stops, every request in flight is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import TypeVar, cast

ProjectIds = Iterable[str] | AsyncIterable[str]
T = TypeVar("T")


class _ProjectIdSource:
    """Hands out project IDs one at a time to concurrent workers."""

    def __init__(self, project_ids: ProjectIds) -> None:
        self._sync: Iterator[str] | None = None
        self._async: AsyncIterator[str] | None = None
        if isinstance(project_ids, AsyncIterable):
            self._async = aiter(project_ids)
        elif isinstance(project_ids, str):
            raise ValueError("project_ids must be an iterable of IDs, not a single string")
        else:
            self._sync = iter(project_ids)
        # An async generator cannot be advanced by two tasks at once.
        self._lock = asyncio.Lock()

    async def next(self) -> str | None:
        """The next ID, or None when there are no more."""
        if self._sync is not None:
            return next(self._sync, None)
        assert self._async is not None  # noqa: S101 - one of the two is set
        async with self._lock:
            try:
                return await anext(self._async)
            except StopAsyncIteration:
                return None


async def fan_out(
    run: Callable[[str, Callable[[T], Awaitable[None]]], Awaitable[None]],
    project_ids: ProjectIds,
    *,
    max_projects: int,
) -> AsyncGenerator[T, None]:
    """Run `run(id, emit)` for every ID, at most `max_projects` at once; yield what they emit.

    What the runs emit passes through a queue of `max_projects` places: a run
    that emits faster than the consumer takes waits, so memory is bounded by
    what is in flight, not by what is listed. `run` must turn a project's
    failure into something it emits; anything it raises is a bug and ends
    the fan-out.
    """
    source = _ProjectIdSource(project_ids)
    done = object()
    events: asyncio.Queue[T | object] = asyncio.Queue(maxsize=max_projects)

    async def worker() -> None:
        while (project_id := await source.next()) is not None:
            await run(project_id, events.put)

    async def produce() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(max_projects):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            # What ends a crawl (the client closed) ends every worker at once:
            # one error for the consumer, not a group of the same one.
            raise _first_leaf(failed) from None
        await events.put(done)

    # The TaskGroup runs in a task of its own: an async generator must not
    # yield from inside one (its close would reach the group as an error).
    producer = asyncio.create_task(produce())
    try:
        while (event := await _next_result(events, producer)) is not done:
            yield cast("T", event)  # the queue's other type is `done`
    finally:
        producer.cancel()
        await asyncio.wait([producer])
        if not producer.cancelled():
            producer.exception()  # retrieved here; raised below unless we are closing
    producer.result()


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of a (nested) exception group that is not a group."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _next_result(
    results: asyncio.Queue[T | object], producer: asyncio.Task[None]
) -> T | object:
    """The next queued result; if the producer fails first, its error."""
    if not results.empty():
        return results.get_nowait()
    getter = asyncio.ensure_future(results.get())
    try:
        await asyncio.wait([getter, producer], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    producer.result()  # raises the workers' error
    # Unreachable (the producer ends by queueing `done`): left out of coverage and mutation.
    raise AssertionError("unreachable")  # pragma: no cover, no mutate

"""Fanning a listing out over many projects, with a bounded number at once.

Project IDs are read lazily, one per free worker, so an iterable of 100,000
IDs is never scheduled at once; results pass through a bounded queue, so a
slow consumer holds the workers (and memory) back. Everything runs in a
TaskGroup: when the consumer stops, every request in flight is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator

from ._models import ProjectSharings

ProjectIds = Iterable[str] | AsyncIterable[str]


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


async def crawl(
    list_project: Callable[[str], Awaitable[ProjectSharings]],
    project_ids: ProjectIds,
    *,
    max_projects: int,
) -> AsyncIterator[ProjectSharings]:
    """Yield `list_project(id)` for every ID, as each completes, at most `max_projects` at once.

    `list_project` must turn a project's failure into a result with `error`
    set; anything else it raises is a bug and ends the crawl.
    """
    source = _ProjectIdSource(project_ids)
    done = object()
    results: asyncio.Queue[ProjectSharings | object] = asyncio.Queue(maxsize=max_projects)

    async def worker() -> None:
        while (project_id := await source.next()) is not None:
            await results.put(await list_project(project_id))
        await results.put(done)

    async with asyncio.TaskGroup() as group:
        for _ in range(max_projects):
            group.create_task(worker())
        finished = 0
        while finished < max_projects:
            result = await results.get()
            if result is done:
                finished += 1
            else:
                assert isinstance(result, ProjectSharings)  # noqa: S101 - the queue's only other type
                yield result

"""Draining an offset-paged listing without losing or repeating an item.

`PageCursor` is the pure part: which pages to ask for next and what a page
means (new items, a shift of the listing, the end, or a server that cannot be
trusted). `SharingIterator` drives it with the client's requests, one page at
a time or several ahead.

How a listing is kept straight:

- Each request after the first asks from `offset - overlap`, so its first
  items should be the last ones already seen. When they are not, the listing
  shifted (an insert or delete before the cursor): the page is re-aligned
  after the last id already seen in it. When no seen id is in it, the cursor
  steps back a page to find one, a bounded number of times, then gives up
  with `PaginationError` rather than guess.
- Ids are remembered (the last `DEDUPE_WINDOW`, i.e. the whole listing for
  any project under 100,000 sharings), so no item is yielded twice.
- A page longer than the limit, or the same page again from other offsets
  twice in a row (a server ignoring `offset`), raises `PaginationError`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final

import attrs

from ._errors import PaginationError
from ._models import BackupSharing, ListingStats, SharingPage

DEFAULT_OVERLAP: Final = 5
"""Items each request re-reads from the previous page to detect shifts."""

COUNT_WINDOW: Final = 8
"""Pages fetched at once when `end_check="count"` knows the total and no prefetch is set."""

DEDUPE_WINDOW: Final = 100_000
"""Ids remembered for de-duplication and re-alignment: the whole listing up to this
many items, the most recent this many beyond, so that streaming a huge project
keeps memory flat. Alignment only ever needs the last few pages."""

MAX_STEPS_BACK: Final = 8
"""Pages the cursor may step back to re-align before it gives up."""

MAX_REPEATED_PAGES: Final = 2
"""The same page from this many different offsets in a row means `offset` is ignored."""

FetchPage = Callable[[int, int], Coroutine[Any, Any, tuple[BackupSharing, ...]]]
FetchCount = Callable[[], Coroutine[Any, Any, int]]


def overlap_for(page_size: int) -> int:
    """The overlap for a page size: a few items, never more than half a page."""
    return min(DEFAULT_OVERLAP, page_size // 2)


@attrs.frozen
class PageRequest:
    """One page to ask for.

    Attributes:
        offset: The `offset` to send.
        limit: The `limit` to send.
        overlap: How many of the first items should repeat already-seen ones.
    """

    offset: int
    limit: int
    overlap: int


@attrs.define
class PageCursor:
    """The state of one listing, free of I/O.

    Attributes:
        project_id: The project listed (for errors).
        page_size: The `limit` sent.
        end_check: `short_page`, `empty_page` or `count`.
        offset: The server position of the first item not yet seen.
        overlap: Items each later request re-reads.
        expected: Items the listing should yield (from a count), if known.
        max_items: Stop after this many items, if set.
        done: Whether the listing has ended.
        stats: What the listing cost so far.
    """

    project_id: str
    page_size: int
    end_check: str
    offset: int
    overlap: int
    expected: int | None = None
    max_items: int | None = None
    done: bool = False
    stats: ListingStats = attrs.field(factory=ListingStats)
    _stride: int = attrs.field(init=False)
    _tail: deque[str] = attrs.field(init=False)
    _seen: set[str] = attrs.field(init=False, factory=set)
    _seen_order: deque[str] = attrs.field(init=False, factory=deque)
    _previous: tuple[int, list[str]] | None = attrs.field(init=False, default=None)
    _steps_back: int = attrs.field(init=False, default=0)
    _repeats: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._stride = self.page_size
        self._tail = deque(maxlen=max(1, self.overlap))
        if self.max_items == 0 or self.expected == 0:
            self.done = True

    def plan(self, pages: int) -> list[PageRequest]:
        """The next `pages` requests, assuming every page comes back full and aligned.

        The first is the one needed now; the others may be fetched ahead.
        """
        back = min(self.overlap, len(self._tail)) if self._steps_back == 0 else 0
        first = PageRequest(self.offset - back, self.page_size, back)
        requests = [first]
        step = self._stride - self.overlap
        position = self.offset - back + self._stride
        while len(requests) < pages and step > 0:
            if position >= self._planning_end():
                break
            requests.append(PageRequest(position - self.overlap, self.page_size, self.overlap))
            position += step
        return requests

    def _planning_end(self) -> float:
        """The server position past which no page is worth asking for ahead."""
        wanted = [
            limit - self.stats.items
            for limit in (self.expected, self.max_items)
            if limit is not None
        ]
        return self.offset + max(0, min(wanted)) if wanted else math.inf

    def accept(self, request: PageRequest, items: tuple[BackupSharing, ...]) -> SharingPage:
        """Take the answer to `request`; return the page of items not seen before.

        Raises:
            PaginationError: The page is longer than the limit, repeats the
                previous page from another offset, or cannot be aligned.
        """
        if len(items) > request.limit:
            raise self._error(
                f"the server returned {len(items)} items for limit {request.limit}",
                request.offset,
            )
        ids = [item.id for item in items]
        previous = self._previous
        if items and previous is not None and previous[0] != request.offset and previous[1] == ids:
            # Once can be a listing that shifted by exactly the distance between
            # the two offsets; twice in a row is a server ignoring `offset`.
            self._repeats += 1
            if self._repeats >= MAX_REPEATED_PAGES:
                raise self._error(
                    "the server returned the same page for different offsets "
                    "(is it ignoring offset?)",
                    request.offset,
                )
        else:
            self._repeats = 0
        self._previous = (request.offset, ids)

        start = self._align(request, ids)
        if start is None:
            return self._step_back(request)
        self._steps_back = 0
        fresh = self._fresh(items, start)
        if len(items) < request.limit and fresh:
            # A page short of its limit that is not the end: the server caps
            # `limit` silently. Plan later pages with the stride it gives.
            self._stride = max(self.overlap + 1, len(items))
        self.offset = request.offset + len(items)
        self.stats.pages += 1
        self._decide_end(request, len(items), fresh_count=len(fresh))
        if self.max_items is not None and self.stats.items + len(fresh) >= self.max_items:
            fresh = fresh[: self.max_items - self.stats.items]
            self.done = True
            if fresh:
                # Resume right after the last item handed out, not after the page.
                last = next(i for i, item in enumerate(items) if item is fresh[-1])
                self.offset = request.offset + last + 1
        self.stats.items += len(fresh)
        self._tail.extend(ids)  # the page's own last ids: what the next page re-reads
        return SharingPage(
            project_id=self.project_id,
            offset=request.offset + start,
            limit=request.limit,
            items=tuple(fresh),
        )

    def _align(self, request: PageRequest, ids: list[str]) -> int | None:
        """Index of the first item past what was seen, or None if the page cannot be placed."""
        back = request.overlap
        if self._steps_back == 0:
            if back == 0:
                return 0
            if ids[:back] == list(self._tail)[-back:]:
                return back
            self.stats.shifts_detected += 1
        for index in range(len(ids) - 1, -1, -1):
            if ids[index] in self._seen:
                return index + 1
        if not ids and (request.offset == 0 or (back == 0 and self._steps_back == 0)):
            return 0  # the end (or an empty listing)
        # No seen item here: the listing shrank behind the cursor by more
        # than the overlap (an empty page included); look earlier.
        return None

    def _step_back(self, request: PageRequest) -> SharingPage:
        """No seen id is in the page: items were deleted before the cursor. Look earlier."""
        if request.offset == 0 or self._steps_back >= MAX_STEPS_BACK:
            raise self._error(
                "the listing shifted by more than the client can re-align "
                f"(no item already seen found after {self._steps_back} steps back)",
                request.offset,
            )
        self._steps_back += 1
        self.offset = max(0, request.offset - (self.page_size - 1))
        return SharingPage(self.project_id, request.offset, request.limit, ())

    def _fresh(self, items: tuple[BackupSharing, ...], start: int) -> list[BackupSharing]:
        seen = self._seen
        fresh = []
        for item in items[start:] if start else items:
            if item.id in seen:
                self.stats.duplicates_dropped += 1
            else:
                seen.add(item.id)
                fresh.append(item)
        order = self._seen_order
        order.extend(item.id for item in fresh)
        while len(order) > DEDUPE_WINDOW:
            seen.discard(order.popleft())
        return fresh

    def _decide_end(self, request: PageRequest, length: int, *, fresh_count: int) -> None:
        short = length < request.limit
        if self.end_check == "short_page":
            self.done = short
        elif self.end_check == "empty_page":
            self.done = short and fresh_count == 0
        elif self.expected is not None:
            total = self.stats.items + fresh_count
            if total >= self.expected:
                self.done = True
            elif short and fresh_count == 0:
                raise self._error(
                    f"the listing ended after {total} items but count said {self.expected}",
                    request.offset,
                )

    def _error(self, message: str, offset: int) -> PaginationError:
        return PaginationError(message, project_id=self.project_id, offset=offset)


class SharingIterator:
    """Every sharing of one project, page by page. Iterate it once.

    `async for sharing in it` yields items; `async for page in it.pages()`
    yields one `SharingPage` per accepted response.

    Attributes:
        project_id: The project listed.
        stats: What the listing cost so far.
    """

    def __init__(
        self,
        project_id: str,
        fetch_page: FetchPage,
        fetch_count: FetchCount,
        *,
        page_size: int,
        start_offset: int,
        max_items: int | None,
        end_check: str,
        prefetch: int,
    ) -> None:
        self.project_id = project_id
        self._fetch_page = fetch_page
        self._fetch_count = fetch_count
        self._end_check = end_check
        self._prefetch = prefetch
        self._cursor = PageCursor(
            project_id=project_id,
            page_size=page_size,
            end_check=end_check,
            offset=start_offset,
            overlap=overlap_for(page_size),
            max_items=max_items,
        )
        self._pending_in_page = 0
        self._started = False

    @property
    def stats(self) -> ListingStats:
        """Requests, retries, pages, items, duplicates, shifts and elapsed time so far."""
        return self._cursor.stats

    @property
    def next_offset(self) -> int:
        """The offset of the first item not yet yielded: pass it as `start_offset` to resume."""
        return self._cursor.offset - self._pending_in_page

    def __aiter__(self) -> AsyncIterator[BackupSharing]:
        return self._items()

    async def _items(self) -> AsyncIterator[BackupSharing]:
        async for page in self.pages():
            self._pending_in_page = len(page.items)
            for item in page.items:
                self._pending_in_page -= 1
                yield item

    async def pages(self) -> AsyncIterator[SharingPage]:
        """One `SharingPage` per response, in order; empty pages are skipped."""
        if self._started:
            raise RuntimeError("a SharingIterator can be iterated once; resume with next_offset")
        self._started = True
        cursor = self._cursor
        began = time.perf_counter()
        pending: dict[PageRequest, asyncio.Task[tuple[BackupSharing, ...]]] = {}
        try:
            if self._end_check == "count" and not cursor.done:
                total = await self._fetch_count()
                cursor.expected = max(0, total - cursor.offset)
                cursor.done = cursor.expected == 0
            window = self._window()
            while not cursor.done:
                plan = cursor.plan(window)
                if window == 1:
                    items = await self._fetch_page(plan[0].offset, plan[0].limit)
                else:
                    items = await self._fetch_ahead(plan, pending)
                page = cursor.accept(plan[0], items)
                cursor.stats.elapsed = time.perf_counter() - began
                if page.items:
                    yield page
        finally:
            for task in pending.values():
                task.cancel()
            if pending:
                await asyncio.gather(*pending.values(), return_exceptions=True)
            cursor.stats.elapsed = time.perf_counter() - began

    def _window(self) -> int:
        if self._prefetch:
            return self._prefetch + 1
        if self._cursor.expected is not None:
            return COUNT_WINDOW
        return 1

    async def _fetch_ahead(
        self,
        plan: list[PageRequest],
        pending: dict[PageRequest, asyncio.Task[tuple[BackupSharing, ...]]],
    ) -> tuple[BackupSharing, ...]:
        """Await the first page of `plan`, keeping the rest in flight; drop stale guesses."""
        wanted = set(plan)
        for request in [r for r in pending if r not in wanted]:
            pending.pop(request).cancel()
        for request in plan:
            if request not in pending:
                task = asyncio.create_task(self._fetch_page(request.offset, request.limit))
                task.add_done_callback(_retrieve)
                pending[request] = task
        return await pending.pop(plan[0])


def _retrieve(task: asyncio.Task[tuple[BackupSharing, ...]]) -> None:
    """Mark a dropped guess's failure as seen: a page no longer needed is no error."""
    if not task.cancelled():
        task.exception()

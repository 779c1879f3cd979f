"""Draining an offset-paged listing without losing or repeating an item.

`PageCursor` is the pure part: which pages to ask for next and what a page
means (new items, a shift of the listing, the end, or a server that cannot be
trusted). `SharingIterator` drives it with the client's requests, one page at
a time or several ahead, and runs the count check and the verification passes.

How a listing is kept straight:

- Every item of an accepted page whose id was not yielded before is yielded,
  wherever it stands in the page. Alignment only decides where to read next;
  it never discards an item.
- Each request after the first asks from `offset - overlap`, so its first
  items should be the last ones already seen. When they are not, the listing
  shifted (an insert, delete or move before the cursor). When no seen id is
  in the page at all, the listing shrank behind the cursor by more than the
  overlap: the cursor steps back to find the first unseen item, a bounded
  number of times, then gives up with `PaginationError` rather than guess.
  A page reached by stepping back never ends the listing, however short.
- Ids are remembered (the last `DEDUPE_WINDOW`, i.e. the whole listing for
  any project under 100,000 sharings), so no item is yielded twice.
- A server that does not page is caught within a few requests: a page longer
  than the limit, the same page from other offsets twice in a row, full pages
  bringing nothing new `MAX_STALE_PAGES` times in a row, or pages whose
  already-seen items are scattered among new ones `MAX_DISORDERED_PAGES`
  times in a row all raise `PaginationError` (a server ignoring `offset`
  meets one of them within 2 + `MAX_STALE_PAGES` requests of its last new item).
- Whatever the server does, a pass reads at most `request_bound(n, s)` pages
  for the `n` items yielded (`s`: the longest page seen), every request
  counted whatever moved the cursor; past it, `PaginationError` says what did
  not add up. This is what ends the listings the checks above miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Any, Final

import attrs

from ._errors import PaginationError
from ._models import BackupSharing, ListingStats, SharingPage
from ._validation import EndCheck

DEFAULT_OVERLAP: Final = 2
"""Items each request re-reads from the previous page to detect shifts. A page is only
taken when it starts with a seen item, so the overlap is not what keeps a listing
exact; it spares a step back when a few items were deleted before the cursor, and
costs 2 % of the requests of a big project at `page_size=100`."""

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

MAX_STALE_PAGES: Final = 4
"""Full pages bringing nothing new this many times in a row mean the server is not paging."""

MAX_DISORDERED_PAGES: Final = 3
"""Pages whose seen and new items alternate in more than `MAX_RUNS` runs this many
times in a row mean the server is not paging. A listing in order has a few runs (a
block of inserts, a sharing that moved); a server that shuffles its answer has many."""

MAX_RUNS: Final = 12
"""Runs of seen and new items a page of a listing in order hardly ever exceeds."""

MAX_VERIFY_PASSES: Final = 3
"""Verification passes at most after the first pass (`verify=True`)."""

REQUEST_BOUND_FACTOR: Final = 2
REQUEST_BOUND_SLACK: Final = 20
"""Page requests one pass may send: `REQUEST_BOUND_FACTOR * ceil(n / (s - o)) +
REQUEST_BOUND_SLACK`, where `n` is the items the listing has yielded, `s` the
longest page the server returned (`page_size`, or its silent cap) and `o` its
overlap. A server that pages honestly needs `ceil(n / (s - o)) + 1`; steps back
after deletes and the pages fetched ahead spend the slack. Every request counts,
whatever moved the cursor, so no server can keep a listing asking for ever: the
bound is what ends the listings that the quicker checks miss (a server that
restarts past some offset, keeps its own cursor, or serves pages that contradict
each other)."""


TRUST_STREAK: Final = 3
"""Pages in a row bringing something new after which pages are fetched ahead again
(after one that brought nothing, guesses ahead would mostly be thrown away)."""


def request_bound(items: int, longest_page: int) -> int:
    """The page requests a pass may send, having yielded `items` from pages up to `longest_page`.

    Each page brings at most `longest_page - overlap` new items (the overlap
    re-reads the previous page's last ones): twice the pages an honest server
    needs, and the slack.
    """
    step = max(1, longest_page - overlap_for(longest_page))
    return REQUEST_BOUND_FACTOR * math.ceil(items / step) + REQUEST_BOUND_SLACK


FetchPage = Callable[[int, int], Coroutine[Any, Any, tuple[BackupSharing, ...]]]
FetchCount = Callable[[], Coroutine[Any, Any, int]]


def overlap_for(page_size: int) -> int:
    """The overlap for a page size: a few items, never more than half a page.

    A page of one item has no room for an overlap, so shifts cannot be seen
    with `page_size=1`; `verify=True` still finds what they hid.
    """
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
        end_check: `auto`, `short_page`, `empty_page` or `count`.
        offset: The server position of the first item not yet seen.
        overlap: Items each later request re-reads.
        expected: Items the listing should yield (from a count), if known: a
            hint for planning pages ahead, never the end.
        max_items: Stop after this many items, if set.
        page_sizes: The longest page the server returned at each limit, shared
            by the listings of one endpoint: `auto` takes a page of `k` items
            as the end once a page at its limit held more than `k` (a silent
            cap, if any, is at least the longest page seen).
        done: Whether the current pass has ended.
        stats: What the listing cost so far.
    """

    project_id: str
    page_size: int
    end_check: EndCheck
    offset: int
    overlap: int
    expected: int | None = None
    max_items: int | None = None
    page_sizes: dict[int, int] = attrs.field(factory=dict)
    done: bool = False
    stats: ListingStats = attrs.field(factory=ListingStats)
    _stride: int = attrs.field(init=False)
    _tail: deque[str] = attrs.field(init=False)
    # Each id yielded, with its place in the order they were yielded.
    _seen: dict[str, int] = attrs.field(init=False, factory=dict)
    _seen_order: deque[str] = attrs.field(init=False, factory=deque)
    _yielded: int = attrs.field(init=False, default=0)
    _previous: tuple[int, list[str]] | None = attrs.field(init=False, default=None)
    _steps_back: int = attrs.field(init=False, default=0)
    _repeats: int = attrs.field(init=False, default=0)
    _stale: int = attrs.field(init=False, default=0)
    _disordered: int = attrs.field(init=False, default=0)
    _pass_items: int = attrs.field(init=False, default=0)
    _pass_shifts: int = attrs.field(init=False, default=0)
    _seen_before: set[str] = attrs.field(init=False, factory=set)
    # Ids the server sent in pages that could not be placed, not yielded since:
    # each must be yielded before the pass ends, or the listing fails.
    _unplaced: dict[str, int] = attrs.field(init=False, factory=dict)
    _pass_recognised: bool = attrs.field(init=False, default=False)
    # In a pass after the first, each id in the order this pass met it: where a
    # page stands is judged by this pass's order, not by the first pass's.
    _pass_order: dict[str, int] = attrs.field(init=False, factory=dict)
    _verifying: bool = attrs.field(init=False, default=False)
    # The request bound's accounts (see `request_bound`), per pass but the longest page.
    _longest_page: int = attrs.field(init=False, default=0)
    _pass_requests: int = attrs.field(init=False, default=0)
    _pass_empty: int = attrs.field(init=False, default=0)
    _pass_steps_back: int = attrs.field(init=False, default=0)
    # Pages in a row that were placed and brought something new (trust to fetch ahead).
    _fresh_streak: int = attrs.field(init=False, default=TRUST_STREAK)

    def __attrs_post_init__(self) -> None:
        self._stride = self.page_size
        self._tail = deque(maxlen=max(1, self.overlap))
        if self.max_items == 0:
            self.done = True

    @property
    def stopped_by_max_items(self) -> bool:
        """Whether `max_items` items were handed out (the listing did not reach its end)."""
        return self.max_items is not None and self.stats.items >= self.max_items

    @property
    def pass_was_clean(self) -> bool:
        """Whether the current pass brought nothing new and saw the listing stand still."""
        return self._pass_items == 0 and self._pass_shifts == 0

    def restart(self) -> None:
        """Begin another pass from offset 0, remembering every id already yielded."""
        self.offset = 0
        self.done = False
        self.expected = None
        self._stride = self.page_size
        self._verifying = True  # pages of nothing new are what a verification expects
        self._tail.clear()
        self._previous = None
        self._steps_back = self._repeats = self._stale = self._disordered = 0
        self._pass_items = self._pass_shifts = 0
        self._pass_recognised = False
        self._pass_order = {}
        self._pass_requests = self._pass_empty = self._pass_steps_back = 0

    @property
    def request_bound(self) -> int:
        """Page requests this pass may send so far (it grows with the items yielded)."""
        return request_bound(self.stats.items, self._longest_page)

    @property
    def trusted(self) -> bool:
        """Whether the last pages were placed and brought something new: worth fetching ahead."""
        return self._fresh_streak >= TRUST_STREAK

    def may_ask_ahead(self) -> bool:
        """Whether a page may be fetched ahead without passing the request bound."""
        return self._pass_requests < self.request_bound

    def charge(self, request: PageRequest) -> None:
        """Count a page request about to be sent.

        Raises:
            PaginationError: The pass has sent as many page requests as the
                items it yielded allow: the server's pages do not add up.
        """
        bound = self.request_bound
        if self._pass_requests >= bound:
            items = self.stats.items
            raise self._error(
                f"{self._pass_requests} page requests brought {items} sharings, the most a "
                f"listing of {items} may take in pages of {max(1, self._longest_page)} "
                f"({bound}): {self._pass_empty} pages brought "
                f"nothing new and the cursor stepped back {self._pass_steps_back} times; the "
                "server's pages contradict each other (is it ignoring offset, restarting its "
                "listing past some offset, or keeping its own cursor?)",
                request.offset,
            )
        self._pass_requests += 1

    def plan(self, pages: int) -> list[PageRequest]:
        """The next `pages` requests, assuming every page comes back full and aligned.

        The first is the one needed now; the others may be fetched ahead.
        """
        # A request must not re-read as much as the server gives in a page, or a
        # capped page would hold only re-read items and look like the end.
        overlap = min(self.overlap, self._stride - 1)
        back = min(overlap, len(self._tail), self.offset) if self._steps_back == 0 else 0
        first = PageRequest(self.offset - back, self.page_size, back)
        requests = [first]
        step = self._stride - overlap
        position = self.offset - back + self._stride
        while len(requests) < pages and step > 0:
            if position >= self._planning_end():
                break
            requests.append(PageRequest(position - overlap, self.page_size, overlap))
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
        """Take the answer to `request`; return the page of items not yielded before.

        Raises:
            PaginationError: The page is longer than the limit, or the server
                is not paging (see the module's docstring), or the page
                cannot be placed after every step back.
        """
        if len(items) > request.limit:
            raise self._error(
                f"the server returned {len(items)} items for limit {request.limit}",
                request.offset,
            )
        ids = [item.id for item in items]
        repeated_short = self._check_repeated(request, ids)
        if items:
            longest = max(len(items), self.page_sizes.get(request.limit, 0))
            self.page_sizes[request.limit] = longest
            self._longest_page = max(self._longest_page, len(items))
        stepped_back = self._steps_back > 0
        if not self._place(request, ids):
            # Its items are read again once the cursor has found where it stands:
            # taken now, they would make the page that re-reads them look like the end.
            self._owe(ids, request.offset)
            self._pass_empty += 1
            self._fresh_streak = 0
            self._step_back(request)
            return SharingPage(self.project_id, request.offset, request.limit, ())
        self._steps_back = 0
        fresh = self._fresh(items, request.overlap)
        self._fresh_streak = self._fresh_streak + 1 if fresh else 0
        if not fresh:
            self._pass_empty += 1
            if repeated_short:
                # The same page short of its limit from two offsets, nothing new:
                # a server (or a test's mock) ignoring offset that has shown all
                # it holds. Asking again would bring the same page.
                self.offset = request.offset + len(items)
                self.stats.pages += 1
                self.done = True
                return SharingPage(self.project_id, request.offset, request.limit, ())
        # Full as far as the server goes: a server that caps `limit` silently
        # fills its pages to the cap, and such a page is no sign of the end.
        full = len(items) >= min(request.limit, self._stride)
        self._check_progress(
            request, ids, full=full, fresh_count=len(fresh), stepped_back=stepped_back
        )
        self.stats.pages += 1
        if not full and fresh:
            # A page short of its limit that may not be the end: the server
            # may cap `limit` silently. Plan later pages with the stride it gives.
            self._stride = len(items)
        self.offset = request.offset + len(items)
        self._tail.extend(ids)  # the page's own last ids: what the next page re-reads
        if not stepped_back:
            self.done = not full and self._is_end(request, len(items), fresh_count=len(fresh))
        if self.max_items is not None and self.stats.items + len(fresh) >= self.max_items:
            fresh = fresh[: self.max_items - self.stats.items]
            self.done = True
            if fresh:
                # Resume right after the last item handed out, not after the page.
                last = next(i for i, item in enumerate(items) if item is fresh[-1])
                self.offset = request.offset + last + 1
        self.stats.items += len(fresh)
        self._pass_items += len(fresh)
        first = next((i for i, item in enumerate(items) if fresh and item is fresh[0]), 0)
        return SharingPage(
            project_id=self.project_id,
            offset=request.offset + first,
            limit=request.limit,
            items=tuple(fresh),
        )

    def _check_repeated(self, request: PageRequest, ids: list[str]) -> bool:
        """Raise on the same page from different offsets twice in a row.

        Returns:
            Whether this page repeats the previous one from another offset and
            is short of its limit.
        """
        previous = self._previous
        if ids and previous is not None and previous[0] != request.offset and previous[1] == ids:
            # Once can be a listing that shifted by exactly the distance between
            # the two offsets; twice in a row is a server ignoring `offset`.
            self._repeats += 1
            if self._repeats >= MAX_REPEATED_PAGES:
                raise self._error(
                    "the server returned the same page for different offsets "
                    "(is it ignoring offset?)",
                    request.offset,
                )
            self._previous = (request.offset, ids)
            return len(ids) < request.limit
        self._repeats = 0
        self._previous = (request.offset, ids)
        return False

    def _place(self, request: PageRequest, ids: list[str]) -> bool:
        """Whether the page can be placed in the listing; counts a shift if it moved.

        A page is placed when it starts at offset 0, or with an item seen
        shortly before the last item of the previous page (within the pages
        the cursor stepped back, and one more for inserts): then no unseen
        item can lie before it. A page that starts with an unseen item, or
        with one seen long before (a sharing that moved there from the
        front, as Hypothesis found, while deletes shifted the listing), may
        have skipped some: the cursor steps back instead.
        """
        back = request.overlap
        if self._steps_back == 0:
            if back == 0 or ids[:back] == list(self._tail)[-back:]:
                return True
            self.stats.shifts_detected += 1
            self._pass_shifts += 1
        # Nothing lies before offset 0. An empty page elsewhere: the listing
        # shrank behind the cursor by more than the overlap.
        if request.offset == 0:
            return True
        order = self._pass_order if self._verifying else self._seen
        first = order.get(ids[0]) if ids else None
        if first is None:
            return False
        anchor = order.get(self._tail[-1]) if self._tail else None
        reach = (self._steps_back + 1) * self.page_size + self.overlap
        return anchor is None or anchor - first <= reach

    def _owe(self, ids: list[str], offset: int) -> None:
        """Owe the unseen ids of a page not placed: a pass that ends without them re-reads."""
        for item_id in ids:
            if item_id not in self._seen:
                self._unplaced.setdefault(item_id, offset)

    @property
    def owed(self) -> bool:
        """Whether the server sent items, in pages that could not be placed, not yielded since."""
        return bool(self._unplaced)

    @property
    def pass_recognised_listing(self) -> bool:
        """Whether this pass re-read at least one item yielded before it."""
        return self._pass_recognised

    def forgive(self, owed: set[str]) -> None:
        """Drop the owed ids a whole re-read pass did not find: deleted since they were sent."""
        for item_id in owed:
            self._unplaced.pop(item_id, None)

    def owed_ids(self) -> set[str]:
        """The ids owed now."""
        return set(self._unplaced)

    def owed_error(self) -> PaginationError:
        """The error for a listing that ends owing items the server sent."""
        count = len(self._unplaced)
        offset = min(self._unplaced.values())
        return self._error(
            f"the server sent {count} sharings (the first from offset {offset}) that none of "
            "its later pages placed in the listing, and reading the listing again from its "
            "start did not settle them: its pages contradict each other (is it keeping its "
            "own cursor?)",
            offset,
        )

    def _step_back(self, request: PageRequest) -> None:
        """No seen id is in the page: items were deleted before the cursor. Look earlier."""
        if request.offset == 0 or self._steps_back >= MAX_STEPS_BACK:
            raise self._error(
                "the listing shifted by more than the client can re-align "
                f"(no item already seen found after {self._steps_back} steps back)",
                request.offset,
            )
        self._steps_back += 1
        self._pass_steps_back += 1
        self.offset = max(0, request.offset - max(1, self._stride - 1))

    def _check_progress(
        self,
        request: PageRequest,
        ids: list[str],
        *,
        full: bool,
        fresh_count: int,
        stepped_back: bool,
    ) -> None:
        """Raise when pages keep coming that a paging server would not send."""
        if full and ids and not (fresh_count or stepped_back or self._verifying):
            self._stale += 1
            if self._stale >= MAX_STALE_PAGES:
                raise self._error(
                    f"{self._stale} full pages in a row brought no new item "
                    "(is the server ignoring offset?)",
                    request.offset,
                )
        else:
            self._stale = 0
        seen_before = self._seen_before
        # Runs of seen and new items: a listing in order, even one that changed,
        # has a few (new items inserted, one moved); a shuffled answer has many.
        runs = 1 + sum(
            (left in seen_before) != (right in seen_before)
            for left, right in itertools.pairwise(ids)
        )
        if runs > MAX_RUNS:
            self._disordered += 1
            if self._disordered >= MAX_DISORDERED_PAGES:
                raise self._error(
                    f"{self._disordered} pages in a row mixed items already listed among new "
                    "ones (is the server ignoring offset or shuffling its order?)",
                    request.offset,
                )
        else:
            self._disordered = 0

    def _fresh(self, items: tuple[BackupSharing, ...], overlap: int) -> list[BackupSharing]:
        """The items not yielded before; the page's already-seen ids go to `_seen_before`."""
        seen = self._seen
        seen_before = self._seen_before = set()
        fresh = []
        for index, item in enumerate(items):
            if item.id in seen_before:
                continue  # the same id twice in one page
            if self._verifying:
                self._pass_order.setdefault(item.id, len(self._pass_order))
            if item.id in seen:
                seen_before.add(item.id)
                self._pass_recognised = True
                if index >= overlap:  # re-reading the overlap is no duplicate
                    self.stats.duplicates_dropped += 1
            else:
                self._unplaced.pop(item.id, None)
                seen[item.id] = self._yielded
                self._yielded += 1
                fresh.append(item)
        order = self._seen_order
        order.extend(item.id for item in fresh)
        while len(order) > DEDUPE_WINDOW:
            seen.pop(order.popleft(), None)
        return fresh

    def _is_end(self, request: PageRequest, page_length: int, *, fresh_count: int) -> bool:
        """Whether a short page, placed and not reached by stepping back, ends the listing."""
        if self.end_check == "short_page":
            return True
        if self.end_check == "empty_page":
            return fresh_count == 0
        # auto and count: a page of k items is the end once a page at this limit
        # held more than k (a silent cap, if any, is at least the longest page
        # seen); before that, one more request confirms it.
        return fresh_count == 0 or page_length < self.page_sizes.get(request.limit, 0)

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
        end_check: EndCheck,
        prefetch: int,
        verify: bool = False,
        page_sizes: dict[int, int] | None = None,
        check_open: Callable[[int], None] | None = None,
    ) -> None:
        self.project_id = project_id
        # Raises when the client was closed: checked before each item is handed
        # out, so a closed client's listing ends even with pages fetched ahead.
        self._check_open = check_open
        self._fetch_page = fetch_page
        self._fetch_count = fetch_count
        self._end_check = end_check
        self._prefetch = prefetch
        self._verify = verify
        self._start_offset = start_offset
        self._cursor = PageCursor(
            project_id=project_id,
            page_size=page_size,
            end_check=end_check,
            offset=start_offset,
            overlap=overlap_for(page_size),
            max_items=max_items,
            page_sizes=page_sizes if page_sizes is not None else {},
        )
        self._pending_in_page = 0
        self._started = False
        # Pages requested ahead and not yet taken; cancelled whenever a pass ends.
        self._ahead: dict[PageRequest, asyncio.Task[tuple[BackupSharing, ...]]] = {}
        self._began = 0.0

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
        # Closed with this generator, not whenever the garbage collector gets to it:
        # pages fetched ahead are cancelled the moment the consumer stops.
        async with contextlib.aclosing(self.pages()) as pages:
            async for page in pages:
                self._pending_in_page = len(page.items)
                for item in page.items:
                    if self._check_open is not None:
                        self._check_open(self.next_offset)
                    self._pending_in_page -= 1
                    yield item

    async def pages(self) -> AsyncGenerator[SharingPage, None]:
        """One `SharingPage` per response, in order; pages with nothing new are skipped."""
        if self._started:
            raise RuntimeError("a SharingIterator can be iterated once; resume with next_offset")
        self._started = True
        cursor = self._cursor
        self._began = time.perf_counter()
        try:
            if self._end_check == "count" and not cursor.done:
                total = await self._fetch_count()
                cursor.expected = max(0, total - self._start_offset)
            async for page in self._drain():
                yield page
            if cursor.stopped_by_max_items:
                return
            if cursor.owed:
                async for page in self._settle_owed():
                    yield page
            if cursor.expected is not None and cursor.stats.items != cursor.expected:
                await self._recount()
            if self._verify:
                async for page in self._verification():
                    yield page
        finally:
            await _cancel(self._ahead)
            cursor.stats.elapsed = time.perf_counter() - self._began

    async def _drain(self) -> AsyncIterator[SharingPage]:
        """One pass: pages from the cursor's offset until the cursor says the end."""
        cursor = self._cursor
        while not cursor.done:
            # Pages that bring nothing new make guesses ahead worthless: one at a time then.
            window = self._window() if cursor.trusted else 1
            plan = cursor.plan(window)
            if window == 1 and not self._ahead:
                cursor.charge(plan[0])
                items = await self._fetch_page(plan[0].offset, plan[0].limit)
            else:
                items = await self._fetch_ahead(plan)
            page = cursor.accept(plan[0], items)
            cursor.stats.elapsed = time.perf_counter() - self._began
            if page.items:
                yield page
        await _cancel(self._ahead)

    async def _recount(self) -> None:
        """The listing ended off its count: count again to tell a change from a lie."""
        cursor = self._cursor
        stats = cursor.stats
        first = cursor.expected
        assert first is not None  # noqa: S101 - only called with a count
        stats.recounts += 1
        again = max(0, await self._fetch_count() - self._start_offset)
        if again == first and stats.items < first and stats.shifts_detected == 0:
            # Twice the same total, a listing that stood still and came up short:
            # items exist that the pages do not show.
            raise PaginationError(
                f"the listing ended after {stats.items} items but count said {first}, "
                "twice, and the listing did not change",
                project_id=self.project_id,
                offset=cursor.offset,
            )
        cursor.expected = again
        if stats.items < again:
            # Short of a count taken after the listing ended: items exist that
            # the pages did not show (a shift behind the cursor hid them, or the
            # server's pages are wrong). Ending here would lose them silently.
            raise PaginationError(
                f"the listing ended after {stats.items} items but count says {again} "
                f"(it said {first} before the listing); list again, or use verify=True "
                "to re-read a listing that changes",
                project_id=self.project_id,
                offset=cursor.offset,
            )

    async def _settle_owed(self) -> AsyncIterator[SharingPage]:
        """Read the listing again until every item the server sent was yielded or is gone.

        An item sent in a page that could not be placed was either deleted
        since (a listing that changed) or skipped by a server whose pages
        contradict each other. A pass from offset 0 tells them apart: it yields
        the owed items still listed, and the ones it does not find are gone,
        provided it re-read the listing already seen. A pass that recognises
        nothing (an empty answer at offset 0 after items were listed from
        there) contradicts the first: `PaginationError`, not an end.
        """
        cursor = self._cursor
        for _ in range(MAX_VERIFY_PASSES):
            owed = cursor.owed_ids()
            cursor.restart()
            cursor.stats.verify_passes += 1
            async for page in self._drain():
                cursor.stats.found_by_verify += len(page.items)
                yield page
            if cursor.stopped_by_max_items or not cursor.owed:
                # Every owed item was yielded by this pass: nothing the server
                # sent is lost, whatever else this pass recognised.
                return
            if not cursor.pass_recognised_listing:
                raise cursor.owed_error()
            cursor.forgive(owed)
            if not cursor.owed:
                return
        raise cursor.owed_error()

    async def _verification(self) -> AsyncIterator[SharingPage]:
        """List again from the start until a pass brings nothing new and sees no change."""
        cursor = self._cursor
        for _ in range(MAX_VERIFY_PASSES):
            cursor.restart()
            cursor.stats.verify_passes += 1
            async for page in self._drain():
                cursor.stats.found_by_verify += len(page.items)
                yield page
            if cursor.pass_was_clean:
                return

    def _window(self) -> int:
        if self._prefetch:
            return self._prefetch + 1
        if self._cursor.expected is not None:
            return COUNT_WINDOW
        return 1

    async def _fetch_ahead(self, plan: list[PageRequest]) -> tuple[BackupSharing, ...]:
        """Await the first page of `plan`, keeping the rest in flight; drop stale guesses."""
        pending = self._ahead
        wanted = set(plan)
        for request in [r for r in pending if r not in wanted]:
            pending.pop(request).cancel()
        # The page needed now counts against the request bound; pages fetched
        # ahead count once needed, and are not started past the bound.
        self._cursor.charge(plan[0])
        for index, request in enumerate(plan):
            if request not in pending:
                if index > 0 and not self._cursor.may_ask_ahead():
                    break
                task = asyncio.create_task(self._fetch_page(request.offset, request.limit))
                task.add_done_callback(_retrieve)
                pending[request] = task
        return await pending.pop(plan[0])


async def _cancel(pending: dict[PageRequest, asyncio.Task[tuple[BackupSharing, ...]]]) -> None:
    """Cancel the pages fetched ahead that are no longer wanted, and wait for them to end."""
    tasks = list(pending.values())
    pending.clear()
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def _retrieve(task: asyncio.Task[tuple[BackupSharing, ...]]) -> None:
    """Mark a dropped guess's failure as seen: a page no longer needed is no error."""
    if not task.cancelled():
        task.exception()

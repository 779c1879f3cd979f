"""Every listing ends: at most 2 x ceil(n / (s - o)) + 20 pages read for n sharings, whatever the server.

The servers here are written from outside the client: the API document's
example answer served at offset 0 only, a server ignoring `offset` that gains
a sharing at the front on each request, servers that restart past some offset
or keep their own cursor, and Hypothesis's arbitrary pages per request. Each
listing must end within the README's bound, yielding only sharings the server
sent and none twice, or raise a `PaginationError` naming project and offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from typing import TYPE_CHECKING, Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbs_async import BackupSharing, PaginationError, RetryPolicy, TokenAuth, VBSClient
from vbs_async._pagination import COUNT_WINDOW, SharingIterator, request_bound
from vbs_async._validation import EndCheck
from vbs_async.testing import MockTransport, SentRequest, response

if TYPE_CHECKING:
    from collections.abc import Callable

    from vbs_async._responses import Response

END_CHECKS: tuple[EndCheck, ...] = get_args(EndCheck)
PROJECT = "c13f5220dc1949b0b741ea81a7cd5554"
GIVE_UP = 5_000
"""Requests after which a test server stops answering: a listing still asking is a failure."""


def bound(items: int, longest_page: int, prefetch: int, end_check: EndCheck = "auto") -> int:
    """The README's bound: pages read, and the pages fetched ahead and dropped.

    A page brings at most `s - o` new items (`o` re-read: 2, 1 for pages of 2
    or 3, 0 for 1). Pages are fetched ahead `prefetch` at a time, or 7 with
    `end_check="count"`.
    """
    overlap = min(2, longest_page // 2)
    pages_read = 2 * math.ceil(items / max(1, longest_page - overlap)) + 20
    ahead = prefetch or (COUNT_WINDOW - 1 if end_check == "count" else 0)
    return pages_read * (1 + ahead)


def sharing(name: str) -> dict[str, Any]:
    return {"id": name, "backup_id": "b", "from_project_id": PROJECT, "to_project_id": "q"}


class Server:
    """A list endpoint answered by `pages(offset, limit)`; it records what it sent."""

    def __init__(self, pages: Callable[[int, int], list[dict[str, Any]]], count: int = 0) -> None:
        self.pages = pages
        self.count = count
        self.list_requests = 0
        self.longest_page = 0
        self.sent_ids: set[str] = set()

    def __call__(self, sent: SentRequest) -> Response:
        if sent.url.path.endswith("/count"):
            return response(200, {"count": self.count})
        self.list_requests += 1
        assert self.list_requests < GIVE_UP, "the listing never ended"
        query = dict(sent.request.query)
        page = self.pages(int(query["offset"]), int(query["limit"]))
        self.longest_page = max(self.longest_page, len(page))
        self.sent_ids.update(item["id"] for item in page)
        return response(200, {"shared": page})


EXAMPLE = [sharing("e842bf23-1e05-4c2c-b0f9-25222f4686da"), sharing("f842bf23-1e05")]


def example_at_offset_zero() -> Server:
    """The API document's example answer at offset 0, `{"shared": []}` anywhere else."""
    return Server(lambda offset, _limit: EXAMPLE if offset == 0 else [], count=2)


def growing_at_the_front() -> Server:
    """Ignores offset; one new sharing at the front on each request."""
    listing: list[dict[str, Any]] = [sharing(f"old-{i}") for i in range(5)]

    def pages(_offset: int, limit: int) -> list[dict[str, Any]]:
        listing.insert(0, sharing(f"new-{len(listing)}"))
        return listing[:limit]

    return Server(pages, count=5)


def restarting_past(wrap: int, total: int = 2_000) -> Server:
    """Honours offset up to `wrap`, then starts again from 0."""
    listing = [sharing(f"s-{i:05d}") for i in range(total)]
    return Server(lambda offset, limit: listing[offset % wrap :][:limit], count=total)


def own_cursor(total: int = 2_000) -> Server:
    """Ignores offset and answers from a cursor of its own, which wraps around at the end."""
    listing = [sharing(f"s-{i:05d}") for i in range(total)]
    position = [0]

    def pages(_offset: int, limit: int) -> list[dict[str, Any]]:
        start = position[0]
        position[0] = (start + limit) % total
        return listing[start : start + limit]

    return Server(pages, count=total)


SERVERS = {
    "example-at-offset-0": example_at_offset_zero,
    "growing-at-the-front": growing_at_the_front,
    "restarting-past-500": lambda: restarting_past(500),
    "own-cursor": own_cursor,
}


async def list_from(server: Server, **options: Any) -> tuple[list[BackupSharing], Exception | None]:
    transport = MockTransport(server)
    got: list[BackupSharing] = []
    async with VBSClient(
        "https://vbs.example",
        auth=TokenAuth("t"),
        transport=transport,
        retry=RetryPolicy(attempts=1),
    ) as client:
        iterator = client.iter_sharings(PROJECT, **options)
        try:
            async for item in iterator:
                got.append(item)  # noqa: PERF401 - kept when the listing raises
        except PaginationError as error:
            return got, error
    return got, None


@pytest.mark.parametrize("prefetch", [0, 4])
@pytest.mark.parametrize("end_check", END_CHECKS)
@pytest.mark.parametrize("name", SERVERS)
async def test_each_hostile_server_ends_within_the_bound(name, end_check, prefetch):
    server = SERVERS[name]()
    got, error = await list_from(server, end_check=end_check, prefetch=prefetch)
    ids = [item.id for item in got]
    assert len(ids) == len(set(ids))
    assert set(ids) <= server.sent_ids
    assert server.list_requests <= bound(len(ids), server.longest_page, prefetch, end_check)
    if error is not None:
        assert error.project_id == PROJECT
        assert error.offset is not None
        assert "page requests brought" in str(error) or "same page" in str(error)


async def test_the_example_answer_fails_within_24_requests_saying_the_pages_contradict():
    server = example_at_offset_zero()
    got, error = await list_from(server)
    assert [item.id for item in got] == [item["id"] for item in EXAMPLE]
    assert isinstance(error, PaginationError)
    assert "24 page requests brought 2 sharings" in str(error)
    assert "pages brought nothing new" in str(error)
    assert server.list_requests == 24


async def test_a_server_restarting_at_0_past_500_fails_after_listing_what_it_showed():
    server = restarting_past(500)
    got, error = await list_from(server)
    assert isinstance(error, PaginationError)
    assert "restarting" in str(error)
    assert [item.id for item in got] == [f"s-{i:05d}" for i in range(len(got))]
    assert len(got) >= 500
    assert server.list_requests <= bound(len(got), 100, 0)


@pytest.mark.parametrize("length", [1, 2, 50, 99])
@pytest.mark.parametrize("end_check", END_CHECKS)
async def test_a_mock_serving_the_same_short_page_everywhere_lists_it_once(length, end_check):
    # A user's first test: a handler that returns its page whatever the offset.
    page = [sharing(f"s-{i}") for i in range(length)]
    server = Server(lambda _offset, _limit: page, count=length)
    got, error = await list_from(server, end_check=end_check)
    assert error is None
    assert [item.id for item in got] == [item["id"] for item in page]
    assert server.list_requests <= 2


async def test_a_mock_serving_the_same_full_page_everywhere_raises():
    # A full page may hide more behind it: the client cannot tell, and says why.
    page = [sharing(f"s-{i}") for i in range(100)]
    got, error = await list_from(Server(lambda _offset, _limit: page))
    assert isinstance(error, PaginationError)
    assert "same page for different offsets" in str(error)
    assert len(got) == 100


# -- Hypothesis: arbitrary pages per request -------------------------------------------

BEHAVIOURS = ("honest", "ignore", "restart", "repeat", "shuffle", "fresh", "empty", "arbitrary")


class AdversarialServer:
    """A server whose every answer Hypothesis chooses: honest, or any of the ways to lie."""

    def __init__(self, data: st.DataObject, universe: int, restart_at: int) -> None:
        self.data = data
        self.listing = [f"s-{i:04d}" for i in range(universe)]
        self.restart_at = restart_at
        self.previous: list[str] = []
        self.fresh = 0
        self.requests = 0
        self.longest_page = 0
        self.sent_ids: set[str] = set()

    def next_behaviour(self) -> str:
        return self.data.draw(st.sampled_from(BEHAVIOURS), label="behaviour")

    def page(self, offset: int, limit: int) -> list[str]:
        behaviour = self.next_behaviour()
        if behaviour == "honest":
            page = self.listing[offset : offset + limit]
        elif behaviour == "ignore":
            page = self.listing[:limit]
        elif behaviour == "restart":
            page = self.listing[offset % self.restart_at : offset % self.restart_at + limit]
        elif behaviour == "repeat":
            page = list(self.previous)
        elif behaviour == "shuffle":
            page = self.data.draw(st.permutations(self.listing[offset : offset + limit]))
        elif behaviour == "fresh":
            page = [f"new-{self.fresh + i}" for i in range(limit)]
            self.fresh += limit
        elif behaviour == "empty":
            page = []
        else:
            page = self.data.draw(
                st.lists(st.sampled_from(self.listing), max_size=limit), label="page"
            )
        return page

    async def fetch_page(self, offset: int, limit: int) -> tuple[BackupSharing, ...]:
        self.requests += 1
        assert self.requests < GIVE_UP, "the listing never ended"
        await asyncio.sleep(0)
        page = self.page(offset, limit)
        self.previous = page
        self.longest_page = max(self.longest_page, len(page))
        self.sent_ids.update(page)
        return tuple(
            BackupSharing(id=name, backup_id="b", from_project_id="p", to_project_id="q")
            for name in page
        )

    async def fetch_count(self) -> int:
        return self.data.draw(st.integers(0, 2 * len(self.listing)), label="count")


class ScriptedServer(AdversarialServer):
    """The adversarial server with its behaviours written down: a shrunk counterexample."""

    def __init__(self, script: list[str], universe: int) -> None:
        super().__init__(None, universe, restart_at=1)  # type: ignore[arg-type] - never drawn from
        self.script = list(script)

    def next_behaviour(self) -> str:
        return self.script.pop(0) if self.script else "honest"


def _drain_within_the_bound(server: AdversarialServer, **options: Any) -> list[str]:
    """List against `server`; check the property's invariants; return the ids yielded."""
    iterator = SharingIterator(
        "p", server.fetch_page, server.fetch_count, start_offset=0, max_items=None, **options
    )
    got: list[str] = []

    async def drain() -> None:
        with contextlib.suppress(PaginationError):
            async for item in iterator:
                got.append(item.id)  # noqa: PERF401 - kept when the listing raises

    asyncio.run(drain())
    assert len(got) == len(set(got))
    assert set(got) <= server.sent_ids
    passes = 1 + iterator.stats.verify_passes
    bound_of_pass = bound(len(got), server.longest_page, options["prefetch"], options["end_check"])
    assert server.requests <= passes * bound_of_pass
    return got


def test_owed_sharings_all_yielded_by_a_re_read_that_recognised_nothing_end_the_listing():
    # Found by the property below (seed 16): fresh items at offset 0, then answers that
    # ignore the offset, an empty page, a repeat. The re-read from offset 0 yields every
    # owed item but recognises none seen before; nothing is owed, so nothing is lost, and
    # the listing used to fail with a bare ValueError (min() of no owed offsets).
    server = ScriptedServer(["fresh", "ignore", "empty", "repeat", "honest"], universe=1)
    got = _drain_within_the_bound(server, page_size=2, end_check="auto", prefetch=0, verify=False)
    assert set(got) == server.sent_ids


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    universe=st.integers(1, 60),
    restart_at=st.integers(1, 30),
    page_size=st.integers(1, 8),
    end_check=st.sampled_from(END_CHECKS),
    prefetch=st.sampled_from([0, 4]),
    verify=st.booleans(),
)
def test_any_server_is_asked_within_the_bound_and_only_its_sharings_come_back(  # noqa: PLR0917 - drawn by Hypothesis
    data, universe, restart_at, page_size, end_check, prefetch, verify
):
    server = AdversarialServer(data, universe, restart_at)
    iterator = SharingIterator(
        "p",
        server.fetch_page,
        server.fetch_count,
        page_size=page_size,
        start_offset=0,
        max_items=None,
        end_check=end_check,
        prefetch=prefetch,
        verify=verify,
    )
    got: list[str] = []
    failure: list[PaginationError] = []

    async def drain() -> None:
        try:
            async for item in iterator:
                got.append(item.id)  # noqa: PERF401 - kept when the listing raises
        except PaginationError as error:
            failure.append(error)

    asyncio.run(drain())
    if failure:
        assert failure[0].project_id == "p"
        assert failure[0].offset is not None
    assert len(got) == len(set(got))
    assert set(got) <= server.sent_ids
    passes = 1 + iterator.stats.verify_passes
    assert server.requests <= passes * bound(len(got), server.longest_page, prefetch, end_check)


# -- the end of small projects: a page shorter than one already seen at its limit ------


def projects_of(sizes: dict[str, int]) -> MockTransport:
    """A mock VBS serving `sizes[project]` sharings per project, paged honestly."""

    def answer(sent: SentRequest) -> Response:
        project = sent.request.project_id
        query = dict(sent.request.query)
        offset, limit = int(query["offset"]), int(query["limit"])
        listing = [sharing(f"{project}-{i}") for i in range(sizes[project])]
        return response(200, {"shared": listing[offset : offset + limit]})

    return MockTransport(answer)


async def test_400_small_projects_cost_at_most_1_05_times_the_minimum():
    # An account whose projects never fill a page: with end_check="auto" a page
    # of k items is the end once any page at limit 100 held more than k.
    sizes = dict(enumerate(random.Random(20).choices(range(100), k=400)))
    projects = {f"{index:032x}": size for index, size in sizes.items()}
    transport = projects_of(projects)
    async with VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=transport) as client:
        results = [result async for result in client.crawl(projects)]
    assert all(result.ok for result in results)
    assert sum(len(result.sharings) for result in results) == sum(projects.values())
    minimum = len(projects)  # one request per project: none holds a full page
    assert len(transport.sent) <= 1.05 * minimum


async def test_a_page_as_long_as_the_longest_seen_is_confirmed():
    # Not shorter than the longest page seen: it may be a silent cap of that length.
    sizes = {"a" * 32: 30, "b" * 32: 30, "c" * 32: 10}
    transport = projects_of(sizes)
    async with VBSClient("https://vbs.example", auth=TokenAuth("t"), transport=transport) as client:
        for project, requests in (("a" * 32, 2), ("b" * 32, 2), ("c" * 32, 1)):
            iterator = client.iter_sharings(project)
            assert len([s async for s in iterator]) == sizes[project]
            assert iterator.stats.requests == requests


# -- nothing the server sent is dropped: yielded, or the listing fails ----------------


def own_cursor_to_the_end(total: int) -> Server:
    """Ignores offset and hands out the next slice of its own cursor; empty once past the end."""
    listing = [sharing(f"s-{i:05d}") for i in range(total)]
    position = [0]

    def pages(_offset: int, limit: int) -> list[dict[str, Any]]:
        start = position[0]
        position[0] = start + limit
        return listing[start : start + limit]

    return Server(pages, count=total)


@pytest.mark.parametrize("verify", [False, True])
@pytest.mark.parametrize("end_check", END_CHECKS)
async def test_a_server_keeping_its_own_cursor_to_the_end_raises_instead_of_dropping(
    end_check, verify
):
    server = own_cursor_to_the_end(1_000)
    got, error = await list_from(server, end_check=end_check, verify=verify)
    if end_check == "short_page" and len(got) == 1_000:
        return  # nothing lost
    assert isinstance(error, PaginationError), f"{len(got)} of 1000 and no error"
    assert error.project_id == PROJECT
    assert error.offset is not None


async def test_a_sent_item_never_placed_then_empty_answers_at_offset_0_is_an_error():
    # Hypothesis's minimal case: [A, B], then [C] (no seen item: not placed),
    # then [] at offset 0, then [] again. C was sent and never yielded.
    answers = [["A", "B"], ["C"], [], [], [], []]
    server = Server(lambda _offset, _limit: [sharing(n) for n in answers.pop(0)])
    got, error = await list_from(server, page_size=2)
    assert [item.id for item in got] == ["A", "B"]
    assert isinstance(error, PaginationError)
    assert "sent 1 sharings" in str(error)


async def test_a_listing_ending_short_of_its_count_raises_even_after_a_shift():
    # Count says 10 twice; one sharing is inserted at the front after the first
    # page (a shift), and the pages end at 6 sharings: short of the count, not an end.
    listing = [f"s{i}" for i in range(6)]

    def pages(offset: int, limit: int) -> list[dict[str, Any]]:
        page = [sharing(n) for n in listing[offset : offset + limit]]
        if "new" not in listing:
            listing.insert(0, "new")
        return page

    got, error = await list_from(Server(pages, count=10), page_size=4, end_check="count")
    assert isinstance(error, PaginationError)
    assert "count says 10" in str(error)
    assert len(got) < 10


@pytest.mark.parametrize(
    ("items", "longest_page", "requests"),
    [
        (0, 100, 20),  # the slack alone
        (1, 100, 22),  # one item still needs a page: ceil(1 / 98) = 1
        (98, 100, 22),  # exactly one page of 98 new items
        (99, 100, 24),  # one item past a page needs a second page
        (5, 1, 30),  # pages of one item have no overlap
        (3, 3, 24),  # pages of 3 re-read 1: 2 new items a page, ceil(3 / 2) = 2
    ],
)
def test_the_request_bound_is_the_documented_formula_rounding_pages_up(
    items, longest_page, requests
):
    # The docstring's bound: 2 * ceil(n / (s - o)) + 20. A part page is a page.
    assert request_bound(items, longest_page) == requests
    assert request_bound(items, longest_page) == bound(items, longest_page, prefetch=0)


async def test_a_server_that_never_pages_past_offset_0_is_stopped_exactly_at_the_bound():
    # Three sharings at offset 0, nothing anywhere else, in pages of 3 (1 re-read): the
    # listing yields the three, then is given every request the bound allows for them,
    # 2 * ceil(3 / 2) + 20 = 24, and not one more.
    three = [sharing(f"s-{i}") for i in range(3)]
    server = Server(lambda offset, _limit: three if offset == 0 else [], count=3)
    got, error = await list_from(server, page_size=3, end_check="auto", prefetch=0)
    assert [item.id for item in got] == ["s-0", "s-1", "s-2"]
    assert server.list_requests == request_bound(3, 3) == 24
    assert error is not None
    assert str(error) == (
        "24 page requests brought 3 sharings, the most a listing of 3 may take in pages of 3 "
        "(24): 23 pages brought nothing new and the cursor stepped back 12 times; the server's "
        "pages contradict each other (is it ignoring offset, restarting its listing past some "
        f"offset, or keeping its own cursor?) (project {PROJECT}, offset 0)"
    )


@pytest.mark.parametrize(("prefetch", "sent"), [(1, 24), (2, 25), (4, 27)])
async def test_pages_fetched_ahead_stop_at_the_bound_too(prefetch, sent):
    """Pages fetched ahead do not carry a listing past its bound: the same error, `prefetch - 1` requests more at most."""
    three = [sharing(f"s-{i}") for i in range(3)]
    server = Server(lambda offset, _limit: three if offset == 0 else [], count=3)
    got, error = await list_from(server, page_size=3, end_check="auto", prefetch=prefetch)
    assert [item.id for item in got] == ["s-0", "s-1", "s-2"]
    assert isinstance(error, PaginationError)
    assert str(error).startswith("24 page requests brought 3 sharings")
    assert error.offset == 0
    assert server.list_requests == sent

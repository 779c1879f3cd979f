"""Pagination you can trust: end checks, parallel pages, prefetch and drift."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from types import SimpleNamespace

import aiohttp
import orjson
import pytest

from vbs_async import (
    BackupSharing,
    PaginationError,
    PermissionDeniedError,
    SharingPage,
    TokenAuth,
    VBSClient,
    _pagination,
)
from vbs_async._pagination import MAX_STEPS_BACK, PageCursor, PageRequest, SharingIterator
from vbs_async.testing import Drift, Emulator, Fault, MockTransport, response

from ._helpers import FAST_RETRY

# -- end checks against a server that silently caps `limit` -------------------------


async def test_short_page_end_stops_at_a_silent_cap(make_client):
    # Documented trade-off: a capped page looks like the last one.
    async with Emulator(projects=1, sharings_per_project=230, max_limit=50) as emu:
        got = await make_client(emu).list_sharings(
            emu.project_ids[0], page_size=100, end_check="short_page"
        )
        assert len(got) == 50
        assert emu.requests_received == 1


@pytest.mark.parametrize("end_check", [None, "auto", "empty_page", "count"])
async def test_other_end_checks_lose_nothing_under_a_silent_cap(make_client, end_check):
    async with Emulator(projects=1, sharings_per_project=230, max_limit=50) as emu:
        project = emu.project_ids[0]
        options = {} if end_check is None else {"end_check": end_check}
        iterator = make_client(emu).iter_sharings(project, page_size=100, **options)
        got = [s.id async for s in iterator]
        assert got == [s["id"] for s in emu.sharings(project)]
        assert iterator.stats.items == 230


async def test_empty_page_costs_one_request_more_than_short_page(make_client):
    async with Emulator(projects=1, sharings_per_project=250) as emu:
        client = make_client(emu)
        short = client.iter_sharings(emu.project_ids[0], page_size=100, end_check="short_page")
        empty = client.iter_sharings(emu.project_ids[0], page_size=100, end_check="empty_page")
        assert len([s async for s in short]) == len([s async for s in empty]) == 250
        assert empty.stats.requests == short.stats.requests + 1


async def test_auto_confirms_a_short_page_until_the_server_has_filled_one(make_client):
    async with Emulator(projects=3, sharings_per_project=0) as emu:
        small, large, other = emu.project_ids
        emu.add_sharings(small, 30)
        emu.add_sharings(large, 250)
        emu.add_sharings(other, 30)
        client = make_client(emu)
        first = client.iter_sharings(small)
        assert len([s async for s in first]) == 30
        assert first.stats.requests == 2  # nothing proves yet that limit=100 is honoured
        big = client.iter_sharings(large)
        assert len([s async for s in big]) == 250
        assert big.stats.requests == 3  # full, full, short: the server honours 100
        later = client.iter_sharings(other)
        assert len([s async for s in later]) == 30
        assert later.stats.requests == 1


async def test_count_end_lists_once_even_when_the_count_is_zero(make_client, emulator):
    iterator = make_client(emulator).iter_sharings(emulator.project_ids[0], end_check="count")
    assert [s async for s in iterator] == []
    assert [r.path.rsplit("/", 1)[1] for r in emulator.requests] == ["count", "detail"]


async def test_count_end_costs_no_more_than_the_pages_once_limit_is_honoured(make_client):
    async with Emulator(projects=1, sharings_per_project=300) as emu:
        iterator = make_client(emu).iter_sharings(
            emu.project_ids[0], page_size=100, end_check="count"
        )
        assert len([s async for s in iterator]) == 300
        # One count, then pages of 100 new items, 98 new items (2 re-read) ...: no extra request.
        # (Pages fetched ahead arrive in any order: the set of requests is what counts.)
        offsets = [r.query.get("offset", "count") for r in emu.requests]
        assert sorted(offsets) == sorted(["count", "0", "98", "196", "294"])


async def test_count_end_accepts_a_count_that_was_stale(make_client):
    async with Emulator(projects=1, sharings_per_project=30) as emu:
        project = emu.project_ids[0]
        emu.inject(Fault.raw(200, b'{"count": 45}'))
        iterator = make_client(emu).iter_sharings(project, page_size=10, end_check="count")
        assert len([s async for s in iterator]) == 30
        assert iterator.stats.recounts == 1


async def test_count_with_a_start_offset_expects_only_the_rest(make_client):
    async with Emulator(projects=1, sharings_per_project=120) as emu:
        project = emu.project_ids[0]
        iterator = make_client(emu).iter_sharings(project, start_offset=70, end_check="count")
        got = [s async for s in iterator]
        assert [s.id for s in got] == [s["id"] for s in emu.sharings(project)][70:]
        assert iterator.stats.recounts == 0


# -- parallel pages ------------------------------------------------------------------


@pytest.mark.parametrize(("end_check", "prefetch"), [("count", 0), ("short_page", 4), ("count", 2)])
async def test_pages_fetched_ahead_arrive_in_order(make_client, end_check, prefetch):
    async with Emulator(projects=1, sharings_per_project=1000, latency=0.01) as emu:
        project = emu.project_ids[0]
        iterator = make_client(emu).iter_sharings(
            project, page_size=50, end_check=end_check, prefetch=prefetch
        )
        got = [s.id async for s in iterator]
        assert got == [s["id"] for s in emu.sharings(project)]
        window = prefetch + 1 if prefetch else 8
        assert 1 < emu.peak_in_flight <= window


async def test_prefetch_recovers_from_a_silent_cap(make_client):
    async with Emulator(projects=1, sharings_per_project=500, max_limit=40) as emu:
        project = emu.project_ids[0]
        got = await make_client(emu).list_sharings(
            project, page_size=100, prefetch=3, end_check="empty_page"
        )
        assert [s.id for s in got] == [s["id"] for s in emu.sharings(project)]


async def test_breaking_out_of_a_prefetching_iterator_leaves_nothing_in_flight(make_client):
    async with Emulator(projects=1, sharings_per_project=2000, latency=0.03) as emu:
        client = make_client(emu)
        iterator = client.iter_sharings(emu.project_ids[0], page_size=50, prefetch=6)
        items = aiter(iterator)
        async with contextlib.aclosing(items):
            async for _ in items:
                break
        assert [t for t in asyncio.all_tasks() if ".fetch_page" in repr(t.get_coro())] == []
        for _ in range(100):  # the server finishes the cancelled handlers
            if emu.in_flight == 0:
                break
            await asyncio.sleep(0.005)
        assert emu.in_flight == 0
        assert emu.requests_received <= 7


async def test_an_error_in_one_page_fetched_ahead_raises_and_cancels_the_rest(make_client):
    async with Emulator(projects=1, sharings_per_project=1000, latency=0.01) as emu:
        project = emu.project_ids[0]
        client = make_client(emu)
        emu.inject(Fault.answer(403), project_id=project)
        with pytest.raises(PermissionDeniedError) as caught:
            await client.list_sharings(project, page_size=50, prefetch=4)
        # Pages fetched ahead race to the server: the error names the page it hit.
        assert caught.value.offset in {int(r.query["offset"]) for r in emu.requests}
        assert [t for t in asyncio.all_tasks() if ".fetch_page" in repr(t.get_coro())] == []


# -- drift: inserts and deletes while the listing runs --------------------------------


def check_exactly_once(before: list[str], drift: Drift, got: list[str]) -> None:
    """Every item that existed throughout is yielded once, in order; nothing twice."""
    throughout = [i for i in before if i not in drift.deleted]
    kept = set(throughout)
    assert len(got) == len(set(got))
    assert [i for i in got if i in kept] == throughout
    assert set(got) <= set(before) | drift.inserted


@pytest.mark.parametrize("prefetch", [0, 3])
@pytest.mark.parametrize("seed", range(6))
async def test_a_drifting_600_item_listing_yields_every_lasting_item_once(
    make_client, seed, prefetch
):
    drift = Drift(seed, max_changes=3)
    async with Emulator(projects=1, sharings_per_project=600, seed=seed, drift=drift) as emu:
        project = emu.project_ids[0]
        before = [s["id"] for s in emu.sharings(project)]
        iterator = make_client(emu).iter_sharings(project, page_size=50, prefetch=prefetch)
        got = [s.id async for s in iterator]
        check_exactly_once(before, drift, got)
        assert drift.deleted
        assert drift.inserted
        assert iterator.stats.shifts_detected > 0


@pytest.mark.parametrize("end_check", ["auto", "short_page", "empty_page", "count"])
@pytest.mark.parametrize("prefetch", [0, 4])
async def test_the_emulator_drift_with_moves_and_inserts_anywhere_loses_no_lasting_sharing(
    make_client, end_check, prefetch
):
    drift = Drift(3, max_changes=3, where="anywhere", moves=True)
    async with Emulator(projects=1, sharings_per_project=600, seed=3, drift=drift) as emu:
        project = emu.project_ids[0]
        before = [s["id"] for s in emu.sharings(project)]
        iterator = make_client(emu).iter_sharings(
            project, page_size=50, sort_key="updated_at", end_check=end_check, prefetch=prefetch
        )
        got = [s.id async for s in iterator]
        assert len(got) == len(set(got))
        assert set(before) - drift.deleted - drift.moved <= set(got)
        assert drift.moved
        assert drift.inserted
        assert drift.deleted


async def test_the_emulator_drift_changes_a_listing_between_its_count_and_its_list(make_client):
    drift = Drift(5, max_changes=3, where="anywhere")
    async with Emulator(projects=1, sharings_per_project=300, seed=5, drift=drift) as emu:
        project = emu.project_ids[0]
        client = make_client(emu)
        assert await client.count_sharings(project) == 300  # the first request: no change
        page = await client.list_sharings(project, max_items=1)
        assert drift.changes == 1
        assert len(emu.sharings(project)) == 300 - len(drift.deleted) + len(drift.inserted) != 300
        assert page


async def naive_listing(url: str, token: str, project: str, page_size: int) -> list[str]:
    """What a hand-written pager does: offset += len(page) until a short page."""
    got: list[str] = []
    async with aiohttp.ClientSession(headers={"X-Auth-Token": token}) as http:
        while True:
            path = f"{url}/v2/{project}/os-vendor-backup-sharing/detail"
            async with http.get(path, params={"limit": page_size, "offset": len(got)}) as answer:
                page = orjson.loads(await answer.read())["shared"]
            got.extend(s["id"] for s in page)
            if len(page) < page_size:
                return got


async def test_the_same_drift_breaks_a_naive_pager():
    drift = Drift(0, max_changes=3)
    async with Emulator(projects=1, sharings_per_project=600, seed=0, drift=drift) as emu:
        project = emu.project_ids[0]
        before = [s["id"] for s in emu.sharings(project)]
        got = await naive_listing(emu.url, emu.token, project, 50)
        with pytest.raises(AssertionError):
            check_exactly_once(before, drift, got)


async def test_deletes_larger_than_the_overlap_are_recovered_by_stepping_back(make_client):
    drift = Drift(1, max_changes=12)
    async with Emulator(projects=1, sharings_per_project=600, seed=1, drift=drift) as emu:
        project = emu.project_ids[0]
        before = [s["id"] for s in emu.sharings(project)]
        iterator = make_client(emu).iter_sharings(project, page_size=100)
        got = [s.id async for s in iterator]
        check_exactly_once(before, drift, got)
        assert iterator.stats.requests > iterator.stats.pages  # some requests were steps back


# -- the cursor on its own ---------------------------------------------------------------


def sharings(*names: str) -> tuple[BackupSharing, ...]:
    return tuple(BackupSharing(n, "b", "p", "q") for n in names)


def cursor(**options: object) -> PageCursor:
    settings = {
        "project_id": "p",
        "page_size": 4,
        "end_check": "short_page",
        "offset": 0,
        "overlap": 2,
    }
    settings.update(options)
    return PageCursor(**settings)  # type: ignore[arg-type]


def test_cursor_reads_past_the_overlap_when_aligned():
    c = cursor()
    assert [s.id for s in c.accept(c.plan(1)[0], sharings("a", "b", "c", "d")).items] == list(
        "abcd"
    )
    assert c.plan(1)[0] == PageRequest(offset=2, limit=4, overlap=2)
    assert [s.id for s in c.accept(c.plan(1)[0], sharings("c", "d", "e", "f")).items] == ["e", "f"]
    assert c.stats.shifts_detected == 0


def test_cursor_realigns_after_an_insert_before_it():
    c = cursor()
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    page = c.accept(c.plan(1)[0], sharings("b", "c", "d", "e"))  # one inserted at the front
    assert [s.id for s in page.items] == ["e"]
    assert c.stats.shifts_detected == 1
    assert c.offset == 6


def test_cursor_realigns_after_a_delete_before_it():
    c = cursor()
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    page = c.accept(c.plan(1)[0], sharings("d", "e", "f", "g"))  # one deleted before "c"
    assert [s.id for s in page.items] == ["e", "f", "g"]
    assert c.stats.shifts_detected == 1


def test_cursor_steps_back_when_the_page_starts_with_an_unseen_item():
    c = cursor(page_size=4, overlap=2)
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    c.accept(c.plan(1)[0], sharings("c", "d", "e", "f"))
    request = c.plan(1)[0]
    assert request.offset == 4
    assert c.accept(request, sharings("x", "y", "z", "w")).items == ()  # not placed: nothing taken
    assert c.plan(1)[0].offset == 1  # a page back, less one
    page = c.accept(c.plan(1)[0], sharings("b", "x", "y", "z"))  # "c" ... "f" were deleted
    assert [s.id for s in page.items] == ["x", "y", "z"]


def test_cursor_gives_up_after_the_last_step_back():
    c = cursor(page_size=4, overlap=2, offset=100)
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    offsets = []
    for step in range(MAX_STEPS_BACK + 1):
        request = c.plan(1)[0]
        offsets.append(request.offset)
        unseen = sharings(*(f"{step}-{i}" for i in range(4)))
        if step == MAX_STEPS_BACK:
            with pytest.raises(
                PaginationError, match="more than the client can re-align"
            ) as caught:
                c.accept(request, unseen)
            assert str(caught.value) == (
                "the listing shifted by more than the client can re-align (no item already "
                f"seen found after {MAX_STEPS_BACK} steps back) (project p, offset 78)"
            )
            assert caught.value.offset == 78
        else:
            assert c.accept(request, unseen).items == ()
    assert offsets == [102, 99, 96, 93, 90, 87, 84, 81, 78]


def test_a_page_at_offset_zero_is_always_placed():
    c = cursor(page_size=4, overlap=2)
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    c.accept(PageRequest(2, 4, 2), sharings("x", "y", "z", "w"))  # steps back to offset 0
    page = c.accept(c.plan(1)[0], sharings("n", "a", "b", "c"))  # "n" is new, at the front
    assert [s.id for s in page.items] == ["n"]


def test_cursor_drops_duplicates_and_counts_them():
    c = cursor(overlap=0)
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    page = c.accept(c.plan(1)[0], sharings("e", "a", "f", "b"))
    assert [s.id for s in page.items] == ["e", "f"]
    assert c.stats.duplicates_dropped == 2


def test_cursor_plans_pages_ahead_with_overlap_and_stops_at_the_count():
    c = cursor(page_size=10, overlap=2, expected=25)
    assert c.plan(8) == [PageRequest(0, 10, 0), PageRequest(8, 10, 2), PageRequest(16, 10, 2)]


def test_dedupe_memory_is_bounded_by_the_window(monkeypatch):
    monkeypatch.setattr("vbs_async._pagination.DEDUPE_WINDOW", 6)
    c = cursor(overlap=0)
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    c.accept(c.plan(1)[0], sharings("e", "f", "g", "h"))
    assert set(c._seen) == {"c", "d", "e", "f", "g", "h"}
    page = c.accept(c.plan(1)[0], sharings("h", "i", "a", "j"))  # "a" left the window
    assert [s.id for s in page.items] == ["i", "a", "j"]
    assert c.stats.duplicates_dropped == 1


def test_cursor_plans_no_page_ahead_beyond_max_items():
    c = cursor(page_size=10, overlap=2, max_items=12)
    assert c.plan(8) == [PageRequest(0, 10, 0), PageRequest(8, 10, 2)]


# -- mistakes nothing caught once ------------------------------------------------------------

_PROJECT = "0123456789abcdef0123456789abcdef"


def _item(index: int) -> dict[str, str]:
    return {
        "id": f"s{index:04d}",
        "backup_id": "b",
        "from_project_id": _PROJECT,
        "to_project_id": "t",
    }


async def test_a_server_sending_only_seen_items_is_refused_after_4_full_pages():
    """The documented limit (README): 4 full pages in a row with nothing new."""

    def handler(sent):
        offset = int(dict(sent.request.query).get("offset", 0))
        # Past the first page, every page is a new mix of the first page's items.
        ids = range(10) if offset == 0 else [(offset * 3 + k) % 10 for k in range(10)]
        return response(200, {"shared": [_item(i) for i in ids]})

    transport = MockTransport(handler)
    async with VBSClient(
        "https://vbs.example", auth=TokenAuth("t" * 20), retry=FAST_RETRY, transport=transport
    ) as client:
        with pytest.raises(PaginationError) as caught:
            await client.list_sharings(_PROJECT, page_size=10, end_check="short_page")
    assert len(transport.sent) == 1 + 4
    offset = int(dict(transport.sent[-1].request.query)["offset"])
    assert str(caught.value) == (
        "4 full pages in a row brought no new item (is the server ignoring offset?) "
        f"(project {_PROJECT}, offset {offset})"
    )
    assert caught.value.offset == offset


async def _no_count() -> int:
    raise AssertionError("not asked")


def scripted(fetch_page, **options: object) -> SharingIterator:
    """A `SharingIterator` over scripted pages of 10 that never asks for a count unless told."""
    settings: dict[str, object] = {
        "page_size": 10, "start_offset": 0, "max_items": None, "end_check": "auto", "prefetch": 0,
    }  # fmt: skip
    settings.update(options)
    fetch_count = settings.pop("fetch_count", _no_count)
    return SharingIterator("p", fetch_page, fetch_count, **settings)  # type: ignore[arg-type]


# -- the changes that nothing caught ------------------------------------------


@pytest.mark.parametrize(("first_seen", "placed"), [(21, True), (20, False)])
def test_a_page_starting_with_an_item_seen_exactly_the_reach_before_the_last_is_placed(
    first_seen, placed
):
    """The reach is inclusive: `page_size + overlap` places back from the last item seen.

    Four aligned pages yield items 0-33 (the last seen at place 33); a page
    starting with item 21 (12 = 10 + 2 places before it) is placed and the
    cursor reads on from its end; one starting with item 20 is too far back
    to be trusted: the cursor steps back and re-reads instead.
    """
    names = [f"s{i:02}" for i in range(60)]
    c = cursor(page_size=10, end_check="auto")
    for _ in range(4):
        request = c.plan(1)[0]
        c.accept(request, sharings(*names[request.offset : request.offset + 10]))
    assert c.stats.items == 34
    request = c.plan(1)[0]
    assert request == PageRequest(offset=32, limit=10, overlap=2)
    page = c.accept(request, sharings(*names[first_seen : first_seen + 10]))
    assert page.items == ()  # every item of it was yielded already
    assert c.stats.shifts_detected == 1
    if placed:
        assert c.plan(1)[0].offset == 40  # read on from the page's end (42, less the overlap)
        assert not c.owed
    else:
        assert c.plan(1)[0].offset == 23  # stepped back by a page less one item
        assert c.stats.items == 34


async def test_guesses_a_re_planned_prefetch_drops_are_cancelled_before_the_next_page_is_asked():
    """A silent cap re-plans the pages fetched ahead: the guesses dropped are cancelled then.

    The server caps pages at 5 items; with `page_size=10` and `prefetch=2` the
    first plan guesses offsets 8 and 16, which a capped listing never needs.
    Those two never answer (they would hold a connection each for ever): by the
    time the re-planned listing asks for its next page, both must have been
    cancelled, not left running until the listing ends. No timer is involved:
    the check runs inside the next page's own request.
    """
    names = [f"s{i:02}" for i in range(23)]
    items = sharings(*names)
    guesses: dict[int, asyncio.Task[object]] = {}
    cancel_requested_when_needed: list[bool] = []
    never = asyncio.Event()

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        del limit
        if offset in {8, 16}:  # the first plan's guesses: never answered
            guesses[offset] = asyncio.current_task()  # type: ignore[assignment]
            await never.wait()
        if offset == 3:  # the first page of the re-planned listing
            cancel_requested_when_needed.extend(
                task.cancelling() > 0 or task.cancelled() for task in guesses.values()
            )
        return items[offset : offset + 5]

    iterator = scripted(fetch_page, prefetch=2)
    got = [sharing.id async for sharing in iterator]
    assert got == names
    assert sorted(guesses) == [8, 16]
    assert cancel_requested_when_needed == [True, True]
    assert all(task.cancelled() for task in guesses.values())


async def test_pages_fetched_ahead_are_cancelled_when_the_pass_ends_before_the_count_is_asked_again():
    """The pass ends short of its count: the guesses ahead of it end before the recount.

    The count says 40, the listing holds 20: pages at offsets 24 and 32 are
    fetched ahead and never answer. The listing ends at its short page; the
    count is asked again (it now says 20), and by then both guesses have been
    cancelled and have ended, not left holding their connections.
    """
    items = sharings(*(f"s{i:02}" for i in range(20)))
    ended: list[int] = []
    ended_by_recount: list[list[int]] = []
    counts = iter([40, 20])
    never = asyncio.Event()

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        del limit
        if offset >= 24:  # guesses past the end that never answer
            try:
                await never.wait()
            finally:
                ended.append(offset)
        return items[offset : offset + 10]

    async def fetch_count() -> int:
        ended_by_recount.append(sorted(ended))
        return next(counts)

    iterator = scripted(fetch_page, end_check="count", fetch_count=fetch_count)
    assert [s.id async for s in iterator] == [s.id for s in items]
    assert ended_by_recount == [[], [24, 32]]


@pytest.mark.parametrize("max_items", [10, 18])
async def test_a_listing_stopped_by_max_items_resumes_at_the_first_item_not_yielded(max_items):
    """`max_items` reached exactly at a page's end stops there: no page more, no item skipped."""
    items = sharings(*(f"s{i:02}" for i in range(30)))
    asked: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        asked.append(offset)
        return items[offset : offset + limit]

    iterator = scripted(fetch_page, max_items=max_items)
    got = [s.id async for s in iterator]
    assert got == [s.id for s in items[:max_items]]
    assert iterator.next_offset == max_items
    assert asked == [0, 8][: 1 if max_items == 10 else 2]


def test_a_page_longer_than_its_limit_is_refused_naming_its_offset():
    c = cursor()
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    request = c.plan(1)[0]
    with pytest.raises(PaginationError) as caught:
        c.accept(request, sharings("c", "d", "e", "f", "g"))
    assert str(caught.value) == "the server returned 5 items for limit 4 (project p, offset 2)"
    assert caught.value.offset == 2


def test_each_page_read_is_counted_once_and_each_page_names_where_its_new_items_start():
    c = cursor()
    first = c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    second = c.accept(c.plan(1)[0], sharings("c", "d", "e", "f"))
    last = c.accept(c.plan(1)[0], sharings("e", "f", "g"))  # short: the end
    assert [(p.project_id, p.offset, p.limit) for p in (first, second, last)] == [
        ("p", 0, 4),
        ("p", 4, 4),
        ("p", 6, 4),
    ]
    assert (c.stats.pages, c.stats.items, c.offset, c.done) == (3, 7, 7, True)


def test_the_same_page_from_two_more_offsets_is_a_server_ignoring_offset():
    c = cursor(page_size=4, overlap=2)
    same = sharings("a", "b", "c", "d")
    c.accept(c.plan(1)[0], same)
    c.accept(PageRequest(2, 4, 2), same)  # once: a listing that shifted by two, perhaps
    with pytest.raises(PaginationError) as caught:
        c.accept(PageRequest(4, 4, 2), same)
    assert str(caught.value) == (
        "the server returned the same page for different offsets (is it ignoring offset?) "
        "(project p, offset 4)"
    )


async def test_a_listing_short_of_a_count_taken_after_it_ended_is_refused_in_full_words():
    held = sharings(*(f"s{i}" for i in range(7)))
    counts = iter([10, 9])  # before the listing, then after it: two items went meanwhile

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        return held[offset : offset + limit]

    async def fetch_count() -> int:
        return next(counts)

    iterator = scripted(fetch_page, end_check="count", start_offset=2, fetch_count=fetch_count)
    with pytest.raises(PaginationError) as caught:
        [s async for s in iterator]
    assert str(caught.value) == (
        "the listing ended after 5 items but count says 7 (it said 8 before the listing); "
        "list again, or use verify=True to re-read a listing that changes (project p, offset 7)"
    )
    assert (caught.value.project_id, caught.value.offset) == ("p", 7)
    assert iterator.stats.recounts == 1


# -- survivors of the mutation run (MUTATION.md) -----------------------------------------------


async def test_a_closed_client_is_told_the_offset_of_the_item_about_to_be_handed_out():
    items = sharings(*(f"s{i:02}" for i in range(13)))
    told: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        return items[offset : offset + limit]

    iterator = scripted(fetch_page, check_open=told.append)
    assert [s.id async for s in iterator] == [s.id for s in items]
    assert told == list(range(13))  # what `ClientClosedError` names, were it closed there


def test_with_pages_of_two_the_cursor_steps_back_one_item_at_a_time():
    c = cursor(page_size=2, overlap=1, offset=100)
    c.accept(c.plan(1)[0], sharings("a", "b"))
    request = c.plan(1)[0]
    assert request.offset == 101
    assert c.accept(request, sharings("x", "y")) == SharingPage("p", 101, 2, ())
    assert c.plan(1)[0].offset == 100


def test_items_of_a_page_not_placed_yielded_later_in_the_pass_are_no_longer_owed():
    c = cursor(page_size=4, overlap=2)
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    c.accept(c.plan(1)[0], sharings("x", "y", "z", "w"))  # not placed: owed
    assert c.owed_ids() == {"x", "y", "z", "w"}
    c.accept(c.plan(1)[0], sharings("a", "b", "x", "y"))
    assert c.owed_ids() == {"z", "w"}
    c.accept(c.plan(1)[0], sharings("x", "y", "z", "w"))
    assert not c.owed


async def test_verifying_a_listing_of_one_short_page_reads_it_twice_and_no_more():
    items = sharings("a", "b", "c", "d", "e")
    asked: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        asked.append(offset)
        return items[offset : offset + limit]

    iterator = scripted(fetch_page, end_check="short_page", verify=True)
    assert [s.id async for s in iterator] == ["a", "b", "c", "d", "e"]
    assert asked == [0, 0]
    assert (iterator.stats.verify_passes, iterator.stats.found_by_verify) == (1, 0)


async def test_a_verification_counts_its_passes_and_every_item_it_found():
    """Two sharings created once the first pass has read its last page: the second finds both."""
    listing = [f"s{i:02}" for i in range(25)]
    asked: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        asked.append(offset)
        page = sharings(*listing[offset : offset + limit])
        if len(asked) == 3:  # the first pass's last page: one created in front, one in the middle
            listing.insert(0, "new-front")
            listing.insert(12, "new-middle")
        return page

    iterator = scripted(fetch_page, end_check="short_page", verify=True)
    got = [s.id async for s in iterator]
    assert sorted(got) == sorted([*(f"s{i:02}" for i in range(25)), "new-front", "new-middle"])
    assert len(got) == len(set(got))
    stats = iterator.stats
    assert (stats.verify_passes, stats.found_by_verify) == (2, 2)


async def test_items_owed_are_settled_by_one_more_pass_that_counts_what_it_found():
    """A page that could not be placed owes its items; one pass from 0 settles them.

    The second answer is ten sharings never seen again in the first pass (its
    steps back find the listing as it was); by the time the pass from 0 reads
    again, two of them are listed, on different pages, and the other eight
    are gone: yielded or forgiven, nothing owed, no third pass.
    """
    listing = [f"s{i:02}" for i in range(20)]
    asked: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        asked.append(offset)
        if len(asked) == 2:
            return sharings(*(f"x{i}" for i in range(10)))
        page = sharings(*listing[offset : offset + limit])
        if len(page) < limit and "x0" not in listing:  # the first pass's end
            listing.insert(2, "x0")
            listing.insert(15, "x1")
        return page

    iterator = scripted(fetch_page, end_check="short_page")
    got = [s.id async for s in iterator]
    assert got == [*(f"s{i:02}" for i in range(20)), "x0", "x1"]
    stats = iterator.stats
    assert (stats.verify_passes, stats.found_by_verify) == (1, 2)
    assert asked[-3:] == [0, 8, 16]  # one pass from 0 to the end, no more


async def test_after_a_page_that_could_not_be_placed_pages_are_fetched_one_at_a_time_for_a_while():
    """Guesses ahead resume only after pages in a row placed and bringing something new.

    Each request is recorded with the number of requests in flight when it
    started. The answer at offset 24 is ten sharings never seen again: the
    guesses at 32 and 40 are dropped, the cursor steps back to 15, and pages
    are asked one at a time until the trust is back (`TRUST_STREAK`); the
    owed ten are settled by a pass from 0 at the end.
    """
    listing = sharings(*(f"s{i:02}" for i in range(70)))
    asked: list[tuple[int, int]] = []
    glitched: list[int] = []
    in_flight = 0

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        nonlocal in_flight
        in_flight += 1
        asked.append((offset, in_flight))
        try:
            await asyncio.sleep(0)
            if offset == 24 and not glitched:
                glitched.append(offset)
                return sharings(*(f"x{i}" for i in range(10)))
            return listing[offset : offset + limit]
        finally:
            in_flight -= 1

    iterator = scripted(fetch_page, prefetch=2)
    assert [s.id async for s in iterator] == [s.id for s in listing]
    assert asked == [
        (0, 1), (8, 2), (16, 3), (24, 1), (32, 2), (40, 3),  # trusted: two guesses ahead
        (15, 1), (23, 1), (31, 1), (39, 1), (47, 1),  # stepped back: one at a time
        (55, 2), (63, 3),  # trusted again
        (0, 1), (8, 2), (16, 3), (16, 1), (24, 1), (32, 1), (40, 1), (48, 1), (56, 1), (64, 1),
    ]  # fmt: skip


def test_the_same_short_page_from_a_second_offset_ends_the_listing_after_it():
    """A mock ignoring `offset` that has shown all it holds: the listing ends, counted once more."""
    c = cursor(page_size=4, overlap=2, end_check="auto")
    same = sharings("a", "b", "c")
    c.accept(c.plan(1)[0], same)  # short, but nothing proves yet that 4 is honoured
    assert not c.done
    request = c.plan(1)[0]
    assert request == PageRequest(1, 4, 2)
    assert c.accept(request, same) == SharingPage("p", 1, 4, ())
    assert (c.done, c.offset, c.stats.pages, c.stats.items) == (True, 4, 2, 3)


async def test_a_guess_ahead_that_failed_and_was_dropped_is_never_reported_unretrieved():
    """Pages fetched ahead that a silent cap makes useless fail: nothing reported to the loop.

    (Dropping a guess cancels it, which also silences a failure it already had;
    the done-callback must not itself fail.)
    """
    items = sharings(*(f"s{i:02}" for i in range(23)))
    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        del limit
        if offset in {8, 16}:  # the first plan's guesses, which the cap makes useless
            raise PaginationError("a guess failed", project_id="p", offset=offset)
        await asyncio.sleep(0)
        return items[offset : offset + 5]

    try:
        iterator = scripted(fetch_page, prefetch=2)
        assert [s.id async for s in iterator] == [s.id for s in items]
        del iterator
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []


async def test_a_listing_emptied_between_its_count_and_its_pages_ends_empty():
    counts = iter([2, 0])  # before the listing, then after it: both sharings went meanwhile

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        del offset, limit
        return ()

    async def fetch_count() -> int:
        return next(counts)

    iterator = scripted(fetch_page, end_check="count", fetch_count=fetch_count)
    assert [s async for s in iterator] == []
    assert iterator.stats.recounts == 1


def test_each_shift_of_the_listing_is_counted():
    c = cursor()
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    c.accept(c.plan(1)[0], sharings("b", "c", "d", "e"))  # one inserted at the front
    page = c.accept(c.plan(1)[0], sharings("e", "f", "g", "h"))  # then one deleted before it
    assert [s.id for s in page.items] == ["f", "g", "h"]
    assert c.stats.shifts_detected == 2


def mixed_page(c: PageCursor, runs: int, tag: str) -> PageRequest:
    """Answer the cursor's next request with a full page of `runs` runs of seen and new items.

    The page starts with the two it re-reads (one run), then alternates new and
    already-listed items, and ends with new ones up to its limit.
    """
    request = c.plan(1)[0]
    seen = [i for i in c._seen if i not in c._tail]
    ids = list(c._tail)
    ids.extend(f"{tag}{switch}" if switch % 2 == 0 else seen.pop(0) for switch in range(runs - 1))
    last_new = runs % 2 == 0
    ids += [f"{tag}-pad{i}" for i in range(request.limit - len(ids))] if last_new else []
    ids += seen[: request.limit - len(ids)]
    assert len(ids) == request.limit
    c.accept(request, sharings(*ids))
    return request


@pytest.mark.parametrize("runs", [12, 13])
def test_pages_mixing_listed_and_new_items_three_times_in_a_row_are_a_shuffling_server(runs):
    c = cursor(page_size=30, overlap=2)
    c.accept(c.plan(1)[0], sharings(*(f"n{i:02}" for i in range(30))))
    mixed_page(c, runs, "a")
    mixed_page(c, runs, "b")
    if runs <= 12:  # a listing in order that changed has a few runs: no sign
        mixed_page(c, runs, "c")
        return
    with pytest.raises(PaginationError) as caught:
        mixed_page(c, runs, "c")
    assert str(caught.value) == (
        "3 pages in a row mixed items already listed among new ones (is the server ignoring "
        f"offset or shuffling its order?) (project p, offset {caught.value.offset})"
    )
    assert caught.value.offset == 84  # the third mixed page's own offset


def test_an_orderly_page_between_mixed_ones_starts_the_count_again():
    c = cursor(page_size=30, overlap=2)
    c.accept(c.plan(1)[0], sharings(*(f"n{i:02}" for i in range(30))))
    mixed_page(c, 20, "a")
    mixed_page(c, 20, "b")
    mixed_page(c, 1, "c")  # the two re-read, then only new items
    mixed_page(c, 20, "d")
    mixed_page(c, 20, "e")
    with pytest.raises(PaginationError, match="3 pages in a row mixed"):
        mixed_page(c, 20, "f")


def test_an_id_repeated_within_a_page_hides_none_of_the_items_after_it():
    c = cursor()
    c.accept(c.plan(1)[0], sharings("a", "b", "c", "d"))
    page = c.accept(c.plan(1)[0], sharings("c", "d", "c", "e"))
    assert [s.id for s in page.items] == ["e"]


async def test_a_listing_iterated_twice_says_how_to_go_on():
    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        del offset, limit
        return ()

    iterator = scripted(fetch_page)
    assert [s async for s in iterator] == []
    with pytest.raises(RuntimeError) as caught:
        [s async for s in iterator]
    assert str(caught.value) == "a SharingIterator can be iterated once; resume with next_offset"


async def test_a_listing_s_elapsed_time_runs_from_its_start_to_its_end(monkeypatch):
    readings = iter([100.0, 101.0, 102.5])
    monkeypatch.setattr(_pagination, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    items = sharings("a", "b")

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        return items[offset : offset + limit]

    iterator = scripted(fetch_page, end_check="short_page")
    live = [(sharing.id, iterator.stats.elapsed) async for sharing in iterator]
    assert live == [("a", 1.0), ("b", 1.0)]  # began at 100.0; the page came at 101.0
    assert iterator.stats.elapsed == 2.5  # and the listing ended at 102.5


@pytest.mark.parametrize("page_size", [2, 10])
async def test_a_prefetch_of_one_keeps_one_page_in_flight_ahead(page_size):
    """Pages of 2 re-read 1 and bring one new item each: still worth fetching ahead."""
    items = sharings(*(f"s{i:02}" for i in range(30)))
    in_flight: list[int] = []
    running = 0

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        nonlocal running
        running += 1
        in_flight.append(running)
        try:
            await asyncio.sleep(0)
            return items[offset : offset + limit]
        finally:
            running -= 1

    iterator = scripted(fetch_page, prefetch=1, page_size=page_size)
    assert [s.id async for s in iterator] == [s.id for s in items]
    assert max(in_flight) == 2


async def test_a_verification_pass_has_a_request_bound_of_its_own():
    """The second pass meets a server that never pages past 0: its own 24 requests, no more."""
    listing = sharings("s0", "s1", "s2")
    asked: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        asked.append(offset)
        if len(asked) <= 2:  # the first pass: an honest listing of three
            return listing[offset : offset + limit]
        return listing if offset == 0 else ()

    iterator = scripted(fetch_page, page_size=3, verify=True)
    with pytest.raises(PaginationError) as caught:
        [s async for s in iterator]
    assert len(asked) == 2 + 24
    assert str(caught.value) == (
        "24 page requests brought 3 sharings, the most a listing of 3 may take in pages of 3 "
        "(24): 24 pages brought nothing new and the cursor stepped back 12 times; the server's "
        "pages contradict each other (is it ignoring offset, restarting its listing past some "
        "offset, or keeping its own cursor?) (project p, offset 0)"
    )


async def test_items_owed_that_a_pass_from_0_cannot_settle_are_an_error_in_full_words():
    listing = sharings(*(f"s{i:02}" for i in range(20)))
    asked: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        asked.append(offset)
        if len(asked) == 2:  # ten sharings never placed
            return sharings(*(f"x{i}" for i in range(10)))
        if len(asked) > 4:  # the pass from 0 finds nothing at all
            return ()
        return listing[offset : offset + limit]

    iterator = scripted(fetch_page, end_check="short_page")
    with pytest.raises(PaginationError) as caught:
        [s async for s in iterator]
    assert str(caught.value) == (
        "the server sent 10 sharings (the first from offset 8) that none of its later pages "
        "placed in the listing, and reading the listing again from its start did not settle "
        "them: its pages contradict each other (is it keeping its own cursor?) "
        "(project p, offset 8)"
    )
    assert caught.value.offset == 8


def test_no_page_is_planned_ahead_past_the_counted_end_even_exactly_there():
    # 26 items: the page from 16 holds the last (25); one from 24 would start past it.
    c = cursor(page_size=10, overlap=2, expected=26)
    assert c.plan(8) == [PageRequest(0, 10, 0), PageRequest(8, 10, 2), PageRequest(16, 10, 2)]


async def test_a_listing_of_at_most_0_items_asks_for_nothing():
    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        raise AssertionError(f"not asked: {offset}, {limit}")

    iterator = scripted(fetch_page, max_items=0, end_check="count")
    assert [s async for s in iterator] == []


async def test_items_owed_anew_while_settling_take_one_more_pass_each_counted():
    listing = [f"s{i:02}" for i in range(20)]
    asked: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        asked.append(offset)
        if len(asked) in {2, 7}:  # ten never placed, in the first pass and in the second
            return sharings(*(f"x{len(asked)}-{i}" for i in range(10)))
        return sharings(*listing[offset : offset + limit])

    iterator = scripted(fetch_page, end_check="short_page")
    assert [s.id async for s in iterator] == listing
    assert iterator.stats.verify_passes == 2


async def test_after_a_page_not_placed_trust_needs_three_pages_bringing_new_items():
    """The step back's own page brings new items (ten deleted behind the cursor): it counts as one."""
    listing = [f"s{i:02}" for i in range(70)]
    asked: list[tuple[int, int]] = []
    glitched: list[int] = []
    in_flight = 0

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        nonlocal in_flight
        in_flight += 1
        asked.append((offset, in_flight))
        try:
            await asyncio.sleep(0)
            if offset == 24 and not glitched:
                glitched.append(offset)
                del listing[10:20]  # already listed: gone behind the cursor
                return sharings(*(f"x{i}" for i in range(10)))
            return sharings(*listing[offset : offset + limit])
        finally:
            in_flight -= 1

    iterator = scripted(fetch_page, prefetch=2)
    got = [s.id async for s in iterator]
    assert sorted(got) == [f"s{i:02}" for i in range(70)]
    assert asked[6:12] == [
        (15, 1), (23, 1), (31, 1),  # stepped back (its page new), then two more: one at a time
        (39, 1), (47, 2), (55, 3),  # three in a row brought new items: trusted again
    ]  # fmt: skip


async def test_a_verification_pass_places_pages_by_its_own_order_not_the_first_pass_s():
    """A sharing moved to the front mid-pass starts a page: unmet in this pass, so not placed.

    By the first pass's order it stood near the page before and would be placed;
    this pass has not met it yet, so the verification steps back instead.
    """
    listing = [f"s{i:02}" for i in range(30)]
    asked: list[int] = []

    async def fetch_page(offset: int, limit: int) -> tuple[BackupSharing, ...]:
        asked.append(offset)
        if len(asked) == 6:  # the verification's second request: s15 moves to 8
            listing.insert(8, listing.pop(15))
        return sharings(*listing[offset : offset + limit])

    iterator = scripted(fetch_page, end_check="short_page", verify=True)
    assert sorted([s.id async for s in iterator]) == sorted(listing)
    assert asked == [0, 8, 16, 24, 0, 8, 0, 8, 16, 24, 0, 8, 16, 24]  # stepped back to 0
    assert (iterator.stats.verify_passes, iterator.stats.shifts_detected) == (2, 1)

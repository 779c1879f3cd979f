"""Exact listings while sharings change: inserts, deletes, moves, stale counts, broken servers.

The listings here are `ChurningListing`s (tests/churn.py), written apart from
the client: each test states a change a real listing goes through and what
the client must then yield. The property tests at the end generate schedules
of changes and check the guarantee the README states.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, get_args

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vbs_async import PaginationError
from vbs_async._pagination import MAX_STALE_PAGES, SharingIterator, overlap_for
from vbs_async._validation import EndCheck

from .churn import Change, ChurningListing

if TYPE_CHECKING:
    from collections.abc import Sequence

END_CHECKS: tuple[EndCheck, ...] = get_args(EndCheck)


def iterator_for(listing: ChurningListing, **options: object) -> SharingIterator:
    settings_: dict[str, object] = {
        "page_size": 100,
        "start_offset": 0,
        "max_items": None,
        "end_check": "auto",
        "prefetch": 0,
    }
    settings_.update(options)
    return SharingIterator("p", listing.fetch_page, listing.fetch_count, **settings_)  # type: ignore[arg-type]


async def drain(listing: ChurningListing, **options: object) -> tuple[list[str], SharingIterator]:
    iterator = iterator_for(listing, **options)
    return [item.id async for item in iterator], iterator


def at(request: int, *changes: Change, length: int | None = None) -> list[list[Change]]:
    """A schedule with `changes` before request number `request` (0 is the first)."""
    schedule: list[list[Change]] = [[] for _ in range(request)]
    schedule.append(list(changes))
    if length is not None:
        schedule.extend([] for _ in range(length - len(schedule)))
    return schedule


def assert_exactly_once(listing: ChurningListing, got: Sequence[str]) -> None:
    """Nothing twice; every sharing present throughout and never moved, yielded."""
    assert len(got) == len(set(got))
    assert listing.lasting <= set(got), f"lost {len(listing.lasting - set(got))}"
    assert set(got) <= listing.initial | listing.inserted


BOTH_PREFETCHES = pytest.mark.parametrize("prefetch", [0, 4])
ALL_END_CHECKS = pytest.mark.parametrize("end_check", END_CHECKS)


# -- the failures users saw --------------------------------------------------------------


@ALL_END_CHECKS
@BOTH_PREFETCHES
async def test_a_listed_sharing_that_moves_later_costs_nothing_else(end_check, prefetch):
    # Its updated_at changed after two pages were listed: it leaves position 10
    # for position 250, in the middle of the next page.
    listing = ChurningListing(600, schedule=at(2, Change("move", 10 / 600, 250 / 600)))
    got, _ = await drain(listing, end_check=end_check, prefetch=prefetch)
    assert_exactly_once(listing, got)
    assert len(got) == 600


@ALL_END_CHECKS
@BOTH_PREFETCHES
async def test_sharings_moving_ahead_of_the_cursor_lose_nothing_unmoved(end_check, prefetch):
    moves = [Change("move", k / 600, (200 + 8 * k) / 600) for k in range(5, 15)]
    listing = ChurningListing(600, schedule=at(2, *moves))
    got, _ = await drain(listing, end_check=end_check, prefetch=prefetch)
    assert_exactly_once(listing, got)


@BOTH_PREFETCHES
@pytest.mark.parametrize("count_error", [0, -30])
async def test_count_is_a_hint_thirty_created_after_it_or_missing_from_it(prefetch, count_error):
    inserts = [Change("insert", k / 30) for k in range(30)] if count_error == 0 else []
    listing = ChurningListing(600, schedule=at(1, *inserts), count_error=count_error)
    got, iterator = await drain(listing, end_check="count", prefetch=prefetch)
    assert_exactly_once(listing, got)
    assert listing.initial <= set(got)
    assert iterator.stats.recounts == 1


@BOTH_PREFETCHES
async def test_a_sharing_deleted_mid_listing_in_count_mode_does_not_fail_the_project(prefetch):
    listing = ChurningListing(1000, schedule=at(4, Change("delete", 0.9)))
    got, iterator = await drain(listing, end_check="count", prefetch=prefetch)
    assert_exactly_once(listing, got)
    assert len(got) == 999
    assert iterator.stats.recounts == 1


async def test_a_count_that_stays_wrong_for_a_still_listing_raises():
    listing = ChurningListing(30, count_error=15)
    with pytest.raises(PaginationError, match="count said 45, twice") as caught:
        await drain(listing, end_check="count", page_size=10)
    assert caught.value.project_id == "p"


@pytest.mark.parametrize("end_check", ["auto", "empty_page", "count"])
@BOTH_PREFETCHES
async def test_a_silent_cap_plus_deletes_before_the_cursor_is_not_the_end(end_check, prefetch):
    deletes = [Change("delete", 0.05 + k / 100) for k in range(10)]
    listing = ChurningListing(600, cap=50, schedule=at(3, *deletes))
    got, _ = await drain(listing, end_check=end_check, prefetch=prefetch)
    assert_exactly_once(listing, got)
    assert len(listing.lasting) == 590


@ALL_END_CHECKS
async def test_a_server_ignoring_offset_and_shuffling_is_caught_within_20_requests(end_check):
    listing = ChurningListing(600, shuffle=True)
    with pytest.raises(PaginationError) as caught:
        await drain(listing, end_check=end_check)
    assert listing.requests < 20
    assert caught.value.project_id == "p"
    assert caught.value.offset is not None


async def test_a_listing_growing_as_fast_as_it_is_read_fails_within_a_few_requests():
    # As many inserts at the front before every request as a page of ten brings
    # beyond its overlap: pages bring nothing new, for ever.
    schedule = [[Change("insert", 0.0)] * (10 - overlap_for(10)) for _ in range(1000)]
    listing = ChurningListing(600, schedule=schedule)
    with pytest.raises(PaginationError, match=r"no new item|same page"):
        await drain(listing, page_size=10)
    assert listing.requests <= 2 + MAX_STALE_PAGES


async def test_the_same_items_in_a_new_order_every_time_fail_within_a_few_requests():
    listing = ChurningListing(600)
    real_page = listing.page

    def first_page_reordered(offset: int, limit: int):  # type: ignore[no-untyped-def]
        del offset
        items = real_page(0, limit)
        turn = listing.requests % len(items)
        return items[turn:] + items[:turn]

    listing.page = first_page_reordered  # type: ignore[method-assign]
    with pytest.raises(PaginationError):
        await drain(listing)
    assert listing.requests <= 2 + MAX_STALE_PAGES


async def test_a_short_page_reached_by_stepping_back_is_not_the_end():
    # Twenty deleted just before the cursor: the page at offset - 5 holds nothing seen,
    # the step back gets a short (capped) page of seen items only.
    deletes = [Change("delete", 0.3)] * 20
    listing = ChurningListing(300, cap=40, schedule=at(3, *deletes))
    got, iterator = await drain(listing, end_check="empty_page", page_size=100)
    assert_exactly_once(listing, got)
    assert len(listing.lasting) == 280
    assert iterator.stats.shifts_detected >= 1


@ALL_END_CHECKS
async def test_a_seen_sharing_moved_into_the_next_page_does_not_hide_a_gap(end_check):
    # Ten deletes before the cursor and the last listed sharing moves into the next page.
    changes = [Change("delete", 0.1)] * 10 + [Change("move", 199 / 600, 230 / 590)]
    listing = ChurningListing(600, schedule=at(2, *changes))
    got, _ = await drain(listing, end_check=end_check)
    assert_exactly_once(listing, got)


# -- verification ---------------------------------------------------------------------------


@BOTH_PREFETCHES
async def test_verify_finds_the_sharings_that_moved_behind_the_cursor(prefetch):
    moves = [Change("move", (500 + k) / 600, k / 600) for k in range(5)]
    listing = ChurningListing(600, schedule=at(3, *moves))
    plain, _ = await drain(ChurningListing(600, schedule=at(3, *moves)), prefetch=prefetch)
    assert len(plain) == 595  # the five moved behind the cursor are missed
    got, iterator = await drain(listing, prefetch=prefetch, verify=True)
    assert_exactly_once(listing, got)
    assert set(got) == set(listing.ids)
    assert iterator.stats.found_by_verify == 5
    assert iterator.stats.verify_passes == 2  # one finds the five, one finds nothing new


async def test_verify_on_a_still_listing_costs_one_more_listing():
    listing = ChurningListing(250)
    got, iterator = await drain(listing, verify=True)
    assert len(got) == 250
    assert iterator.stats.verify_passes == 1
    assert iterator.stats.found_by_verify == 0
    assert listing.requests == 6  # 3 pages, then the same 3 again


async def test_verify_is_bounded_when_the_listing_never_stops_changing():
    schedule = [[Change("move", 0.9, 0.0)] for _ in range(10_000)]
    listing = ChurningListing(300, schedule=schedule)
    got, iterator = await drain(listing, verify=True)
    assert len(got) == len(set(got))
    assert iterator.stats.verify_passes == 3


# -- properties --------------------------------------------------------------------------------

changes = st.builds(
    Change,
    st.sampled_from(["insert", "delete", "move"]),
    st.floats(0, 1, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
)
schedules = st.lists(st.lists(changes, max_size=3), max_size=40)
PROPERTY_SETTINGS = settings(
    max_examples=500,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def run(listing: ChurningListing, **options: object) -> tuple[list[str], SharingIterator | None]:
    try:
        return asyncio.run(drain(listing, **options))
    except PaginationError:
        return [], None


@PROPERTY_SETTINGS
@given(
    size=st.integers(0, 300),
    page_size=st.integers(1, 100),
    cap=st.none() | st.integers(1, 100),
    end_check=st.sampled_from(END_CHECKS),
    prefetch=st.sampled_from([0, 4]),
    schedule=schedules,
)
@example(  # found in review: a page capped below the overlap looked like the end
    size=2, page_size=12, cap=1, end_check="auto", prefetch=0, schedule=[]
)
@example(  # shrunk by Hypothesis: a capped page of re-read items after inserts looked short
    size=7,
    page_size=7,
    cap=6,
    end_check="auto",
    prefetch=0,
    schedule=[[], [Change("insert", 0.0), Change("insert", 0.0), Change("insert", 0.0)]],
)
def test_every_lasting_sharing_exactly_once_or_pagination_error(  # noqa: PLR0917 - drawn by Hypothesis
    size, page_size, cap, end_check, prefetch, schedule
):
    listing = ChurningListing(size, schedule=schedule, cap=cap)
    got, iterator = run(listing, page_size=page_size, end_check=end_check, prefetch=prefetch)
    assert len(got) == len(set(got))
    if iterator is None:
        return  # PaginationError: loud, not silent
    assert set(got) <= listing.initial | listing.inserted
    served = min(page_size, cap or page_size)
    if end_check == "short_page" and cap is not None and cap < page_size:
        return  # the documented trade-off: a capped page looks like the last one
    moves = any(change.kind == "move" for step in schedule for change in step)
    if served >= 2 and not moves:
        assert listing.lasting <= set(got)
    elif not any(schedule):
        assert set(got) == listing.initial
    # With moves, the stated guarantee has a known gap: when a sharing among the
    # items a request re-reads to check its place moves, the check can pass while
    # unmoved sharings before it went unseen (shrunk case below). `verify=True`
    # closes it: see the next property.


@pytest.mark.parametrize("verify", [False, True])
async def test_a_re_read_sharing_that_moves_can_hide_others_and_verify_finds_them(verify):
    # Shrunk by a 20,000-example hunt: two sharings inserted at the front, then
    # deleted, and the one re-read by the next request moved to the end, right
    # where that request looks for it. Its place checks out; s1 and s2 were never
    # seen. The README states this gap.
    schedule = [
        [Change("insert", 0.0), Change("insert", 0.0)],
        [Change("delete", 0.0), Change("delete", 0.0), Change("move", 0.0, 1.0)],
    ]
    listing = ChurningListing(3, schedule=schedule)
    got, _ = await drain(listing, page_size=3, verify=verify)
    assert len(got) == len(set(got))
    if verify:
        assert {"s000000", "s000001", "s000002"} <= set(got)
    else:
        assert {"s000001", "s000002"}.isdisjoint(got)  # the gap, as documented


async def test_a_sharing_listed_long_ago_moved_to_the_next_page_start_hides_nothing():
    # Shrunk by a 20,000-example hunt against the rule "a page starting with any
    # seen item is placed": the first sharing moved to just ahead of the cursor
    # while deletes shifted the listing, and began the next page.
    schedule = [
        [],
        [],
        [],
        [],
        [],
        [Change("delete", 0.0), Change("move", 0.0, 0.484375)],
        [],
        [Change("delete", 0.0), Change("delete", 0.0), Change("delete", 0.0)],
    ]
    listing = ChurningListing(99, schedule=schedule)
    got, _ = await drain(listing, page_size=11)
    assert_exactly_once(listing, got)


@PROPERTY_SETTINGS
@given(
    size=st.integers(0, 300),
    page_size=st.integers(1, 100),
    end_check=st.sampled_from(END_CHECKS),
    prefetch=st.sampled_from([0, 4]),
    schedule=schedules,
)
def test_verify_yields_everything_present_at_the_start_and_at_the_end(
    size, page_size, end_check, prefetch, schedule
):
    listing = ChurningListing(size, schedule=schedule)
    iterator = iterator_for(
        listing, page_size=page_size, end_check=end_check, prefetch=prefetch, verify=True
    )
    original = listing.fetch_page

    async def stop_churn_once_verifying(offset: int, limit: int):  # type: ignore[no-untyped-def]
        listing.frozen = listing.frozen or iterator.stats.verify_passes > 0
        return await original(offset, limit)

    iterator._fetch_page = stop_churn_once_verifying

    async def collect() -> list[str]:
        return [item.id async for item in iterator]

    try:
        got = asyncio.run(collect())
    except PaginationError:
        return
    assert len(got) == len(set(got))
    assert listing.at_start_and_end <= set(got)

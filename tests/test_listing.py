"""Listing a project end to end against the emulator: every page drained, nothing lost."""

from __future__ import annotations

import gc

import orjson
import pytest

from vbs_async import BackupSharing, PaginationError, SharingPage
from vbs_async.testing import Emulator, Fault


def ids(sharings) -> list[str]:
    return [s["id"] if isinstance(s, dict) else s.id for s in sharings]


@pytest.mark.parametrize(
    ("held", "page_size", "requests"),
    [
        (0, 100, 1),  # empty project: one request, no items
        (7, 100, 2),  # one short page, confirmed: nothing shows limit=100 is honoured yet
        (100, 50, 3),  # pages of 50 new, 45 new (+5 re-read), then the 5 re-read only
        (1234, 100, 13),  # full pages, then a short one: the end, as limit=100 was honoured
    ],
)
async def test_listing_returns_exactly_the_held_sharings_in_order(
    make_client, held, page_size, requests
):
    async with Emulator(projects=1, sharings_per_project=held, seed=held) as emu:
        project = emu.project_ids[0]
        iterator = make_client(emu).iter_sharings(project, page_size=page_size)
        got = [s async for s in iterator]
        assert ids(got) == ids(emu.sharings(project))
        assert all(isinstance(s, BackupSharing) for s in got)
        assert iterator.stats.items == held
        assert iterator.stats.requests == len(emu.requests) == requests
        assert iterator.next_offset == held


async def test_empty_project_yields_nothing(make_client, emulator):
    assert await make_client(emulator).list_sharings(emulator.project_ids[0]) == []
    assert len(emulator.requests) == 1


async def test_a_listing_ends_at_its_short_page_once_the_server_filled_one(make_client):
    async with Emulator(projects=1, sharings_per_project=40) as emu:
        client = make_client(emu)
        got = await client.list_sharings(emu.project_ids[0], page_size=10)
        assert len(got) == 40
        offsets = [r.query["offset"] for r in emu.requests]
        # 10 new, then 2 re-read + 8 new each time; the last page (2 re-read, 6 new) is
        # short, and the end: the server filled pages of 10 before.
        assert offsets == ["0", "8", "16", "24", "32"]


async def test_pages_yield_one_page_per_response_with_offsets(make_client):
    async with Emulator(projects=1, sharings_per_project=25) as emu:
        iterator = make_client(emu).iter_sharings(emu.project_ids[0], page_size=10)
        pages = [page async for page in iterator.pages()]
        assert all(isinstance(p, SharingPage) for p in pages)
        assert [(p.offset, len(p.items)) for p in pages] == [(0, 10), (10, 8), (18, 7)]
        assert ids(item for p in pages for item in p.items) == ids(emu.sharings(emu.project_ids[0]))


async def test_max_items_stops_early_and_next_offset_resumes(make_client):
    async with Emulator(projects=1, sharings_per_project=95) as emu:
        project = emu.project_ids[0]
        client = make_client(emu)
        first = client.iter_sharings(project, page_size=20, max_items=30)
        head = [s async for s in first]
        assert len(head) == 30
        assert first.next_offset == 30
        rest = await client.list_sharings(project, page_size=20, start_offset=first.next_offset)
        assert ids(head + rest) == ids(emu.sharings(project))


async def test_breaking_out_midway_gives_a_resume_point(make_client):
    async with Emulator(projects=1, sharings_per_project=60) as emu:
        project = emu.project_ids[0]
        client = make_client(emu)
        iterator = client.iter_sharings(project, page_size=25)
        seen = []
        async for sharing in iterator:
            seen.append(sharing)
            if len(seen) == 33:
                break
        assert iterator.next_offset == 33
        rest = await client.list_sharings(project, start_offset=iterator.next_offset)
        assert ids(seen + rest) == ids(emu.sharings(project))


async def test_breaking_out_early_leaves_no_session_or_task_open(make_client):
    # filterwarnings=error turns an unclosed session or a lost task into a failure.
    async with Emulator(projects=1, sharings_per_project=300) as emu:
        client = make_client(emu)
        async for _ in client.iter_sharings(emu.project_ids[0], page_size=10, prefetch=3):
            break
        gc.collect()
        await client.close()
        assert client._transport.session is not None
        assert client._transport.session.closed


async def test_iterating_twice_is_refused(make_client, emulator):
    iterator = make_client(emulator).iter_sharings(emulator.project_ids[0])
    _ = [s async for s in iterator]
    with pytest.raises(RuntimeError, match="iterated once"):
        _ = [s async for s in iterator]


async def test_share_to_me_lists_what_other_projects_shared_with_this_one(make_client):
    async with Emulator(projects=4, sharings_per_project=30, seed=3) as emu:
        client = make_client(emu)
        for project in emu.project_ids:
            got = await client.list_sharings(project, share_to_me=True)
            assert ids(got) == ids(emu.sharings(project, share_to_me=True))
            assert all(s.to_project_id == project for s in got)


@pytest.mark.parametrize(
    ("keyword", "pick"),
    [
        ("volume_id", lambda s: s["backup"]["volume_id"]),
        ("status", lambda s: s["backup"]["status"]),
        ("backup_id", lambda s: s["backup_id"]),
        ("from_project_id", lambda s: s["from_project_id"]),
        ("to_project_id", lambda s: s["to_project_id"]),
        ("availability_zone", lambda s: s["backup"]["availability_zone"]),
    ],
)
async def test_each_filter_returns_only_matching_sharings(make_client, keyword, pick):
    async with Emulator(projects=3, sharings_per_project=80, seed=11) as emu:
        project = emu.project_ids[0]
        held = emu.sharings(project)
        value = pick(held[17])
        got = await make_client(emu).list_sharings(project, page_size=15, **{keyword: value})
        assert ids(got) == [s["id"] for s in held if pick(s) == value]
        if keyword == "from_project_id":
            assert len(got) == len(held)  # every sharing a project lists is its own
        else:
            assert 0 < len(got) < len(held)


async def test_name_filter_matches_a_substring(make_client):
    async with Emulator(projects=1, sharings_per_project=120) as emu:
        project = emu.project_ids[0]
        got = await make_client(emu).list_sharings(project, name="-0001")
        assert sorted(s.backup.name for s in got if s.backup) == [
            f"backup-0000-0001{i}" for i in range(10)
        ]


SORTABLE = {
    "id": lambda s: s["id"],
    "created_at": lambda s: s["created_at"],
    "updated_at": lambda s: s["updated_at"],
    "name": lambda s: s["backup"]["name"],
    "status": lambda s: s["backup"]["status"],
    "size": lambda s: s["backup"]["size"],
    "container_format": lambda _: None,
    "disk_format": lambda _: None,
}


@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
@pytest.mark.parametrize("sort_key", sorted(SORTABLE))
async def test_every_sort_key_in_both_directions(make_client, sort_key, sort_dir):
    async with Emulator(projects=1, sharings_per_project=64, seed=5) as emu:
        project = emu.project_ids[0]
        got = await make_client(emu).list_sharings(
            project, sort_key=sort_key, sort_dir=sort_dir, page_size=10
        )
        assert sorted(ids(got)) == sorted(ids(emu.sharings(project)))
        key = SORTABLE[sort_key]
        values = [key(next(s for s in emu.sharings(project) if s["id"] == g.id)) for g in got]
        present = [v for v in values if v is not None]
        assert present == sorted(present, reverse=sort_dir == "desc")
        assert emu.requests[0].query["sort_key"] == sort_key


async def test_server_ignoring_offset_raises_pagination_error(make_client):
    async with Emulator(projects=1, sharings_per_project=50, ignore_offset=True) as emu:
        project = emu.project_ids[0]
        with pytest.raises(PaginationError) as caught:
            await make_client(emu).list_sharings(project, page_size=10)
        assert caught.value.project_id == project
        # Requests ask from 0, then 10 - 2 and 18 - 2 (the overlap): page 0 each time.
        assert caught.value.offset == 16
        assert "same page" in str(caught.value)
        assert len(emu.requests) == 3


async def test_page_longer_than_the_limit_raises_pagination_error(make_client):
    async with Emulator(projects=1, sharings_per_project=30) as emu:
        project = emu.project_ids[0]
        eleven = emu.sharings(project)[:11]
        emu.inject(Fault.raw(200, orjson.dumps({"shared": eleven})))
        with pytest.raises(PaginationError, match="returned 11 items for limit 10") as caught:
            await make_client(emu).list_sharings(project, page_size=10)
        assert (caught.value.project_id, caught.value.offset) == (project, 0)

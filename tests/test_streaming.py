"""crawl_pages: projects of any size streamed page by page, memory bounded by pages in flight."""

from __future__ import annotations

import asyncio
import contextlib

from vbs_async import ProjectDone, ServerError, SharingPage
from vbs_async.testing import Emulator, Fault


async def test_every_sharing_comes_once_in_order_and_each_project_ends_after_its_pages(make_client):
    async with Emulator(projects=5, sharings_per_project=37, seed=3) as emu:
        client = make_client(emu)
        seen: dict[str, list[str]] = {}
        ended: dict[str, ProjectDone] = {}
        async with contextlib.aclosing(
            client.crawl_pages(emu.project_ids, page_size=10, max_projects=3)
        ) as events:
            async for event in events:
                if isinstance(event, SharingPage):
                    assert event.project_id not in ended  # no page after the project's end
                    seen.setdefault(event.project_id, []).extend(s.id for s in event.items)
                else:
                    ended[event.project_id] = event
    assert set(ended) == set(emu.project_ids)
    for project_id in emu.project_ids:
        assert seen[project_id] == [s["id"] for s in emu.sharings(project_id)]
        assert ended[project_id].ok
        assert ended[project_id].sharings == 37
        assert ended[project_id].stats.items == 37


async def test_a_big_project_s_first_page_arrives_long_before_its_last_request(make_client):
    async with Emulator(projects=1, sharings_per_project=2_000) as emu:
        client = make_client(emu)
        events = client.crawl_pages(emu.project_ids, page_size=10, max_projects=2)
        async with contextlib.aclosing(events):
            first = await anext(events)
            assert isinstance(first, SharingPage)
            await asyncio.sleep(0.2)  # a slow consumer: the listing waits for it
            assert emu.requests_received <= 5  # the page given, 2 queued, 1 held, 1 asked
            rest = [e async for e in events]
    assert isinstance(rest[-1], ProjectDone)
    assert rest[-1].sharings == 2_000


async def test_a_failing_project_ends_with_its_error_and_the_others_go_on(make_client):
    async with Emulator(projects=3, sharings_per_project=30) as emu:
        broken = emu.project_ids[1]
        emu.inject(Fault.answer(500), project_id=broken, times=100)
        client = make_client(emu)
        ends = [
            e
            async for e in client.crawl_pages(emu.project_ids, page_size=10)
            if isinstance(e, ProjectDone)
        ]
    by_project = {e.project_id: e for e in ends}
    assert isinstance(by_project[broken].error, ServerError)
    assert by_project[broken].error.project_id == broken
    assert [by_project[p].ok for p in emu.project_ids] == [True, False, True]


def test_crawl_pages_checks_its_arguments_before_any_request(client):
    import pytest  # noqa: PLC0415

    with pytest.raises(ValueError, match="max_projects"):
        client.crawl_pages(["p"], max_projects=0)
    with pytest.raises(ValueError, match="max_items"):
        client.crawl_pages(["p"], max_items=3)

"""count, get, share and cancel against the emulator."""

from __future__ import annotations

import pytest

from vbs_async import ConflictError, NotFoundError
from vbs_async.testing import Emulator


@pytest.fixture
async def populated():
    async with Emulator(projects=3, sharings_per_project=40, seed=2) as emu:
        yield emu


async def test_count_matches_the_listing_with_the_same_filters(make_client, populated):
    client = make_client(populated)
    project = populated.project_ids[0]
    assert await client.count_sharings(project) == 40
    status = populated.sharings(project)[0]["backup"]["status"]
    listed = await client.list_sharings(project, status=status)
    assert await client.count_sharings(project, status=status) == len(listed) > 0


async def test_get_returns_one_sharing_and_404_for_an_unknown_one(make_client, populated):
    client = make_client(populated)
    project = populated.project_ids[1]
    held = populated.sharings(project)[5]
    sharing = await client.get_sharing(project, held["id"])
    assert (sharing.id, sharing.backup_id, sharing.to_project_id) == (
        held["id"],
        held["backup_id"],
        held["to_project_id"],
    )
    with pytest.raises(NotFoundError) as caught:
        await client.get_sharing(project, "no-such-sharing")
    assert caught.value.project_id == project
    assert caught.value.offset is None


async def test_share_creates_one_sharing_per_target_then_conflicts(make_client, populated):
    client = make_client(populated)
    source = populated.project_ids[0]
    original = populated.sharings(source)[0]
    backup_id = original["backup_id"]
    created = await client.share_backup(source, backup_id, ["aaaa", "bbbb"])
    assert sorted(s.to_project_id for s in created) == ["aaaa", "bbbb"]
    assert all(s.created_at is None and s.backup_id == backup_id for s in created)
    listed = await client.list_sharings(source, backup_id=backup_id)
    assert sorted(s.to_project_id for s in listed) == sorted(
        ["aaaa", "bbbb", original["to_project_id"]]
    )
    assert {s.id for s in created} <= {s.id for s in listed}
    with pytest.raises(ConflictError):
        await client.share_backup(source, backup_id, ["aaaa"])


async def test_cancel_sharing_and_cancel_all_sharings_of_a_backup(make_client, populated):
    client = make_client(populated)
    project = populated.project_ids[0]
    victim = populated.sharings(project)[3]
    await client.cancel_sharing(project, victim["id"])
    assert await client.count_sharings(project) == 39
    with pytest.raises(NotFoundError):
        await client.cancel_sharing(project, victim["id"])

    backup_id = populated.sharings(project)[0]["backup_id"]
    await client.share_backup(project, backup_id, ["cccc"])
    assert await client.count_sharings(project, backup_id=backup_id) == 2
    await client.cancel_backup_sharings(project, backup_id)
    assert await client.count_sharings(project, backup_id=backup_id) == 0
    assert await client.count_sharings(project) == 38

"""What goes on the wire, checked with aioresponses (no server involved)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import orjson
import pytest

from vbs_async import TokenAuth, VBSClient

if TYPE_CHECKING:
    from yarl import URL

ENDPOINT = "https://vbs.eu-de.otc.t-systems.com"
PROJECT = "c13f5220dc1949b0b741ea81a7cd5554"
ANY = re.compile(r"^https://vbs\.eu-de\.otc\.t-systems\.com/.*$")


@pytest.fixture
async def client():
    async with VBSClient(ENDPOINT, auth=TokenAuth("tok-123")) as vbs:
        yield vbs


def sent(mocked) -> list[tuple[str, URL, dict]]:
    return [
        (method, url, call.kwargs)
        for (method, url), calls in mocked.requests.items()
        for call in calls
    ]


async def test_list_sends_every_filter_under_its_documented_name(mocked, client):
    mocked.get(ANY, body=b'{"shared": []}')
    await client.list_sharings(
        PROJECT,
        share_to_me=False,
        volume_id="v1",
        name="nightly",
        status="available",
        backup_id="b1",
        from_project_id="f1",
        to_project_id="t1",
        availability_zone="eu-de-01",
        sort_key="size",
        sort_dir="asc",
        page_size=50,
        start_offset=10,
    )
    ((method, url, kwargs),) = sent(mocked)
    assert method == "GET"
    assert url.path == f"/v2/{PROJECT}/os-vendor-backup-sharing/detail"
    assert dict(url.query) == {
        "share_to_me": "false",
        "volume_id": "v1",
        "name": "nightly",
        "status": "available",
        "backup_id": "b1",
        "from_project_id": "f1",
        "to_project_id": "t1",
        "availability_zone": "eu-de-01",
        "avalilability_zone": "eu-de-01",
        "sort_key": "size",
        "sort_dir": "asc",
        "limit": "50",
        "offset": "10",
    }
    assert kwargs["allow_redirects"] is False
    assert kwargs["ssl"] is True
    assert kwargs["headers"]["X-Auth-Token"] == "tok-123"
    assert kwargs["headers"]["Accept"] == "application/json"


async def test_filters_left_as_none_are_not_sent_and_true_is_lowercase(mocked, client):
    mocked.get(ANY, body=b'{"shared": []}')
    await client.list_sharings(PROJECT, share_to_me=True)
    ((_, url, _),) = sent(mocked)
    assert dict(url.query) == {"share_to_me": "true", "limit": "100", "offset": "0"}


async def test_count_sends_filters_without_paging(mocked, client):
    mocked.get(ANY, body=b'{"count": 4}')
    assert await client.count_sharings(PROJECT, status="error") == 4
    ((_, url, _),) = sent(mocked)
    assert url.path.endswith("/os-vendor-backup-sharing/count")
    assert dict(url.query) == {"status": "error"}


async def test_share_posts_the_documented_body(mocked, client):
    mocked.post(ANY, body=b'{"shared": []}')
    await client.share_backup(PROJECT, "b1", ["p2"])
    ((method, url, kwargs),) = sent(mocked)
    assert (method, url.path) == ("POST", f"/v2/{PROJECT}/os-vendor-backup-sharing")
    assert orjson.loads(kwargs["data"]) == {"shared": {"backup_id": "b1", "to_project_ids": ["p2"]}}
    assert kwargs["headers"]["Content-Type"] == "application/json"


async def test_cancel_calls_send_is_backup_id(mocked, client):
    mocked.delete(ANY, body=b"")
    mocked.delete(ANY, body=b"")
    await client.cancel_sharing(PROJECT, "s1")
    await client.cancel_backup_sharings(PROJECT, "b1")
    urls = sorted(str(url) for _, url, _ in sent(mocked))
    assert urls == [
        f"{ENDPOINT}/v2/{PROJECT}/os-vendor-backup-sharing/b1?is_backup_id=true",
        f"{ENDPOINT}/v2/{PROJECT}/os-vendor-backup-sharing/s1?is_backup_id=false",
    ]


async def test_listing_asks_each_next_page_from_the_offset_it_reached(mocked, client):
    page = [
        {"id": f"s{i}", "backup_id": "b", "from_project_id": PROJECT, "to_project_id": "t"}
        for i in range(12)
    ]
    mocked.get(ANY, body=orjson.dumps({"shared": page[:10]}))
    mocked.get(ANY, body=orjson.dumps({"shared": page[8:12]}))
    items = await client.list_sharings(PROJECT, page_size=10)
    assert [s.id for s in items] == [f"s{i}" for i in range(12)]
    offsets = [dict(url.query)["offset"] for _, url, _ in sent(mocked)]
    # The second page re-reads the last 2 items of the first to detect shifts.
    assert sorted(offsets, key=int) == ["0", "8"]

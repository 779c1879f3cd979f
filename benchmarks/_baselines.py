"""What users write by hand, measured beside the library in the same run."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from vbs_async import Backup, BackupSharing

from ._harness import TOKEN

PATH = "/v2/{}/os-vendor-backup-sharing/detail"


def _timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def build_by_hand(items: list[dict[str, Any]]) -> list[BackupSharing]:
    """The project's models built the obvious way, field by field."""
    sharings = []
    for item in items:
        backup = item.get("backup")
        sharings.append(
            BackupSharing(
                id=item["id"],
                backup_id=item["backup_id"],
                from_project_id=item["from_project_id"],
                to_project_id=item["to_project_id"],
                created_at=_timestamp(item.get("created_at")),
                updated_at=_timestamp(item.get("updated_at")),
                backup=None
                if backup is None
                else Backup(
                    id=backup["id"],
                    name=backup.get("name"),
                    status=backup.get("status"),
                    size=backup.get("size"),
                    volume_id=backup.get("volume_id"),
                    availability_zone=backup.get("availability_zone"),
                    container=backup.get("container"),
                    created_at=_timestamp(backup.get("created_at")),
                    updated_at=_timestamp(backup.get("updated_at")),
                    data_timestamp=_timestamp(backup.get("data_timestamp")),
                    description=backup.get("description"),
                    fail_reason=backup.get("fail_reason"),
                    has_dependent_backups=backup.get("has_dependent_backups"),
                    is_incremental=backup.get("is_incremental"),
                    object_count=backup.get("object_count"),
                    snapshot_id=backup.get("snapshot_id"),
                    service_metadata=backup.get("service_metadata"),
                ),
            )
        )
    return sharings


async def crawl_by_hand(
    url: str, project_ids: list[str], *, concurrency: int, page_size: int, typed: bool
) -> int:
    """aiohttp under a semaphore, offset += len(page) until a short page.

    `typed=False`: orjson and dicts only, the practical ceiling. `typed=True`:
    the stdlib json module and the models built by hand.
    """
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"X-Auth-Token": TOKEN}) as http:

        async def project(project_id: str) -> int:
            found: list[Any] = []
            while True:
                query = {"limit": page_size, "offset": len(found)}
                async with (
                    semaphore,
                    http.get(url + PATH.format(project_id), params=query) as answer,
                ):
                    body = await answer.read()
                page = json.loads(body)["shared"] if typed else orjson.loads(body)["shared"]
                found.extend(build_by_hand(page) if typed else page)
                if len(page) < page_size:
                    return len(found)

        return sum(await asyncio.gather(*(project(p) for p in project_ids)))


def crawl_sync(url: str, project_ids: list[str], *, page_size: int) -> int:
    """`requests` in a loop: what many users write first."""
    import requests  # noqa: PLC0415 - a benchmark-only dependency

    found = 0
    with requests.Session() as http:
        http.headers["X-Auth-Token"] = TOKEN
        for project_id in project_ids:
            offset = 0
            while True:
                answer = http.get(
                    url + PATH.format(project_id),
                    params={"limit": page_size, "offset": offset},
                    timeout=30,
                )
                page = build_by_hand(answer.json()["shared"])
                found += len(page)
                offset += len(page)
                if len(page) < page_size:
                    break
    return found

"""Type-checked, never run: the public API as callers use it (mypy --strict reads this)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import vbs_async
from vbs_async import (
    AgencyAuth,
    AKSKAuth,
    BackupSharing,
    ListingStats,
    PasswordAuth,
    Project,
    ProjectDone,
    ProjectSharings,
    RetryPolicy,
    SharingPage,
    TokenAuth,
    VBSClient,
    VBSError,
)
from vbs_async.testing import Emulator, Fault

if TYPE_CHECKING:
    from datetime import datetime


async def contract() -> None:
    client = VBSClient(
        "https://vbs.eu-de.otc.t-systems.com",
        auth=TokenAuth("token"),
        max_concurrency=32,
        rate_limit=None,
        timeout=30.0,
        retry=RetryPolicy(
            attempts=5, timeout=60.0, wait_initial=0.1, wait_max=5.0, wait_jitter=1.0
        ),
        session=None,
    )
    async with client:
        iterator = client.iter_sharings(
            "p1", share_to_me=True, sort_key="name", sort_dir="asc", page_size=50, end_check="count"
        )
        async for sharing in iterator:
            created: datetime | None = sharing.created_at
            del created
        async for page in client.iter_sharings("p1").pages():
            items: tuple[BackupSharing, ...] = page.items
            assert isinstance(page, SharingPage)
            del items
        resume: int = iterator.next_offset
        stats: ListingStats = iterator.stats
        del resume, stats
        listed: list[BackupSharing] = await client.list_sharings("p1", max_items=10)
        count: int = await client.count_sharings("p1", status="available")
        one: BackupSharing = await client.get_sharing("p1", "s1")
        shared: list[BackupSharing] = await client.share_backup("p1", "b1", ["p2"])
        await client.cancel_sharing("p1", "s1")
        await client.cancel_backup_sharings("p1", "b1")
        del listed, count, one, shared
        async with contextlib.aclosing(client.crawl(["p1", "p2"], max_projects=4)) as results:
            async for result in results:
                project: ProjectSharings = result
                error: VBSError | None = project.error
                ok: bool = project.ok
                del error, ok
        async with contextlib.aclosing(client.crawl_pages(["p1"], page_size=10)) as events:
            async for event in events:
                if isinstance(event, SharingPage):
                    page_items: tuple[BackupSharing, ...] = event.items
                    del page_items
                else:
                    done: ProjectDone = event
                    count_done: int = done.sharings
                    del count_done
    PasswordAuth("https://iam.example", "user", "password", "domain")
    AKSKAuth("AK", "SK")
    AKSKAuth("AK", "SK", security_token="temporary")
    auth: vbs_async.Auth = client.auth
    del auth
    AgencyAuth(
        PasswordAuth("https://iam.example", "user", "password", "domain"),
        agency_domain="other",
        agency_name="inventory",
    )
    async with VBSClient(auth=TokenAuth("t"), region="eu-de", ssl=False) as regional:
        projects: list[Project] = await regional.list_projects(region=None, include_disabled=False)
        first: Project = projects[0]
        enabled: bool = first.enabled
        del enabled
    VBSClient.from_env(max_concurrency=8)
    async with Emulator(projects=1, sharings_per_project=2) as emu:
        emu.inject(Fault.answer(503), times=2)
        url: str = emu.url
        del url
    names: list[str] = vbs_async.__all__
    del names


async def misspelt_options_are_type_errors(client: VBSClient) -> None:
    # Each line must be an error: mypy --strict (warn_unused_ignores) fails if one is not.
    client.iter_sharings("p1", end_check="cout")  # type: ignore[arg-type]
    client.iter_sharings("p1", sort_key="colour")  # type: ignore[arg-type]
    client.iter_sharings("p1", sort_dir="up")  # type: ignore[arg-type]
    client.iter_sharings("p1", verify="yes")  # type: ignore[arg-type]
    client.iter_sharings("p1", pagesize=10)  # type: ignore[call-arg]
    client.crawl(["p1"], end_check="never")  # type: ignore[arg-type]
    await client.count_sharings("p1", sort_key="name")  # type: ignore[call-arg]
    VBSClient.from_env(max_concurency=8)  # type: ignore[call-arg]
    VBSClient.from_env(rate_limit="fast")  # type: ignore[arg-type]
    await client.list_projects(include_disabled="yes")  # type: ignore[arg-type]
    check: vbs_async.EndCheck = "auto"
    key: vbs_async.SortKey = "updated_at"
    direction: vbs_async.SortDir = "desc"
    client.iter_sharings("p1", end_check=check, sort_key=key, sort_dir=direction, verify=True)


def inventory_contract(client_results: list[ProjectSharings]) -> None:
    """`vbs_async.inventory` as a service records, audits and diffs crawls."""
    from vbs_async.inventory import Inventory, Severity, audit, diff  # noqa: PLC0415

    with vbs_async.inventory.Inventory("inventory.sqlite", write=True) as inventory:
        run = inventory.start_run(["p1"], account="OTC001", region="eu-de")
        for result in client_results:
            run.record(result)
        state: str = run.finish()
    with Inventory("inventory.sqlite") as inventory:
        findings = audit(inventory, trusted={"p2"}, minimum=Severity.MEDIUM)
        for finding in findings:
            command: str = finding.remediation
            level: int = finding.severity
        changes = diff(inventory)
        for change in changes:
            kind: str = change.kind
        added: int = changes.summary.added
    del state, command, level, kind, added

"""The emulator users test against: data, counters, faults, latency, standalone run."""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import pytest

from vbs_async import TokenAuth, VBSClient
from vbs_async.testing import DEFAULT_TOKEN, Emulator, Fault, FaultPlan, GatewayQuota


def test_synthetic_data_is_deterministic_from_the_seed():
    first = Emulator(projects=3, sharings_per_project=10, seed=42)
    again = Emulator(projects=3, sharings_per_project=10, seed=42)
    other = Emulator(projects=3, sharings_per_project=10, seed=43)
    assert first.project_ids == again.project_ids != other.project_ids
    for project in first.project_ids:
        assert first.sharings(project) == again.sharings(project)
    assert len(first.store) == 30
    assert all(len(p) == 32 for p in first.project_ids)


def test_every_synthetic_sharing_goes_to_another_of_the_projects():
    emu = Emulator(projects=5, sharings_per_project=20, seed=1)
    for project in emu.project_ids:
        targets = {s["to_project_id"] for s in emu.sharings(project)}
        assert project not in targets
        assert targets <= set(emu.project_ids)


def test_the_random_fault_mix_is_seeded_and_covers_every_kind():
    kinds = []
    plan = FaultPlan(0.5, seed=3, retry_after=2)
    for _ in range(400):
        fault = plan.next("p")
        if fault is not None:
            kinds.append(fault.status if fault.kind == "status" else fault.kind)
    again = FaultPlan(0.5, seed=3, retry_after=2)
    repeat = [again.next("p") for _ in range(400)]
    assert len(kinds) == plan.injected == sum(f is not None for f in repeat)
    assert set(kinds) == {500, 502, 503, 504, "drop", "truncate"}  # throttling is the quota's
    assert 150 < len(kinds) < 250


def test_random_503s_carry_retry_after():
    plan = FaultPlan(1.0, seed=0, retry_after=7)
    faults = [plan.next("p") for _ in range(200)]
    limited = [f for f in faults if f is not None and f.status == 503 and f.kind == "status"]
    assert limited
    assert all(f.headers["Retry-After"] == "7" for f in limited)


def test_fault_rate_must_be_a_share():
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultPlan(1.5)


async def test_scripted_faults_can_target_one_project():
    async with Emulator(projects=2, sharings_per_project=1) as emu:
        emu.inject(Fault.answer(500), project_id=emu.project_ids[1])
        async with aiohttp.ClientSession(headers={"X-Auth-Token": emu.token}) as http:
            first = await http.get(
                f"{emu.url}/v2/{emu.project_ids[0]}/os-vendor-backup-sharing/detail"
            )
            second = await http.get(
                f"{emu.url}/v2/{emu.project_ids[1]}/os-vendor-backup-sharing/detail"
            )
            assert (first.status, second.status) == (200, 500)
            assert [r.path for r in emu.requests_for(emu.project_ids[1])] == [
                f"/v2/{emu.project_ids[1]}/os-vendor-backup-sharing/detail"
            ]
            first.release()
            second.release()


async def test_latency_and_in_flight_counts():
    async with Emulator(projects=1, sharings_per_project=1, latency=0.05) as emu:
        async with VBSClient(emu.url, auth=TokenAuth(emu.token), max_concurrency=8) as client:
            started = time.monotonic()
            await asyncio.gather(*(client.count_sharings(emu.project_ids[0]) for _ in range(8)))
            assert time.monotonic() - started >= 0.05
        assert emu.requests_received == 8
        assert emu.peak_in_flight == 8
        assert emu.in_flight == 0
        assert [r.path.rsplit("/", 1)[1] for r in emu.requests] == ["count"] * 8


async def test_silent_limit_cap_returns_fewer_items_than_asked():
    async with (
        Emulator(projects=1, sharings_per_project=80, max_limit=30) as emu,
        aiohttp.ClientSession(headers={"X-Auth-Token": emu.token}) as http,
    ):
        url = f"{emu.url}/v2/{emu.project_ids[0]}/os-vendor-backup-sharing/detail?limit=100"
        async with http.get(url) as answer:
            assert len((await answer.json())["shared"]) == 30


async def test_standalone_emulator_prints_its_url_and_token():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vbs_async.testing",
        "--port",
        "0",
        "--projects",
        "2",
        "--sharings",
        "3",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("VBS emulator at http://127.0.0.1:")
        assert f"token: {DEFAULT_TOKEN}" in line
        url = line.split()[3]
        # The standalone emulator's data comes from seed 0, like this one's.
        project = Emulator(projects=1, seed=0).project_ids[0]
        async with VBSClient(url, auth=TokenAuth(DEFAULT_TOKEN)) as client:
            assert await client.count_sharings(project) == 3
    finally:
        process.terminate()
        await process.wait()


async def test_the_quota_answers_429_in_the_gateway_form_once_spent():
    async with Emulator(projects=1, quota=(5, 3)) as emu:
        async with aiohttp.ClientSession(headers={"X-Auth-Token": emu.token}) as http:
            url = f"{emu.url}/v2/{emu.project_ids[0]}/os-vendor-backup-sharing/detail"
            answers = []
            for _ in range(5):
                async with http.get(url) as answer:
                    answers.append(
                        (answer.status, answer.headers.get("Retry-After"), await answer.json())
                    )
        assert [status for status, _, _ in answers] == [200, 200, 200, 429, 429]
        _, retry_after, body = answers[3]
        assert retry_after is None
        assert body["error_code"] == "APIGW.0308"
        assert "limit:5,time:1 second" in body["error_msg"]
        assert emu.quota is not None
        assert (emu.quota.admitted, emu.quota.throttled) == (3, 2)


def test_the_quota_refills_at_its_rate(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("vbs_async.testing._quota.time.monotonic", lambda: clock[0])
    quota = GatewayQuota(10, 2)
    assert [quota.admit() for _ in range(3)] == [True, True, False]
    clock[0] += 0.15
    assert [quota.admit() for _ in range(2)] == [True, False]
    clock[0] += 10
    assert [quota.admit() for _ in range(3)] == [True, True, False]


async def test_sharings_added_to_a_project_not_listed_yet_keep_its_own():
    async with Emulator(projects=2, sharings_per_project=5) as emu:
        project = emu.project_ids[0]
        emu.add_sharings(project, 3)
        emu.add_sharings(project, 2, seed=1)
        assert len(emu.store) == 15
        assert len(emu.sharings(project)) == 10
        assert len({s["id"] for s in emu.sharings(project)}) == 10


async def test_ten_thousand_projects_are_built_without_making_their_sharings():
    async with Emulator(projects=10_000, sharings_per_project=100) as emu:
        assert len(emu.store) == 1_000_000  # counted, not made
        assert len(emu.store._sharings) == 0
        listed = emu.sharings(emu.project_ids[42])  # one project listed: its own made
        assert len(listed) == 100
        assert len(emu.store._sharings) == 100

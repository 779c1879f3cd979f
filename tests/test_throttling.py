"""A throttling gateway is normal weather: crawls finish, quietly, and say what happened."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from vbs_async.testing import Fault, FixedWindow, GatewayModel, GatewayQuota

from ._helpers import (
    VBS_ASYNC,
    VBS_ASYNC_INTERRUPTIBLE,
    command_env,
    emulator_in_thread,
    stop_process,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_the_command_waits_out_throttling_and_reports_it(tmp_path):
    output = tmp_path / "rows.jsonl"
    # Throttling answers in the gateway's form, as many on any machine.
    with emulator_in_thread(projects=40, sharings_per_project=5) as emu:
        emu.inject(Fault.answer(429, form="gateway"), times=3)
        result = subprocess.run(
            [*VBS_ASYNC, "crawl", "--output", str(output), "--progress-interval", "0",
             *emu.project_ids],
            env=command_env(emu), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert output.read_text().count("\n") == 40 * 5
    assert "(0 retries, 3 answered 429)" in result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress:")]
    assert any("throttled" in line for line in progress)  # the progress lines say so too
    assert "stamina" not in result.stderr
    assert "retry" not in result.stderr.lower().replace("retries", "")


def crawl_behind(quota: GatewayModel, projects: int, output: Path) -> list[str]:
    """The command's stderr lines, a crawl of `projects` (2 sharings each) behind `quota`."""
    with emulator_in_thread(projects=projects, sharings_per_project=2, quota=quota) as emu:
        result = subprocess.run(
            [*VBS_ASYNC, "crawl", "--output", str(output), *emu.project_ids],
            env=command_env(emu), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert output.read_text().count("\n") == projects * 2
    return result.stderr.splitlines()


def test_the_summary_shows_the_quota_the_gateway_announced(tmp_path):
    # 16 projects listed at once against 10 a calendar second: refused at once.
    lines = crawl_behind(FixedWindow(10, 1), 20, tmp_path / "rows.jsonl")
    assert "gateway quota: 10 per 1 s, announced" in lines


class NamingMore(GatewayQuota):
    """A bucket whose 429s name a quota far above it: 1000 a second."""

    def quota(self, now: float | None = None) -> tuple[int, str] | None:
        del now
        return 1000, "1 second"


def test_the_summary_says_a_quota_named_was_not_believed(tmp_path):
    # helper-68: a 20/s bucket naming 100 a second was dropped (as `-v` said), and the
    # summary then named no quota at all: read alone, nothing was announced.
    lines = crawl_behind(NamingMore(50, 5), 30, tmp_path / "rows.jsonl")
    assert "gateway quota: 1000 per 1 s, announced, not believed (learned from 429s)" in lines
    assert "gateway quota: 1000 per 1 s, announced" not in lines


LIBRARY_PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    from vbs_async import RetryPolicy, TokenAuth, VBSClient

    async def main(url, token, projects):
        policy = RetryPolicy(wait_initial=0.001, wait_max=0.002, wait_jitter=0)
        async with VBSClient(url, auth=TokenAuth(token), retry=policy) as client:
            results = [r async for r in client.crawl(projects)]
        print(sum(len(r.sharings) for r in results), sum(r.stats.retries for r in results),
              sum(r.stats.throttled for r in results))

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
    """
)


def test_a_library_user_who_configured_no_logging_sees_nothing_on_stderr():
    with emulator_in_thread(projects=40, sharings_per_project=5) as emu:
        emu.inject(Fault.answer(429, form="gateway"), times=3)
        emu.inject(Fault.answer(503), times=5)
        emu.inject(Fault.drop(), times=2)
        result = subprocess.run(
            [sys.executable, "-c", LIBRARY_PROGRAM, emu.url, emu.token, *emu.project_ids],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sharings, retries, throttled = map(int, result.stdout.split())
    assert sharings == 40 * 5
    assert retries >= 5
    assert throttled == 3
    assert result.stderr == ""


def test_the_emulator_command_serves_a_quota():
    command = [
        *VBS_ASYNC_INTERRUPTIBLE,
        "emulator",
        "--port",
        "0",
        "--projects",
        "1",
        "--quota",
        "2:2",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[3]
            statuses, refusals = [], []
            for _ in range(4):
                request = urllib.request.Request(  # noqa: S310 - loopback only
                    f"{url}/v2/p/os-vendor-backup-sharing/count",
                    headers={"X-Auth-Token": "emulator-token"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                        statuses.append(answer.status)
                except urllib.error.HTTPError as error:
                    statuses.append(error.code)
                    refusals.append((json.loads(error.read()), error.headers.get("Retry-After")))
        finally:
            stop_process(process, signal.SIGINT)
    assert statuses == [200, 200, 429, 429]
    assert [(body["error_code"], retry_after) for body, retry_after in refusals] == [
        ("APIGW.0308", None)
    ] * 2


def test_a_quota_that_is_not_rate_burst_is_refused_in_one_line():
    result = subprocess.run(
        [*VBS_ASYNC, "emulator", "--quota", "fast"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "RATE[:BURST]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""A throttling gateway is normal weather: crawls finish, quietly, and say what happened."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from vbs_async.testing import Fault

from .test_cli import command_env, emulator_in_thread

VBS_ASYNC = [sys.executable, "-m", "vbs_async"]


def test_the_command_finishes_behind_a_quota_and_reports_throttling(tmp_path):
    output = tmp_path / "rows.jsonl"
    # A gateway's quota: as many at once as a second's worth, like the API gateway's.
    with emulator_in_thread(projects=150, sharings_per_project=5, quota=(100, 100)) as emu:
        result = subprocess.run(
            [*VBS_ASYNC, "crawl", "--output", str(output), "--progress-interval", "0.2",
             *emu.project_ids],
            env=command_env(emu), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        throttled = emu.quota.throttled  # type: ignore[union-attr]
    assert result.returncode == 0, result.stderr
    assert output.read_text().count("\n") == 150 * 5
    assert throttled > 0
    assert f"{throttled:,} throttled and waited out" in result.stderr
    assert "throttled" in result.stderr.split("progress:", 2)[1]  # the progress line says so too
    assert "stamina" not in result.stderr
    assert "retry" not in result.stderr.lower().replace("retries", "")


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
    with emulator_in_thread(projects=150, sharings_per_project=5, quota=(100, 100)) as emu:
        emu.inject(Fault.answer(503), times=5)
        emu.inject(Fault.drop(), times=2)
        result = subprocess.run(
            [sys.executable, "-c", LIBRARY_PROGRAM, emu.url, emu.token, *emu.project_ids],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sharings, retries, throttled = map(int, result.stdout.split())
    assert sharings == 150 * 5
    assert retries >= 5
    assert throttled > 0
    assert result.stderr == ""

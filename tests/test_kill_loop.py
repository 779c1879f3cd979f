"""kill -9 at random moments, 20 times over, then a resumed crawl: exactly the emulator's rows."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from ._helpers import VBS_ASYNC, command_env, emulator_in_thread, output_rows

if TYPE_CHECKING:
    from pathlib import Path

KILLS = 20


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def kill_loop(arguments: list[str], env: dict[str, str], out: Path, state: Path, seed: int):
    """Start the crawl and kill -9 it, KILLS times: every other kill at start, the others
    once the run has made progress (a row written or a project committed), mid-write.

    Returns the kills made at start, and those made after progress.
    """
    rng = random.Random(seed)
    at_start = after_progress = 0
    for kill in range(KILLS):
        before = (size(out), size(state))
        process = subprocess.Popen(
            arguments, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        mid_write = kill % 2 == 1
        if mid_write:
            deadline = time.monotonic() + 30
            while (size(out), size(state)) == before and time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.002)
            progressed = (size(out), size(state)) != before
            time.sleep(rng.uniform(0, 0.01))  # rows are being written now
        else:
            progressed = False
            time.sleep(rng.uniform(0, 0.05))  # starting up, reading the state
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            if progressed:
                after_progress += 1
            elif not mid_write:
                at_start += 1
        process.wait(30)
    return at_start, after_progress


def test_twenty_kills_then_a_resume_give_exactly_the_emulator_s_rows(tmp_path):
    with emulator_in_thread(projects=300, sharings_per_project=30, latency=0.004, seed=9) as emu:
        expected = Counter((p, s["id"]) for p in emu.project_ids for s in emu.sharings(p))
        env = command_env(emu)
        runs = {}
        for output_format in ("jsonl", "csv"):
            out, state = tmp_path / f"out.{output_format}", tmp_path / f"state.{output_format}"
            arguments = [*VBS_ASYNC, "crawl", "--format", output_format, "-o", str(out),
                         "--resume", str(state), "--page-size", "10", "--max-projects", "4",
                         "--quiet", *emu.project_ids]  # fmt: skip
            runs[output_format] = (arguments, out, state)
        kills: dict[str, tuple[int, int]] = {}

        def loop(output_format: str) -> None:
            arguments, out, state = runs[output_format]
            kills[output_format] = kill_loop(arguments, env, out, state, seed=len(output_format))

        threads = [threading.Thread(target=loop, args=(f,)) for f in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        for output_format, (arguments, out, _) in runs.items():
            final = subprocess.run(
                arguments, env=env, capture_output=True, timeout=120, check=False
            )
            assert final.returncode == 0, final.stderr
            assert output_rows(out, output_format) == expected, output_format
    # As many kills mid-write as at start, each made while the run was alive.
    assert kills == {"jsonl": (KILLS // 2, KILLS // 2), "csv": (KILLS // 2, KILLS // 2)}

"""kill -9 at random moments, 20 times over, then a resumed crawl: exactly the emulator's rows."""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter

from ._helpers import VBS_ASYNC, command_env, emulator_in_thread

KILLS = 20


def kill_loop(arguments: list[str], env: dict[str, str], state, seed: int) -> int:
    """Start the crawl and kill -9 it at a random moment, KILLS times; the kills made."""
    rng = random.Random(seed)
    kills = 0
    for _ in range(KILLS):
        process = subprocess.Popen(
            arguments, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        # Once it has started writing (the state's first line), any moment will do.
        while not (state.exists() and state.stat().st_size) and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.25))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(30)
    return kills


def rows(path, output_format: str) -> Counter[tuple[str, str]]:
    text = path.read_text()
    if output_format == "csv":
        records = list(csv.DictReader(io.StringIO(text)))
    else:
        records = [json.loads(line) for line in text.splitlines()]
    return Counter((r["project_id"], r["id"]) for r in records)


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
        kills: dict[str, int] = {}

        def loop(output_format: str) -> None:
            arguments, _, state = runs[output_format]
            kills[output_format] = kill_loop(arguments, env, state, seed=len(output_format))

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
            assert rows(out, output_format) == expected, output_format
    assert kills == {"jsonl": KILLS, "csv": KILLS}

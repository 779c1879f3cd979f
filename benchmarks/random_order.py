"""The whole suite in random order, N times, on a machine that has cloud settings.

    python -m benchmarks.random_order --runs 5            # five runs, new seeds
    python -m benchmarks.random_order --seed 1234 --seed 99   # these seeds again

Each run is `pytest -p randomly --randomly-seed=SEED` with `OS_AK`, `OS_SK`,
`OS_CLOUD` (and `OS_AUTH_TOKEN`, `OS_TENANT_NAME`) exported and a `clouds.yaml`
in a temporary `HOME`, as a developer's machine has them: the suite must isolate
itself from all of it. Every run appends one JSON line to the log (default
`random-order-runs.jsonl` in the repository, ignored by git): its seed, its
result, its time and the ids of the tests that failed, with the end of pytest's
output when it failed. A failure is reproduced with its seed:

    python -m pytest -p randomly --randomly-seed=SEED
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CLOUDS_YAML = """\
clouds:
  otc:
    region_name: eu-nl
    auth:
      auth_url: https://iam.eu-nl.otc.t-systems.com/v3
      ak: AKFROMCLOUDSYAML
      sk: SKFROMCLOUDSYAML
      project_name: eu-nl_developer
"""


def machine_environment(home: Path) -> dict[str, str]:
    """The environment of a developer who has cloud settings: what the suite must ignore."""
    (home / ".config" / "openstack").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "openstack" / "clouds.yaml").write_text(CLOUDS_YAML)
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        OS_AK="AKFROMTHEMACHINE",
        OS_SK="SKFROMTHEMACHINE",
        OS_CLOUD="otc",
        OS_AUTH_TOKEN="token-from-the-machine",  # noqa: S106 - a stand-in, what the suite ignores
        OS_TENANT_NAME="eu-de_machine",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("XDG_CONFIG_HOME", None)
    return env


def _developer_run(env: dict[str, str]) -> dict[str, str]:
    """Not CI: Hypothesis draws new examples, as on a developer's machine."""
    env.pop("CI", None)
    return env


def _failures(report: Path) -> list[str]:
    """The ids of the tests that failed or errored, from pytest's JUnit XML report."""
    if not report.exists():
        return ["<no report: pytest did not finish>"]
    cases = ET.parse(report).getroot().iter("testcase")  # noqa: S314 - our own report
    return [
        f"{case.get('classname')}::{case.get('name')}"
        for case in cases
        if case.find("failure") is not None or case.find("error") is not None
    ]


def run_once(seed: int, extra: list[str]) -> dict[str, object]:
    """One whole-suite run in random order with `seed`; its result as a record."""
    with tempfile.TemporaryDirectory(prefix="vbs-random-order-") as folder:
        home = Path(folder) / "home"
        report = Path(folder) / "report.xml"
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "randomly", f"--randomly-seed={seed}",
            "-p", "no:cacheprovider", f"--junitxml={report}", *extra,
        ]  # fmt: skip
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 - our own interpreter, our own arguments
            command,
            cwd=ROOT,
            env=_developer_run(machine_environment(home)),
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.monotonic() - started
        failed = _failures(report) if result.returncode else []
    summary = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
    record: dict[str, object] = {
        "seed": seed,
        "commit": _commit(),
        "passed": result.returncode == 0,
        "returncode": result.returncode,
        "seconds": round(elapsed, 1),
        "summary": summary[0] if summary else "",
        "failed": failed,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if result.returncode:
        record["output"] = result.stdout[-6000:] + result.stderr[-2000:]
    return record


def _commit() -> str:
    """The commit the suite ran at, with `+` when the working tree had changes."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
        cwd=ROOT, capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return head + ("+" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs with new seeds")
    parser.add_argument("--seed", type=int, action="append", default=[], help="run this seed")
    parser.add_argument("--log", type=Path, default=ROOT / "random-order-runs.jsonl")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    arguments = parser.parse_args()
    draw = random.SystemRandom()
    seeds = arguments.seed or [draw.randrange(2**32) for _ in range(arguments.runs)]
    in_a_row = 0
    for seed in seeds:
        record = run_once(seed, arguments.pytest_args)
        with arguments.log.open("a") as log:
            log.write(json.dumps(record) + "\n")
        in_a_row = in_a_row + 1 if record["passed"] else 0
        verdict = "passed" if record["passed"] else f"FAILED {record['failed']}"
        print(
            f"seed {seed} at {record['commit']}: {verdict} in {record['seconds']} s "
            f"({record['summary']})",
            flush=True,
        )
    print(f"{in_a_row} clean runs in a row at the end of {len(seeds)}")
    if in_a_row < len(seeds):
        sys.exit(1)


if __name__ == "__main__":
    main()

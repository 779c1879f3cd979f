"""Apply each of the fifty changes to a copy of the package and run its tests.

    python -m benchmarks.changes                  # all fifty, one at a time
    python -m benchmarks.changes --only 3 17      # these (1-based, as the table numbers them)
    python -m benchmarks.changes --whole          # not caught by its files: the whole suite too

The working tree is never touched: each change is applied to a fresh copy of
`vbs_async/`, `tests/` and `pyproject.toml` in a temporary folder, and pytest
runs there (`PYTHONPATH` points at the copy, so the command's subprocesses
import it too), stopping at the first failure. A change is caught when its
tests fail; one whose tests pass is "not caught". Results go to
`mutants-work/changes.json` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from . import CHANGES, Change

ROOT = Path(__file__).resolve().parent.parent.parent
RESULTS = ROOT / "mutants-work" / "changes.json"
TIMEOUT = 30
"""Seconds a test may take under a change (pytest-timeout): a change that hangs is caught."""
HUNG = 150
"""Seconds the tests of one change may take in all before they are killed and counted as hung."""


def _selection(change: Change) -> list[str]:
    selection = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]["selection"]
    files = [*selection[change.module], *change.tests]
    # Entries starting with "-" are pytest options for the module's tests (a `--deselect`).
    return [name if name.startswith("-") else f"tests/{name}" for name in dict.fromkeys(files)]


def _copy(folder: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("vbs_async", "tests"):
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", folder / "pyproject.toml")


def apply(change: Change, folder: Path) -> None:
    """Make `change` in the copy at `folder`; refuse one that no longer fits the code."""
    path = folder / change.path
    text = path.read_text()
    if text.count(change.old) != 1:
        raise LookupError(f"{change.path}: the line to change is not there once: {change.old!r}")
    path.write_text(text.replace(change.old, change.new))
    py_compile.compile(str(path), doraise=True)


def run_tests(folder: Path, files: list[str]) -> tuple[bool, str, float]:
    """(whether the tests failed, the first failure's line, seconds) for the copy at `folder`."""
    env = dict(os.environ, PYTHONPATH=str(folder), PYTHONDONTWRITEBYTECODE="1")
    env.pop("CI", None)
    started = time.monotonic()
    # One process (`-n 0`): a module's few test files, stopped at the first failure,
    # start faster than workers do.
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, our own arguments
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-n", "0", f"--timeout={TIMEOUT}", *files],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, _ = process.communicate(timeout=HUNG)
    except subprocess.TimeoutExpired:
        # pytest-timeout did not end it (a test that swallows the alarm, a hung teardown):
        # the suite would hang for ever, which is the change caught, the hard way.
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        hung = f"HUNG: the tests were still running after {HUNG} s"
        return True, hung, time.monotonic() - started
    elapsed = time.monotonic() - started
    failing = ("FAILED tests", "ERROR tests")
    failed = [line for line in stdout.splitlines() if line.startswith(failing)]
    if process.returncode not in {0, 1}:
        # Not a test failing: pytest could not run them (a path not found, no tests):
        # never taken for the change caught.
        raise RuntimeError(f"pytest exited {process.returncode}: {stdout[-500:]}")
    return process.returncode == 1, (failed[0] if failed else stdout[-300:]), elapsed


def _check_copy_is_imported(folder: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(folder))
    found = subprocess.run(
        [sys.executable, "-c", "import vbs_async; print(vbs_async.__file__)"],
        cwd=folder, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not Path(found).is_relative_to(folder):
        raise RuntimeError(f"the copy is not what the tests import: {found}")


def measure(number: int, change: Change, *, whole: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="vbs-change-") as name:
        folder = Path(name)
        _copy(folder)
        _check_copy_is_imported(folder)
        apply(change, folder)
        files = _selection(change)
        caught, why, seconds = run_tests(folder, files)
        by = "its files" if caught else ""
        if not caught and whole:
            caught, why, seconds_whole = run_tests(folder, ["tests"])
            seconds += seconds_whole
            by = "the whole suite" if caught else ""
    return {
        "number": number,
        "area": change.area,
        "description": change.description,
        "named": change.named,
        "path": change.path,
        "caught": caught,
        "by": by,
        "first_failure": why if caught else "",
        "seconds": round(seconds, 1),
    }


def table(results: list[dict[str, object]]) -> str:
    lines = [
        "| # | area | change | caught | first failing test |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        mark = " (named)" if r["named"] else ""
        verdict = f"yes ({r['by']})" if r["caught"] else "**no**"
        failure = str(r["first_failure"]).removeprefix("FAILED ").removeprefix("ERROR ")
        failure = failure.split(" - ")[0].strip()
        lines.append(
            f"| {r['number']} | {r['area']} | {r['description']}{mark} | {verdict} | "
            f"{'`' + failure + '`' if failure else ''} |"
        )
    caught = sum(1 for r in results if r["caught"])
    lines.append(f"\n{caught} of {len(results)} caught.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="*", help="changes by number, from 1")
    parser.add_argument("--whole", action="store_true", help="not caught: run the whole suite")
    arguments = parser.parse_args()
    numbers = arguments.only or range(1, len(CHANGES) + 1)
    previous = {r["number"]: r for r in json.loads(RESULTS.read_text())} if RESULTS.exists() else {}
    results = []
    for number in numbers:
        result = measure(number, CHANGES[number - 1], whole=arguments.whole)
        verdict = "caught" if result["caught"] else "NOT CAUGHT"
        seconds, description = result["seconds"], result["description"]
        print(f"{number:>2} {verdict:<10} {seconds:>6}s {description}", flush=True)
        results.append(result)
        previous[number] = result
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps([previous[k] for k in sorted(previous)], indent=1) + "\n")
    print()
    print(table(results))


if __name__ == "__main__":
    main()

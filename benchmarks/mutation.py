"""Mutation testing of the core modules, one module at a time: `python -m benchmarks.mutation`.

mutmut 3 (configured in pyproject.toml's `[tool.mutmut]`) mutates one module
against that module's own test files (`[tool.mutmut.selection]`), so that a
run fits on a small machine: each module gets a working folder of its own
under `mutants-work/` (its own stats, its own results), and one worker unless
`--workers` says otherwise.

    python -m benchmarks.mutation _redaction cli/_state   # these modules
    python -m benchmarks.mutation --all                   # every core module
    python -m benchmarks.mutation --summary               # the scores measured so far

The score of a module is killed / (killed + survived + timed out + not
covered); the list of survivors is printed for triage (`mutmut show NAME`
inside the module's folder shows the change).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants-work"
_KILLED = {"killed", "caught by type check"}
_COUNTED = _KILLED | {"survived", "timeout", "no tests", "suspicious", "segfault"}


def _configuration() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


def _folder(module: str) -> Path:
    return WORK / module.replace("/", ".")


def _prepare(module: str, tests: list[str]) -> Path:
    """A fresh folder holding the package, the tests, and a pyproject for this module."""
    folder = _folder(module)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in ("vbs_async", "tests"):
        shutil.copytree(
            ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    text = (ROOT / "pyproject.toml").read_text()
    head, _, _ = text.partition("[tool.mutmut]")
    settings = _configuration()
    lines = ["[tool.mutmut]"]
    for name, value in settings.items():
        if name not in {"only_mutate", "pytest_add_cli_args_test_selection", "selection"}:
            lines.append(f"{name} = {json.dumps(value)}")
    lines.append(f'only_mutate = ["vbs_async/{module}.py"]')
    lines.append(f"pytest_add_cli_args_test_selection = {json.dumps(tests)}")
    (folder / "pyproject.toml").write_text(head + "\n".join(lines) + "\n")
    return folder


def _results(folder: Path) -> dict[str, str]:
    """mutant name -> status, from `mutmut results --all`."""
    output = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    statuses: dict[str, str] = {}
    for line in output.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("vbs_async."):
            statuses[name] = status.strip()
    return statuses


def measure(module: str, workers: int) -> dict[str, object]:
    """Run mutmut over `module`; return and save its score and survivors."""
    selection: dict[str, list[str]] = _configuration()["selection"]  # type: ignore[assignment]
    # A name starting with "-" is a pytest option (`--deselect=tests/...`), kept as it is.
    tests = [name if name.startswith("-") else f"tests/{name}" for name in selection[module]]
    # The commit the tests and the package were copied from, not the one at the end.
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    folder = _prepare(module, tests)
    subprocess.run(  # noqa: S603 - our own interpreter, our own arguments
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(workers)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    statuses = _results(folder)
    counted = {name: s for name, s in statuses.items() if s in _COUNTED}
    killed = sum(1 for s in counted.values() if s in _KILLED)
    summary: dict[str, object] = {
        "module": module,
        "mutants": len(counted),
        "killed": killed,
        "score": round(100 * killed / len(counted), 1) if counted else None,
        "not killed": {name: s for name, s in sorted(counted.items()) if s not in _KILLED},
        "commit": commit,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def print_summary() -> None:
    total_killed = total = 0
    for path in sorted(WORK.glob("*/summary.json")):
        summary = json.loads(path.read_text())
        total_killed += summary["killed"]
        total += summary["mutants"]
        print(
            f"{summary['module']:<16} {summary['killed']:>5}/{summary['mutants']:<5} "
            f"{summary['score']}%  (commit {summary['commit']})"
        )
    if total:
        score = 100 * total_killed / total
        print(f"{'all measured':<16} {total_killed:>5}/{total:<5} {score:.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="core modules, as in [tool.mutmut.selection]")
    parser.add_argument("--all", action="store_true", help="every core module")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--summary", action="store_true", help="print the scores so far")
    arguments = parser.parse_args()
    if arguments.summary:
        print_summary()
        return
    selection = _configuration()["selection"]
    modules = list(selection) if arguments.all else arguments.modules  # type: ignore[call-overload]
    unknown = [m for m in modules if m not in selection]  # type: ignore[operator]
    if unknown or not modules:
        parser.error(f"name core modules among {', '.join(selection)}")  # type: ignore[arg-type]
    for module in modules:
        summary = measure(module, arguments.workers)
        print(f"{module}: {summary['killed']}/{summary['mutants']} killed ({summary['score']}%)")
        for name, status in summary["not killed"].items():  # type: ignore[attr-defined]
            print(f"    {status:<10} {name}")


if __name__ == "__main__":
    main()

"""`vbs-async diff`: added, removed and changed sharings between two runs; unknown is never removed."""

from __future__ import annotations

import csv
import io
import json

import pytest

from vbs_async import ProjectSharings
from vbs_async.inventory import Inventory
from vbs_async.testing import Emulator, Fault

from .test_audit import A1, A2, OUTSIDE1, add_sharing
from .test_cli import emulator_in_thread, invoke
from .test_inventory import OUTSIDE, P1, P2, record, sharing


@pytest.fixture
def two_runs(tmp_path, clean_env):
    """Run 1, then changes (one added outside, one removed, one status changed, one project
    failing), then run 2; each run's output and report kept too."""
    db = tmp_path / "inventory.sqlite"
    third = "3" * 32
    with emulator_in_thread() as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        kept = add_sharing(emu, 1, A1, A2)
        gone = add_sharing(emu, 2, A1, A2)
        changing = add_sharing(emu, 3, A2, A1, status="creating")
        hidden = add_sharing(emu, 4, third, OUTSIDE1)

        def crawl(name: str):
            return invoke("crawl", "--endpoint", emu.url, "--db", str(db), "--attempts", "1",
                          "-o", str(tmp_path / f"{name}.jsonl"), "--report",
                          str(tmp_path / f"{name}.json"), A1, A2, third)  # fmt: skip

        assert crawl("old").exit_code == 0
        emu.store.remove(gone)
        add_sharing(emu, 3, A2, A1, status="available")  # the same sharing, now available
        added = add_sharing(emu, 5, A1, OUTSIDE1)
        emu.store.remove(hidden)  # gone, but its project fails: unknown, not removed
        emu.inject(Fault.answer(500), times=100, project_id=third)
        assert crawl("new").exit_code == 1
    return db, {"kept": kept, "gone": gone, "changing": changing, "added": added, "hidden": hidden}


EMULATOR_ACCOUNT = Emulator(projects=1).identity.domain_id
"""The account (domain ID) the embedded emulator's IAM lists its projects in."""


def changes(stdout: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    return {(r["new"] or r["old"])["sharing_id"]: r for r in rows}


def test_diff_of_the_last_two_runs_names_each_change_with_its_class(two_runs):
    db, ids = two_runs
    result = invoke("diff", "--db", str(db), "--format", "jsonl")
    found = changes(result.stdout)
    assert set(found) == {ids["gone"], ids["changing"], ids["added"]}
    assert (found[ids["added"]]["change"], found[ids["added"]]["class"]) == ("added", "external")
    assert found[ids["added"]]["severity"] == "high"
    assert found[ids["added"]]["remediation"] == f"vbs-async cancel {A1} {ids['added']}"
    assert (found[ids["gone"]]["change"], found[ids["gone"]]["class"]) == ("removed", "internal")
    changed = found[ids["changing"]]
    assert (changed["change"], changed["fields"]) == ("changed", ["backup_status"])
    assert (changed["old"]["backup"]["status"], changed["new"]["backup"]["status"]) == (
        "creating",
        "available",
    )
    assert result.stderr.splitlines() == [
        "run 1 -> run 2: 1 added (1 high, 0 medium, 0 low, 0 info), 1 removed, 1 changed, 1 unchanged",
        "unknown: 1 sharings of 1 projects not listed in one of the runs (failed or not crawled)",
    ]
    assert result.exit_code == 1  # some sharings are unknown


def test_fail_on_new_exits_3_when_a_new_sharing_is_at_or_above_it(two_runs):
    db, _ = two_runs
    result = invoke("diff", "--db", str(db), "--format", "jsonl", "--fail-on-new", "high")
    assert result.exit_code == 3
    assert "1 new sharings at or above high: exit 3" in result.stderr


def test_an_old_run_that_does_not_precede_the_new_one_is_a_usage_error(two_runs):
    db, _ = two_runs
    result = invoke("diff", "--db", str(db), "--old", "1", "--new", "1", "--format", "jsonl")
    assert result.exit_code == 2
    assert "run 1 is not earlier than run 1" in result.stderr


def test_a_new_sharing_below_fail_on_new_does_not_exit_3(two_runs, tmp_path):
    db, _ = two_runs
    trusted = tmp_path / "trusted.txt"
    trusted.write_text(OUTSIDE1 + "\n")
    result = invoke("diff", "--db", str(db), "--trusted", str(trusted), "--format", "jsonl",
                    "--fail-on-new", "medium")  # fmt: skip
    assert result.exit_code == 1  # the added one is trusted (low); unknown sharings remain
    assert "1 added (0 high, 0 medium, 1 low, 0 info)" in result.stderr


def test_two_runs_without_anything_unknown_exit_0(tmp_path):
    db = tmp_path / "inventory.sqlite"
    for _ in range(2):
        assert invoke("crawl", "--emulator", "--emulator-projects", "3", "--emulator-sharings", "4",
                      "--db", str(db), "-o", str(tmp_path / "out.jsonl")).exit_code == 0  # fmt: skip
    result = invoke("diff", "--db", str(db), "--format", "jsonl")
    assert result.exit_code == 0
    assert result.stdout == ""
    account = f"(account {EMULATOR_ACCOUNT})"  # no --account: the domain IAM lists
    assert result.stderr == (
        f"run 1 {account} -> run 2 {account}: 0 added (0 high, 0 medium, 0 low, 0 info), "
        "0 removed, 0 changed, 12 unchanged\n"
    )


def test_two_crawl_outputs_with_their_reports_give_the_same_diff(two_runs, tmp_path):
    db, _ = two_runs
    from_db = invoke("diff", "--db", str(db), "--format", "jsonl")
    from_files = invoke("diff", str(tmp_path / "old.jsonl"), str(tmp_path / "new.jsonl"),
                        "--report", str(tmp_path / "old.json"), "--report", str(tmp_path / "new.json"),
                        "--format", "jsonl")  # fmt: skip
    assert from_files.exit_code == from_db.exit_code == 1
    assert changes(from_files.stdout) == changes(from_db.stdout)
    assert from_files.stderr == from_db.stderr


def test_csv_and_table_formats(two_runs):
    db, _ = two_runs
    rows = list(
        csv.DictReader(io.StringIO(invoke("diff", "--db", str(db), "--format", "csv").stdout))
    )
    assert {r["change"] for r in rows} == {"added", "removed", "changed"}
    changed = next(r for r in rows if r["change"] == "changed")
    assert (changed["old_status"], changed["new_status"]) == ("creating", "available")
    table = invoke("diff", "--db", str(db), "--format", "table").stdout.splitlines()
    assert table[0].split()[:3] == ["CHANGE", "SEVERITY", "CLASS"]
    assert len(table) == 4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--db", "{tmp}/one.sqlite", "--old", "1", "--new", "1"],
            "run 1 is not earlier than run 1",
        ),
        (["{tmp}/a.jsonl"], "diff compares two crawl output files: OLD NEW"),
        (
            ["{tmp}/a.jsonl", "{tmp}/b.jsonl", "--report", "{tmp}/a.json"],
            "each crawl output needs its --report",
        ),
        (["--db", "{tmp}/one.sqlite", "--new", "7"], "no run 7"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, arguments, message):
    assert invoke("crawl", "--emulator", "--emulator-projects", "1", "--db", str(tmp_path / "one.sqlite"),
                  "-o", str(tmp_path / "a.jsonl"), "--report", str(tmp_path / "a.json")).exit_code == 0  # fmt: skip
    result = invoke("diff", *(a.format(tmp=tmp_path) for a in arguments))
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_database_of_one_run_has_nothing_to_compare_yet_and_exits_0(tmp_path):
    db = tmp_path / "one.sqlite"
    assert invoke("crawl", "--emulator", "--emulator-projects", "1", "--db", str(db),
                  "-o", str(tmp_path / "a.jsonl")).exit_code == 0  # fmt: skip
    result = invoke("diff", "--db", str(db), "--format", "jsonl", "--fail-on-new", "high")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert (
        result.stderr
        == f"nothing to compare yet: one finished run of account {EMULATOR_ACCOUNT} (run 1)\n"
    )


def test_the_default_diff_compares_the_last_two_runs_of_the_same_account(tmp_path, clean_env):
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread() as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        add_sharing(emu, 1, A1, A2)

        def crawl(account: str, project: str, number: int):
            result = invoke("crawl", "--endpoint", emu.url, "--db", str(db), "--account", account,
                            "-o", str(tmp_path / f"{number}.jsonl"), "--quiet", project)  # fmt: skip
            assert result.exit_code == 0, result.output

        crawl("OTC-A", A1, 1)
        crawl("OTC-B", A2, 2)
        added = add_sharing(emu, 2, A1, OUTSIDE1)
        crawl("OTC-A", A1, 3)
    result = invoke("diff", "--db", str(db), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert list(changes(result.stdout)) == [added]
    assert result.stderr.startswith(
        "run 1 (account OTC-A) -> run 3 (account OTC-A): 1 added (1 high, "
    )
    assert "1 unchanged" in result.stderr


def test_a_sharing_made_while_its_projects_listing_failed_is_reported_added_once(
    tmp_path, clean_env
):
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread() as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        add_sharing(emu, 1, A1, A2)

        def crawl(number: int) -> None:
            invoke("crawl", "--endpoint", emu.url, "--db", str(db), "--attempts", "1",
                   "-o", str(tmp_path / f"{number}.jsonl"), "--quiet", A1, A2)  # fmt: skip

        crawl(1)
        emu.inject(Fault.answer(403), times=2, project_id=A2)
        crawl(2)  # A2's listing fails
        added = add_sharing(emu, 2, A2, OUTSIDE1)
        crawl(3)  # still failing
        crawl(4)  # listed again
        crawl(5)
    four = invoke("diff", "--db", str(db), "--old", "3", "--new", "4", "--format", "jsonl",
                  "--fail-on-new", "high")  # fmt: skip
    assert four.exit_code == 3, four.output
    assert [(c["change"], sid) for sid, c in changes(four.stdout).items()] == [("added", added)]
    assert four.stderr.startswith("run 3 -> run 4: 1 added (1 high,")
    five = invoke("diff", "--db", str(db), "--format", "jsonl", "--fail-on-new", "high")
    assert five.exit_code == 0, five.output  # run 4 -> run 5: not new any more
    assert five.stderr.startswith("run 4 -> run 5: 0 added")


def _unfinished_run(db, projects: dict) -> int:
    """A run started and never finished (a crawl in progress, or killed: `running`)."""
    with Inventory(db, write=True) as inventory:
        run = inventory.start_run(list(projects), account="OTC-A")
        for project_id, sharings in projects.items():
            run.record(ProjectSharings(project_id, tuple(sharings)))
        return run.run_id


def test_diff_compares_finished_runs_only_and_refuses_an_unfinished_one_named(tmp_path):
    db = tmp_path / "inventory.sqlite"
    kept = sharing("s1", P1, P2)
    record(db, {P1: [kept], P2: []}, account="OTC-A")
    _unfinished_run(db, {P1: [kept, sharing("s2", P1, OUTSIDE)]})  # half-written, running
    waiting = invoke("diff", "--db", str(db), "--format", "jsonl")
    assert waiting.exit_code == 0, waiting.output
    assert waiting.stderr == "nothing to compare yet: one finished run of account OTC-A (run 1)\n"
    named = invoke("diff", "--db", str(db), "--new", "2", "--format", "jsonl")
    assert named.exit_code == 2
    assert named.stderr == (
        "vbs-async: error: run 2 is not finished (running): audit and diff read finished runs only; "
        "finish it with crawl --resume, or name a finished run\n"
    )
    _unfinished_run(db, {P1: [kept], P2: []})  # another unfinished run (3)
    record(db, {P1: [kept, sharing("s3", P1, OUTSIDE)], P2: []}, account="OTC-A")
    result = invoke("diff", "--db", str(db), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert [c["change"] for c in changes(result.stdout).values()] == ["added"]
    assert result.stderr.startswith("run 1 (account OTC-A) -> run 4 (account OTC-A): 1 added")
    audited = invoke("audit", "--db", str(db), "--run", "2", "--format", "jsonl")
    assert audited.exit_code == 2
    assert "run 2 is not finished (running)" in audited.stderr


def test_audit_of_an_inventory_without_a_finished_run_says_so(tmp_path):
    db = tmp_path / "inventory.sqlite"
    _unfinished_run(db, {P1: [sharing("s1", P1, OUTSIDE)]})
    result = invoke("audit", "--db", str(db), "--format", "jsonl")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "the inventory records no finished run yet (run 1 is running)" in result.stderr


@pytest.mark.parametrize("option", ["--old", "--new"])
def test_a_run_number_too_large_for_sqlite_is_no_such_run(tmp_path, option):
    db = tmp_path / "inventory.sqlite"
    record(db, {P1: []})
    for arguments in (["diff", option], ["audit", "--run"]):
        result = invoke(*arguments, "99999999999999999999999", "--db", str(db))
        assert result.exit_code == 2
        assert "no run 99999999999999999999999 in the inventory" in result.stderr
        assert "Overflow" not in result.stderr


@pytest.mark.usefixtures("two_runs")
def test_output_files_refuse_the_options_of_a_database(tmp_path):
    files = [str(tmp_path / "old.jsonl"), str(tmp_path / "new.jsonl"),
             "--report", str(tmp_path / "old.json"), "--report", str(tmp_path / "new.json")]  # fmt: skip
    for option in ("--old", "--new"):
        result = invoke("diff", *files, option, "1")
        assert result.exit_code == 2
        assert "--old and --new name runs of --db" in result.stderr
    same = invoke("diff", files[0], files[0], "--report", files[3], "--report", files[3])
    assert same.exit_code == 2
    assert f"OLD and NEW are the same file ({files[0]})" in same.stderr
    audited = invoke("audit", files[0], "--report", files[3], "--run", "3")
    assert audited.exit_code == 2
    assert "--run names a run of --db, not of a crawl output file" in audited.stderr


def test_account_picks_the_runs_of_that_account_in_a_shared_database(tmp_path):
    db = tmp_path / "inventory.sqlite"
    record(db, {P1: [sharing("s1", P1, P2)]}, account="OTC-A")
    record(db, {P1: [sharing("s1", P1, P2), sharing("s2", P1, OUTSIDE)]}, account="OTC-A")
    record(db, {P2: []}, account="OTC-B")
    latest = invoke("diff", "--db", str(db), "--format", "jsonl")
    assert latest.exit_code == 0
    assert latest.stderr == "nothing to compare yet: one finished run of account OTC-B (run 3)\n"
    chosen = invoke("diff", "--db", str(db), "--account", "otc-a", "--format", "jsonl")
    assert chosen.exit_code == 0, chosen.output
    assert [c["change"] for c in changes(chosen.stdout).values()] == ["added"]
    assert chosen.stderr.startswith("run 1 (account OTC-A) -> run 2 (account OTC-A): 1 added")
    none = invoke("diff", "--db", str(db), "--account", "OTC-C")
    assert none.exit_code == 0
    assert none.stderr == "nothing to compare yet: no finished run of account OTC-C\n"
    audited = invoke("audit", "--db", str(db), "--account", "OTC-A", "--format", "jsonl")
    assert audited.exit_code == 0, audited.output
    assert sorted(json.loads(line)["sharing_id"] for line in audited.stdout.splitlines()) == [
        "s1",
        "s2",
    ]
    assert audited.stderr.startswith("audited run 2 ")
    both = invoke("diff", "--db", str(db), "--account", "OTC-A", "--new", "2")
    assert both.exit_code == 2
    assert "--account picks the runs: not with --old or --new" in both.stderr

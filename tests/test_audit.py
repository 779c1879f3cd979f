"""`vbs-async audit`: every sharing classified right, findings in four formats, every exit status."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess

import pytest
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from vbs_async.inventory import Inventory, SharingClass, audit
from vbs_async.testing import Emulator, Fault

from .test_cli import VBS_ASYNC, emulator_in_thread, invoke, password_env


def project(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


A1, A2, A3 = project("a1"), project("a2"), project("a3")  # account A; A3 shares nothing
B1, B2 = project("b1"), project("b2")  # account B
TRUSTED_PROJECT = project("partner")  # listed by ID in the trusted file
OUTSIDE1, OUTSIDE2 = project("outside-1"), project("outside-2")

# (from, to, expected class): the labelled data set.
LABELLED = [
    (A1, A2, SharingClass.INTERNAL),
    (A1, A3, SharingClass.INTERNAL),
    (A2, A1, SharingClass.INTERNAL),
    (A1, B1, SharingClass.CROSS_ACCOUNT),
    (A2, B1, SharingClass.CROSS_ACCOUNT),
    (B1, A1, SharingClass.CROSS_ACCOUNT),
    (A1, TRUSTED_PROJECT, SharingClass.TRUSTED),
    (B2, TRUSTED_PROJECT, SharingClass.TRUSTED),
    (A2, B2, SharingClass.TRUSTED),  # B2 is listed by ID: trust wins over cross-account
    (A1, OUTSIDE1, SharingClass.EXTERNAL),
    (A2, OUTSIDE2, SharingClass.EXTERNAL),
    (B1, OUTSIDE1, SharingClass.EXTERNAL),
    (B2, B1, SharingClass.INTERNAL),
]


def add_sharing(emu: Emulator, index: int, source: str, target: str, **backup) -> str:
    sharing_id = f"{index:08d}-0000-4000-8000-{index:012d}"
    emu.store.add(
        {
            "id": sharing_id,
            "backup_id": f"{index:08d}-1111-4000-8000-{index:012d}",
            "from_project_id": source,
            "to_project_id": target,
            "created_at": f"2026-01-{1 + index % 28:02d}T10:00:00.000000",
            "updated_at": None,
            "backup": {
                "id": f"{index:08d}-1111-4000-8000-{index:012d}",
                "name": backup.get("name", f"backup-{index}"),
                "status": backup.get("status", "available"),
                "size": backup.get("size", 40),
                "volume_id": f"{index:08d}-2222-4000-8000-{index:012d}",
                "availability_zone": "eu-de-01",
            },
        }
    )
    return sharing_id


@pytest.fixture
def labelled(tmp_path, clean_env):
    """The labelled data set crawled into one database: account A, then account B."""
    db = tmp_path / "inventory.sqlite"
    trusted = tmp_path / "trusted.txt"
    # Trusting account B would make A -> B trusted; trust is per target, so B2 is
    # trusted through its own ID here and B1 stays cross-account.
    trusted.write_text(f"# partners\n{TRUSTED_PROJECT}  # the partner\n\n{B2}\n")
    expected = {}
    with emulator_in_thread() as emu:
        for index, (source, target, label) in enumerate(LABELLED):
            expected[add_sharing(emu, index, source, target)] = label
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        for account, projects in (("OTC-A", [A1, A2, A3]), ("OTC-B", [B1, B2])):
            result = invoke("crawl", "--endpoint", emu.url, "--db", str(db), "--account", account,
                            "-o", str(tmp_path / f"{account}.jsonl"), "--quiet", *projects)  # fmt: skip
            assert result.exit_code == 0, result.output
    return db, trusted, expected


def test_classification_of_a_labelled_data_set_has_precision_and_recall_1(labelled):
    db, trusted, expected = labelled
    result = invoke("audit", "--db", str(db), "--trusted", str(trusted), "--min-severity", "info",
                    "--format", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.output
    got = {row["sharing_id"]: row["class"] for row in map(json.loads, result.stdout.splitlines())}
    assert set(got) == set(expected)  # every sharing once: A's and B's runs both audited
    for label in SharingClass:
        predicted = {s for s, c in got.items() if c == label.value}
        actual = {s for s, c in expected.items() if c is label}
        true_positives = len(predicted & actual)
        assert true_positives / max(len(predicted), 1) == 1.0, label  # precision
        assert true_positives / max(len(actual), 1) == 1.0, label  # recall
    assert (
        "audited run 2 (complete, account OTC-B); run 1 (complete, account OTC-A): 5 projects"
        in result.stderr
    )


def test_trusting_an_account_trusts_its_projects(labelled, tmp_path):
    db, _, _ = labelled
    trusted = tmp_path / "accounts.txt"
    trusted.write_text("OTC-B\n")
    with Inventory(db) as inventory:
        classes = {
            f.sharing.to_project_id: f.sharing_class
            for f in audit(inventory, run_id=1, trusted={"OTC-B"})
            if f.sharing.from_project_id == A1
        }
    assert classes[B1] is SharingClass.TRUSTED


def test_all_projects_makes_every_project_of_the_account_internal(tmp_path, clean_env):
    disabled = hashlib.sha256(b"eu-de/eu-de_disabled").hexdigest()[:32]  # IAM lists it, disabled
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread(projects=2, users={"alice": "alice-password-1"}) as emu:
        add_sharing(emu, 1, emu.project_ids[0], disabled)
        password_env(clean_env, emu)
        every = invoke("crawl", "--all-projects", "--db", str(db), "-o", str(tmp_path / "a.jsonl"))
        named = invoke("crawl", "--db", str(tmp_path / "named.sqlite"), *emu.project_ids,
                       "-o", str(tmp_path / "b.jsonl"))  # fmt: skip
    assert every.exit_code == named.exit_code == 0, every.output + named.output
    with Inventory(db) as inventory:
        assert [f.sharing_class for f in audit(inventory, minimum=1)] == [SharingClass.INTERNAL]
        known = [p for p in inventory.projects(1) if p.outcome == "known"]
        assert disabled in {p.project_id for p in known}
        assert inventory.runs()[0].whole_account
    with Inventory(tmp_path / "named.sqlite") as inventory:
        assert [f.sharing_class for f in audit(inventory)] == [SharingClass.EXTERNAL]


# -- what the operator sees -----------------------------------------------------------


@pytest.fixture
def hostile(tmp_path, clean_env):
    """One project whose backups carry hostile names, shared outside."""
    db = tmp_path / "inventory.sqlite"
    names = ['=HYPERLINK("http://x")', "\x1b]52;c;ZXZpbA==\x07clip", "+1-2", "@SUM(A1)",
             "line\rbreak\nnew", "nul\x00byte", "\u202eevil", "-minus"]  # fmt: skip
    with emulator_in_thread() as emu:
        for index, name in enumerate(names):
            add_sharing(emu, index, A1, OUTSIDE1, name=name)
        add_sharing(emu, 50, A1, A2)  # internal: not a finding at the default level
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("crawl", "--endpoint", emu.url, "--db", str(db), "-o",
                        str(tmp_path / "out.jsonl"), "--report", str(tmp_path / "report.json"),
                        A1, A2)  # fmt: skip
        assert result.exit_code == 0, result.output
    return db, names


def test_jsonl_findings_carry_what_the_issue_lists(hostile):
    db, names = hostile
    result = invoke("audit", "--db", str(db), "--format", "jsonl")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["backup"]["name"] for r in rows) == sorted(names)  # exact, escaped by JSON
    row = rows[0]
    assert set(row) >= {"sharing_id", "backup", "from_project_id", "to_project_id", "class",
                        "severity", "first_seen_at", "first_seen_run", "remediation"}  # fmt: skip
    assert set(row["backup"]) >= {"name", "size", "volume_id", "status"}
    assert (row["class"], row["severity"], row["from_project_id"]) == ("external", "high", A1)
    assert row["remediation"] == f"vbs-async cancel {A1} {row['sharing_id']}"
    assert row["first_seen_run"] == 1


def test_csv_cells_never_run_as_formulas_and_hold_no_control_characters(hostile):
    db, _ = hostile
    result = invoke("audit", "--db", str(db), "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 8
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value), value
    names = {row["backup_name"] for row in rows}
    assert '\'=HYPERLINK("http://x")' in names
    assert "\\x1b]52;c;ZXZpbA==\\x07clip" in names
    assert "'-minus" in names
    assert "\\u202eevil" in names


def test_the_table_escapes_server_text_before_it_reaches_the_terminal(hostile):
    db, _ = hostile
    result = invoke("audit", "--db", str(db), "--format", "table")
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "\r" not in result.stdout
    assert "\\x1b]52;c;ZXZpbA==\\x07clip" in result.stdout
    header = result.stdout.splitlines()[0].split()
    assert header[:3] == ["SEVERITY", "CLASS", "BACKUP_NAME"]
    assert len(result.stdout.splitlines()) == 1 + 8


def test_ocsf_output_validates_as_detection_findings(hostile):
    db, _ = hostile
    result = invoke("audit", "--db", str(db), "--format", "ocsf")
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 8
    for event in events:
        finding = DetectionFinding.model_validate(event)
        assert (finding.class_uid, finding.type_uid, finding.severity_id) == (2004, 200401, 4)
        # Nothing of ours was dropped as unknown by the model: it round-trips.
        dumped = json.loads(finding.model_dump_json(exclude_none=True))
        assert _without_none(event) == dumped
        assert event["finding_info"]["attacks"][0]["technique"]["uid"] == "T1537"
        assert event["remediation"]["desc"].endswith(
            f"vbs-async cancel {A1} {event['resources'][1]['uid']}"
        )
        assert event["finding_info"]["first_seen_time"] > 0


def _without_none(value):
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def test_an_output_file_with_its_report_gives_the_same_findings(hostile, tmp_path):
    db, _ = hostile
    from_db = invoke("audit", "--db", str(db), "--format", "jsonl")
    from_file = invoke("audit", str(tmp_path / "out.jsonl"), "--report", str(tmp_path / "report.json"),
                       "--format", "jsonl")  # fmt: skip
    assert from_file.exit_code == 0, from_file.output

    def key(text):
        return sorted(
            (r["sharing_id"], r["class"], r["backup"]["name"])
            for r in map(json.loads, text.splitlines())
        )

    assert key(from_file.stdout) == key(from_db.stdout)


# -- exit statuses --------------------------------------------------------------------


def test_fail_on_exits_3_at_or_above_the_threshold_and_0_below(hostile):
    db, _ = hostile
    assert invoke("audit", "--db", str(db), "--format", "jsonl", "--fail-on", "high").exit_code == 3
    result = invoke("audit", "--db", str(db), "--format", "jsonl", "--fail-on", "medium")
    assert result.exit_code == 3
    assert "8 findings at or above medium: exit 3" in result.stderr


def test_no_finding_at_the_threshold_exits_0(labelled):
    db, trusted, _ = labelled
    # Every external sharing's target trusted: the worst left is cross-account (medium).
    trusted.write_text(f"{trusted.read_text()}\n{OUTSIDE1}\n{OUTSIDE2}\n")
    result = invoke("audit", "--db", str(db), "--trusted", str(trusted), "--fail-on", "high",
                    "--format", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "0 high, 3 medium" in result.stderr


def test_a_project_never_listed_exits_1_and_is_named_unknown(tmp_path, clean_env):
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread(projects=2, sharings_per_project=1) as emu:
        emu.inject(Fault.answer(403), times=50, project_id=emu.project_ids[1])
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        invoke("crawl", "--endpoint", emu.url, "--db", str(db), "--attempts", "1",
               "-o", str(tmp_path / "o.jsonl"), *emu.project_ids)  # fmt: skip
    result = invoke("audit", "--db", str(db), "--format", "jsonl")
    assert result.exit_code == 1
    assert "1 projects never listed: their sharings are unknown" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "give --db FILE, or a crawl's output file with --report FILE"),
        (["--db", "{tmp}/missing.sqlite"], "no inventory at"),
        (["--db", "{tmp}/inv.sqlite", "--trusted", "{tmp}/nothing.txt"], "--trusted: No such file"),
        (["--db", "{tmp}/inv.sqlite", "{tmp}/out.jsonl"], "not both"),
        (["{tmp}/out.jsonl"], "each crawl output needs its --report"),
        (["--db", "{tmp}/inv.sqlite", "--run", "9"], "no run 9"),
        (["--db", "{tmp}/inv.sqlite", "--fail-on", "severe"], "Invalid value for '--fail-on'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, arguments, message):
    assert invoke("crawl", "--emulator", "--emulator-projects", "1", "--db", str(tmp_path / "inv.sqlite"),
                  "-o", str(tmp_path / "out.jsonl")).exit_code == 0  # fmt: skip
    result = invoke("audit", *(a.format(tmp=tmp_path) for a in arguments))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_csv_output_gives_the_backup_names_the_service_sent(hostile, tmp_path, clean_env):
    _, names = hostile
    out, report = tmp_path / "out.csv", tmp_path / "csv-report.json"
    with emulator_in_thread() as emu:
        for index, name in enumerate(names):
            add_sharing(emu, index, A1, OUTSIDE1, name=name)
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        result = invoke("crawl", "--endpoint", emu.url, "--format", "csv", "-o", str(out),
                        "--report", str(report), A1)  # fmt: skip
        assert result.exit_code == 0, result.output
    from_csv = invoke("audit", str(out), "--report", str(report), "--format", "jsonl")
    assert from_csv.exit_code == 0, from_csv.output
    got = sorted(json.loads(line)["backup"]["name"] for line in from_csv.stdout.splitlines())
    assert got == sorted(names)  # the crawl's formula guard taken off again


def test_the_reader_of_stdout_leaving_is_exit_141_quietly(hostile):
    db, _ = hostile
    process = subprocess.Popen(
        [*VBS_ASYNC, "audit", "--db", str(db), "--format", "jsonl", "--min-severity", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.close()  # the reader left before the first line
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 141
    assert b"Traceback" not in stderr


# -- the outside tester's findings ----------------------------------------------------


def test_a_later_crawl_of_other_projects_of_the_account_does_not_hide_earlier_findings(
    tmp_path, clean_env
):
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread() as emu:
        x1 = add_sharing(emu, 1, A1, OUTSIDE1)
        add_sharing(emu, 2, A2, A1)  # internal: A1 is the account's
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        for number, projects in ((1, [A1]), (2, [A2])):
            result = invoke("crawl", "--endpoint", emu.url, "--db", str(db), "--account", "OTC-A",
                            "-o", str(tmp_path / f"{number}.jsonl"), "--quiet", *projects)  # fmt: skip
            assert result.exit_code == 0, result.output
    result = invoke("audit", "--db", str(db), "--format", "jsonl", "--fail-on", "high")
    assert result.exit_code == 3, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["sharing_id"] for row in rows] == [x1]
    assert "2 projects; 1 high" in result.stderr
    assert "findings also from earlier listings: run 1 (" in result.stderr


def test_fail_on_counts_the_findings_the_display_filter_leaves_out(tmp_path, clean_env):
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread() as emu:
        add_sharing(emu, 1, A1, A2)  # internal: info
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        invoke("crawl", "--endpoint", emu.url, "--db", str(db), "-o", str(tmp_path / "o.jsonl"),
               "--quiet", A1, A2)  # fmt: skip
    result = invoke("audit", "--db", str(db), "--format", "jsonl", "--fail-on", "info")
    assert result.exit_code == 3, result.output
    assert result.stdout == ""  # below --min-severity low: not shown, still counted
    assert "1 findings at or above info: exit 3" in result.stderr


def test_an_output_and_a_report_of_different_crawls_are_refused(hostile, tmp_path, clean_env):
    assert hostile  # out.jsonl and report.json of the hostile crawl
    with emulator_in_thread() as emu:
        clean_env.setenv("OS_AUTH_TOKEN", emu.token)
        other = invoke("crawl", "--endpoint", emu.url, "-o", str(tmp_path / "other.jsonl"),
                       "--report", str(tmp_path / "other.json"), "--quiet", A1, A2)  # fmt: skip
        assert other.exit_code == 0, other.output
    # The emulator's crawl listed nothing for A1: its report says 0, out.jsonl holds 8 of A1's.
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / "other.jsonl").rename(moved / "other.jsonl")  # its own output gone: counts decide
    result = invoke("audit", str(tmp_path / "out.jsonl"), "--report", str(tmp_path / "other.json"))
    assert result.exit_code == 2
    assert f"says project {A1} listed 0 sharings" in result.stderr
    assert "give the report of the same crawl" in result.stderr
    # The report's own output file still there, and another given: refused by identity.
    (moved / "other.jsonl").rename(tmp_path / "other.jsonl")
    (tmp_path / "copy.jsonl").write_bytes((tmp_path / "other.jsonl").read_bytes())
    result = invoke("audit", str(tmp_path / "copy.jsonl"), "--report", str(tmp_path / "other.json"))
    assert result.exit_code == 2
    assert "is the report of the crawl that wrote" in result.stderr


def test_the_remediation_command_is_quoted_for_the_shell():
    from vbs_async.inventory import SharingVersion  # noqa: PLC0415

    hostile_id = "zz;touch PWNED"
    sharing = SharingVersion(A1, hostile_id, "b", A1, OUTSIDE1, None, None, None, None, None,
                             None, None, 1, 1)  # fmt: skip
    assert sharing.remediation == f"vbs-async cancel {A1} 'zz;touch PWNED'"


def test_a_trusted_list_matches_ids_and_accounts_whatever_their_case(labelled, tmp_path):
    db, _, _ = labelled
    trusted = tmp_path / "mixed.txt"
    trusted.write_text(f"{TRUSTED_PROJECT.upper()}\notc-b\nnot-an-account\n")
    result = invoke("audit", "--db", str(db), "--trusted", str(trusted), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    classes = {
        (row["from_project_id"], row["to_project_id"]): row["class"]
        for row in map(json.loads, result.stdout.splitlines())
    }
    assert classes[(A1, TRUSTED_PROJECT)] == "trusted"
    assert classes[(A1, B1)] == "trusted"  # account OTC-B, written otc-b
    assert (
        "--trusted: 'not-an-account' is neither a project ID nor an account recorded in the "
        "inventory: it matches nothing" in result.stderr
    )


def test_the_files_of_an_all_projects_crawl_know_every_project_of_the_account(tmp_path, clean_env):
    disabled = hashlib.sha256(b"eu-de/eu-de_disabled").hexdigest()[:32]  # IAM lists it, disabled
    with emulator_in_thread(projects=2, users={"alice": "alice-password-1"}) as emu:
        add_sharing(emu, 1, emu.project_ids[0], disabled)
        add_sharing(emu, 2, emu.project_ids[0], OUTSIDE1)
        password_env(clean_env, emu)
        crawl = invoke("crawl", "--all-projects", "-o", str(tmp_path / "a.jsonl"),
                       "--report", str(tmp_path / "a.json"))  # fmt: skip
    assert crawl.exit_code == 0, crawl.output
    result = invoke("audit", str(tmp_path / "a.jsonl"), "--report", str(tmp_path / "a.json"),
                    "--min-severity", "info", "--format", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.output
    classes = {
        row["to_project_id"]: row["class"] for row in map(json.loads, result.stdout.splitlines())
    }
    assert classes == {disabled: "internal", OUTSIDE1: "external"}


def test_the_accounts_mos_project_is_of_the_account_with_all_projects(tmp_path, clean_env):
    from .test_inventory import record, sharing  # noqa: PLC0415 - the library's recording

    mos = hashlib.sha256(b"eu-de/MOS").hexdigest()[:32]  # IAM lists it, named MOS
    db = tmp_path / "inventory.sqlite"
    with emulator_in_thread(projects=2, users={"alice": "alice-password-1"}) as emu:
        add_sharing(emu, 1, emu.project_ids[0], mos)
        password_env(clean_env, emu)
        crawl = invoke("crawl", "--all-projects", "--db", str(db), "--account", "OTC-B",
                       "-o", str(tmp_path / "b.jsonl"), "--report", str(tmp_path / "b.json"))  # fmt: skip
    assert crawl.exit_code == 0, crawl.output
    report = json.loads((tmp_path / "b.json").read_text())
    assert mos in {p["id"] for p in report["job"]["account_projects"]}
    assert mos not in {p["project_id"] for p in report["projects"]}  # never crawled
    files = invoke("audit", str(tmp_path / "b.jsonl"), "--report", str(tmp_path / "b.json"),
                   "--min-severity", "info", "--format", "jsonl")  # fmt: skip
    assert [json.loads(line)["class"] for line in files.stdout.splitlines()] == ["internal"]
    record(db, {A1: [sharing("from-a", A1, mos)]}, account="OTC-A")  # another account's run
    trusted = tmp_path / "trusted.txt"
    trusted.write_text("otc-b\n")
    for extra, expected in (([], "cross-account"), (["--trusted", str(trusted)], "trusted")):
        result = invoke("audit", "--db", str(db), "--min-severity", "info", "--format", "jsonl",
                        *extra)  # fmt: skip
        assert result.exit_code == 0, result.output
        classes = {
            (row["from_project_id"], row["class"])
            for row in map(json.loads, result.stdout.splitlines())
        }
        assert classes == {(emu.project_ids[0], "internal"), (A1, expected)}

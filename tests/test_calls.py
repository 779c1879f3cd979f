"""vbs-async count, get, share and cancel: the single calls from the command line."""

from __future__ import annotations

import json

import pytest

from vbs_async.testing import Fault

from ._helpers import command_emulator, emulator_in_thread
from .test_cli import invoke


@pytest.fixture
def emu(clean_env):
    with command_emulator(clean_env, projects=3, sharings_per_project=6, seed=5) as emulator:
        yield emulator


def test_count_and_get(emu):
    project = emu.project_ids[0]
    counted = invoke("count", project)
    assert (counted.exit_code, counted.stdout) == (0, "6\n")
    available = sum(1 for s in emu.sharings(project) if s["backup"]["status"] == "available")
    assert invoke("count", project, "--status", "available").stdout == f"{available}\n"
    sharing = emu.sharings(project)[0]
    got = invoke("get", project, sharing["id"])
    assert got.exit_code == 0
    assert json.loads(got.stdout)["id"] == sharing["id"]
    missing = invoke("get", project, "no-such-sharing")
    assert missing.exit_code == 3  # not found: the table's 3, not a usage error
    assert "HTTP 404" in missing.stderr


def test_share_asks_unless_yes_and_dry_run_sends_nothing(emu):
    project, target = emu.project_ids[0], "a" * 32
    backup_id = emu.sharings(project)[0]["backup_id"]
    before = emu.requests_received
    dry = invoke("share", project, backup_id, target, "--dry-run")
    assert dry.exit_code == 0
    assert "would share" in dry.stderr
    unconfirmed = invoke("share", project, backup_id, target)
    assert unconfirmed.exit_code == 2
    assert "confirm with --yes" in unconfirmed.stderr
    assert emu.requests_received == before
    shared = invoke("share", project, backup_id, target, "--yes")
    assert shared.exit_code == 0, shared.stderr
    assert json.loads(shared.stdout)["to_project_id"] == target
    assert any(s["to_project_id"] == target for s in emu.sharings(project))


@pytest.mark.parametrize("output_format", ["jsonl", "csv"])
def test_cancel_every_sharing_a_crawl_wrote(emu, tmp_path, output_format):
    rows = tmp_path / f"rows.{output_format}"
    crawled = invoke("crawl", "--format", output_format, "-o", str(rows), *emu.project_ids[:2])
    assert crawled.exit_code == 0
    dry = invoke("cancel", "--from-file", str(rows), "--dry-run")
    assert dry.stdout.count("would cancel") == 12
    assert emu.sharings(emu.project_ids[0])
    refused = invoke("cancel", "--from-file", str(rows))
    assert refused.exit_code == 2
    assert emu.sharings(emu.project_ids[0])
    done = invoke("cancel", "--from-file", str(rows), "--yes")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.count("cancelled ") == 12
    assert emu.sharings(emu.project_ids[0]) == emu.sharings(emu.project_ids[1]) == []
    assert len(emu.sharings(emu.project_ids[2])) == 6


def test_cancel_by_id_reports_failures_with_exit_1(emu):
    project = emu.project_ids[0]
    first, second = (s["id"] for s in emu.sharings(project)[:2])
    assert invoke("cancel", project, first, "--yes").exit_code == 0
    emu.inject(Fault.answer(403, message="not yours"), project_id=project, times=1)
    result = invoke("cancel", project, second, "--yes")
    assert result.exit_code == 1
    assert f"failed {second} of {project}: HTTP 403" in result.stderr
    assert result.stderr.strip().endswith("cancelled 0, already gone 0, failed 1")
    # Cancelled now (the second); the first's 404 cannot be told from a wrong
    # project by ID alone: not found, not a success (a crawl's file tells it).
    again = invoke("cancel", project, first, second, "--yes")
    assert again.exit_code == 1, again.stderr
    assert f"not found {first} of {project}" in again.stderr
    assert f"cancelled {second} of {project}" in again.stdout


@pytest.mark.usefixtures("emu")
def test_cancel_refuses_a_file_that_is_not_a_crawl_s(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    result = invoke("cancel", "--from-file", str(junk), "--yes")
    assert result.exit_code == 2
    assert "neither a crawl's JSONL nor its CSV" in result.stderr


def test_projects_are_named_by_name_too(clean_env):
    with emulator_in_thread(
        projects=2, sharings_per_project=4, users={"alice": "alice-pw-1"}
    ) as emu:
        clean_env.setenv("OS_AUTH_URL", emu.url + "/v3")
        clean_env.setenv("OS_USERNAME", "alice")
        clean_env.setenv("OS_PASSWORD", "alice-pw-1")
        clean_env.setenv("OS_USER_DOMAIN_NAME", "emulator-domain")
        clean_env.setenv("VBS_ENDPOINT", emu.url)
        counted = invoke("count", "eu-de_p00001")
        unknown = invoke("count", "eu-de_nowhere")
    assert (counted.exit_code, counted.stdout) == (0, "4\n")
    assert unknown.exit_code == 2
    assert "no project named 'eu-de_nowhere'" in unknown.stderr

"""`--report FILE`: what a crawl did, as JSON a machine can read.

One entry per project of the job, zero-sharing projects included: `ok`,
`failed` (with the error's class, HTTP status, code and message),
`skipped` (finished by an earlier run of the same state), `not_crawled`
(the crawl stopped first) or `gone` (finished by an earlier run of an
`--all-projects` job, no longer listed by IAM); the totals; and the job. Written as `_files`
writes any output: `-` is stdout, a regular file is replaced atomically
(keeping its mode; a new one gets the umask's), a device or FIFO is written
as a redirect would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from vbs_async._errors import APIError

from ._files import classify, write_whole

if TYPE_CHECKING:
    from pathlib import Path

    from vbs_async._models import ProjectDone

    from ._progress import Tally


class Report:
    """Collects per-project outcomes for `--report`."""

    def __init__(self, project_ids: list[str], skipped: set[str]) -> None:
        self._started = datetime.now(UTC)
        self._projects: dict[str, dict[str, Any]] = {
            project_id: {
                "project_id": project_id,
                "status": "skipped" if project_id in skipped else "not_crawled",
            }
            for project_id in project_ids
        }

    def gone(self, project_ids: list[str]) -> None:
        """Projects an earlier run finished that IAM no longer lists (--all-projects)."""
        for project_id in project_ids:
            self._projects[project_id] = {"project_id": project_id, "status": "gone"}

    def record(self, done: ProjectDone) -> None:
        """One project's end."""
        stats = done.stats
        entry: dict[str, Any] = {
            "project_id": done.project_id,
            "status": "ok" if done.ok else "failed",
            "sharings": done.sharings if done.ok else 0,
            "requests": stats.requests,
            "retries": stats.retries,
            "throttled": stats.throttled,
            "shifts": stats.shifts_detected,
            "elapsed": round(stats.elapsed, 3),
        }
        if done.error is not None:
            error = done.error
            entry["error"] = {
                "class": type(error).__name__,
                "status": error.status if isinstance(error, APIError) else None,
                "code": error.code if isinstance(error, APIError) else None,
                "message": str(error),
            }
        self._projects[done.project_id] = entry

    def write(
        self,
        path: Path,
        *,
        job: dict[str, Any],
        tally: Tally,
        exit_status: int,
        stopped: str | None,
    ) -> None:
        """Write the report to `path` (atomically)."""
        statuses = [p["status"] for p in self._projects.values()]
        document = {
            "vbs_async_report": 1,
            "job": job,
            "started_at": self._started.isoformat(timespec="seconds"),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "exit_status": exit_status,
            "stopped": stopped,
            "totals": {
                "projects": len(statuses),
                **{
                    status: statuses.count(status)
                    for status in ("ok", "failed", "skipped", "not_crawled", "gone")
                },
                "sharings": tally.sharings,
                **dict(zip(("requests", "retries", "throttled"), tally.sent(), strict=True)),
                "shifts": tally.shifts,
                "elapsed": round(tally.elapsed, 3),
                "rows_per_second": round(tally.rows_per_second(), 1),
                "requests_per_second": round(tally.rate(), 1),
            },
            "projects": list(self._projects.values()),
        }
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
        write_whole(classify(path, "--report"), data)

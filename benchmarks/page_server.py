"""A minimal VBS list server for benchmarks: pages generated from the offset, nothing stored.

Run as `python -m benchmarks.page_server --projects 300 --per-project 250`; it
prints `listening on URL` and serves until killed. Project IDs are
`p00000`, `p00001`, ...; any `X-Auth-Token` is accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web

# One sharing, every field filled: five timestamps and a nested backup with all 17
# fields, the most work a record can give a decoder.
_POPULATED = (
    '{"backup":{"availability_zone":"eu-de-01","container":"obs-vbs-eu-de-01",'
    '"created_at":"2024-01-01T10:%02d:%02d.%06d","data_timestamp":"2024-01-01T10:%02d:%02d.%06d",'
    '"description":"nightly backup","fail_reason":"","has_dependent_backups":false,'
    '"id":"%s","is_incremental":true,"name":"backup-%d","object_count":12,'
    '"size":40,"snapshot_id":"6b5d4b9e-7c1f-4a8b-9d2e-3f4a5b6c7d8e","status":"available",'
    '"updated_at":"2024-01-01T11:%02d:%02d.%06d","volume_id":"%s",'
    '"service_metadata":"{\\"type\\": \\"backup\\"}"},'
    '"backup_id":"%s","created_at":"2024-01-02T09:%02d:%02d.%06d","from_project_id":"%s",'
    '"id":"%s","to_project_id":"722513ed0a324dadaabe5b2d0fe848b9",'
    '"updated_at":"2024-01-02T12:%02d:%02d.%06d"}'
)

# One sharing, as the service writes it: five timestamps, a nested backup.
_ITEM = (
    '{"backup":{"availability_zone":"eu-de-01","container":null,'
    '"created_at":"2024-01-01T10:%02d:%02d.%06d","data_timestamp":"2024-01-01T10:%02d:%02d.%06d",'
    '"description":null,"fail_reason":null,"has_dependent_backups":false,'
    '"id":"%s","is_incremental":true,"name":"backup-%d","object_count":12,'
    '"size":40,"snapshot_id":null,"status":"available",'
    '"updated_at":"2024-01-01T11:%02d:%02d.%06d","volume_id":"%s","service_metadata":null},'
    '"backup_id":"%s","created_at":"2024-01-02T09:%02d:%02d.%06d","from_project_id":"%s",'
    '"id":"%s","to_project_id":"722513ed0a324dadaabe5b2d0fe848b9",'
    '"updated_at":"2024-01-02T12:%02d:%02d.%06d"}'
)


def project_id(index: int) -> str:
    """The ID of the index-th project."""
    return f"p{index:05d}"


def render_item(project: str, project_index: int, index: int, *, populated: bool = False) -> str:
    """The JSON of one sharing, deterministic from its project and position."""
    minute, second, micro = (index // 60) % 60, index % 60, (index * 7919) % 1_000_000
    stamp = (minute, second, micro)
    backup_id = f"{project_index:08x}-0000-4000-8000-{index:012x}"
    volume_id = f"{project_index:08x}-1111-4000-8000-{index:012x}"
    sharing_id = f"{project_index:08x}-2222-4000-8000-{index:012x}"
    return (_POPULATED if populated else _ITEM) % (
        *stamp, *stamp, backup_id, index, *stamp, volume_id,
        backup_id, *stamp, project, sharing_id, *stamp,
    )  # fmt: skip


def make_app(
    projects: int, per_project: int, latency: float, *, populated: bool = False
) -> web.Application:
    """The server: list and count for `projects` projects of `per_project` sharings.

    Each project's items are rendered once, on its first request, so that the
    server's own work stays small beside the clients it measures.
    """
    rendered: dict[str, list[str]] = {}

    async def listing(request: web.Request) -> web.Response:
        if latency:
            await asyncio.sleep(latency)
        project = request.match_info["project_id"]
        project_index = int(project[1:])
        if project_index >= projects:
            return web.json_response({"error": {"message": "no such project"}}, status=404)
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "1000"))
        end = min(per_project, offset + limit)
        if project not in rendered:
            rendered[project] = [
                render_item(project, project_index, i, populated=populated)
                for i in range(per_project)
            ]
        items = ",".join(rendered[project][offset:end])
        return web.Response(
            body=f'{{"shared":[{items}]}}'.encode(), content_type="application/json"
        )

    async def count(request: web.Request) -> web.Response:
        if latency:
            await asyncio.sleep(latency)
        del request
        return web.json_response({"count": per_project})

    app = web.Application()
    app.router.add_get("/v2/{project_id}/os-vendor-backup-sharing/detail", listing)
    app.router.add_get("/v2/{project_id}/os-vendor-backup-sharing/count", count)
    return app


async def _serve(arguments: argparse.Namespace) -> None:
    app = make_app(
        arguments.projects, arguments.per_project, arguments.latency, populated=arguments.populated
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", arguments.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f"listening on http://127.0.0.1:{port}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--projects", type=int, default=300)
    parser.add_argument("--per-project", type=int, default=250)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--populated", action="store_true", help="fill every field")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()

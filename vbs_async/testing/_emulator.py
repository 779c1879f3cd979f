"""`Emulator`: the VBS backup-sharing API served by a real aiohttp server on 127.0.0.1.

It answers the five sharing calls from an in-memory `Store`, checks the
`X-Auth-Token`, validates the documented parameters, and can be told to
misbehave: injected faults, added latency, a silent cap on `limit`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import tempfile
import time
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

import attrs
import orjson
from aiohttp import web

from ._faults import FaultPlan, error_body
from ._identity import Identity, Refused
from ._quota import GatewayModel, GatewayQuota, parse_gateway
from ._store import Query, Store, populate, synthetic_project_ids

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import TracebackType

    from ._drift import Drift
    from ._faults import Fault

_COLLECTION: Final = "/v2/{project_id}/os-vendor-backup-sharing"
# The sort keys the API document lists, kept here on their own: the emulator
# judges the client's requests by the document, not by the client's code.
_SORT_KEYS: Final = frozenset(
    {"name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at"}
)
_RECORD_LIMIT: Final = 100_000
DEFAULT_TOKEN: Final = "emulator-token"  # noqa: S105 - a fixed test token, documented
DEFAULT_REGION: Final = "eu-de"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen
class RecordedRequest:
    """A request the emulator received.

    Attributes:
        method: The HTTP method.
        path: The path, without the query.
        query: The query parameters (a parameter sent twice keeps its last value).
        project_id: The project in the path, if any.
        started: `time.monotonic()` when it arrived.
    """

    method: str
    path: str
    query: dict[str, str]
    project_id: str | None
    started: float


class _BadRequest(Exception):  # noqa: N818 - internal signal, turned into a 400
    pass


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={"X-Request-Id": uuid.uuid4().hex, **(headers or {})},
    )


def _error(
    status: int, message: str, *, form: str = "error", code: str | None = None
) -> web.Response:
    return _json(status, error_body(status, message, form=form, code=code))


def _iam_refusal(message: str, status: int = 401) -> web.Response:
    """IAM's 401 (or 403), in Keystone's form."""
    title = "Forbidden" if status == 403 else "Unauthorized"  # noqa: PLR2004 - HTTP status
    return _json(
        status, orjson.dumps({"error": {"code": status, "message": message, "title": title}})
    )


def iam_projects(
    project_ids: list[str], region: str, domain_id: str | None = None
) -> list[dict[str, Any]]:
    """What IAM lists for an account holding `project_ids` in `region` (its ID `domain_id`).

    Besides the emulator's projects (named `{region}_pNNNNN`): the built-in
    `MOS` project, a disabled project of the region and a project of another
    region, none of which a crawl of the region's projects may touch.
    """
    listed = [
        {"id": project_id, "name": f"{region}_p{index:05d}", "enabled": True}
        for index, project_id in enumerate(project_ids)
    ]
    listed.extend(
        {"id": extra_id, "name": name, "enabled": enabled}
        for extra_id, name, enabled in _extra_projects(region)
    )
    if domain_id is not None:
        for project in listed:
            project["domain_id"] = domain_id
    return listed


def _extra_projects(region: str) -> list[tuple[str, str, bool]]:
    """The projects IAM lists besides the emulator's: MOS, a disabled one, another region's."""
    extras = [("MOS", True), (f"{region}_disabled", False), ("eu-xx_elsewhere", True)]
    return [
        (hashlib.sha256(f"{region}/{name}".encode()).hexdigest()[:32], name, enabled)
        for name, enabled in extras
    ]


def _parse_bool(query: Any, name: str) -> bool | None:
    value = query.get(name)
    if value is None:
        return None
    if value not in {"true", "false"}:
        raise _BadRequest(f"{name} must be true or false")
    return bool(value == "true")


def _parse_int(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _BadRequest(f"{name} must be an integer") from None
    if number < 0:
        raise _BadRequest(f"{name} must not be negative")
    return number


def _parse_query(query: Any, *, with_sort: bool) -> Query:
    zone = query.get("availability_zone") or query.get("avalilability_zone")
    fields: dict[str, Any] = {
        "share_to_me": bool(_parse_bool(query, "share_to_me")),
        "availability_zone": zone,
    }
    for name in ("volume_id", "name", "status", "backup_id", "from_project_id", "to_project_id"):
        fields[name] = query.get(name)
    if with_sort:
        sort_key = query.get("sort_key", "created_at")
        sort_dir = query.get("sort_dir", "desc")
        if sort_key not in _SORT_KEYS:
            raise _BadRequest(f"sort_key {sort_key!r} is not supported")
        if sort_dir not in {"asc", "desc"}:
            raise _BadRequest("sort_dir must be asc or desc")
        fields.update(sort_key=sort_key, sort_dir=sort_dir)
    return Query(**fields)


class Emulator:
    """The VBS backup-sharing API on 127.0.0.1, for tests and demos.

    `async with Emulator(projects=3, sharings_per_project=250) as emu:` serves
    synthetic data at `emu.url`; authenticate with `TokenAuth(emu.token)`.

    Args:
        projects: Synthetic projects to create.
        sharings_per_project: Sharings each synthetic project shares.
        seed: Makes the synthetic data (and nothing else) deterministic.
        token: The `X-Auth-Token` the emulator accepts.
        host: The address to listen on (loopback).
        port: The port; 0 picks a free one.
        latency: Seconds added to every request of the sharing API.
        fault_rate: Share of requests (0 to 1) that fail at random.
        fault_seed: Makes the random faults deterministic.
        retry_after: `Retry-After` seconds sent with a random 429.
        max_limit: Silently cap `limit` at this many items (as some servers
            do); None for no cap.
        ignore_offset: Answer every list request from offset 0, as a broken
            server would.
        drift: Change each project's sharings between its list requests
            (see `Drift`); None for a listing that holds still.
        users: IAM users (name to password, domain `emulator-domain`) who
            may get project-scoped tokens from `POST /v3/auth/tokens` at
            `emu.url`; such a token is accepted only for its project.
        token_lifetime: Seconds an issued token is valid.
        access_keys: Access key to secret key: requests signed with one
            (SDK-HMAC-SHA256) are accepted, a bad signature gets 401.
        region: The region the emulator stands for: its projects are named
            `{region}_pNNNNN`, and token catalogs list VBS there.
        agencies: `(delegating domain, agency name)` pairs that any user
            (or key pair) may assume with IAM's `assume_role`; agency tokens
            are accepted for the project they are scoped to.
        security_tokens: Access key to the security token its requests must
            send and sign (temporary keys).
        tls: Serve HTTPS with a certificate of a CA made for this emulator
            (needs `trustme`); `emu.ca_bundle` is the CA's PEM file.
        quota: `(rate, burst)`: a gateway quota shared by every call, IAM's
            included. Over it, 429 at once in the gateway's form
            (`error_code` `APIGW.0308`, the quota named in the message),
            without `Retry-After`. Any gateway model for other gateways
            (`FixedWindow`, `PenaltyBox`, `InFlightCap`, `Sporadic`,
            `Schedule`, `AllOf`; see `vbs_async.testing`), or its text for
            `parse_gateway` (`"window:100/5,announce=off"`). None for no quota.

    Attributes:
        store: The data; change it freely between (or during) requests.
        quota: The gateway quota, if any (`quota.throttled` counts its 429s).
        identity: Issued tokens and key pairs; `identity.token_requests`
            lists every token issued, `identity.revoke_all()` revokes them.
        unauthorized: How many requests were refused with 401.
        faults: The fault plan; `faults.script(Fault.answer(503))` fails the next request.
        requests: The most recent requests received (up to 100,000).
        requests_received: How many requests arrived.
        in_flight: Requests being handled now.
        peak_in_flight: The most requests handled at once.
    """

    def __init__(
        self,
        *,
        projects: int = 0,
        sharings_per_project: int = 0,
        seed: int = 0,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        retry_after: int = 1,
        max_limit: int | None = None,
        ignore_offset: bool = False,
        drift: Drift | None = None,
        users: Mapping[str, str] | None = None,
        token_lifetime: float = 86_400.0,
        access_keys: Mapping[str, str] | None = None,
        security_tokens: Mapping[str, str] | None = None,
        agencies: Iterable[tuple[str, str]] = (),
        region: str = DEFAULT_REGION,
        tls: bool = False,
        quota: tuple[float, float] | GatewayModel | str | None = None,
    ) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0")
        if max_limit is not None and max_limit < 1:
            raise ValueError("max_limit must be >= 1")
        self.store = Store()
        self.project_ids = synthetic_project_ids(projects, seed)
        populate(self.store, self.project_ids, sharings_per_project, seed)
        self.token = token
        self.host = host
        self.port = port
        self.latency = latency
        self.max_limit = max_limit
        self.ignore_offset = ignore_offset
        self.drift = drift
        self.quota: GatewayModel | None
        if isinstance(quota, str):
            self.quota = parse_gateway(quota)
        elif isinstance(quota, tuple):
            self.quota = GatewayQuota(*quota)
        else:
            self.quota = quota
        self.faults = FaultPlan(fault_rate, seed=fault_seed, retry_after=retry_after)
        self.identity = Identity(
            users,
            token_lifetime=token_lifetime,
            access_keys=access_keys,
            security_tokens=security_tokens,
            agencies=agencies,
        )
        self.identity.catalog = self._catalog
        self.region = region
        self.tls = tls
        self.ca_bundle: str | None = None
        self.iam_projects = iam_projects(self.project_ids, region, self.identity.domain_id)
        self.unauthorized = 0
        self.requests: deque[RecordedRequest] = deque(maxlen=_RECORD_LIMIT)
        self.requests_received = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._runner: web.AppRunner | None = None
        self._tls_files: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """The endpoint to give `VBSClient`, `http://127.0.0.1:PORT`."""
        if self._runner is None:
            raise RuntimeError("the emulator is not running: use `async with Emulator()`")
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def sharings(self, project_id: str, *, share_to_me: bool = False) -> list[dict[str, Any]]:
        """What a full listing of `project_id` should return, newest first."""
        return self.store.sharings(project_id, share_to_me=share_to_me)

    def add_sharings(self, project_id: str, count: int, *, seed: int = 0) -> None:
        """Give `project_id` `count` more synthetic sharings of its own backups."""
        # Distinct data for each project and call: ids come from the seed.
        populate(
            self.store,
            [project_id],
            count,
            zlib.crc32(f"{project_id}/{seed}/{len(self.store)}".encode()),
        )

    def requests_for(self, project_id: str) -> list[RecordedRequest]:
        """The recorded requests about `project_id`."""
        return [r for r in self.requests if r.project_id == project_id]

    def inject(self, fault: Fault, *, times: int = 1, project_id: str | None = None) -> None:
        """Serve `fault` to the next `times` requests (of `project_id` only, if given)."""
        self.faults.script(fault, times=times, project_id=project_id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start serving; `url` is valid afterwards."""
        app = web.Application(
            middlewares=[self._count, self._throttle, self._misbehave, self._authenticate]
        )
        collection = _COLLECTION
        app.router.add_get(f"{collection}/detail", self._list)
        app.router.add_get(f"{collection}/count", self._count_sharings)
        app.router.add_get(f"{collection}/{{sharing_id}}", self._get)
        app.router.add_post(collection, self._share)
        app.router.add_delete(f"{collection}/{{sharing_id}}", self._cancel)
        app.router.add_post("/v3/auth/tokens", self._issue_token)
        app.router.add_get("/v3/auth/projects", self._list_projects)
        app.router.add_get("/v3/auth/catalog", self._auth_catalog)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._server_tls())
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tls_files is not None:
            self._tls_files.cleanup()
            self._tls_files = None

    def _server_tls(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        try:
            import trustme  # noqa: PLC0415 - only for who asks for TLS
        except ModuleNotFoundError:
            raise RuntimeError("Emulator(tls=True) needs trustme: pip install trustme") from None
        authority = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert(self.host, "localhost").configure_cert(context)
        self._tls_files = tempfile.TemporaryDirectory(prefix="vbs-emulator-ca-")
        bundle = Path(self._tls_files.name) / "ca.pem"
        authority.cert_pem.write_to_path(str(bundle))
        self.ca_bundle = str(bundle)
        return context

    def _catalog(self, project_id: str | None) -> list[dict[str, Any]]:
        """The service catalog of a token of `project_id`: VBS as `vbs` and `vbsv2`."""
        endpoint = {"interface": "public", "region": self.region, "region_id": self.region}
        return [
            {"type": "vbs", "name": "vbs", "endpoints": [{**endpoint, "url": f"{self.url}/v2/"}]},
            {
                "type": "vbsv2",
                "name": "vbsv2",
                "endpoints": [{**endpoint, "url": f"{self.url}/v2/{project_id}"}],
            },
        ]

    # -- middlewares --------------------------------------------------------------

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests_received += 1
        self.requests.append(
            RecordedRequest(
                request.method,
                request.path,
                dict(request.query),
                request.match_info.get("project_id"),
                time.monotonic(),
            )
        )
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    @web.middleware
    async def _throttle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        quota = self.quota
        if quota is None:
            return await handler(request)
        if quota.admit():
            try:
                return await handler(request)
            finally:
                quota.release()
        body, headers = quota.refusal(str(uuid.uuid4()))
        return web.Response(status=429, body=body, headers=headers)

    @web.middleware
    async def _misbehave(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/v2/"):
            return await handler(request)  # IAM is not the gateway under test
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self.faults.next(request.match_info.get("project_id", ""))
        if fault is None:
            return await handler(request)
        if fault.kind == "drop":
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if fault.kind == "truncate":
            real = await handler(request)
            body = real.body if isinstance(real, web.Response) and real.body else b"{}"
            assert isinstance(body, bytes)  # noqa: S101 - our handlers answer bytes
            partial = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            partial.content_length = len(body)
            await partial.prepare(request)
            await partial.write(body[: len(body) // 2])
            if request.transport is not None:
                request.transport.close()
            return partial
        return _json(fault.status, fault.body, fault.headers)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v2/"):
            try:
                await self._check_caller(request)
            except Refused as refusal:
                self.unauthorized += 1
                return _error(401, str(refusal), form="gateway", code="APIGW.0301")
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _error(400, str(exc), code="VolumeBackup.0041")

    async def _check_caller(self, request: web.Request) -> None:
        if "Authorization" in request.headers:
            await self._caller(request)  # checks the signature
            return
        token = request.headers.get("X-Auth-Token")
        if token is None:
            raise Refused("Incorrect IAM authentication information: no X-Auth-Token")
        if token != self.token:
            self.identity.check_token(token, request.match_info.get("project_id", ""))

    async def _caller(self, request: web.Request, *, agency_tokens: bool = False) -> str | None:
        """Who an IAM request is authenticated as (a user's token or a key pair), if anyone.

        An agency's token speaks for the agency where `agency_tokens` allows
        (listing projects), never to assume another agency.
        """
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            access_key = self.identity.check_signature(
                authorization,
                method=request.method,
                path=request.path,
                query=list(request.query.items()),
                headers=request.headers,
                body=await request.read(),
            )
            return f"key:{access_key}"
        token = request.headers.get("X-Auth-Token")
        if token is None:
            return None
        # The emulator's own token stands for a user of the account.
        if token == self.token:
            return "emulator"
        return self.identity.holder_of(token) if agency_tokens else self.identity.user_of(token)

    async def _list_projects(self, request: web.Request) -> web.Response:
        try:
            caller = await self._caller(request, agency_tokens=True)
        except Refused as refusal:
            self.unauthorized += 1
            return _iam_refusal(str(refusal))
        if caller is None:
            self.unauthorized += 1
            return _iam_refusal("Incorrect IAM authentication information: no X-Auth-Token")
        return _json(200, orjson.dumps({"projects": self.iam_projects}))

    async def _auth_catalog(self, request: web.Request) -> web.Response:
        """IAM's `GET /v3/auth/catalog`: the catalog of the caller's project (AK/SK, tokens)."""
        try:
            caller = await self._caller(request, agency_tokens=True)
        except Refused as refusal:
            self.unauthorized += 1
            return _iam_refusal(str(refusal))
        if caller is None:
            self.unauthorized += 1
            return _iam_refusal("Incorrect IAM authentication information: no X-Auth-Token")
        project_id = request.headers.get("X-Project-Id")
        return _json(200, orjson.dumps({"catalog": self._catalog(project_id)}))

    async def _issue_token(self, request: web.Request) -> web.Response:
        try:
            payload = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "The request body is not JSON")
        try:
            token, body = self.identity.issue(payload, await self._caller(request))
        except Refused as refusal:
            return _iam_refusal(str(refusal), refusal.status)
        return _json(201, orjson.dumps(body), {"X-Subject-Token": token})

    # -- the five calls -----------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        project_id = request.match_info["project_id"]
        query = _parse_query(request.query, with_sort=True)
        offset = _parse_int(request.query, "offset") or 0
        if self.ignore_offset:
            offset = 0
        limit = _parse_int(request.query, "limit")
        if limit is not None and limit < 1:
            raise _BadRequest("limit must be at least 1")
        if self.max_limit is not None:
            limit = min(limit or self.max_limit, self.max_limit)
        if self.drift is not None:
            self.drift.before_list(self.store, project_id, offset)
        rows = self.store.view(project_id, query)
        end = len(rows) if limit is None else offset + limit
        page = rows[offset:end]
        body = b'{"shared":[' + b",".join(s.encoded for s in page) + b"]}"
        return _json(200, body)

    async def _count_sharings(self, request: web.Request) -> web.Response:
        project_id = request.match_info["project_id"]
        if self.drift is not None:
            self.drift.before_count(self.store, project_id)
        rows = self.store.view(project_id, _parse_query(request.query, with_sort=False))
        return _json(200, orjson.dumps({"count": len(rows)}))

    async def _get(self, request: web.Request) -> web.Response:
        project_id = request.match_info["project_id"]
        document = self.store.get(request.match_info["sharing_id"])
        if document is None or project_id not in {
            document["from_project_id"],
            document["to_project_id"],
        }:
            return _error(404, "The sharing does not exist", code="VolumeBackup.0101")
        return _json(200, orjson.dumps({"shared": document}))

    async def _share(self, request: web.Request) -> web.Response:
        project_id = request.match_info["project_id"]
        try:
            payload = orjson.loads(await request.read())
            shared = payload["shared"]
            backup_id = shared["backup_id"]
            targets = shared["to_project_ids"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise _BadRequest("the body must be {shared: {backup_id, to_project_ids}}") from None
        if not isinstance(backup_id, str) or not isinstance(targets, list) or not targets:
            raise _BadRequest("backup_id must be a string and to_project_ids a non-empty list")
        existing = {
            s["to_project_id"]
            for s in self.store.sharings(project_id)
            if s["backup_id"] == backup_id
        }
        if existing & set(targets):
            return _error(
                409, "The backup is already shared with that project", code="VolumeBackup.0104"
            )
        backup = self.store.backup(project_id, backup_id) or {"id": backup_id}
        now = datetime.now(UTC)
        created = [self.store.share(project_id, backup, target, now=now) for target in targets]
        # The share call answers with null timestamps and deletion fields.
        answer = [
            {**s, "created_at": None, "updated_at": None, "deleted": False, "deleted_at": None}
            for s in created
        ]
        return _json(200, orjson.dumps({"shared": answer}))

    async def _cancel(self, request: web.Request) -> web.Response:
        project_id = request.match_info["project_id"]
        target = request.match_info["sharing_id"]
        by_backup = _parse_bool(request.query, "is_backup_id")
        if by_backup:
            removed = self.store.remove_backup(project_id, target)
        else:
            document = self.store.get(target)
            owned = document is not None and document["from_project_id"] == project_id
            removed = int(owned and self.store.remove(target))
        if not removed:
            return _error(404, "The sharing does not exist", code="VolumeBackup.0101")
        return web.Response(status=200, headers={"X-Request-Id": uuid.uuid4().hex})

"""The service catalog of credentials that come without one: `GET {iam}/v3/auth/catalog`.

An IAM token request answers with the project's catalog (`PasswordAuth`,
`AgencyAuth`). A key pair or a ready token has none: gophertelekomcloud then
asks IAM for it (`GET /v3/auth/catalog`, authenticated by the credentials
themselves, for the project they act in). `IamCatalog` does the same once
per project, at most once at a time, and keeps a bounded number of answers.
A refusal is not fatal: the region's known endpoint is used, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

import orjson

from ._endpoints import Catalog, read_catalog
from ._errors import APIError, TransportError
from ._requests import Request

if TYPE_CHECKING:
    from ._auth import Send

logger: Final = logging.getLogger("vbs_async")

CATALOG_PATH: Final = "/v3/auth/catalog"
_MAX_CATALOGS: Final = 256
"""Catalogs kept at most (one per project; a region's projects share their endpoints)."""


class IamCatalog:
    """Each project's catalog from IAM, asked once.

    Args:
        auth_url: IAM's endpoint, normalised (`https://iam.eu-de.otc.t-systems.com`).
    """

    __slots__ = ("_auth_url", "_found", "_pending")

    def __init__(self, auth_url: str) -> None:
        self._auth_url = auth_url
        self._found: OrderedDict[str, Catalog] = OrderedDict()
        self._pending: dict[str, asyncio.Task[Catalog]] = {}

    async def get(self, project_id: str, send: Send) -> Catalog:
        """The catalog of `project_id`'s region, asked of IAM the first time."""
        found = self._found.get(project_id)
        if found is not None:
            return found
        pending = self._pending.get(project_id)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(project_id, send))
            self._pending[project_id] = pending
            pending.add_done_callback(lambda _: self._pending.pop(project_id, None))
        return await asyncio.shield(pending)

    async def aclose(self) -> None:
        """Cancel the requests in flight."""
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)

    async def _fetch(self, project_id: str, send: Send) -> Catalog:
        request = Request("GET", CATALOG_PATH, project_id, endpoint=self._auth_url, repeatable=True)
        try:
            response = await send(request)
            catalog = read_catalog(orjson.loads(response.body))
        except (APIError, TransportError, orjson.JSONDecodeError) as error:
            # The known endpoints still serve: a key pair without IAM rights must not
            # stop a crawl the configured region can answer.
            message = error.message if isinstance(error, APIError) else type(error).__name__
            logger.warning(
                "IAM's service catalog (GET %s) for project %s could not be read: %s",
                CATALOG_PATH,
                project_id,
                message,
            )
            catalog = ()
        self._found[project_id] = catalog
        while len(self._found) > _MAX_CATALOGS:
            self._found.popitem(last=False)
        return catalog

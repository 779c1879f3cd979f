"""An embedded emulator of the VBS backup-sharing API, for tests and demos.

    from vbs_async.testing import Emulator

    async with Emulator(projects=3, sharings_per_project=250) as emu:
        async with VBSClient(emu.url, auth=TokenAuth(emu.token)) as client:
            ...

Also runnable on its own: `python -m vbs_async.testing --port 8080 --projects 50`.
"""

from __future__ import annotations

from ._drift import Drift
from ._emulator import DEFAULT_TOKEN, Emulator, RecordedRequest
from ._faults import Fault, FaultPlan, error_body
from ._mock import MockTransport, SentRequest, response
from ._quota import (
    AllOf,
    FixedWindow,
    GatewayModel,
    GatewayQuota,
    InFlightCap,
    PenaltyBox,
    Schedule,
    SlidingWindow,
    Sporadic,
    TokenBucket,
    parse_gateway,
)
from ._store import Query, Store, StoredSharing

__all__ = [
    "DEFAULT_TOKEN",
    "AllOf",
    "Drift",
    "Emulator",
    "Fault",
    "FaultPlan",
    "FixedWindow",
    "GatewayModel",
    "GatewayQuota",
    "InFlightCap",
    "MockTransport",
    "PenaltyBox",
    "Query",
    "RecordedRequest",
    "Schedule",
    "SentRequest",
    "SlidingWindow",
    "Sporadic",
    "Store",
    "StoredSharing",
    "TokenBucket",
    "error_body",
    "parse_gateway",
    "response",
]

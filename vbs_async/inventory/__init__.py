"""Record crawls in an SQLite inventory, classify who can restore each shared backup, diff runs.

```python
from vbs_async.inventory import Inventory, audit, diff

with Inventory("inventory.sqlite", write=True) as inventory:
    run = inventory.start_run(project_ids, account="OTC00000000001000000123", region="eu-de")
    async for result in client.crawl(project_ids):
        run.record(result)          # one transaction per project
    run.finish()

with Inventory("inventory.sqlite") as inventory:
    for finding in audit(inventory, trusted={"0c6e..."}):
        print(finding.severity.label, finding.sharing_class, finding.remediation)
    changes = diff(inventory)       # the last two runs
    for change in changes:
        print(change.kind, change.sharing.sharing_id)
    print(changes.summary)
```

The schema is described in `vbs_async.inventory._schema` and the README
("Security audit"); its version is `SCHEMA_VERSION`.
"""

from __future__ import annotations

from ._classify import SEVERITY, Classifier, Severity, SharingClass, read_trusted
from ._diff import Change, ChangeKind, DiffSummary, NothingToCompareError, RunDiff, diff
from ._files import load_crawl_output, read_report
from ._findings import Audit, Finding, SharingVersion, audit
from ._schema import SCHEMA_VERSION
from ._store import (
    Inventory,
    InventoryBusyError,
    InventoryError,
    ProjectOutcome,
    Run,
    RunRecorder,
)

__all__ = [
    "SCHEMA_VERSION",
    "SEVERITY",
    "Audit",
    "Change",
    "ChangeKind",
    "Classifier",
    "DiffSummary",
    "Finding",
    "Inventory",
    "InventoryBusyError",
    "InventoryError",
    "NothingToCompareError",
    "ProjectOutcome",
    "Run",
    "RunDiff",
    "RunRecorder",
    "Severity",
    "SharingClass",
    "SharingVersion",
    "audit",
    "diff",
    "load_crawl_output",
    "read_report",
    "read_trusted",
]

"""Who can restore a shared backup: each sharing's class and severity.

A sharing is judged by the project it is shared with (`to_project_id`):

- `internal`: a project of the same account (the run's project list, with
  every project recorded for the same account in the database; with
  `--all-projects`, every project IAM lists for the account);
- `trusted`: a project, or a project of an account, listed as trusted;
- `cross-account`: a project recorded in the database under another
  account (or by a run whose account is unknown);
- `external`: anything else: a project no inventoried account holds.

The first that applies wins, in that order.
"""

from __future__ import annotations

import codecs
import enum
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable
    from pathlib import Path


class SharingClass(enum.StrEnum):
    """Where a sharing's backup can be restored."""

    INTERNAL = "internal"
    TRUSTED = "trusted"
    CROSS_ACCOUNT = "cross-account"
    EXTERNAL = "external"


class Severity(enum.IntEnum):
    """How urgent a finding is; the values are OCSF's `severity_id`."""

    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4

    @property
    def label(self) -> str:
        """The name the command takes and prints (`high`)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """A severity by its label.

        Raises:
            ValueError: Not one of `info`, `low`, `medium`, `high`.
        """
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"{text!r} is not a severity (info, low, medium, high)") from None


SEVERITY: Final[Mapping[SharingClass, Severity]] = {
    SharingClass.INTERNAL: Severity.INFO,
    SharingClass.TRUSTED: Severity.LOW,
    SharingClass.CROSS_ACCOUNT: Severity.MEDIUM,
    SharingClass.EXTERNAL: Severity.HIGH,
}
"""The severity of each class (the README says why)."""


def read_trusted(path: Path) -> frozenset[str]:
    """The project and account (domain) IDs of a trusted list: one per line, `#` comments.

    Entries are `normalised` (casefolded): project IDs are hex, and an
    account written `otc-b` is the account recorded as `OTC-B`.

    Raises:
        ValueError: The file is not UTF-8 (or UTF-16 with a byte order mark) text.
    """
    data = path.read_bytes()
    encoding = "utf-16" if data[:2] in {codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE} else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    entries = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(normalised(entry) for entry in entries if entry)


_PROJECT_ID: Final = re.compile(r"[0-9a-f]{32}")


def normalised(entry: str) -> str:
    """A trusted entry as compared: project IDs are hex (lowercase), account labels casefolded."""
    return entry.casefold()


def is_project_id(entry: str) -> bool:
    """Whether a trusted entry has the form of a project ID (32 hex digits)."""
    return _PROJECT_ID.fullmatch(entry.casefold()) is not None


def _project_set(projects: Iterable[str]) -> frozenset[str]:
    return frozenset(normalised(p) for p in projects)


def _project_map(accounts: Mapping[str, Iterable[str]]) -> Mapping[str, frozenset[str]]:
    merged: dict[str, set[str]] = {}
    for project_id, labels in accounts.items():
        merged.setdefault(normalised(project_id), set()).update(labels)
    return {project_id: frozenset(labels) for project_id, labels in merged.items()}


@attrs.frozen
class Classifier:
    """Classifies sharings of one run.

    Project IDs are compared whatever their case (they are hex: `0A1B…` is
    `0a1b…`), and so are account labels (`otc-a` is the account recorded as
    `OTC-A`), as in the trusted list.

    Attributes:
        internal: The projects of the run's account.
        accounts: Each project recorded in the database, with the accounts
            it was recorded under (empty when no run knew its account).
        trusted: Trusted project and account IDs (`normalised`: compared
            whatever their case).
    """

    internal: frozenset[str] = attrs.field(converter=_project_set)
    accounts: Mapping[str, frozenset[str]] = attrs.field(converter=_project_map)
    trusted: frozenset[str] = attrs.field(default=frozenset(), converter=_project_set)

    def classify(self, to_project_id: str) -> SharingClass:
        """The class of a sharing with `to_project_id`."""
        project_id = normalised(to_project_id)
        if project_id in self.internal:
            return SharingClass.INTERNAL
        accounts = self.accounts.get(project_id)
        if project_id in self.trusted or (
            accounts and any(normalised(account) in self.trusted for account in accounts)
        ):
            return SharingClass.TRUSTED
        if accounts is not None:
            return SharingClass.CROSS_ACCOUNT
        return SharingClass.EXTERNAL

    def account_of(self, project_id: str) -> str | None:
        """The account a project was recorded under, if one is known."""
        accounts = self.accounts.get(normalised(project_id))
        return min(accounts) if accounts else None


def classifier_for_run(
    db: sqlite3.Connection, run_id: int, trusted: Iterable[str] = ()
) -> Classifier:
    """The classifier of a run of an inventory.

    Its account's projects are internal: those the run recorded under its
    account (or, for a run of unknown account, its projects of unknown
    account), and every project any run recorded under the same account,
    whatever the case of its label.
    """
    account = db.execute("SELECT account FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
    # The run's projects of its account (a project IAM did not list under
    # the account the run detected is not one of them).
    internal = {
        row[0]
        for row in db.execute(
            "SELECT project_id FROM run_projects WHERE run_id = ? AND account IS ?",
            (run_id, account),
        )
    }
    same = None if account is None else normalised(account)
    accounts: dict[str, set[str]] = {}
    for project_id, project_account in db.execute(
        "SELECT DISTINCT project_id, account FROM run_projects"
    ):
        known = accounts.setdefault(project_id, set())
        if project_account is not None:
            known.add(project_account)
            if same is not None and normalised(project_account) == same:
                internal.add(project_id)
    return Classifier(internal=frozenset(internal), accounts=accounts, trusted=frozenset(trusted))

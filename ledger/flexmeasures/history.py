"""What a FlexMeasures `audit_log` row says, in the words FlexMeasures 1.0 writes: "User X
created", "Active status set to 'False'.", "Added role(s): [a,b].", "Removed role(s): [a].",
"User X deleted", "Created account 'N' (id) via CLI", "Account N created". Anything else
(password resets, "Account Updated", free text) is unrecognised: kept, with its text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from ledger.flexmeasures.source import AuditRow

Kind = Literal[
    "user-created",
    "user-deleted",
    "account-created",
    "activated",
    "deactivated",
    "roles-added",
    "roles-removed",
    "unrecognised",
]

# A row of `PATCH /api/v3_0/users/<id>` concatenates its segments ("Removed role(s): [a].Added
# role(s): [b].Active status set to 'False'."); the other rows say one thing each.
_SEGMENTS: Final[list[tuple[Kind, re.Pattern[str]]]] = [
    ("roles-removed", re.compile(r"Removed role\(s\): \[(?P<roles>[^\]]*)\]\.")),
    ("roles-added", re.compile(r"Added role\(s\): \[(?P<roles>[^\]]*)\]\.")),
    ("activated", re.compile(r"Active status set to 'True'\.")),
    ("deactivated", re.compile(r"Active status set to 'False'\.")),
]
_WHOLE: Final[list[tuple[Kind, re.Pattern[str]]]] = [
    ("user-created", re.compile(r"User (?P<name>.+) created")),
    ("user-deleted", re.compile(r"User (?P<name>.+) deleted")),
    ("account-created", re.compile(r"Created account '(?P<name>.+)' \((?P<id>\d+)\) via CLI")),
    ("account-created", re.compile(r"Account (?P<name>.+) created while creating user .+")),
    ("account-created", re.compile(r"Account (?P<name>.+) created")),
]

# Rows whose subject is an account, whatever user they name: an "Account Updated" row names the
# admin who acted as its affected user.
_ABOUT_AN_ACCOUNT: Final[list[re.Pattern[str]]] = [
    re.compile(r"Account Updated\b.*", re.DOTALL),
    *(pattern for kind, pattern in _WHOLE if kind == "account-created"),
]


@dataclass(frozen=True)
class Change:
    kind: Kind
    row: AuditRow
    name: str | None = None
    roles: tuple[str, ...] = ()
    account_id: int | None = None


def interpret(row: AuditRow) -> list[Change]:
    """The changes a row says happened, in its order; one "unrecognised" change if the ledger
    cannot read all of it."""
    event = row.event.strip()
    for kind, pattern in _WHOLE:
        found = pattern.fullmatch(event)
        if found is None:
            continue
        groups = found.groupdict()
        if kind == "account-created":
            account_id = int(groups["id"]) if groups.get("id") else row.affected_account_id
            return [Change(kind, row, name=groups["name"], account_id=account_id)]
        return [Change(kind, row, name=groups["name"])]
    changes = _segments(row, event)
    if not changes or row.affected_user_id is None:
        return [Change("unrecognised", row)]
    return changes


def about_an_account(row: AuditRow) -> bool:
    """Whether the row is about its account rather than about the user it names."""
    event = row.event.strip()
    return any(pattern.fullmatch(event) for pattern in _ABOUT_AN_ACCOUNT)


def _segments(row: AuditRow, event: str) -> list[Change]:
    changes: list[Change] = []
    position = 0
    while position < len(event):
        for kind, pattern in _SEGMENTS:
            found = pattern.match(event, position)
            if found is None:
                continue
            roles: tuple[str, ...] = ()
            if "roles" in pattern.groupindex:
                named = (name.strip() for name in found.group("roles").split(","))
                roles = tuple(name for name in named if name)
            changes.append(Change(kind, row, roles=roles))
            position = found.end()
            break
        else:
            return []
    return changes


def roles_held_at_creation(changes: Iterable[Change]) -> dict[int, set[str]]:
    """Roles each user must have held since creation: a "Removed role(s)" row can name a role
    that no earlier "Added role(s)" row granted (FlexMeasures grants roles given to
    `create_user` without a row)."""
    held: dict[int, set[str]] = {}
    inferred: dict[int, set[str]] = {}
    for change in changes:
        user_id = change.row.affected_user_id
        if user_id is None:
            continue
        if change.kind == "roles-added":
            held.setdefault(user_id, set()).update(change.roles)
        elif change.kind == "roles-removed":
            current = held.setdefault(user_id, set())
            for role in change.roles:
                if role not in current:
                    inferred.setdefault(user_id, set()).add(role)
            current.difference_update(change.roles)
    return inferred

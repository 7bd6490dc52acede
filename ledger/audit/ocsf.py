"""Ledger events as OCSF 1.8.0 events (Open Cybersecurity Schema Framework, the schema of AWS
Security Lake and CloudTrail Lake), for SIEM imports and streams.

User changes are Account Change (3001): creation, grants and revocations (Attach/Detach
Policy, the role as the policy), deactivation (Disable), reactivation (Enable), password
changes, erasure (Delete), expiry (Detach Policy). Logins and failed logins are Authentication
(3002, Logon, with success or failure). Everything else (accounts and their roles, the role
catalogues, a grant's end moved, separation-of-duties rules and exceptions, mirrored systems and
their uninterpreted entries, annotations, last-seen marks) is Entity Management (3004) on the
entity it changed. `time` is when it happened (a login, an expiry, a mirrored entry carry their
own `at`), `metadata.logged_time` when the ledger recorded it. The log position is
`metadata.sequence`, the integrity chain's link a `metadata.tags` entry."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as package_metadata
from typing import Any, Final
from uuid import UUID

from ledger.domain.base import ERASED, EVENT_METADATA

SCHEMA_VERSION: Final = "1.8.0"
IAM: Final = (3, "Identity & Access Management")
ACCOUNT_CHANGE: Final = (3001, "Account Change")
AUTHENTICATION: Final = (3002, "Authentication")
ENTITY_MANAGEMENT: Final = (3004, "Entity Management")
INFORMATIONAL: Final = 1
SUCCESS, FAILURE = 1, 2
OTHER: Final = 99

# event name -> (class, activity id, activity name)
USER_CHANGES: Final = {
    "UserCreated": (1, "Create"),
    "UserReactivated": (2, "Enable"),
    "PasswordChanged": (3, "Password Change"),
    "UserDeactivated": (5, "Disable"),
    "UserErased": (6, "Delete"),
    "RoleGranted": (7, "Attach Policy"),
    "RoleRevoked": (8, "Detach Policy"),
    "RoleExpired": (8, "Detach Policy"),
}
# events mapped to activity 99 on purpose, and why (tests/test_export.py holds every other
# event type to an activity of its own)
DELIBERATELY_OTHER: Final = {
    "UserUpdated": "no Account Change activity of OCSF 1.8.0 is a changed email or username",
}
ENTITY_CHANGES: Final = {
    "AccountCreated": (1, "Create"),
    "RoleDefined": (1, "Create"),
    "AccountRoleDefined": (1, "Create"),
    "AnnotationAdded": (1, "Create"),
    "AccountUpdated": (3, "Update"),
    "RoleDescribed": (3, "Update"),
    "AccountRoleDescribed": (3, "Update"),
    "ConsultancySet": (3, "Update"),
    "AccountRoleGranted": (3, "Update"),
    "AccountRoleRevoked": (3, "Update"),
    "AccountRoleExpired": (3, "Update"),
    "RoleGrantExtended": (3, "Update"),
    "AccountRoleGrantExtended": (3, "Update"),
    "SodExceptionApproved": (1, "Create"),
    "AccountSodExceptionApproved": (1, "Create"),
    "PolicyStarted": (1, "Create"),
    "SodRuleDefined": (1, "Create"),
    "SodRuleRemoved": (4, "Delete"),
    "SourceRegistered": (1, "Create"),
    "UnrecognisedEntryRecorded": (1, "Create"),
    "AccessDenied": (1, "Create"),
    "ReviewStarted": (1, "Create"),
    "ReviewItemCertified": (3, "Update"),
    "ReviewItemRevoked": (3, "Update"),
    "ReviewClosed": (3, "Update"),
    "UserJoined": (3, "Update"),
    "UserLeft": (3, "Update"),
    "UserMoved": (3, "Update"),  # no Account Change activity of OCSF 1.8.0 is a move
    "LastSeenRecorded": (3, "Update"),
    "AnnotationRemoved": (4, "Delete"),
    "AccountClosed": (11, "Deactivate"),
}
LOGINS: Final = ("LoginRecorded", "LoginFailed")
# events whose `at` is when it happened (the ledger records it at its own time, or later)
OCCURRED_AT: Final = frozenset(
    {*LOGINS, "LastSeenRecorded", "RoleExpired", "AccountRoleExpired", "UnrecognisedEntryRecorded"}
)
# entities that are a part of their aggregate rather than the aggregate itself
PART_ENTITIES: Final = {
    "SodRuleDefined": "SodRule",
    "SodRuleRemoved": "SodRule",
    "SodExceptionApproved": "SodException",
    "AccountSodExceptionApproved": "SodException",
    "UnrecognisedEntryRecorded": "ExternalAuditEntry",
    "ReviewItemCertified": "ReviewItem",
    "ReviewItemRevoked": "ReviewItem",
}


def _product_version() -> str:
    try:
        return package_metadata.version("account-ledger")
    except package_metadata.PackageNotFoundError:
        return "unknown"


PRODUCT: Final = {
    "name": "Account Ledger",
    "vendor_name": "Account Ledger",
    "version": _product_version(),
}


def event_name(event: Any) -> str:
    return type(event).__name__


def aggregate_name(event: Any) -> str:
    """The aggregate an event belongs to: `User`, `Account`, `Role`, `AccountRole`..."""
    return _aggregate_of(type(event).__qualname__)


@functools.lru_cache(maxsize=1024)
def _aggregate_of(qualified_name: str) -> str:
    return qualified_name.split(".")[0]


# values JSON holds as they are (`plain` returns them unchanged)
AS_IS: Final = frozenset({str, int, bool, type(None)})


def fields(event: Any) -> dict[str, Any]:
    """The event's own fields (not its metadata: shown in OCSF attributes of their own), as
    JSON values."""
    return {
        name: value if type(value) in AS_IS else plain(value)
        for name, value in vars(event).items()
        if name not in EVENT_METADATA and name[0] != "_"
    }


def plain(value: Any) -> Any:
    """A value as JSON holds it: ids as strings, instants as ISO 8601."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    return value


def milliseconds(moment: datetime) -> int:
    """OCSF's timestamp_t: milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Shape:
    """What an event's class alone decides of its OCSF event, worked out once per class."""

    name: str
    aggregate: str
    subject: str  # the aggregate as the message names it
    extra: Callable[[str, str, str, dict[str, Any]], dict[str, Any]]
    occurred: bool  # whether its `at` is when it happened
    head: dict[str, Any]  # the event's first attributes, `class_uid` to `status_id`
    status: str


def _shape(cls: type) -> Shape:
    name = cls.__name__
    aggregate = _aggregate_of(cls.__qualname__)
    extra: Callable[[str, str, str, dict[str, Any]], dict[str, Any]]
    status_id = SUCCESS
    if name in LOGINS:
        (class_uid, class_name), (activity_id, activity_name) = AUTHENTICATION, (1, "Logon")
        extra = _authentication
        status_id = FAILURE if name == "LoginFailed" else SUCCESS
    elif name in USER_CHANGES or (name not in ENTITY_CHANGES and aggregate == "User"):
        (class_uid, class_name), (activity_id, activity_name) = (
            ACCOUNT_CHANGE,
            USER_CHANGES.get(name, (OTHER, "Other")),
        )
        extra = _account_change
    else:
        (class_uid, class_name), (activity_id, activity_name) = (
            ENTITY_MANAGEMENT,
            ENTITY_CHANGES.get(name, (OTHER, "Other")),
        )
        extra = _entity_management
    head = {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": IAM[0],
        "category_name": IAM[1],
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": INFORMATIONAL,
        "severity": "Informational",
        "status_id": status_id,
    }
    status = "Success" if status_id == SUCCESS else "Failure"
    return Shape(name, aggregate, aggregate.lower(), extra, name in OCCURRED_AT, head, status)


_SHAPES: dict[type, Shape] = {}


def to_ocsf(position: int, link: str, event: Any) -> dict[str, Any]:
    """One recorded event as an OCSF event."""
    cls = type(event)
    shape = _SHAPES.get(cls)
    if shape is None:
        shape = _SHAPES[cls] = _shape(cls)
    name, aggregate = shape.name, shape.aggregate
    own = fields(event)
    uid = str(event.originator_id)  # once: it appears four or five times
    logged_time = int(event.timestamp.timestamp() * 1000)
    occurred = getattr(event, "at", None) if shape.occurred else None
    actor = event.actor
    command_id = event.command_id
    metadata: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "product": PRODUCT,
        "log_name": "ledger",
        "uid": f"{uid}/{event.originator_version}",
        "sequence": position,
        "event_code": name,
        "logged_time": logged_time,
        "tags": [{"name": "chain_link", "value": link}],
    }
    if command_id:
        metadata["correlation_uid"] = command_id
    role = f" {own['role']!r}" if "role" in own else ""
    result = shape.head.copy()  # a fresh dict: callers may change what they are given
    result["time"] = milliseconds(occurred) if occurred else logged_time
    result["message"] = f"{name}{role} on {shape.subject} {uid} by {actor}"
    result["actor"] = _actor(actor)
    result["metadata"] = metadata
    result.update(shape.extra(name, uid, aggregate, own))
    result["unmapped"] = {
        "aggregate": aggregate,
        "originator_id": uid,
        "originator_version": event.originator_version,
        "reason": event.reason,
        **own,
    }
    result["status"] = shape.status
    return result


def _account_change(name: str, uid: str, aggregate: str, own: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"user": _user(uid, own)}
    if "role" in own:
        extra["policies"] = [{"name": own["role"], "type": "Role"}]
    return extra


def _authentication(name: str, uid: str, aggregate: str, own: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"user": {"uid": uid}}
    ip = own.get("ip")
    if ip and ip != ERASED:
        extra["src_endpoint"] = {"ip": ip}
    if name == "LoginFailed":
        extra["status_detail"] = str(own.get("reason_kind"))
    return extra


def _entity_management(name: str, uid: str, aggregate: str, own: dict[str, Any]) -> dict[str, Any]:
    entity: dict[str, Any]
    if "annotation_id" in own:
        entity = {"uid": own["annotation_id"], "type": "Annotation"}
    elif name in PART_ENTITIES:
        entity = {**_part(name, uid, own), "type": PART_ENTITIES[name]}
    else:
        entity = {"uid": uid, "type": aggregate}
        if "name" in own:
            entity["name"] = own["name"]
        if aggregate == "User":
            entity["user"] = {"uid": uid}
    if "role" in own:
        entity["policy"] = {"name": own["role"], "type": _catalogue(aggregate)}
    data = {key: value for key, value in own.items() if key not in ("name", "annotation_id")}
    if data:
        entity["data"] = data
    return {"entity": entity}


def _catalogue(aggregate: str) -> str:
    """The catalogue a holder's roles come from: user roles, or account roles."""
    return "Role" if aggregate == "User" else "AccountRole"


def _part(name: str, uid: str, own: dict[str, Any]) -> dict[str, Any]:
    """A rule by its name, an exception by its rule and holder, a mirrored entry by its id in
    the source's log and the user and account it named."""
    if name.startswith("SodRule"):
        return {"name": own["name"]}
    if name.startswith("ReviewItem"):
        return {"uid": own["item"], "name": own["item"]}
    if name == "UnrecognisedEntryRecorded":
        part: dict[str, Any] = {"uid": str(own["entry_id"])}
        if own.get("affected_user_id"):
            part["user"] = {"uid": own["affected_user_id"]}
        if own.get("affected_account_id"):
            part["org"] = {"uid": own["affected_account_id"]}
        return part
    holder = {"uid": uid}
    return {
        "name": own["rule"],
        **({"user": holder} if name == "SodExceptionApproved" else {"org": holder}),
    }


def _user(uid: str, own: dict[str, Any]) -> dict[str, Any]:
    user: dict[str, Any] = {"uid": uid, "type_id": 1, "type": "User"}
    username, email = own.get("username"), own.get("email")
    if username:
        user["name"] = username
    if email and email != ERASED:
        user["email_addr"] = email
    elif email == ERASED and not username:
        user["name"] = ERASED
    if own.get("account_id"):
        user["org"] = {"uid": own["account_id"]}
    return user


def _actor(actor: str) -> dict[str, Any]:
    """Who issued the command: a user id, or a name such as `cli:alice`."""
    key, value = _actor_parsed(actor)
    return {"user": {key: value}}


@functools.lru_cache(maxsize=4096)  # a log has few actors, each in many events
def _actor_parsed(actor: str) -> tuple[str, str]:
    try:
        return "uid", str(UUID(actor))
    except ValueError:
        return "name", actor

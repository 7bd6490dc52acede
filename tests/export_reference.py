"""The export as it was before the fast path (commit a5722bf): `ledger.audit.ocsf` and the
export's record, JSON encoding and decoding of personal data, frozen here as the expectation
the fast export and decoding are held to (tests/test_fast_read.py). Do not edit to match new
output: a change of output is a change of behaviour.

Ledger events as OCSF 1.8.0 events (Open Cybersecurity Schema Framework, the schema of AWS
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

import base64
import functools
import json
from datetime import datetime
from importlib import metadata as package_metadata
from typing import Any, Final
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from ledger.domain.base import ERASED
from ledger.storage.personal_data import personal_owner_of

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
# what every event carries, shown in its own OCSF attributes rather than in `unmapped`
COMMON_FIELDS: Final = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor",
        "reason",
        "command_id",
    }
)


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


def fields(event: Any) -> dict[str, Any]:
    """The event's own fields (not its common metadata), as JSON values."""
    return {
        name: plain(value)
        for name, value in vars(event).items()
        if name not in COMMON_FIELDS and not name.startswith("_")
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


def to_ocsf(position: int, link: str, event: Any) -> dict[str, Any]:
    """One recorded event as an OCSF event."""
    name = event_name(event)
    own = fields(event)
    aggregate = aggregate_name(event)
    uid = str(event.originator_id)  # once: it appears four or five times
    if name in LOGINS:
        body = _authentication(event, uid, own)
    elif name in USER_CHANGES or (name not in ENTITY_CHANGES and aggregate == "User"):
        body = _account_change(event, uid, own)
    else:
        body = _entity_management(event, uid, aggregate, own)
    (class_uid, class_name), activity_id, activity_name, extra = body
    recorded = event.timestamp
    occurred = getattr(event, "at", None) if name in OCCURRED_AT else None
    result: dict[str, Any] = {
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
        "status_id": extra.pop("status_id", SUCCESS),
        "time": milliseconds(occurred or recorded),
        "message": _message(name, event, uid, aggregate, own),
        "actor": _actor(event.actor),
        "metadata": {
            "version": SCHEMA_VERSION,
            "product": PRODUCT,
            "log_name": "ledger",
            "uid": f"{uid}/{event.originator_version}",
            "sequence": position,
            "event_code": name,
            "logged_time": milliseconds(recorded),
            "tags": [{"name": "chain_link", "value": link}],
            **({"correlation_uid": event.command_id} if event.command_id else {}),
        },
        **extra,
        "unmapped": {
            "aggregate": aggregate,
            "originator_id": uid,
            "originator_version": event.originator_version,
            "reason": event.reason,
            **own,
        },
    }
    result["status"] = "Success" if result["status_id"] == SUCCESS else "Failure"
    return result


Body = tuple[tuple[int, str], int, str, dict[str, Any]]


def _account_change(event: Any, uid: str, own: dict[str, Any]) -> Body:
    activity_id, activity_name = USER_CHANGES.get(event_name(event), (OTHER, "Other"))
    extra: dict[str, Any] = {"user": _user(uid, own)}
    if "role" in own:
        extra["policies"] = [{"name": own["role"], "type": "Role"}]
    return ACCOUNT_CHANGE, activity_id, activity_name, extra


def _authentication(event: Any, uid: str, own: dict[str, Any]) -> Body:
    extra: dict[str, Any] = {"user": {"uid": uid}}
    ip = own.get("ip")
    if ip and ip != ERASED:
        extra["src_endpoint"] = {"ip": ip}
    if event_name(event) == "LoginFailed":
        extra["status_id"] = FAILURE
        extra["status_detail"] = str(own.get("reason_kind"))
    return AUTHENTICATION, 1, "Logon", extra


def _entity_management(event: Any, uid: str, aggregate: str, own: dict[str, Any]) -> Body:
    name = event_name(event)
    activity_id, activity_name = ENTITY_CHANGES.get(name, (OTHER, "Other"))
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
    return ENTITY_MANAGEMENT, activity_id, activity_name, {"entity": entity}


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


def _message(name: str, event: Any, uid: str, aggregate: str, own: dict[str, Any]) -> str:
    subject = f"{aggregate.lower()} {uid}"
    role = f" {own['role']!r}" if "role" in own else ""
    return f"{name}{role} on {subject} by {event.actor}"


# -- ledger.audit.export before the fast path ---------------------------------------------------

_ENCODE: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def as_record(position: int, link: str, event: Any) -> dict[str, Any]:
    return {
        "position": position,
        "timestamp": event.timestamp.isoformat(),
        "event": event_name(event),
        "aggregate": aggregate_name(event),
        "originator_id": str(event.originator_id),
        "originator_version": event.originator_version,
        "actor": event.actor,
        "reason": event.reason,
        "command_id": event.command_id,
        "chain_link": link,
        **fields(event),
    }


def line(fmt: str, position: int, link: str, event: Any) -> str:
    data = to_ocsf(position, link, event) if fmt == "ocsf" else as_record(position, link, event)
    return _ENCODE(data) + "\n"


# -- ledger.storage.personal_data's decoding before the fast path ------------------------------

_PREFIX: Final = "enc1:"


def decode(led: Any, stored: StoredEvent) -> Any:
    """The library's own mapper and JSON transcoder, then each sealed field opened as before."""
    transcoder = JSONTranscoder()
    led.register_transcodings(transcoder)
    event = Mapper(transcoder=transcoder).to_domain_event(stored)
    fields = getattr(type(event), "personal_fields", ())
    owner = personal_owner_of(event) if fields else None
    for field in fields:
        value = event.__dict__.get(field)
        if isinstance(value, str) and owner is not None:
            event.__dict__[field] = open_sealed(led._keyring, value, owner, field)
    return event


def open_sealed(keyring: Any, value: str, owner_id: Any, field: str) -> str:
    if not value.startswith(_PREFIX):
        return value
    key_id, encoded = value[len(_PREFIX) :].split(":", 1)
    key = keyring.key(key_id)
    if key is None:
        return ERASED
    raw = base64.b64decode(encoded)
    aad = f"{owner_id}:{field}".encode()
    return AESGCM(key).decrypt(raw[:12], raw[12:], aad).decode()

"""What each domain event is called where people read it (the read API's audit log, the
compliance reports): one entry per event class, so that a renamed or added event breaks a test
(tests/test_titles.py) instead of silently showing its bare name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from eventsourcing.domain import Aggregate

from ledger.domain.accounts import Account
from ledger.domain.journal import AccessDenial
from ledger.domain.reviews import ReviewCampaign
from ledger.domain.roles import AccountRole, Role
from ledger.domain.separation import SeparationPolicy
from ledger.domain.sources import ExternalSource
from ledger.domain.users import User

V = TypeVar("V")


@dataclass(frozen=True)
class Title:
    """`sentence`: the line the read API's audit log shows for the event; `detail`: what a report
    about the user says happened (the user being in a column of its own; None: the sentence).
    `{role}` and the like are filled from the event's fields, `{changed}` with the names of the
    fields it sets."""

    sentence: str
    detail: str | None = None


TITLES: Final[Mapping[type[Aggregate.Event], Title]] = {
    Role.RoleDefined: Title("role defined"),
    AccountRole.AccountRoleDefined: Title("account role defined"),
    Role.RoleDescribed: Title("role {name} described"),
    AccountRole.AccountRoleDescribed: Title("account role {name} described"),
    SeparationPolicy.PolicyStarted: Title("separation-of-duties policy started"),
    SeparationPolicy.SodRuleDefined: Title("separation-of-duties rule {name} defined"),
    SeparationPolicy.SodRuleRemoved: Title("separation-of-duties rule {name} removed"),
    Account.AccountCreated: Title("account created"),
    Account.AccountUpdated: Title("account updated"),
    Account.ConsultancySet: Title("consultancy set"),
    Account.AccountRoleGranted: Title("account role {role} granted"),
    Account.AccountRoleRevoked: Title("account role {role} revoked"),
    Account.AccountRoleGrantExtended: Title("account role {role} now ends at {until}"),
    Account.AccountRoleExpired: Title("account role {role} expired at {at}"),
    Account.AccountSodExceptionApproved: Title(
        "account role {role} granted as an exception to rule {rule}, approved by {approved_by}"
    ),
    Account.UserJoined: Title("user joined the account"),
    Account.UserLeft: Title("user left the account"),
    Account.AnnotationAdded: Title("annotation added"),
    Account.AnnotationRemoved: Title("annotation removed"),
    Account.AccountClosed: Title("account closed"),
    User.UserCreated: Title("user created", "created"),
    User.UserUpdated: Title("user updated", "changed {changed}"),
    User.UserMoved: Title(
        "user moved from account {from_account_id} to account {account_id}",
        "moved from account {from_account_id}",
    ),
    User.RoleGranted: Title("role {role} granted", "granted {role}"),
    User.RoleRevoked: Title("role {role} revoked", "revoked {role}"),
    User.RoleGrantExtended: Title("role {role} now ends at {until}", "{role} now ends at {until}"),
    User.RoleExpired: Title("role {role} expired at {at}", "{role} expired at {at}"),
    User.SodExceptionApproved: Title(
        "role {role} granted as an exception to rule {rule}, approved by {approved_by}",
        "{role}: exception to rule {rule}, approved by {approved_by}",
    ),
    User.UserDeactivated: Title("user deactivated", "deactivated"),
    User.UserReactivated: Title("user reactivated", "reactivated"),
    User.LoginRecorded: Title("logged in"),
    User.LoginFailed: Title("login failed"),
    User.LastSeenRecorded: Title("seen"),
    User.PasswordChanged: Title("password changed"),
    User.UserErased: Title("personal data erased"),
    ReviewCampaign.ReviewStarted: Title("access review {name} started, due {due}"),
    ReviewCampaign.ReviewItemCertified: Title("review item {item} certified by {reviewer}"),
    ReviewCampaign.ReviewItemRevoked: Title("review item {item} revoked by {reviewer}"),
    ReviewCampaign.ReviewClosed: Title(
        "access review {name} closed: {certified} certified, {revoked} revoked,"
        " {undecided} undecided"
    ),
    ExternalSource.SourceRegistered: Title("mirrored source registered"),
    ExternalSource.UnrecognisedEntryRecorded: Title("unrecognised audit entry kept"),
    AccessDenial.AccessDenied: Title("{command} refused to user {as_user} by rule {rule}"),
}


def name(event: type[Aggregate.Event] | Aggregate.Event) -> str:
    """The event's name as the audit log records it (its class name, without the aggregate)."""
    return (event if isinstance(event, type) else type(event)).__name__


def names(*events: type[Aggregate.Event]) -> tuple[str, ...]:
    return tuple(name(event) for event in events)


def by_name(values: Mapping[type[Aggregate.Event], V]) -> dict[str, V]:
    """A table keyed by event class, keyed instead by the names the audit log records."""
    return {name(event): value for event, value in values.items()}


_BY_NAME: Final[Mapping[str, tuple[type[Aggregate.Event], Title]]] = {
    name(event): (event, title) for event, title in TITLES.items()
}


def title(event: type[Aggregate.Event] | Aggregate.Event | str, fields: Any = None) -> str:
    """The sentence for an event (a class, an event, its name or its topic), filled from
    `fields` (else from the event itself); an unknown name is shown as it is."""
    return _filled(event, fields, detail=False)


def detail(event: type[Aggregate.Event] | Aggregate.Event | str, fields: Any = None) -> str:
    """What a report about the event's user says happened (the sentence if nothing shorter)."""
    return _filled(event, fields, detail=True)


def _filled(event: Any, fields: Any, *, detail: bool) -> str:
    key = event if isinstance(event, str) else name(event)
    key = key.rpartition(":")[2].rpartition(".")[2]  # a topic: module:Aggregate.Event
    found = _BY_NAME.get(key)
    if found is None:
        return key
    event_class, entry = found
    template = entry.detail if detail and entry.detail is not None else entry.sentence
    if fields is None and not isinstance(event, type | str):
        fields = vars(event)
    given = _Blank(fields or {})
    if "{changed}" in template:
        given["changed"] = ", ".join(
            field for field in _own_fields(event_class) if given.get(field) is not None
        )
    return template.format_map(given)


def _own_fields(event_class: type[Any]) -> tuple[str, ...]:
    """The fields an event class declares itself, in their order (eventsourcing finalises each
    event class as a subclass of the one written, which carries the annotations)."""
    for klass in event_class.__mro__:
        if declared := vars(klass).get("__annotations__"):
            return tuple(declared)
    return ()


class _Blank(dict[str, Any]):
    """Fields for a template: one the event lacks reads as None (as the audit log shows it)."""

    def __missing__(self, key: str) -> Any:
        return None

"""`ledger role|account-role|account|user|annotation ...`: every command of the Ledger, each
declared with `@runs(CommandType)` (tests/test_command_registry.py checks none is missing)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, get_args

import click
from rich.console import Console
from rich.table import Table

from ledger.cli.state import INSTANT, global_options, state
from ledger.commands import accounts, grants, roles, separation, users
from ledger.commands.annotations import AddAnnotation, RemoveAnnotation
from ledger.commands.base import UNSET, Command
from ledger.commands.sources import RecordUnrecognisedEntry
from ledger.domain.users import FailedLoginReason

RUNS: dict[str, click.Command] = {}
"""The subcommand that runs each registered command, by the command's name."""


def runs(command_type: type[Command[Any]]) -> Callable[[click.Command], click.Command]:
    """Declare the decorated subcommand the one that runs `command_type`."""

    def declare(subcommand: click.Command) -> click.Command:
        RUNS[command_type.command] = subcommand
        return subcommand

    return declare


command_id_option = click.option(
    "--command-id", default=None, help="Idempotency key: a second run records nothing."
)


def _clearable(value: str | None) -> Any:
    """Update options: absent leaves the field; an empty string clears it."""
    if value is None:
        return UNSET
    return value if value.strip() else None


# -- role catalogues ----------------------------------------------------------------------------


@click.group()
def role() -> None:
    """User roles: define them before granting them."""


@runs(roles.DefineRole)
@role.command("define")
@click.argument("name")
@click.argument("description", required=False)
@command_id_option
@global_options
def role_define(name: str, description: str | None, command_id: str | None) -> None:
    """Define the user role NAME."""
    s = state()
    result = s.ledger.define_role(
        name, description, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, f"role {name!r} defined")


@runs(roles.DescribeRole)
@role.command("describe")
@click.argument("name")
@click.argument("description")
@command_id_option
@global_options
def role_describe(name: str, description: str, command_id: str | None) -> None:
    """Give the user role NAME the description DESCRIPTION (an empty one clears it)."""
    s = state()
    result = s.ledger.describe_role(
        name, description or None, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, f"role {name!r} described")


@role.command("list")
@global_options
def role_list() -> None:
    """The user roles defined, with their descriptions."""
    _list_roles("Roles", state().reads.list_roles())


@click.group("account-role")
def account_role() -> None:
    """Account roles (such as Consultancy)."""


@runs(roles.DefineAccountRole)
@account_role.command("define")
@click.argument("name")
@click.argument("description", required=False)
@command_id_option
@global_options
def account_role_define(name: str, description: str | None, command_id: str | None) -> None:
    """Define the account role NAME."""
    s = state()
    result = s.ledger.define_account_role(
        name, description, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, f"account role {name!r} defined")


@runs(roles.DescribeAccountRole)
@account_role.command("describe")
@click.argument("name")
@click.argument("description")
@command_id_option
@global_options
def account_role_describe(name: str, description: str, command_id: str | None) -> None:
    """Give the account role NAME the description DESCRIPTION (an empty one clears it)."""
    s = state()
    result = s.ledger.describe_account_role(
        name, description or None, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, f"account role {name!r} described")


@account_role.command("list")
@global_options
def account_role_list() -> None:
    """The account roles defined, with their descriptions."""
    _list_roles("Account roles", state().reads.list_account_roles())


def _list_roles(title: str, roles: list[Any]) -> None:
    rows = [role.model_dump(mode="json") for role in roles]

    def table(console: Console) -> None:
        shown = Table(title=title)
        shown.add_column("name")
        shown.add_column("description")
        for row in rows:
            shown.add_row(row["name"], row["description"] or "-")
        console.print(shown)

    state().emit(rows, table)


# -- accounts -----------------------------------------------------------------------------------


@click.group()
def account() -> None:
    """Accounts (tenants), named by id or name."""


@runs(accounts.CreateAccount)
@account.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, help="An account role to grant (repeatable).")
@click.option(
    "--consultancy-account-id",
    "--consultancy",
    "consultancy",
    help="The consultancy account (id or name).",
)
@click.option("--primary-color", help="#RRGGBB, together with --secondary-color.")
@click.option("--secondary-color", help="#RRGGBB, together with --primary-color.")
@click.option("--logo-url", help="http(s) URL of the account's logo.")
@command_id_option
@global_options
def account_create(
    name: str,
    roles: tuple[str, ...],
    consultancy: str | None,
    primary_color: str | None,
    secondary_color: str | None,
    logo_url: str | None,
    command_id: str | None,
) -> None:
    """Create the account NAME; prints its id."""
    s = state()
    result = s.ledger.create_account(
        name,
        actor=s.who,
        roles=roles,
        consultancy_account_id=s.account_id(consultancy) if consultancy else None,
        primary_color=primary_color,
        secondary_color=secondary_color,
        logo_url=logo_url,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, "account created")


@runs(accounts.UpdateAccount)
@account.command("update")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--name", help="A new name.")
@click.option("--primary-color", help="#RRGGBB; an empty string clears it.")
@click.option("--secondary-color", help="#RRGGBB; an empty string clears it.")
@click.option("--logo-url", help="http(s) URL; an empty string clears it.")
@command_id_option
@global_options
def account_update(
    account_ref: str,
    name: str | None,
    primary_color: str | None,
    secondary_color: str | None,
    logo_url: str | None,
    command_id: str | None,
) -> None:
    """Change an account's name, colours or logo."""
    s = state()
    result = s.ledger.update_account(
        s.account_id(account_ref),
        actor=s.who,
        name=name if name is not None else UNSET,
        primary_color=_clearable(primary_color),
        secondary_color=_clearable(secondary_color),
        logo_url=_clearable(logo_url),
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, "account updated")


until_option = click.option(
    "--until",
    type=INSTANT,
    default=None,
    help="End the grant by itself at this instant (in the future; a date or a time, see --tz).",
)


exception_option = click.option(
    "--exception-approved-by",
    "approved_by",
    default=None,
    help="Who approved the grant as an exception to separation-of-duties rules it breaks (a "
    "user's id or email, or an actor); needs --reason.",
)


@runs(accounts.GrantAccountRole)
@account.command("grant-role")
@click.argument("account_ref", metavar="ACCOUNT")
@click.argument("role_name", metavar="ROLE")
@until_option
@exception_option
@command_id_option
@global_options
def account_grant_role(
    account_ref: str,
    role_name: str,
    until: datetime | None,
    approved_by: str | None,
    command_id: str | None,
) -> None:
    """Grant an account role (until revoked, or until --until)."""
    s = state()
    result = s.ledger.grant_account_role(
        s.account_id(account_ref),
        role_name,
        actor=s.who,
        until=until,
        exception_approved_by=approved_by,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, f"account role {role_name!r} granted{_until_shown(until)}")


def _until_shown(until: datetime | None) -> str:
    return "" if until is None else f" until {until.isoformat()}"


@runs(accounts.RevokeAccountRole)
@account.command("revoke-role")
@click.argument("account_ref", metavar="ACCOUNT")
@click.argument("role_name", metavar="ROLE")
@command_id_option
@global_options
def account_revoke_role(account_ref: str, role_name: str, command_id: str | None) -> None:
    """Revoke an account role."""
    s = state()
    result = s.ledger.revoke_account_role(
        s.account_id(account_ref), role_name, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, f"account role {role_name!r} revoked")


@runs(accounts.SetConsultancy)
@account.command("set-consultancy")
@click.argument("account_ref", metavar="ACCOUNT")
@click.argument("consultancy", metavar="CONSULTANCY")
@command_id_option
@global_options
def account_set_consultancy(account_ref: str, consultancy: str, command_id: str | None) -> None:
    """Set the consultancy account of ACCOUNT (`none` clears it)."""
    s = state()
    target = None if consultancy.strip().lower() == "none" else s.account_id(consultancy)
    result = s.ledger.set_consultancy(
        s.account_id(account_ref), target, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, "consultancy set")


@runs(accounts.CloseAccount)
@account.command("close")
@click.argument("account_ref", metavar="ACCOUNT")
@command_id_option
@global_options
def account_close(account_ref: str, command_id: str | None) -> None:
    """Close an account: its users are deactivated and its roles revoked."""
    s = state()
    result = s.ledger.close_account(
        s.account_id(account_ref), actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, "account closed")


# -- users --------------------------------------------------------------------------------------


def _password(from_stdin: bool, prompt: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if prompt:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return None


@click.group()
def user() -> None:
    """Users, named by id or email."""


@runs(users.CreateUser)
@user.command("create")
@click.argument("email")
@click.option(
    "--account-id",
    "--account",
    "account_ref",
    required=True,
    help="The user's account (id or name).",
)
@click.option("--username", help="Defaults to the email's local part.")
@click.option(
    "--timezone", default="Europe/Amsterdam", show_default=True, help="IANA time zone name."
)
@click.option("--role", "roles", multiple=True, help="A user role to grant (repeatable).")
@click.option("--password-stdin", is_flag=True, help="Read a password from standard input.")
@click.option(
    "--password",
    "prompt_password",
    is_flag=True,
    help="Prompt for a password (twice, without echo).",
)
@command_id_option
@global_options
def user_create(
    email: str,
    account_ref: str,
    username: str | None,
    timezone: str,
    roles: tuple[str, ...],
    password_stdin: bool,
    prompt_password: bool,
    command_id: str | None,
) -> None:
    """Create a user with EMAIL; prints the user's id."""
    s = state()
    result = s.ledger.create_user(
        email,
        account_id=s.account_id(account_ref),
        actor=s.who,
        username=username,
        timezone=timezone,
        roles=roles,
        password=_password(password_stdin, prompt_password),
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, "user created")


@runs(users.UpdateUser)
@user.command("update")
@click.argument("user_ref", metavar="USER")
@click.option("--email")
@click.option("--username")
@click.option("--timezone")
@command_id_option
@global_options
def user_update(
    user_ref: str,
    email: str | None,
    username: str | None,
    timezone: str | None,
    command_id: str | None,
) -> None:
    """Change a user's email, username or time zone."""
    s = state()
    result = s.ledger.update_user(
        s.user_id(user_ref),
        actor=s.who,
        email=UNSET if email is None else email,
        username=UNSET if username is None else username,
        timezone=UNSET if timezone is None else timezone,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, "user updated")


@runs(users.MoveUser)
@user.command("move")
@click.argument("user_ref", metavar="USER")
@click.argument("account_ref", metavar="ACCOUNT")
@command_id_option
@global_options
def user_move(user_ref: str, account_ref: str, command_id: str | None) -> None:
    """Move a user to another account (id or name); roles and activity stay as they are."""
    s = state()
    result = s.ledger.move_user(
        s.user_id(user_ref),
        s.account_id(account_ref),
        actor=s.who,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, "user moved")


@runs(users.GrantRole)
@user.command("grant-role")
@click.argument("user_ref", metavar="USER")
@click.argument("role_name", metavar="ROLE")
@until_option
@exception_option
@command_id_option
@global_options
def user_grant_role(
    user_ref: str,
    role_name: str,
    until: datetime | None,
    approved_by: str | None,
    command_id: str | None,
) -> None:
    """Grant a user role (until revoked, or until --until)."""
    s = state()
    result = s.ledger.grant_role(
        s.user_id(user_ref),
        role_name,
        actor=s.who,
        until=until,
        exception_approved_by=approved_by,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, f"role {role_name!r} granted{_until_shown(until)}")


@runs(users.RevokeRole)
@user.command("revoke-role")
@click.argument("user_ref", metavar="USER")
@click.argument("role_name", metavar="ROLE")
@command_id_option
@global_options
def user_revoke_role(user_ref: str, role_name: str, command_id: str | None) -> None:
    """Revoke a user role."""
    s = state()
    result = s.ledger.revoke_role(
        s.user_id(user_ref), role_name, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, f"role {role_name!r} revoked")


@runs(users.DeactivateUser)
@user.command("deactivate")
@click.argument("user_ref", metavar="USER")
@command_id_option
@global_options
def user_deactivate(user_ref: str, command_id: str | None) -> None:
    """Deactivate a user (a leaver): they keep their roles but hold none effectively."""
    s = state()
    result = s.ledger.deactivate_user(
        s.user_id(user_ref), actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, "user deactivated")


@runs(users.ReactivateUser)
@user.command("reactivate")
@click.argument("user_ref", metavar="USER")
@command_id_option
@global_options
def user_reactivate(user_ref: str, command_id: str | None) -> None:
    """Reactivate a deactivated user."""
    s = state()
    result = s.ledger.reactivate_user(
        s.user_id(user_ref), actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, "user reactivated")


@runs(users.RecordLogin)
@user.command("record-login")
@click.argument("user_ref", metavar="USER")
@click.option("--at", type=INSTANT, help="When (a date or a time; see --tz); default now.")
@click.option("--ip", help="The login's IP address.")
@command_id_option
@global_options
def user_record_login(
    user_ref: str, at: datetime | None, ip: str | None, command_id: str | None
) -> None:
    """Record a login (the user is the actor)."""
    s = state()
    result = s.ledger.record_login(s.user_id(user_ref), at=at, ip=ip, command_id=command_id)
    s.emit_result(result, "login recorded")


@runs(users.RecordFailedLogin)
@user.command("record-failed-login")
@click.argument("user_ref", metavar="USER")
@click.option(
    "--reason-kind",
    required=True,
    type=click.Choice(get_args(FailedLoginReason)),
    help="Why the attempt failed.",
)
@click.option("--at", type=INSTANT, help="When (a date or a time; see --tz); default now.")
@click.option("--ip", help="The client's IP address.")
@command_id_option
@global_options
def user_record_failed_login(
    user_ref: str, reason_kind: str, at: datetime | None, ip: str | None, command_id: str | None
) -> None:
    """Record a failed attempt to log in as the user (the actor is `unauthenticated`)."""
    s = state()
    result = s.ledger.record_failed_login(
        s.user_id(user_ref), reason_kind=reason_kind, at=at, ip=ip, command_id=command_id
    )
    s.emit_result(result, "failed login recorded")


@runs(users.RecordLastSeen)
@user.command("record-last-seen")
@click.argument("user_ref", metavar="USER")
@click.option("--at", type=INSTANT, help="When (a date or a time; see --tz); default now.")
@command_id_option
@global_options
def user_record_last_seen(user_ref: str, at: datetime | None, command_id: str | None) -> None:
    """Record that the user was seen (at most once per LEDGER_LAST_SEEN_RESOLUTION seconds)."""
    s = state()
    result = s.ledger.record_last_seen(s.user_id(user_ref), at=at, command_id=command_id)
    s.emit_result(result, "last seen recorded")


@runs(users.SetPassword)
@user.command("set-password")
@click.argument("user_ref", metavar="USER")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@command_id_option
@global_options
def user_set_password(user_ref: str, password_stdin: bool, command_id: str | None) -> None:
    """Set a user's password (prompted twice without echo, or read from stdin)."""
    s = state()
    password = _password(password_stdin, prompt=not password_stdin)
    assert password is not None  # read from stdin, or prompted for
    result = s.ledger.set_password(
        s.user_id(user_ref), password, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, "password set")


@runs(users.EraseUser)
@user.command("erase")
@click.argument("user_ref", metavar="USER")
@command_id_option
@global_options
def user_erase(user_ref: str, command_id: str | None) -> None:
    """Erase a user's personal data (needs --reason); the rest of the history stays."""
    s = state()
    if not s.reason:
        raise click.UsageError("erasing a user needs --reason (e.g. the request's reference)")
    result = s.ledger.erase_user(
        s.user_id(user_ref), actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, "user erased")


# -- annotations --------------------------------------------------------------------------------


@click.group()
def annotation() -> None:
    """Annotations on accounts (holidays, alerts, labels, ...)."""


@runs(AddAnnotation)
@annotation.command("add")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--content", required=True, help="The text (1-1024 characters).")
@click.option("--start", required=True, type=INSTANT, help="Start of the annotated period.")
@click.option("--end", required=True, type=INSTANT, help="End of the period, after --start.")
@click.option("--source", help="The source's name (give this or --source-user).")
@click.option(
    "--source-user", help="Or the user who is the source, by id or email (not with --source)."
)
@click.option(
    "--type",
    "kind",
    default="label",
    show_default=True,
    type=click.Choice(["alert", "holiday", "label", "feedback", "warning", "error"]),
)
@click.option(
    "--belief-time",
    type=INSTANT,
    help="When the annotation was believed (optional; none unless given). `query annotations "
    "--beliefs-after/--beliefs-before` filter on it.",
)
@command_id_option
@global_options
def annotation_add(
    account_ref: str,
    content: str,
    start: datetime,
    end: datetime,
    source: str | None,
    source_user: str | None,
    kind: str,
    belief_time: datetime | None,
    command_id: str | None,
) -> None:
    """Add an annotation to ACCOUNT; prints its id (an identical one is not added twice).

    Name its source with exactly one of --source (a name) and --source-user (a user).
    Instants are dates or times (see --tz).
    """
    s = state()
    if (source is None) == (source_user is None):
        raise click.UsageError("give exactly one of --source and --source-user")
    origin: Any = source if source is not None else s.user_id(str(source_user))
    result = s.ledger.add_annotation(
        s.account_id(account_ref),
        content=content,
        start=start,
        end=end,
        source=origin,
        type=kind,
        belief_time=belief_time,
        actor=s.who,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, "annotation added")


@runs(RemoveAnnotation)
@annotation.command("remove")
@click.argument("account_ref", metavar="ACCOUNT")
@click.argument("annotation_id", metavar="ANNOTATION")
@command_id_option
@global_options
def annotation_remove(account_ref: str, annotation_id: str, command_id: str | None) -> None:
    """Remove an annotation from ACCOUNT."""
    s = state()
    result = s.ledger.remove_annotation(
        s.account_id(account_ref),
        annotation_id,
        actor=s.who,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, "annotation removed")


# -- time-limited grants ------------------------------------------------------------------------


@runs(grants.ExtendGrant)
@click.command("extend-grant")
@click.argument("holder", metavar="USER_OR_ACCOUNT")
@click.argument("role_name", metavar="ROLE")
@click.argument("until", type=INSTANT)
@command_id_option
@global_options
def extend_grant(holder: str, role_name: str, until: datetime, command_id: str | None) -> None:
    """Move the end of the grant of ROLE to USER_OR_ACCOUNT (a user by id or email, an
    account by id or name) to UNTIL (in the future)."""
    s = state()
    result = s.ledger.extend_grant(
        holder, role_name, until, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, f"grant of {role_name!r} now ends at {until.isoformat()}")


@runs(grants.ExpireGrants)
@click.command("expire")
@command_id_option
@global_options
def expire(command_id: str | None) -> None:
    """Record the expiry of every grant whose end has passed (once: run it as often as you
    like; `ledger project --follow` runs it on each poll)."""
    s = state()
    result = s.ledger.expire_grants(actor=s.who, reason=s.reason, command_id=command_id)
    s.emit_result(result, f"{result} grant(s) expired")


# -- separation of duties -----------------------------------------------------------------------


@click.group()
def sod() -> None:
    """Separation-of-duties rules: no one user (or account) holds both roles of a rule."""


@runs(separation.DefineSodRule)
@sod.command("define")
@click.argument("name")
@click.argument("roles", nargs=2, metavar="ROLE ROLE")
@click.option(
    "--scope",
    type=click.Choice(["user", "account"]),
    default="user",
    show_default=True,
    help="user: two user roles; account: two account roles.",
)
@command_id_option
@global_options
def sod_define(name: str, roles: tuple[str, str], scope: str, command_id: str | None) -> None:
    """Define rule NAME: no one user (or account) may hold both ROLEs."""
    s = state()
    result = s.ledger.define_sod_rule(
        name, list(roles), scope, actor=s.who, reason=s.reason, command_id=command_id
    )
    s.emit_result(result, f"separation-of-duties rule {name!r} defined")


@runs(separation.RemoveSodRule)
@sod.command("remove")
@click.argument("name")
@command_id_option
@global_options
def sod_remove(name: str, command_id: str | None) -> None:
    """Remove rule NAME (grants made under it stay as they are)."""
    s = state()
    result = s.ledger.remove_sod_rule(name, actor=s.who, reason=s.reason, command_id=command_id)
    s.emit_result(result, f"separation-of-duties rule {name!r} removed")


# -- external sources ---------------------------------------------------------------------------


@click.group()
def source() -> None:
    """Mirrored systems (a FlexMeasures database): entries of their audit logs."""


@runs(RecordUnrecognisedEntry)
@source.command("record-unrecognised-entry")
@click.argument("source_name", metavar="SOURCE")
@click.argument("entry_id", type=int)
@click.argument("text")
@click.option("--at", type=INSTANT, required=True, help="The entry's time in its source.")
@click.option("--user", "user_ref", help="The user the entry concerns (id or email).")
@click.option("--account", "account_ref", help="The account the entry concerns (id or name).")
@command_id_option
@global_options
def source_record_unrecognised_entry(
    source_name: str,
    entry_id: int,
    text: str,
    at: datetime,
    user_ref: str | None,
    account_ref: str | None,
    command_id: str | None,
) -> None:
    """Keep entry ENTRY_ID of SOURCE's audit log, which the ledger could not interpret."""
    s = state()
    result = s.ledger.record_unrecognised_entry(
        source_name,
        entry_id,
        text,
        at,
        user=None if user_ref is None else s.user_id(user_ref),
        account=None if account_ref is None else s.account_id(account_ref),
        actor=s.who,
        reason=s.reason,
        command_id=command_id,
    )
    s.emit_result(result, "entry kept")


GROUPS = [role, account_role, account, user, annotation, extend_grant, expire, sod, source]

"""The audit log of a user or an account as the read API shows it: FlexMeasures' entries, each
event titled in words, each actor by username where the caller may read that user."""

from uuid import UUID

import projections.api.policy as policy
import projections.api.schemas as schemas
from ledger.domain import titles
from projections.api.policy import Principal
from projections.read_model import ReadModel


def audit_log(rm: ReadModel, aggregate_id: UUID, me: Principal) -> schemas.AuditLog:
    frame = rm.audit_log(aggregate_id)
    names: dict[UUID, str | None] = {}  # the actors' usernames, looked up once
    entries = []
    for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        actor = str(row["actor"])
        try:
            actor_id: UUID | None = UUID(actor)
        except ValueError:
            actor_id = None
        entries.append(
            schemas.AuditLogEntry(
                event=titles.title(str(row["event"]), row),
                event_type=row["event"],
                event_datetime=row["timestamp"],
                active_user_name=_username(rm, actor_id, me, names) if actor_id else actor,
                active_user_id=actor_id,
                reason=row.get("reason"),
            )
        )
    return schemas.AuditLog(audit_logs=entries)


def _username(
    rm: ReadModel, user_id: UUID, me: Principal, names: dict[UUID, str | None]
) -> str | None:
    """The acting user's username, if the caller may read that user (an actor from another
    tenant, e.g. a consultant or a platform admin, is shown by id alone)."""
    if user_id not in names:
        user = rm.get_user(user_id)
        account = None if user is None else rm.get_account(user.account_id)
        readable = (
            user is not None and account is not None and policy.can_read_user(me, user, account)
        )
        names[user_id] = user.username if readable and user else None
    return names[user_id]

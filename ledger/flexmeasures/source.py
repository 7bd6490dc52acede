"""Reading a FlexMeasures database: one consistent, read-only snapshot of the tables the ledger
mirrors. The connection refuses writes (every transaction is READ ONLY), so the connector can
never change the database it mirrors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.engine import Engine, Row

from ledger.errors import ValidationError
from ledger.validation import shown

FINGERPRINTED: Final = (
    "account",
    "account_role",
    "roles_accounts",
    "fm_user",
    "role",
    "roles_users",
    "annotation",
    "annotations_accounts",
)


@dataclass(frozen=True)
class Role:
    id: int
    name: str
    description: str | None


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    primary_color: str | None
    secondary_color: str | None
    logo_url: str | None
    consultancy_account_id: int | None
    roles: frozenset[str]


@dataclass(frozen=True)
class User:
    id: int
    email: str
    username: str
    active: bool
    timezone: str
    account_id: int
    last_login_at: datetime | None
    login_count: int
    last_seen_at: datetime | None
    roles: frozenset[str]


@dataclass(frozen=True)
class Annotation:
    id: int
    account_id: int
    content: str
    start: datetime
    end: datetime
    belief_time: datetime | None
    type: str
    source_name: str
    source_user_id: int | None


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    event: str
    active_user_id: int | None
    active_user_name: str | None
    affected_user_id: int | None
    affected_account_id: int | None


@dataclass
class Snapshot:
    roles: dict[str, Role] = field(default_factory=dict)
    account_roles: dict[str, Role] = field(default_factory=dict)
    accounts: dict[int, Account] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    annotations: dict[int, Annotation] = field(default_factory=dict)
    audit_rows: list[AuditRow] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)


def utc(moment: datetime | None) -> datetime | None:
    """FlexMeasures stores naive UTC in some columns and aware times in others."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def without_password(url: str) -> str:
    """`url` with any password masked, even when it is not a URL SQLAlchemy can read: all
    before the last `@` after the scheme is user information (a password may hold `@` or `/`)."""
    scheme, separator, rest = url.partition("://")
    user_information, at, location = rest.rpartition("@")
    if not separator or not at or ":" not in user_information:
        return url
    user = user_information.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"


def engine_for(url: str) -> Engine:
    """A read-only engine on a FlexMeasures PostgreSQL database (`postgresql://...`)."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ValidationError(
            f"invalid FlexMeasures database URL {shown(without_password(url))}"
        ) from None
    if parsed.get_backend_name() != "postgresql":
        raise ValidationError(
            f"invalid FlexMeasures database URL {shown(parsed.render_as_string())}: "
            "FlexMeasures runs on PostgreSQL (postgresql://...)"
        )
    parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(
        parsed,
        connect_args={"options": "-c default_transaction_read_only=on"},
        execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True},
        pool_pre_ping=True,
    )


def source_name(url: str) -> str:
    """The name a FlexMeasures database is known by in the ledger: host, port and database,
    never the password."""
    parsed = make_url(url)
    return f"flexmeasures://{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"


class FlexMeasuresDatabase:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        self.name = source_name(url)

    def close(self) -> None:
        self.engine.dispose()

    def fingerprints(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return _fingerprints(conn)

    def last_audit_id(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one()
            )

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                kind: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for kind, table in (
                    ("users", "fm_user"),
                    ("accounts", "account"),
                    ("annotations", "annotations_accounts"),
                )
            }

    def user_ids(self) -> set[int]:
        with self.engine.connect() as conn:
            return {int(i) for i in conn.execute(text("SELECT id FROM fm_user")).scalars()}

    def account_ids(self) -> set[int]:
        with self.engine.connect() as conn:
            return {int(i) for i in conn.execute(text("SELECT id FROM account")).scalars()}

    def names(self, table: str) -> list[str]:
        assert table in ("role", "account_role")
        with self.engine.connect() as conn:
            return [str(n) for n in conn.execute(text(f"SELECT name FROM {table}")).scalars()]

    def audit_texts(self, ids: list[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, event FROM audit_log WHERE id = ANY(:ids) ORDER BY id"),
                {"ids": ids},
            )
            return [{"id": row.id, "event": row.event} for row in rows]

    def snapshot(self, after_audit_id: int) -> Snapshot:
        """Every mirrored table, and the audit_log rows after `after_audit_id`, as of one
        instant (one REPEATABLE READ, READ ONLY transaction)."""
        with self.engine.connect() as conn:
            found = Snapshot(fingerprints=_fingerprints(conn))
            found.roles = {r.name: Role(r.id, r.name, r.description) for r in _rows(conn, _ROLES)}
            found.account_roles = {
                r.name: Role(r.id, r.name, r.description) for r in _rows(conn, _ACCOUNT_ROLES)
            }
            account_roles: dict[int, set[str]] = {}
            for row in _rows(conn, _ROLES_OF_ACCOUNTS):
                account_roles.setdefault(row.account_id, set()).add(row.name)
            for row in _rows(conn, _ACCOUNTS):
                found.accounts[row.id] = Account(
                    row.id,
                    row.name,
                    row.primary_color,
                    row.secondary_color,
                    row.logo_url,
                    row.consultancy_account_id,
                    frozenset(account_roles.get(row.id, ())),
                )
            user_roles: dict[int, set[str]] = {}
            for row in _rows(conn, _ROLES_OF_USERS):
                user_roles.setdefault(row.user_id, set()).add(row.name)
            for row in _rows(conn, _USERS):
                found.users[row.id] = User(
                    row.id,
                    row.email,
                    row.username,
                    bool(row.active),
                    row.timezone,
                    row.account_id,
                    utc(row.last_login_at),
                    row.login_count or 0,
                    utc(row.last_seen_at),
                    frozenset(user_roles.get(row.id, ())),
                )
            for row in _rows(conn, _ANNOTATIONS):
                start, end = utc(row.start), utc(row.end)
                assert start is not None and end is not None
                found.annotations[row.id] = Annotation(
                    row.id,
                    row.account_id,
                    row.content,
                    start,
                    end,
                    utc(row.belief_time),
                    row.type,
                    row.source_name,
                    row.source_user_id,
                )
            for row in _rows(conn, _AUDIT_ROWS, after=after_audit_id):
                at = utc(row.event_datetime)
                assert at is not None
                found.audit_rows.append(
                    AuditRow(
                        row.id,
                        at,
                        row.event or "",
                        row.active_user_id,
                        row.active_user_name,
                        row.affected_user_id,
                        row.affected_account_id,
                    )
                )
            return found


def _rows(conn: Connection, sql: str, **params: Any) -> list[Row[Any]]:
    return list(conn.execute(text(sql), params))


def _fingerprints(conn: Connection) -> dict[str, str]:
    """A digest of each mirrored table's rows: a poll skips the comparison of the tables when
    none changed and no audit row is new."""
    return {
        table: str(conn.execute(text(_DIGEST.format(table=table))).scalar_one())
        for table in FINGERPRINTED
    }


_DIGEST: Final = (
    "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
)
_ROLES: Final = "SELECT id, name, description FROM role ORDER BY id"
_ACCOUNT_ROLES: Final = "SELECT id, name, description FROM account_role ORDER BY id"
_ROLES_OF_ACCOUNTS: Final = (
    "SELECT ra.account_id, r.name FROM roles_accounts ra JOIN account_role r ON r.id = ra.role_id"
)
_ROLES_OF_USERS: Final = (
    "SELECT ru.user_id, r.name FROM roles_users ru JOIN role r ON r.id = ru.role_id"
)
_ACCOUNTS: Final = (
    "SELECT id, name, primary_color, secondary_color, logo_url, consultancy_account_id"
    " FROM account ORDER BY id"
)
_USERS: Final = (
    "SELECT id, email, username, active, timezone, account_id, last_login_at, login_count,"
    " last_seen_at FROM fm_user ORDER BY id"
)
_ANNOTATIONS: Final = (
    "SELECT a.id, aa.account_id, a.content, a.start, a.end, a.belief_time, a.type,"
    " s.name AS source_name, s.user_id AS source_user_id"
    " FROM annotation a JOIN annotations_accounts aa ON aa.annotation_id = a.id"
    " JOIN data_source s ON s.id = a.source_id ORDER BY a.id"
)
_AUDIT_ROWS: Final = (
    "SELECT id, event_datetime, event, active_user_id, active_user_name, affected_user_id,"
    " affected_account_id FROM audit_log WHERE id > :after ORDER BY id"
)

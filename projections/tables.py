"""The read-model tables, each named for the question it answers."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored in UTC (naive on SQLite, timestamptz on PostgreSQL); read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    # On SQLite the text is written and parsed directly, in the format SQLAlchemy's SQLite
    # DATETIME uses ("2026-03-01 00:00:00.000000"): a quarter of the time of its processor
    # chained with the two methods above (measured: 2.4 -> 0.6 us to bind, 1.0 -> 0.2 us to
    # read), which counted in every annotation search and every projected event.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_utc_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_utc_datetime
        return super().result_processor(dialect, coltype)


# The text of UTC datetimes already written: a projected event's time is bound by its
# handler's row and again by its audit-log row. Bounded, cleared when full. Only datetimes in
# UTC itself are kept: two equal aware datetimes of another zone can be different instants (a
# repeated wall-clock hour compares equal within its zone), and a naive one is local time.
_UTC_TEXTS: dict[datetime, str] = {}
_UTC_TEXTS_CACHED = 4096
_DAY_TEXTS: dict[int, str] = {}  # by the day's ordinal
_DAY_TEXTS_CACHED = 4096
_TWO_DIGITS = [f"{number:02d}" for number in range(60)]


def _sqlite_utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    in_utc = value.tzinfo is UTC and type(value) is datetime
    if in_utc:
        known = _UTC_TEXTS.get(value)
        if known is not None:
            return known
    # the text of `isoformat(" ", "microseconds")` less its "+00:00" (tests/test_sqlite_binds.py
    # compares them): the day's text from a cache, the time's two-digit parts from a table
    # (formatting all seven numbers with `%` took half as long again)
    v = value.astimezone(UTC)
    ordinal = v.toordinal()
    day = _DAY_TEXTS.get(ordinal)
    if day is None:
        if len(_DAY_TEXTS) >= _DAY_TEXTS_CACHED:
            _DAY_TEXTS.clear()
        day = _DAY_TEXTS[ordinal] = f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    two = _TWO_DIGITS
    text = f"{day} {two[v.hour]}:{two[v.minute]}:{two[v.second]}.{v.microsecond:06d}"
    if in_utc:
        if len(_UTC_TEXTS) >= _UTC_TEXTS_CACHED:
            _UTC_TEXTS.clear()
        _UTC_TEXTS[value] = text
    return text


class UUIDKey(TypeDecorator[UUID]):
    """A UUID column, stored as `Uuid` stores it (32 hex digits on SQLite, `uuid` on
    PostgreSQL). On SQLite the digits come from a bounded cache by the UUID's int: `UUID.hex`
    formats them anew on every call, and a projected event binds two to four ids, most of them
    seen before (a user's, an account's)."""

    impl = Uuid
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_uuid_hex
        return super().bind_processor(dialect)


_UUID_HEXES: dict[int, str] = {}  # by the UUID's int: an int hashes in C, a UUID in Python
_UUID_HEXES_CACHED = 65_536


def _sqlite_uuid_hex(value: UUID | None) -> str | None:
    if value is None:
        return None
    number = value.int
    known = _UUID_HEXES.get(number)
    if known is None:
        if len(_UUID_HEXES) >= _UUID_HEXES_CACHED:
            _UUID_HEXES.clear()
        known = _UUID_HEXES[number] = value.hex
    return known


def _sqlite_utc_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # stored with its offset: users.last_login_at was, before 2026-11-29
        return datetime.fromisoformat(value).astimezone(UTC)


metadata = MetaData()


def for_queries(name: str, *columns: str) -> Index:
    """An index that only the queries use, never the projector's own statements: a long
    catch-up from an empty read model leaves it out and builds it at the end (one sort instead
    of a random B-tree insert per event)."""
    return Index(name, *columns, info={"for_queries": True})


def period_index(name: str, *key: str, ends: tuple[str, ...]) -> tuple[Index, Index]:
    """An index of periods by `key`, with the period's `ends` in it too on SQLite: a "held
    now" read (has_role, roles, is_active) tests every row of the key for its ends, and with
    them in the index it never reads the table (SQLite has no INCLUDE, so they join the key).
    On PostgreSQL they stay out: a revocation or a deactivation sets an end, and an update of
    an indexed column cannot be a HOT update. One name: the database holds one of the two."""
    return (
        Index(name, *key, *ends).ddl_if(dialect="sqlite"),
        Index(name, *key).ddl_if(dialect="postgresql"),
    )


projection_tracking = Table(
    "projection_tracking",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

roles = Table(
    "roles",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("description", String(255)),
    Column("defined_at", UTCDateTime, nullable=False),
)

account_roles = Table(
    "account_roles",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("description", String(255)),
    Column("defined_at", UTCDateTime, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", UUIDKey, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("primary_color", String(7)),
    Column("secondary_color", String(7)),
    Column("logo_url", String(255)),
    Column("consultancy_account_id", UUIDKey),
    Column("closed", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    # The longest annotation ever added (seconds): bounds `start` in an "ends after" search.
    Column("annotation_span", Float, nullable=False, default=0.0),
    for_queries("ix_accounts_name", "name"),
    for_queries("ix_accounts_consultancy_account_id", "consultancy_account_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", UUIDKey, primary_key=True),
    # email and username: sealed as in the events (see projections.personal), or in the open
    # in a replay file of its own, where email_key (casefolded) finds users by email
    Column("email", Text, nullable=False),
    Column("email_key", String(255)),
    Column("username", Text, nullable=False),
    Column("account_id", UUIDKey, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("erased", Boolean, nullable=False, default=False),
    Column("login_count", Integer, nullable=False, default=0),
    Column("last_login_at", UTCDateTime),
    Column("last_seen_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_position", BigInteger, nullable=False),  # orders users by creation
    for_queries("ix_users_email_key", "email_key"),
    for_queries("ix_users_account_id", "account_id"),
)

user_moves = Table(
    "user_moves",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", UUIDKey, nullable=False),
    Column("from_account_id", UUIDKey, nullable=False),
    Column("account_id", UUIDKey, nullable=False),
    Column("moved_at", UTCDateTime, nullable=False),
    Index("user_moves_by_user", "user_id", "moved_at"),
)

role_grants = Table(
    "role_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", UUIDKey, nullable=False),
    Column("role", String(80), nullable=False),
    Column("granted_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),  # set by the event that ends it (revoked, expired)
    Column("ends_at", UTCDateTime),  # the end fixed in advance (until), if any
    *period_index(
        "role_grants_by_user", "user_id", "role", "granted_at", ends=("revoked_at", "ends_at")
    ),
    for_queries("role_grants_by_role", "role", "granted_at"),
)

user_activity = Table(
    "user_activity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", UUIDKey, nullable=False),
    Column("active_from", UTCDateTime, nullable=False),
    Column("active_to", UTCDateTime),
    *period_index("user_activity_by_user", "user_id", "active_from", ends=("active_to",)),
)

logins = Table(
    "logins",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", UUIDKey, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    for_queries("logins_by_user", "user_id", "at"),
)

account_role_grants = Table(
    "account_role_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", UUIDKey, nullable=False),
    Column("role", String(80), nullable=False),
    Column("granted_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),  # set by the event that ends it (revoked, expired)
    Column("ends_at", UTCDateTime),  # the end fixed in advance (until), if any
    Index("account_role_grants_by_account", "account_id", "role", "granted_at"),
)

sod_rules = Table(
    "sod_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(80), nullable=False),
    Column("scope", String(16), nullable=False),  # user | account
    Column("first_role", String(80), nullable=False),
    Column("second_role", String(80), nullable=False),
    Column("defined_at", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime),
    Index("sod_rules_by_name", "name", "defined_at"),
)

review_campaigns = Table(
    "review_campaigns",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("scope_kind", String(16), nullable=False),  # accounts | roles
    Column("scope", JSON, nullable=False),  # account ids or role names
    Column("reviewer_id", UUIDKey, nullable=False),
    Column("due", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("started_by", String(255), nullable=False),
    Column("closed_at", UTCDateTime),
    Column("closed_by", String(255)),
    # the outcome the close recorded
    Column("certified", Integer),
    Column("revoked", Integer),
    Column("undecided", Integer),
    Column("overdue", Boolean),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", String(100), primary_key=True),  # CAMPAIGN#N
    Column("campaign", String(80), nullable=False),
    Column("number", Integer, nullable=False),
    Column("user_id", UUIDKey, nullable=False),
    Column("role", String(80), nullable=False),
    Column("account_id", UUIDKey, nullable=False),
    Column("decision", String(16)),  # certified | revoked, once decided
    Column("decided_at", UTCDateTime),
    Column("reviewer_id", UUIDKey),
    Column("decided_by", String(255)),  # the actor who recorded the decision
    Column("decision_reason", Text),
    Column("role_revoked", Boolean),  # revoked: whether the revocation came with it
    Index("review_items_by_campaign", "campaign", "number"),
    for_queries("review_items_by_user", "user_id"),
)

annotations = Table(
    "annotations",
    metadata,
    Column("id", UUIDKey, primary_key=True),
    Column("account_id", UUIDKey, nullable=False),
    Column("content", String(1024), nullable=False),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("belief_time", UTCDateTime),
    Column("source_name", String(255)),
    Column("source_user_id", UUIDKey),
    Column("type", String(16), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime),
    # in the order search_annotations returns them: the range is read without a sort
    for_queries("annotations_by_account", "account_id", "start", "end", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("timestamp", UTCDateTime, nullable=False),
    Column("aggregate_id", UUIDKey, nullable=False),
    Column("aggregate_type", String(32), nullable=False),
    Column("account_id", UUIDKey),  # the account, or the user's account
    Column("event", String(64), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("reason", Text),
    Column("command_id", String(255)),
    Column("fields", JSON, nullable=False),
    for_queries("ix_audit_log_timestamp", "timestamp"),
    # also an erasure's (it blanks the user's rows): it builds the index if it is left out
    for_queries("ix_audit_log_aggregate_id", "aggregate_id"),
    for_queries("ix_audit_log_account_id", "account_id"),
)

# audit-log rows whose personal fields another user's key seals than their aggregate's (an entry
# of a mirrored system's log about a user): erasing that user blanks them
personal_mentions = Table(
    "personal_mentions",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", UUIDKey, nullable=False),
    Index("personal_mentions_by_user", "user_id"),
)

READ_MODEL_TABLES = [t for t in metadata.sorted_tables if t is not projection_tracking]
QUERY_INDEXES = [
    index for table in READ_MODEL_TABLES for index in table.indexes if index.info.get("for_queries")
]

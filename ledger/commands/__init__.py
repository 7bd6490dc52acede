"""The commands of the ledger as typed data, with their handlers, by aggregate. Importing this
package fills the registry (`ledger.commands.registry.COMMANDS`)."""

from ledger.commands import (
    accounts,
    annotations,
    grants,
    reviews,
    roles,
    separation,
    sources,
    users,
)
from ledger.commands.registry import COMMANDS

__all__ = [
    "COMMANDS",
    "accounts",
    "annotations",
    "grants",
    "reviews",
    "roles",
    "separation",
    "sources",
    "users",
]

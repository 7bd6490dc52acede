"""The errors every rejected command raises: one base class, four reasons."""


class LedgerError(Exception):
    """A command was rejected; nothing was recorded."""


class ValidationError(LedgerError, ValueError):
    """The input itself is malformed (bad email, naive datetime, blank name, ...)."""


class NotFound(LedgerError, LookupError):
    """A referenced account, user, role or annotation does not exist."""


class Conflict(LedgerError):
    """The command clashes with the current state: a duplicate, a closed account,
    a reused command id, or a concurrent change that could not be retried."""


class InactiveUser(LedgerError):
    """The command needs an active user."""


class PermissionDenied(LedgerError):
    """The user the command was given `as_user` may not run it; the refusal is journalled
    (an AccessDenied event), and nothing else is recorded."""

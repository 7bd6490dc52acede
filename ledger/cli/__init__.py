"""The `ledger` command line. A user mistake prints one clear line and exits 1 (as JSON with
--json); a usage error exits 2; there is no traceback for either."""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any

import click
import psycopg
import sqlalchemy.exc
from eventsourcing.persistence import PersistenceError

from ledger.cli.audit import audit
from ledger.cli.batch import apply
from ledger.cli.demo import demo
from ledger.cli.flexmeasures import flexmeasures
from ledger.cli.reads import COMMANDS as READ_COMMANDS
from ledger.cli.review import review
from ledger.cli.state import State, global_options, printable
from ledger.cli.writes import GROUPS
from ledger.errors import LedgerError
from ledger.storage.database import storage_problem

_DATABASE_ERRORS = (
    PersistenceError,
    sqlalchemy.exc.OperationalError,
    psycopg.OperationalError,
    sqlite3.Error,  # eventsourcing lets some through unwrapped, when it connects
)


class LedgerGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as error:
            _fail(ctx, type(error).__name__, str(error))
        except OverflowError:
            # an instant in range, moved by the command past year 1 or 9999 (a period before
            # it, a resolution after it)
            message = "an instant given is too close to year 1 or 9999 for this command"
            _fail(ctx, "ValidationError", message)
        except _DATABASE_ERRORS as error:
            problem = storage_problem(error, ctx.ensure_object(State).url)
            if problem is not None:
                _fail(ctx, "StorageError", problem)
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            _fail(ctx, "DatabaseError", f"database problem: {first_line or type(error).__name__}")


def _fail(ctx: click.Context, kind: str, message: str) -> None:
    found = ctx.find_object(State)
    if found is not None and found.as_json:
        click.echo(json.dumps({"error": {"type": kind, "message": message}}))
    else:
        click.echo(f"error: {printable(message)}", err=True)
    sys.exit(1)


@click.group(cls=LedgerGroup)
@global_options
@click.version_option(package_name="account-ledger")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Account Ledger: an event-sourced ledger of accounts, users and roles.

    Users are named by id or email, accounts by id or name.
    """
    found = ctx.ensure_object(State)
    ctx.call_on_close(found.close)


for command in [*GROUPS, *READ_COMMANDS, apply, audit, demo, flexmeasures, review]:
    main.add_command(command)

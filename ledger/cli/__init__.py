"""The `ledger` command line. A user mistake prints one clear line and exits 1 (as JSON with
--json); a usage error exits 2; there is no traceback for either."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ledger.cli.audit import audit
from ledger.cli.batch import apply
from ledger.cli.demo import demo
from ledger.cli.flexmeasures import flexmeasures
from ledger.cli.reads import COMMANDS as READ_COMMANDS
from ledger.cli.review import review
from ledger.cli.state import State, global_options, printable
from ledger.cli.writes import GROUPS
from ledger.errors import LedgerError
from ledger.storage.database import DATABASE_ERRORS, problem_line, storage_problem


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
        except DATABASE_ERRORS as error:
            url = ctx.ensure_object(State).url
            kind = "DatabaseError" if storage_problem(error, url) is None else "StorageError"
            _fail(ctx, kind, problem_line(error, url))


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

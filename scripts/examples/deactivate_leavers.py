#!/usr/bin/env python3
"""Example admin script: deactivate the leavers listed in a CSV file (email,reason), once.

    python scripts/examples/deactivate_leavers.py leavers.csv --actor cli:hr-sync

Each row becomes one `deactivate_user` with a command id derived from the file's row, so running
the script again (say, from a nightly job) records nothing new.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys

from ledger import Ledger, LedgerError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="CSV with the columns email and reason")
    parser.add_argument("--actor", default="script:deactivate-leavers")
    parser.add_argument("--db", help="database URL (else LEDGER_DATABASE_URL)")
    args = parser.parse_args()
    led = Ledger(args.db)
    deactivated = unchanged = failed = 0
    try:
        with open(args.file, newline="", encoding="utf-8") as rows:
            for row in csv.DictReader(rows):
                email = (row.get("email") or "").strip()
                user = led.user_id_for_email(email) if "@" in email else None
                if user is None:
                    print(f"not found: {email!r}", file=sys.stderr)
                    failed += 1
                    continue
                key = hashlib.sha256(f"leaver:{email.casefold()}".encode()).hexdigest()[:24]
                try:
                    changed = led.deactivate_user(
                        user,
                        actor=args.actor,
                        reason=row.get("reason") or "left",
                        command_id=f"leaver-{key}",
                    )
                except LedgerError as error:
                    print(f"rejected: {email}: {error}", file=sys.stderr)
                    failed += 1
                    continue
                if changed and led.last_recorded:
                    deactivated += 1
                else:
                    unchanged += 1
    finally:
        led.close()
    print(f"deactivated {deactivated}, unchanged {unchanged}, failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

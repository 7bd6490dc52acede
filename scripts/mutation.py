"""Mutation testing of the critical set with cosmic-ray: which small changes to the code that
decides access, holding, chain integrity, uniqueness, batch rejection and erasure no test notices.

    python scripts/mutation.py --critical            # the whole set (see CRITICAL below)
    python scripts/mutation.py --only policy --only held

Each file of the set is mutated in its own cosmic-ray session against the tests that cover it
(run in copies of the tree, one per worker, in parallel); the last line is `N killed, M survived`.
Exit status 1 when the target is missed: any survivor in a STRICT group, or more than
TOLERANCE of the mutants of any other group.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult

ROOT: Final = Path(__file__).resolve().parent.parent

SQLITE: Final = ("-k", "not postgres")
POLICY_TESTS: Final = ("tests/test_api.py", "tests/test_policy_edges.py", *SQLITE)
# The rules themselves (reads and writes), under the read API's tests and the write side's.
ACCESS_RULE_TESTS: Final = (
    "tests/test_access_policy.py",
    "tests/test_permissions.py",
    *POLICY_TESTS,
)
HELD_TESTS: Final = (
    "tests/test_read_model.py",
    "tests/test_prepared_reads.py",
    "tests/test_projector.py",
    "tests/test_held.py",
    "tests/test_held_edges.py",
    "tests/test_held_at_boundaries.py",
    *SQLITE,
)
# The reports read the predicate in held.py too (in SQL and, for timelines, `common`).
HELD_RULE_TESTS: Final = (*HELD_TESTS[:-2], "tests/test_audit.py", *SQLITE)
CHAIN_TESTS: Final = (
    "tests/test_audit.py",
    "tests/test_attacks_audit.py",
    "tests/test_chain_edges.py",
    "tests/test_verify_edges.py",
    *SQLITE,
)
CLAIM_TESTS: Final = (
    "tests/test_claim_keys.py",
    "tests/test_email_keys.py",
    "tests/test_commands.py",
    "tests/test_rejections.py",
    "tests/test_batch_apply.py",
    "tests/test_batch_edges.py",
    *SQLITE,
)
BATCH_TESTS: Final = (
    "tests/test_batch_apply.py",
    "tests/test_batch_edges.py",
    "tests/test_apply_state_rejections.py",
    "tests/test_apply_stopped.py",
    "tests/test_erasure_wipe_timeout.py",  # an erasure in a batch: what runs after its commit
    "tests/test_permissions.py::test_apply_rejects_a_denied_line_and_applies_the_others",
    "tests/test_permission_attacks.py::test_an_apply_line_cannot_opt_out_of_as_user",
    *SQLITE,
)
# Both databases: each has its own wipe (a checkpoint on SQLite, VACUUM FULL on PostgreSQL).
ERASURE_TESTS: Final = (
    "tests/test_erasure_edges.py",
    "tests/test_erasure_on_disk.py",
    "tests/test_erasure_wipe_timeout.py",
    "tests/test_commands.py",
)


@dataclass(frozen=True)
class Target:
    """One file of the critical set: the definitions to mutate in it (functions, methods as
    Class.method, or module-level names; empty: the whole file) and the pytest arguments that
    select the tests covering them."""

    group: str
    path: str
    names: tuple[str, ...]
    tests: tuple[str, ...]


# The critical set. Re-point a row when code moves; a name the file no longer defines is an error.
CRITICAL: Final = (
    Target("policy", "projections/api/policy.py", (), POLICY_TESTS),
    Target("policy", "ledger/access_policy.py", (), ACCESS_RULE_TESTS),
    Target("held", "projections/held.py", (), HELD_RULE_TESTS),
    Target(
        "held",
        "projections/queries.py",
        (
            "_ACTIVE_NOW",
            "_ACTIVE_AT",
            "_HELD_NOW",
            "_HELD_AT",
            "_HAS_ROLE_NOW",
            "_HAS_ROLE_AT",
            "_ROLES",
            "Queries.has_role",
            "Queries.roles",
            "Queries.is_active",
            "Queries.account_has_role",
            "Queries.users_with_role",
            "_roles_held_now",
        ),
        HELD_TESTS,
    ),
    Target(
        "held",
        "projections/projector.py",
        (
            "_REVOKE_ACCOUNT_ROLE",
            "_REVOKE_ROLE",
            "_CLOSE_ACTIVITY",
            "_account_role_granted",
            "_account_role_revoked",
            "_role_granted",
            "_role_revoked",
            "_user_deactivated",
            "_user_reactivated",
        ),
        HELD_TESTS,
    ),
    Target("chain", "ledger/storage/chain.py", (), CHAIN_TESTS),
    Target(
        "chain",
        "ledger/storage/chain_check.py",
        ("check_range", "first_position", "_check"),
        CHAIN_TESTS,
    ),
    Target("chain", "ledger/audit/integrity.py", ("verify", "_links_before"), CHAIN_TESTS),
    Target(
        "chain",
        "ledger/storage/recorders.py",
        (
            "_between",
            "LedgerSQLiteRecorder.first_link_without_event",
            "LedgerPostgresRecorder.first_link_without_event",
        ),
        ("tests/test_verify_edges.py", "tests/test_audit.py", "tests/test_attacks_audit.py"),
    ),
    Target(
        "claims",
        "ledger/storage/side_tables.py",
        ("claim_key", "claim", "release", "release_all"),
        CLAIM_TESTS,
    ),
    Target(
        "claims",
        "ledger/storage/claims.py",
        (
            "Claims.key",
            "Claims.owner",
            "Claims.key_owner",
            "Claims.email_key_as_given",
            "Claims.email_owner",
            "Claims.claim",
            "Claims.release",
            "Claims.prefetch",
        ),
        CLAIM_TESTS,
    ),
    Target("batch", "ledger/runner.py", ("Runner._run_in_batch", "Runner.commit"), BATCH_TESTS),
    Target(
        "batch",
        "ledger/importer.py",
        (
            "Importer.run",
            "Importer.apply",
            "Importer._apply_batch",
            "Importer._run_lines",
            "_stopped_message",
        ),
        BATCH_TESTS,
    ),
    Target(
        "erasure",
        "ledger/commands/users.py",
        ("_required_reason", "_finish_wipe", "erase_user"),
        ERASURE_TESTS,
    ),
    Target("erasure", "ledger/application.py", ("Ledger.wipe_erased",), ERASURE_TESTS),
    Target(
        "erasure",
        "ledger/storage/recorders.py",
        (
            "LedgerSQLiteRecorder.wipe_deleted",
            "LedgerPostgresRecorder.wipe_deleted",
            "LedgerPostgresRecorder._older_than",
        ),
        ERASURE_TESTS,
    ),
)
STRICT: Final = frozenset({"policy", "held"})
TOLERANCE: Final = 0.05

# Mutants that cannot change behaviour: (file, line as written, line as mutated) -> why.
EQUIVALENT: Final[dict[tuple[str, str, str], str]] = {
    (
        "ledger/access_policy.py",
        "return user_id == caller.user_id or can_read_account(caller, tenant)",
        "return user_id is caller.user_id or can_read_account(caller, tenant)",
    ): "a caller's own user is in the caller's own account, so the account test already admits"
    " them: the first operand never decides",
    (
        "ledger/access_policy.py",
        'if kind == "annotation":',
        'if kind is "annotation":',
    ): "a kind is one of the module's string literals, which CPython interns: `is` and `==` agree",
    (
        "projections/held.py",
        "@dataclass(frozen=True)",
        "@dataclass(frozen=False)",
    ): "no code assigns a Period's fields; frozen only forbids that (both are hashable the"
    " same way: neither is used as a key)",
    (
        "projections/held.py",
        "return and_(self.start < until, self._not_ended_by(since))",
        "return and_(self.start <= until, self._not_ended_by(since))",
    ): "`meets` only pre-selects the timeline's grants: a grant starting at `until` adds"
    " nothing, `common` clips it to an empty period and drops it",
    (
        "ledger/storage/recorders.py",
        "with self.datastore.transaction(commit=False) as curs:",
        "with self.datastore.transaction(commit=True) as curs:",
    ): "every such block on PostgreSQL only reads (SELECTs, a SET LOCAL): committing a"
    " transaction that wrote nothing ends it as a rollback does",
    (
        "ledger/storage/recorders.py",
        'cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")',
        'cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1001)}")',
    ): "a millisecond more patience per second of wipe_timeout: no test can tell, nor a user",
    (
        "ledger/storage/recorders.py",
        "remaining = max(1, int((deadline - time.monotonic()) * 1000))",
        "remaining = max(1, int((deadline - time.monotonic()) * 999))",
    ): "a millisecond less patience per second of wipe_timeout: no test can tell, nor a user",
    (
        "ledger/storage/recorders.py",
        "remaining = max(1, int((deadline - time.monotonic()) * 1000))",
        "remaining = max( 2, int((deadline - time.monotonic()) * 1000))",
    ): "the floor only keeps lock_timeout from 0 (no limit) once the deadline has passed: 1 ms"
    " or 2 ms past it is the same",
    (
        "ledger/storage/recorders.py",
        'cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")',
        'cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 999)}")',
    ): "a millisecond less patience per second of wipe_timeout: no test can tell, nor a user",
    (
        "ledger/storage/recorders.py",
        "remaining = max(1, int((deadline - time.monotonic()) * 1000))",
        "remaining = max(1, int((deadline - time.monotonic()) * 1001))",
    ): "a millisecond more patience per second of wipe_timeout: no test can tell, nor a user",
    (
        "ledger/storage/recorders.py",
        "with self.datastore.get_connection(commit=True) as conn:",
        "with self.datastore.get_connection(commit=False) as conn:",
    ): "for a database file, `commit` only picks the pool's in-process writer lock (it opens no"
    " transaction: the PRAGMAs run outside one); the checkpoint takes SQLite's own locks, and"
    " waits out writers of this process and others alike with its busy timeout",
    (
        "ledger/storage/recorders.py",
        "usual = cursor.fetchone()[0]",
        "usual = cursor.fetchone()[ -1]",
    ): "PRAGMA busy_timeout returns one column: the last is the first",
    (
        "ledger/storage/recorders.py",
        "if time.monotonic() >= deadline:",
        "if time.monotonic() > deadline:",
    ): "differs only when the clock reads the deadline exactly, and then waits one more 50 ms poll",
    (
        "projections/queries.py",
        "return {row[0] for row in rows}",
        "return {row[ -1] for row in rows}",
    ): "every _ROLES query selects one column, so the last is the first",
    (
        "ledger/storage/claims.py",
        "if not isinstance(email, str):",
        "if  isinstance(email, str):",
    ): "a miss of this unvalidated look-up proves nothing: the caller validates the email and"
    " looks again, so a key not made here costs time, not a different answer",
    (
        "ledger/storage/claims.py",
        "if not isinstance(email, str):",
        "if not not isinstance(email, str):",
    ): "a miss of this unvalidated look-up proves nothing: the caller validates the email and"
    " looks again, so a key not made here costs time, not a different answer",
    (
        "ledger/storage/claims.py",
        "return self.key(EMAIL, text) if text and text.isascii() else None",
        "return self.key(EMAIL, text) if not text and text.isascii() else None",
    ): "a miss of this unvalidated look-up proves nothing: the caller validates the email and"
    " looks again, so a key not made here costs time, not a different answer",
    (
        "ledger/storage/claims.py",
        "return self.key(EMAIL, text) if text and text.isascii() else None",
        "return self.key(EMAIL, text) if text or text.isascii() else None",
    ): "a non-ASCII email keyed unvalidated either matches the key its valid form has (the same"
    " user) or misses, and a miss is validated and looked up again",
    (
        "ledger/storage/claims.py",
        "return None if key == as_given else self.key_owner(EMAIL, key, uow)",
        "return None if key is as_given else self.key_owner(EMAIL, key, uow)",
    ): "a false 'differ' looks the same key up again just after it missed: the same answer,"
    " one look-up more",
    (
        "ledger/storage/claims.py",
        "if kind == EMAIL and (as_given := self.email_key_as_given(value)) is not None:",
        "if kind is EMAIL and (as_given := self.email_key_as_given(value)) is not None:",
    ): "every kind is one of the module's string constants, which CPython interns: equal is"
    " identical",
    (
        "ledger/importer.py",
        'if stop_on_error and result.status == "rejected":',
        'if stop_on_error and result.status is "rejected":',
    ): "every status is one of the module's literals, which CPython interns: equal is identical",
    (
        "ledger/audit/integrity.py",
        "if _links_before(led, scan.stop) != scan.count:",
        "if _links_before(led, scan.stop) is not scan.count:",
    ): "a false 'differ' only adds a search for a link without its event, which then finds"
    " none: the same verification",
    (
        "ledger/audit/integrity.py",
        "first = 1 if lowest is None else min(1, lowest)",
        "first = 0 if lowest is None else min(1, lowest)",
    ): "lowest is None when there are no events: the range from 0 or 1 is empty either way",
    (
        "ledger/audit/integrity.py",
        "first = 1 if lowest is None else min(1, lowest)",
        "first = 1 if lowest is None else min( 2, lowest)",
    ): "only differs when position 1 has no event; then its link is counted before the scan's"
    " stop and found as a link without its event, the same verification",
    (
        "ledger/audit/integrity.py",
        "first = 1 if lowest is None else min(1, lowest)",
        "first = 2 if lowest is None else min(1, lowest)",
    ): "lowest is None when there are no events: the range from 1 or 2 is empty either way",
    (
        "ledger/audit/integrity.py",
        "first = 1 if lowest is None else min(1, lowest)",
        "first = 1 if lowest is None else min( 0, lowest)",
    ): "lowest is the lowest event's position: a scan from 0 finds no event below it",
    (
        "ledger/audit/integrity.py",
        "last = led.recorder.max_notification_id() or 0",
        "last = led.recorder.max_notification_id() or -1",
    ): "the fallback is for a log with no events: every range scanned is then empty",
    (
        "ledger/audit/integrity.py",
        "last = led.recorder.max_notification_id() or 0",
        "last = led.recorder.max_notification_id() or 1",
    ): "the fallback is for a log with no events: every range scanned is then empty",
    (
        "ledger/audit/integrity.py",
        'return 0 if row is None else int(row["n"])',
        'return 1 if row is None else int(row["n"])',
    ): "a COUNT(*) query always returns its one row",
    (
        "ledger/audit/integrity.py",
        'return 0 if row is None else int(row["n"])',
        'return -1 if row is None else int(row["n"])',
    ): "a COUNT(*) query always returns its one row",
}

# Operators left out: replacements a kept neighbour already stands for (an order test swapped for
# an equality test, `+` for `**`), so the run's time goes to the slips that matter here: a
# boundary (< for <=), a negation (!= for ==, `is not` for `is`), `and` for `or`, a constant.
SKIPPED_OPERATORS: Final = (
    r"core/ReplaceBinaryOperator_\w+_(Pow|RShift|LShift|BitXor|FloorDiv|Mod|Mul|Div)$",
    r"core/ReplaceComparisonOperator_(Eq|NotEq)_(Lt|LtE|Gt|GtE)$",
    r"core/ReplaceComparisonOperator_(Lt|LtE|Gt|GtE)_(Eq|NotEq|Is|IsNot)$",
    r"core/ReplaceComparisonOperator_(Is|IsNot)_(Lt|LtE|Gt|GtE|Eq|NotEq)$",
    r"core/ReplaceComparisonOperator_(Eq_IsNot|NotEq_Is)$",
)

# Without the plugins installed for other suites (schemathesis, xdist, hypothesis' reporting), a
# test run starts in half the time: 7.6 s instead of 13.5-17 s for two tests on the loaded
# 2-core machine. The tests of the set need none of them (`@given` runs without its plugin).
TEST_ENV: Final = {
    **os.environ,
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    "LEDGER_HYPOTHESIS_PROFILE": "mutant",  # see tests/conftest.py
}
# The same, in any file of the set: (line as written, line as mutated) -> why.
EQUIVALENT_ANYWHERE: Final[dict[tuple[str, str], str]] = {
    ("if TYPE_CHECKING:", "if not TYPE_CHECKING:"): "the imports under it are used only in"
    " annotations, never evaluated, and import cleanly at run time too",
}

COPIED: Final = ("ledger", "projections", "tests", "scripts", "pyproject.toml", "README.md")
TOOL: Final = Path(sys.executable).parent


@dataclass
class Outcome:
    target: Target
    killed: int = 0
    survivors: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)


def line_ranges(path: Path, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """The lines (first, last) of each named definition in the file."""
    found: dict[str, tuple[int, int]] = {}

    def span(node: ast.stmt) -> tuple[int, int]:
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno, *(d.lineno for d in decorators)])
        return first, node.end_lineno or node.lineno

    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found[node.name] = span(node)
            if isinstance(node, ast.ClassDef):
                for inner in node.body:
                    if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                        found[f"{node.name}.{inner.name}"] = span(inner)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = span(node)
    missing = [name for name in names if name not in found]
    if missing:
        raise SystemExit(f"mutation.py: {path.relative_to(ROOT)} defines no {', '.join(missing)}")
    return [found[name] for name in names]


def check_equivalents() -> None:
    """Every line the EQUIVALENT table names is still in its file, and in the critical set."""
    for path, written, _ in EQUIVALENT:
        if path not in {t.path for t in CRITICAL}:
            raise SystemExit(f"mutation.py: EQUIVALENT names {path}, not in the critical set")
        lines = {line.strip() for line in (ROOT / path).read_text().splitlines()}
        if written not in lines:
            raise SystemExit(
                f"mutation.py: EQUIVALENT names a line {path} no longer has: {written}"
            )


def annotation_spans(tree: ast.Module) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The (line, column) spans of the file's type annotations."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            found.append(node.returns)
    return [
        ((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or 0)) for a in found
    ]


def skip_unwanted(target: Target, session: Path) -> None:
    """Mark as skipped the mutants outside the target's definitions, of a left-out operator, or
    inside an annotation (never evaluated: every file of the set has `from __future__ import
    annotations`)."""
    source = (ROOT / target.path).read_text()
    if "from __future__ import annotations" not in source:
        raise SystemExit(f"mutation.py: {target.path} evaluates its annotations; mutate them too")
    spans = annotation_spans(ast.parse(source))
    ranges = line_ranges(ROOT / target.path, target.names) if target.names else [(1, 1 << 30)]
    operators = re.compile("|".join(f"(?:{x})" for x in SKIPPED_OPERATORS))
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in db.pending_work_items:
            mutation = item.mutations[0]
            start = tuple(mutation.start_pos)
            why = (
                "operator left out"
                if operators.match(mutation.operator_name)
                else "outside the target"
                if not any(a <= start[0] <= b for a, b in ranges)
                else "in an annotation"
                if any(a <= start < b for a, b in spans)
                else None
            )
            if why is not None:
                skipped = WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=why)
                db.set_result(item.job_id, skipped)


def toml_config(target: Target, test_command: str, timeout: float, urls: list[str]) -> str:
    lines = [
        "[cosmic-ray]",
        f"module-path = {json.dumps(target.path)}",
        f"timeout = {timeout:.0f}.0",
        "excluded-modules = []",
        f"test-command = {json.dumps(test_command)}",
        "[cosmic-ray.distributor]",
        'name = "http"',
        "[cosmic-ray.distributor.http]",
        f"worker-urls = {json.dumps(urls)}",
    ]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def workers(base: Path, count: int) -> Iterator[tuple[list[Path], list[str]]]:
    """`count` cosmic-ray HTTP workers, each in its own copy of the tree (a mutant is written
    to disk while its tests run)."""
    dirs, urls, processes = [], [], []
    try:
        for i in range(count):
            copy = base / f"worker{i}"
            for name in COPIED:
                source = ROOT / name
                if source.is_dir():
                    shutil.copytree(
                        source, copy / name, ignore=shutil.ignore_patterns("__pycache__")
                    )
                elif source.exists():
                    shutil.copy2(source, copy / name)
            port = free_port()
            # PYTHONPATH: subprocesses the tests start import the mutated copy too.
            env = {**TEST_ENV, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
            processes.append(
                subprocess.Popen(
                    [str(TOOL / "cosmic-ray"), "http-worker", "--port", str(port)],
                    cwd=copy,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            dirs.append(copy)
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_for(url)
        yield dirs, urls
    finally:
        for process in processes:  # a worker busy with a mutant ignores SIGTERM
            process.kill()
            process.wait()


def wait_for(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    for _ in range(300):
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"mutation.py: the cosmic-ray worker at {url} did not start")


def baseline(copy: Path, command: list[str]) -> float:
    """Seconds the unmutated tests take; they must pass, or every mutant would count as killed.
    Five tries, 20 s apart: on a PostgreSQL server shared with other suites, a refused
    connection ("too many clients") can fail a run that has nothing wrong with it."""
    env = {**TEST_ENV, "PYTHONPATH": str(copy)}
    for attempt in range(5):
        if attempt:
            time.sleep(20)
        started = time.monotonic()
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
        if done.returncode == 0:
            break
    else:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise SystemExit(
            f"mutation.py: the tests fail without any mutant: {' '.join(command)}\n{tail}"
        )
    return time.monotonic() - started


def changed_lines(diff: str) -> tuple[str, str]:
    before = [x[1:] for x in diff.splitlines() if x.startswith("-") and not x.startswith("---")]
    after = [x[1:] for x in diff.splitlines() if x.startswith("+") and not x.startswith("+++")]
    return " / ".join(s.strip() for s in before), " / ".join(s.strip() for s in after)


def run_target(target: Target, session: Path, config: Path) -> Outcome:
    tool = str(TOOL / "cosmic-ray")
    subprocess.run([tool, "init", str(config), str(session)], check=True, cwd=ROOT)
    skip_unwanted(target, session)
    subprocess.run([tool, "exec", str(config), str(session)], check=True, cwd=ROOT)
    dumped = subprocess.run(
        [tool, "dump", str(session)], check=True, capture_output=True, text=True
    )
    outcome = Outcome(target)
    for line in dumped.stdout.splitlines():
        item, result = json.loads(line)
        if result is None or result["worker_outcome"] == "skipped":
            continue
        mutation = item["mutations"][0]
        before, after = changed_lines(result.get("diff") or "")
        where = f"{target.path}:{mutation['start_pos'][0]} {mutation['operator_name']}"
        described = f"{where}: {before}  ->  {after}"
        if result["worker_outcome"] != "normal":
            outcome.survivors.append(f"{described} (worker {result['worker_outcome']})")
        elif result["test_outcome"] != "survived":
            outcome.killed += 1
        elif (
            reason := EQUIVALENT.get((target.path, before, after))
            or EQUIVALENT_ANYWHERE.get((before, after))
        ) is not None:
            outcome.equivalent.append(f"{described} [equivalent: {reason}]")
        else:
            outcome.survivors.append(described)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--critical", action="store_true", help="mutate the whole critical set")
    groups = sorted({t.group for t in CRITICAL})
    parser.add_argument("--only", action="append", choices=groups, help="one group of the set")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the workers are stopped too
    if not args.critical and not args.only:
        parser.error("name what to mutate: --critical or --only GROUP")
    check_equivalents()
    chosen = [t for t in CRITICAL if args.critical or t.group in args.only]
    started = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        run(chosen, args.workers, outcomes)
    except (KeyboardInterrupt, SystemExit):
        print(f"interrupted: {len(outcomes)} of the {len(chosen)} files done", flush=True)
        report(outcomes, time.monotonic() - started)
        raise
    return report(outcomes, time.monotonic() - started)


def run(chosen: list[Target], count: int, outcomes: list[Outcome]) -> None:
    """Mutate each target in turn, adding its outcome to `outcomes` as soon as it is known."""
    with (
        tempfile.TemporaryDirectory(prefix="mutation-") as scratch,
        workers(Path(scratch), max(1, count)) as (dirs, urls),
    ):
        timeouts: dict[tuple[str, ...], float] = {}
        for n, target in enumerate(chosen):
            command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
            command += target.tests
            if target.tests not in timeouts:
                timeouts[target.tests] = max(60.0, 5 * baseline(dirs[0], command))
            config = Path(scratch) / f"{n}.toml"
            quoted = " ".join(f"'{part}'" if " " in part else part for part in command)
            config.write_text(toml_config(target, quoted, timeouts[target.tests], urls))
            outcome = run_target(target, Path(scratch) / f"{n}.sqlite", config)
            outcomes.append(outcome)
            print(
                f"{target.group:8} {target.path}: {outcome.killed} killed, "
                f"{len(outcome.survivors)} survived, {len(outcome.equivalent)} equivalent",
                flush=True,
            )


def report(outcomes: list[Outcome], seconds: float) -> int:
    missed = []
    for group in dict.fromkeys(o.target.group for o in outcomes):
        mine = [o for o in outcomes if o.target.group == group]
        killed = sum(o.killed for o in mine)
        survived = sum(len(o.survivors) for o in mine)
        total = killed + survived
        share = survived / total if total else 0.0
        limit = 0.0 if group in STRICT else TOLERANCE
        if share > limit:
            missed.append(group)
        shares = f"{share:.1%}, target <= {limit:.0%}"
        print(f"group {group}: {killed} killed, {survived} survived ({shares})")
    for o in outcomes:
        for line in o.equivalent:
            print(f"  {line}")
    for o in outcomes:
        for line in o.survivors:
            print(f"SURVIVED {line}")
    if missed:
        print(f"target missed in: {', '.join(missed)} ({seconds:.0f} s)")
    killed = sum(o.killed for o in outcomes)
    survived = sum(len(o.survivors) for o in outcomes)
    print(f"{killed} killed, {survived} survived")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

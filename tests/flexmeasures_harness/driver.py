"""Drives one FlexMeasures process (`flexmeasures_side.py` in FlexMeasures' own environment)
over a throwaway database cloned from the migrated template."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg

from tests.flexmeasures_harness import environment


class FlexMeasures:
    def __init__(self, admin_url: str) -> None:
        info = psycopg.conninfo.conninfo_to_dict(admin_url)
        server = f"postgresql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}"
        server += f":{info.get('port', 5432)}"
        template = environment.template_database(admin_url, server)
        self.admin_url = admin_url
        self.name = f"fm_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{template}"')
        self.url = f"{server}/{self.name}"
        self._home = tempfile.TemporaryDirectory()
        home = Path(self._home.name)
        environment.write_config(home, self.url)
        self.process = subprocess.Popen(
            [str(environment.python()), str(environment.SIDE_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment.side_environment(home),
            cwd=home,
            text=True,
        )
        self._read()

    def _read(self) -> Any:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the FlexMeasures process ended")
            if line.startswith("{"):
                answer = json.loads(line)
                if "error" in answer:
                    raise RuntimeError(answer["error"])
                return answer["ok"]

    def do(self, action: str, **arguments: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"action": action, **arguments}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def query(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Read the FlexMeasures database directly (as the tests' own check)."""
        with psycopg.connect(self.url) as conn:
            return list(conn.execute(statement, params).fetchall())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)
        self._home.cleanup()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

"""Runs INSIDE FlexMeasures' own virtual environment (never imported by the project): starts
one FlexMeasures app and performs, on request, what an operator would do through FlexMeasures'
CLI, services, UI login and HTTP API, against the database named by ~/.flexmeasures.cfg.

Protocol: one JSON object a line on stdin ({"action": ..., ...}), one JSON line back on stdout
({"ok": result} or {"error": text}). Start-up ends with {"ok": "ready"}."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from flexmeasures.app import create
from flexmeasures.data import db
from flexmeasures.data.services import users as user_services
from sqlalchemy import text

PASSWORD = "connector-tests-password"
app = create(env="development")
app.config["TESTING"] = True  # no email deliverability look-ups
app.config["WTF_CSRF_ENABLED"] = False
client = app.test_client()
tokens: dict[str, str] = {}


def cli(*args: str) -> str:
    with app.app_context():
        result = app.test_cli_runner().invoke(args=list(args))
    if result.exit_code != 0:
        raise RuntimeError(f"flexmeasures {' '.join(args)}: {result.output} {result.exception}")
    return str(result.output)


def token(email: str) -> str:
    if email not in tokens:
        answer = client.post("/api/requestAuthToken", json={"email": email, "password": PASSWORD})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        tokens[email] = answer.json["auth_token"]
    return tokens[email]


def api(method: str, path: str, as_email: str, body: Any = None) -> Any:
    answer = client.open(path, method=method, json=body, headers={"Authorization": token(as_email)})
    if answer.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.get_data(as_text=True)}")
    return answer.json


def sql(statement: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
    with app.app_context():
        result = db.session.execute(text(statement), params or {})
        rows = [list(row) for row in result] if result.returns_rows else []
        db.session.commit()
        return rows


def create_user(email: str, account_name: str, roles: list[str]) -> int:
    with app.app_context():
        user = user_services.create_user(
            password=PASSWORD, email=email, account_name=account_name, user_roles=roles
        )
        db.session.commit()
        return int(user.id)


def delete_user(email: str) -> None:
    with app.app_context():
        user_services.delete_user(user_services.find_user_by_email(email))
        db.session.commit()


def ui_login(email: str) -> None:
    """The UI login: the only one FlexMeasures counts (login_count, last_login_at)."""
    browser = app.test_client()  # its own cookies: the API client stays token-only
    answer = browser.post("/login", data={"email": email, "password": PASSWORD})
    assert answer.status_code in (200, 302), answer.status_code


def role_ids(*names: str) -> list[int]:
    rows = sql("SELECT id FROM role WHERE name = ANY(:names)", {"names": list(names)})
    return [row[0] for row in rows]


def user_id(email: str) -> int:
    return int(sql("SELECT id FROM fm_user WHERE email = :e", {"e": email})[0][0])


def account_id(name: str) -> int:
    return int(sql("SELECT id FROM account WHERE name = :n", {"n": name})[0][0])


def populate() -> dict[str, Any]:
    """Accounts with a consultancy, users, logins, role grants and removals, deactivation, a
    password reset, a deleted user, a change by direct SQL, annotations."""
    cli("add", "account", "--name", "Seita BV", "--roles", "Consultancy")
    seita = account_id("Seita BV")
    cli("add", "account", "--name", "Client BV", "--consultancy", str(seita))
    client_bv = account_id("Client BV")
    create_user("root@seita.example", "Seita BV", ["admin"])
    create_user("carla@seita.example", "Seita BV", ["consultant"])
    create_user("ann@client.example", "Client BV", ["account-admin"])
    create_user("bob@client.example", "Client BV", [])
    create_user("gone@client.example", "Client BV", ["account-admin"])
    sql("INSERT INTO role (name, description) VALUES ('admin-reader', 'Reads everything')")
    root = "root@seita.example"
    api("PATCH", f"/api/v3_0/accounts/{client_bv}", root,
        {"primary_color": "#112233", "secondary_color": "#445566"})  # fmt: skip
    ui_login("ann@client.example")
    ui_login("ann@client.example")
    ui_login("bob@client.example")
    bob = user_id("bob@client.example")
    ann = user_id("ann@client.example")
    api("PATCH", f"/api/v3_0/users/{bob}", root,
        {"flexmeasures_roles": role_ids("admin-reader")})  # fmt: skip
    api("PATCH", f"/api/v3_0/users/{ann}", root, {"flexmeasures_roles": []})
    api("PATCH", f"/api/v3_0/users/{bob}", root, {"active": False})
    api("PATCH", f"/api/v3_0/users/{ann}", root, {"timezone": "Europe/Berlin"})
    api("PATCH", f"/api/v3_0/users/{ann}/password-reset", root)
    delete_user("gone@client.example")
    sql("UPDATE fm_user SET timezone = 'Asia/Tokyo' WHERE email = 'carla@seita.example'")
    api("POST", f"/api/v3_0/accounts/{client_bv}/annotations", root, {
        "content": "Maintenance", "start": "2026-03-01T00:00:00+00:00",
        "end": "2026-03-02T00:00:00+00:00", "prior": "2026-02-20T00:00:00+00:00",
        "type": "alert",
    })  # fmt: skip
    return {"seita": seita, "client": client_bv, "ann": ann, "bob": bob}


ACTIONS = {
    "populate": lambda request: populate(),
    "sql": lambda request: sql(request["statement"], request.get("params")),
    "api": lambda request: api(
        request["method"], request["path"], request["as_email"], request.get("body")
    ),
    "create_user": lambda request: create_user(
        request["email"], request["account"], request.get("roles", [])
    ),
    "login": lambda request: ui_login(request["email"]),
    "cli": lambda request: cli(*request["args"]),
    "account_id": lambda request: account_id(request["name"]),
    "user_id": lambda request: user_id(request["email"]),
    "role_ids": lambda request: role_ids(*request["names"]),
}


def main() -> None:
    print(json.dumps({"ok": "ready"}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            # no app context around requests: flask-login would keep one user across them
            result = ACTIONS[request["action"]](request)
            answer = {"ok": result}
        except Exception as error:
            answer = {"error": f"{error}\n{traceback.format_exc()}"}
        print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    main()

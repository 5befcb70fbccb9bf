"""Tokens, passwords and roles: every route but health and login wants a valid token."""

import re
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from app import routes
from chalicelib import auth
from chalicelib.auth import _signing_key
from tests.conftest import ADMIN, ADMIN_PASSWORD, OPCENTER_SCRYPT_N, log_in

PROTECTED = [op for op in routes.operations if not op.public]


def _concrete(path: str) -> str:
    return re.sub(r"{[^}]+}", "x", path)


def _forged(runtime, key: bytes | None = None, **claims_changed) -> str:
    now = datetime.now(UTC)
    claims = {"sub": ADMIN, "iss": "openfloat", "iat": now, "exp": now + timedelta(hours=1)}
    return jwt.encode({**claims, **claims_changed}, key or _signing_key(runtime), algorithm="HS256")


def test_only_health_login_and_the_web_page_s_own_files_are_public():
    # The web interface's page and scripts hold no data: they log in like the CLI.
    public = sorted((op.method, op.path) for op in routes.operations if op.public)
    assert public == [("GET", "/"), ("GET", "/ui/{name}"), ("GET", "/v1/health"),
                      ("POST", "/v1/login")]
    assert len(PROTECTED) >= 14


@pytest.mark.parametrize("operation", PROTECTED, ids=lambda op: f"{op.method} {op.path}")
def test_every_protected_route_refuses_a_missing_or_bad_token(admin, runtime, operation):
    path = _concrete(operation.path)
    body = {} if operation.body else None
    bad_tokens = {
        "missing": None,
        "not a jwt": "Bearer definitely-not-a-token",
        "wrong scheme": f"Basic {admin.token}",
        "other key": f"Bearer {_forged(runtime, key=b'another-key-entirely-0123456789-abcdef')}",
        "expired": "Bearer " + _forged(runtime, iat=datetime.now(UTC) - timedelta(hours=3),
                                       exp=datetime.now(UTC) - timedelta(hours=2)),
        "unknown user": f"Bearer {_forged(runtime, sub='mallory')}",
    }
    for label, header in bad_tokens.items():
        headers = {"Content-Type": "application/json"}
        if header:
            headers["Authorization"] = header
        response = getattr(admin.client.http, operation.method.lower())(
            path, headers=headers, body=None if body is None else "{}"
        )
        assert response.status_code == 401, (label, response.body)
        assert response.json_body["error"] == "Unauthorized" and response.json_body["message"]


def test_health_needs_no_token_and_a_good_token_passes(admin, client):
    assert client.http.get("/v1/health").json_body["status"] == "ok"
    assert admin.get("/v1/whoami").json_body == {"username": ADMIN, "role": "admin"}


def test_a_wrong_password_or_unknown_user_gets_the_same_answer(admin, client):
    for username, password in [(ADMIN, "wrong-password"), ("nobody", ADMIN_PASSWORD)]:
        response = client.http.post("/v1/login", headers={"Content-Type": "application/json"},
                                     body=f'{{"username": "{username}", "password": "{password}"}}')
        assert response.status_code == 401
        assert response.json_body["message"] == "wrong username or password"


def test_passwords_are_stored_as_slow_hashes(alice, runtime, store, monkeypatch):
    # The tests' own users get cheap hashes (conftest); the OpCenter's cost is this.
    assert OPCENTER_SCRYPT_N == 2**15
    monkeypatch.setattr(auth, "_SCRYPT_N", OPCENTER_SCRYPT_N)
    assert auth.hash_password("alice-password-1").startswith("scrypt$32768$8$1$")
    user = store.get_user("alice")
    assert user.passwordHash.startswith("scrypt$")
    assert "alice-password-1" not in user.passwordHash
    items = runtime.dynamodb.scan(TableName=runtime.config.users_table)["Items"]
    assert not any("alice-password-1" in str(item) for item in items)


def test_a_deleted_users_token_stops_working(admin, alice):
    assert alice.get("/v1/jobs").status_code == 200
    assert admin.delete("/v1/users/alice").status_code == 200
    response = alice.get("/v1/jobs")
    assert response.status_code == 401 and "no longer exists" in response.json_body["message"]


def test_only_admins_manage_users(admin, alice, client):
    assert alice.post("/v1/users", {"username": "eve", "password": "eve-password"}).status_code == 403
    assert alice.get("/v1/users").status_code == 403
    assert alice.delete(f"/v1/users/{ADMIN}").status_code == 403
    created = admin.post("/v1/users", {"username": "carol", "password": "carol-password-1", "role": "admin"})
    assert created.status_code == 201 and created.json_body == {
        "username": "carol", "role": "admin", "createTime": created.json_body["createTime"]}
    carol = log_in(client, "carol", "carol-password-1")
    assert carol.get("/v1/whoami").json_body["role"] == "admin"
    names = [u["username"] for u in admin.get("/v1/users").json_body["items"]]
    assert sorted(names) == ["admin", "alice", "carol"]
    assert admin.post("/v1/users", {"username": "carol", "password": "carol-password-2"}).status_code == 409
    assert admin.delete(f"/v1/users/{ADMIN}").status_code == 409
    assert admin.delete("/v1/users/ghost").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"username": "Bad Name", "password": "long-enough"}, "username"),
    ({"username": "dave", "password": "short"}, "password"),
    ({"username": "dave", "password": "long-enough", "role": "root"}, "role"),
])
def test_bad_user_requests_name_the_field(admin, body, field):
    response = admin.post("/v1/users", body)
    assert response.status_code == 400 and response.json_body["field"] == field

"""Login tokens belong to the user they were issued to: logging out, a password change or a new
user of the same name ends them. Password guessing is throttled; weak passwords are refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib import auth
from chalicelib.auth import MAX_FAILED_LOGINS_PER_ADDRESS, MAX_FAILED_LOGINS_PER_USER
from chalicelib.wire.status import JobStatus
from tests.conftest import log_in
from tests.functional.jobs_helpers import seed_job


def _login(client, username: str, password: str):
    return client.http.post("/v1/login", headers={"Content-Type": "application/json"},
                            body=f'{{"username": "{username}", "password": "{password}"}}')


def _refused(response, words: str) -> None:
    assert response.status_code == 401, response.body
    assert words in response.json_body["message"], response.json_body


def test_a_deleted_users_token_does_not_come_back_with_a_new_user_of_that_name(admin, make_user):
    old = make_user("carol")
    assert old.get("/v1/whoami").json_body == {"username": "carol", "role": "user"}
    assert admin.delete("/v1/users/carol").status_code == 200
    assert admin.post("/v1/users", {"username": "carol", "password": "carol-password-2",
                                    "role": "admin"}).status_code == 201
    _refused(old.get("/v1/whoami"), "deleted and created again")
    _refused(old.get("/v1/users"), "log in again")
    new = log_in(admin.client, "carol", "carol-password-2")
    assert new.get("/v1/whoami").json_body == {"username": "carol", "role": "admin"}


def test_logging_out_revokes_that_token_only(alice, client):
    other = log_in(client, "alice", "alice-password-1")
    out = alice.post("/v1/logout")
    assert out.status_code == 200 and out.json_body == {"username": "alice", "revoked": True}
    _refused(alice.get("/v1/whoami"), "logging out")
    _refused(alice.post("/v1/logout"), "logging out")
    assert other.get("/v1/whoami").status_code == 200
    assert log_in(client, "alice", "alice-password-1").get("/v1/whoami").status_code == 200


def test_revocations_are_forgotten_once_their_tokens_would_have_expired(alice, store, runtime):
    now = int(runtime.clock().timestamp())
    store.revoke_token("alice", "long-expired", now - 60, now - 120)
    assert alice.post("/v1/logout").status_code == 200
    kept = store.get_user("alice").revokedTokens
    assert len(kept) == 1 and "long-expired" not in kept


def test_changing_ones_own_password_ends_every_session_of_it(alice, client):
    other = log_in(client, "alice", "alice-password-1")
    wrong = alice.request("PUT", "/v1/users/alice/password",
                          body={"password": "a-brand-new-passphrase", "currentPassword": "nope"})
    assert wrong.status_code == 403 and "currentPassword" in wrong.json_body["message"]
    missing = alice.request("PUT", "/v1/users/alice/password",
                            body={"password": "a-brand-new-passphrase"})
    assert missing.status_code == 403
    changed = alice.request("PUT", "/v1/users/alice/password", body={
        "password": "a-brand-new-passphrase", "currentPassword": "alice-password-1"})
    assert changed.status_code == 200, changed.body
    for session in (alice, other):
        _refused(session.get("/v1/whoami"), "password was changed")
    assert _login(client, "alice", "alice-password-1").status_code == 401
    assert log_in(client, "alice", "a-brand-new-passphrase").get("/v1/whoami").status_code == 200


def test_an_admin_sets_anyones_password_and_a_user_only_their_own(admin, alice, bob, client):
    assert alice.request("PUT", "/v1/users/bob/password",
                         body={"password": "alice-owns-bob-now"}).status_code == 403
    assert bob.get("/v1/whoami").status_code == 200
    reset = admin.request("PUT", "/v1/users/bob/password", body={"password": "reset-by-the-admin"})
    assert reset.status_code == 200, reset.body
    _refused(bob.get("/v1/whoami"), "log in again")
    assert log_in(client, "bob", "reset-by-the-admin").get("/v1/whoami").status_code == 200
    assert admin.request("PUT", "/v1/users/ghost/password",
                         body={"password": "reset-by-the-admin"}).status_code == 404


@pytest.mark.parametrize("password, words", [
    ("short", "at least 10"),
    ("password123", "too easy to guess"),
    ("dave-dave-dave", "too easy to guess"),
    ("qwertyuiop", "too easy to guess"),
    ("1234567890", "too easy to guess"),
])
def test_weak_passwords_are_refused_naming_why(admin, alice, password, words):
    created = admin.post("/v1/users", {"username": "dave", "password": password})
    assert created.status_code == 400 and created.json_body["field"] == "password"
    assert words in created.json_body["message"], created.json_body
    changed = alice.request("PUT", "/v1/users/alice/password", body={
        "password": password, "currentPassword": "alice-password-1"})
    assert changed.status_code == 400 and words in changed.json_body["message"]
    assert alice.get("/v1/whoami").status_code == 200
    assert admin.get("/v1/users").json_body["items"][-1]["username"] != "dave"


def test_failed_logins_of_one_user_are_throttled_even_with_the_right_password(alice, bob, client,
                                                                             runtime, monkeypatch):
    for _ in range(MAX_FAILED_LOGINS_PER_USER):
        assert _login(client, "alice", "a-guess-at-it").status_code == 401
    throttled = _login(client, "alice", "alice-password-1")
    assert throttled.status_code == 429, throttled.body
    assert "for user alice" in throttled.json_body["message"]
    assert 0 < int(throttled.headers["Retry-After"]) <= auth.LOGIN_WINDOW_SECONDS
    # Another user from the same address is not held back by alice's failures.
    assert _login(client, "bob", "bob-password-1").status_code == 200
    # Nor is a session alice already had.
    assert alice.get("/v1/whoami").status_code == 200
    later = runtime.clock() + timedelta(
        seconds=auth.LOGIN_WINDOW_SECONDS + 1)
    monkeypatch.setattr(runtime, "clock", lambda: later)
    assert _login(client, "alice", "alice-password-1").status_code == 200


def test_a_successful_login_clears_the_users_count(alice, client):
    for _ in range(MAX_FAILED_LOGINS_PER_USER - 1):
        assert _login(client, "alice", "a-guess-at-it").status_code == 401
    assert _login(client, "alice", "alice-password-1").status_code == 200
    for _ in range(MAX_FAILED_LOGINS_PER_USER - 1):
        assert _login(client, "alice", "a-guess-at-it").status_code == 401
    assert _login(client, "alice", "alice-password-1").status_code == 200


def test_failed_logins_from_one_address_are_throttled_across_user_names(alice, client,
                                                                       monkeypatch):
    # Each try checks a password at the OpCenter's cost; a cheaper dummy keeps the test short.
    monkeypatch.setattr(auth, "_DUMMY_HASH", auth.hash_password("not-anyones-password"))
    for n in range(MAX_FAILED_LOGINS_PER_ADDRESS):
        assert _login(client, f"nobody{n}", "a-guess-at-it").status_code == 401
    throttled = _login(client, "alice", "alice-password-1")
    assert throttled.status_code == 429, throttled.body
    assert "from 127.0.0.1" in throttled.json_body["message"]


def test_a_password_change_is_throttled_like_a_login(alice):
    for _ in range(MAX_FAILED_LOGINS_PER_USER):
        assert alice.request("PUT", "/v1/users/alice/password", body={
            "password": "a-brand-new-passphrase", "currentPassword": "guess"}).status_code == 403
    right = alice.request("PUT", "/v1/users/alice/password", body={
        "password": "a-brand-new-passphrase", "currentPassword": "alice-password-1"})
    assert right.status_code == 429, right.body


def test_a_jobs_token_does_not_serve_a_new_user_of_its_owners_name(admin, make_user, runtime,
                                                                   store):
    make_user("carol")
    seed_job(runtime, store, "job-1", JobStatus.EXECUTING, owner="carol")
    secret = auth.issue_job_token(runtime, "job-1", "carol")
    token = runtime.secrets.get_secret_value(SecretId=secret)["SecretString"]
    assert admin.get("/v1/jobs/job-1", token=token).status_code == 200
    assert admin.delete("/v1/users/carol").status_code == 200
    assert admin.post("/v1/users", {"username": "carol",
                                    "password": "carol-password-2"}).status_code == 201
    _refused(admin.get("/v1/jobs/job-1", token=token), "earlier user named carol")

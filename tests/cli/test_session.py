"""`float login`, `login --info`, `logout`, and how the saved session is used and protected."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.cli.fake_opcenter import PASSWORD, TOKEN, job_json


def test_login_saves_a_private_session_and_later_commands_send_the_token(opcenter, run,
                                                                         float_home: Path):
    result = run("login", "-a", opcenter.address, "-u", "alice", "-p", PASSWORD)

    assert result.code == 0, result.err
    assert "Login succeeded" in result.out
    assert opcenter.requests[0].body == {"username": "alice", "password": PASSWORD}
    session_file = float_home / "session.json"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(float_home.stat().st_mode) == 0o700
    saved = json.loads(session_file.read_text())
    assert saved["address"] == f"http://{opcenter.address}"
    assert saved["token"] == TOKEN

    opcenter.reply("GET", "/v1/jobs/job-1", job_json())
    shown = run("show", "-j", "job-1")  # no -a: the address of the last login

    assert shown.code == 0, shown.err
    assert opcenter.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    for text in (result.out, result.err, shown.out, shown.err):
        assert TOKEN not in text and PASSWORD not in text


def test_login_info_shows_user_role_address_and_expiry_without_the_token(logged_in, run):
    logged_in.reply("GET", "/v1/whoami", {"username": "alice", "role": "user"})

    result = run("login", "--info", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "username": "alice", "role": "user", "address": f"http://{logged_in.address}",
        "expiresAt": "2030-01-01T00:00:00Z",
    }
    assert TOKEN not in result.out


def test_username_and_password_on_any_command_log_in_first(opcenter, run, float_home: Path):
    opcenter.reply("GET", "/v1/jobs/job-1", job_json())

    result = run("show", "-j", "job-1", "-a", opcenter.address, "-u", "alice", "-p", PASSWORD)

    assert result.code == 0, result.err
    assert [r.path for r in opcenter.requests] == ["/v1/login", "/v1/jobs/job-1"]
    assert (float_home / "session.json").exists()


def test_without_a_session_commands_say_how_to_log_in(opcenter, run):
    result = run("list", "-a", opcenter.address)

    assert result.code == 1
    assert result.err == (f"float: not logged in; run: float login -a http://{opcenter.address}"
                          " -u USER -p PASS\n")
    assert opcenter.requests == []


def test_the_saved_token_is_never_sent_to_another_address(logged_in, run):
    result = run("list", "-a", "127.0.0.1:1")

    assert result.code == 1
    assert "not logged in to http://127.0.0.1:1" in result.err
    assert logged_in.requests == []


def test_logout_removes_the_session(logged_in, run, float_home: Path):
    logged_in.reply("POST", "/v1/logout", {"username": "alice", "revoked": True})
    result = run("logout")

    assert result.code == 0
    assert not (float_home / "session.json").exists()
    assert "not logged in" in run("list").err


def test_an_expired_token_tells_the_user_to_log_in_again(logged_in, run):
    logged_in.reply("GET", "/v1/jobs", {"error": "Unauthorized", "message": "the token expired"},
                    status=401)

    result = run("list")

    assert result.code == 1
    assert result.err == "float: the token expired; run float login again\n"


def test_a_wrong_password_is_the_servers_message(opcenter, run, float_home: Path):
    opcenter.replies.clear()
    opcenter.reply("POST", "/v1/login",
                   {"error": "Unauthorized", "message": "wrong username or password"}, status=401)

    result = run("login", "-a", opcenter.address, "-u", "alice", "-p", "nope")

    assert (result.code, result.err) == (1, "float: wrong username or password\n")
    assert not (float_home / "session.json").exists()


def test_login_without_a_password_off_a_terminal_fails_without_asking(opcenter, run):
    result = run("login", "-a", opcenter.address, "-u", "alice")

    assert result.code == 2
    assert result.err.startswith("float: give -p PASS") and result.err.count("\n") == 1
    assert opcenter.requests == []

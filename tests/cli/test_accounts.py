"""`float logout` and `float user passwd` against the real API: a token given up or a password
changed stops working at the OpCenter, not only on this machine."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import LIVE_PASSWORD
from tests.cli.fake_opcenter import PASSWORD


def _token(float_home: Path) -> str:
    return json.loads((float_home / "session.json").read_text())["token"]


def test_logout_revokes_the_token_at_the_opcenter(api, run, float_home: Path, monkeypatch):
    assert run("login", "-a", api, "-u", "alice", "-p", LIVE_PASSWORD).code == 0
    token = _token(float_home)
    out = run("logout")
    assert (out.code, out.out) == (0, f"Logged out of {api}\n"), out.err
    assert not (float_home / "session.json").exists()
    # The token a copy of the session file would still hold is refused.
    monkeypatch.setenv("FLOAT_ADDRESS", api)
    monkeypatch.setenv("FLOAT_TOKEN", token)
    refused = run("list")
    assert refused.code == 1 and "logging out" in refused.err


def test_logout_when_the_opcenter_cannot_be_told_forgets_and_fails(logged_in, run, float_home):
    session = float_home / "session.json"
    saved = json.loads(session.read_text())
    session.write_text(json.dumps({**saved, "address": "http://127.0.0.1:1"}))
    out = run("logout")
    assert out.code == 1
    assert out.err.count("\n") == 1 and "stays good until 2030-01-01T00:00:00Z" in out.err
    assert not (float_home / "session.json").exists()


def test_logout_of_a_token_already_refused_is_fine(logged_in, run, float_home):
    logged_in.reply("POST", "/v1/logout", {"error": "Unauthorized", "message": "expired"},
                    status=401)
    assert run("logout").code == 0
    assert not (float_home / "session.json").exists()


def test_passwd_changes_ones_own_password_and_stays_logged_in(api, run, float_home: Path):
    assert run("login", "-a", api, "-u", "alice", "-p", LIVE_PASSWORD).code == 0
    before = _token(float_home)
    changed = run("user", "passwd", "--current-password", LIVE_PASSWORD,
                  "--password", "a-brand-new-passphrase", "-F", "json")
    assert changed.code == 0, changed.err
    assert json.loads(changed.out)["username"] == "alice"
    assert _token(float_home) != before
    assert run("login", "--info").code == 0
    assert run("login", "-a", api, "-u", "alice", "-p", LIVE_PASSWORD).code == 1
    assert run("login", "-a", api, "-u", "alice", "-p", "a-brand-new-passphrase").code == 0


def test_passwd_refuses_a_weak_password_with_one_line(api, run):
    assert run("login", "-a", api, "-u", "alice", "-p", LIVE_PASSWORD).code == 0
    weak = run("user", "passwd", "--current-password", LIVE_PASSWORD, "--password", "password12345")
    assert weak.code == 1 and weak.err.startswith("float: password: too easy to guess")
    assert weak.err.count("\n") == 1
    assert run("login", "--info").code == 0


def test_passwd_off_a_terminal_needs_the_flags(logged_in, run):
    logged_in.reply("GET", "/v1/whoami", {"username": "alice", "role": "user"})
    result = run("user", "passwd", "--password", PASSWORD + "-new")
    assert result.code == 2 and "--current-password" in result.err
    assert [r.path for r in logged_in.requests] == ["/v1/whoami"]

"""Fixtures for the `float` tests: a private session directory, a fake OpCenter, the real API
on a loopback port, and a way to run `float` as a user would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.users import ensure_admin
from cli.main import main
from tests.cli.fake_opcenter import PASSWORD, TOKEN, FakeOpCenter, serving
from tests.conftest import ADMIN, ADMIN_PASSWORD


@pytest.fixture(autouse=True)
def float_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own session directory, and no proxy or job (FLOAT_ADDRESS, FLOAT_TOKEN,
    FLOAT_JOB_ID) from the environment."""
    home = tmp_path / "float-config"
    monkeypatch.setenv("FLOAT_CONFIG_DIR", str(home))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY", "FLOAT_ADDRESS", "FLOAT_TOKEN", "FLOAT_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def opcenter() -> Iterator[FakeOpCenter]:
    """A fake OpCenter whose login lets alice in."""
    with serving() as fake:
        fake.reply("POST", "/v1/login", {"token": TOKEN, "username": "alice", "role": "user",
                                         "expiresAt": "2030-01-01T00:00:00Z"})
        yield fake


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `float ARGS...` as a user would and collect its exit code and output."""

    def run_float(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run_float


@pytest.fixture
def logged_in(opcenter: FakeOpCenter, run: Callable[..., Result]) -> FakeOpCenter:
    """A saved session for alice; the login request is forgotten."""
    result = run("login", "-a", opcenter.address, "-u", "alice", "-p", PASSWORD)
    assert result.code == 0, result.err
    opcenter.requests.clear()
    return opcenter


# alice's password on the real API (the fake OpCenter takes any).
LIVE_PASSWORD = "alice-password-1"


@pytest.fixture
def api(runtime, store, served) -> str:
    """The OpCenter's API served on a loopback port; alice may log in."""
    from chalicelib import users
    from chalicelib.auth import Principal
    from chalicelib.wire.api import UserRequest

    ensure_admin(runtime, store, ADMIN, ADMIN_PASSWORD)
    users.create(runtime, store, Principal(username=ADMIN, role="admin"),
                 UserRequest(username="alice", password=LIVE_PASSWORD))
    return served

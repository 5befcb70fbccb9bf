"""One local OpCenter (`python -m localmode`, what `make run` runs) for the end-to-end suite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.registry import free_port
from infra import license as license_tool
from localmode import trial
from localmode.demo import Float, LocalOpCenter

PASSWORD = "e2e-admin-password"
PYTHON_IMAGE = "localhost/openfloat/python:local"


@pytest.fixture(scope="session")
def issuer_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The license issuer the local OpCenter trusts: the tests issue licenses with it."""
    directory = tmp_path_factory.mktemp("issuer")
    assert license_tool.main(["keygen", "--out", str(directory)]) == 0
    return directory / license_tool.PRIVATE_NAME


# Package scope: the OpCenter, its agents and its reconciler stop when the last end-to-end
# test has run, instead of taking a core from every test after them.
@pytest.fixture(scope="package")
def local(issuer_key: Path) -> Iterator[LocalOpCenter]:
    # A short wait for a replacement that died while it restored (a test reclaims those); an
    # agent that dies while it checkpoints is noticed by its missing heartbeats. The reconciler
    # looks every few seconds; agents report every 5 s and a silent one is given three missed
    # heartbeats, so a lost instance or agent (the chaos test makes both) is noticed soon.
    opcenter = LocalOpCenter.start(free_port(), PASSWORD, settings={
        "START_TIMEOUT_SECONDS": "60", "AGENT_SILENCE_SECONDS": "15",
        "OPENFLOAT_AGENT_HEARTBEAT_SECONDS": "5",
        "OPENFLOAT_RECONCILE_SECONDS": "5", trial.ISSUER_KEY_ENV: str(issuer_key)})
    yield opcenter
    assert opcenter.stop() == "stopped", "".join(opcenter.output)[-3000:]
    assert "OpenFloat OpCenter stopped" in "".join(opcenter.output)


@pytest.fixture
def admin_cli(local: LocalOpCenter, tmp_path: Path) -> Float:
    """`float`, logged in as the admin, printing nothing."""
    cli = Float(tmp_path / "float-config", echo=False)
    cli("login", "-a", local.url, "-u", "admin", "-p", PASSWORD)
    return cli


def python_image(cli: Float) -> str:
    """The Application Library name of the python test image, added on first use."""
    listed = json.loads(cli("image", "list", "--format", "json"))
    if not any(entry["name"] == "e2e-python" for entry in listed):
        cli("image", "add", "e2e-python", PYTHON_IMAGE)
    return "e2e-python"

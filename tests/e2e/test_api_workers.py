"""The local OpCenter's API is served by several processes on one port, and a worker that dies
is replaced while the others go on answering."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from localmode.demo import LocalOpCenter
from tests.e2e.conftest import PASSWORD


def _workers(local: LocalOpCenter) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(local.process.pid), "-f", "localmode[.]api"],
                           capture_output=True, text=True, check=False).stdout.split()
    return sorted(int(pid) for pid in found)


def test_a_killed_api_worker_is_replaced_and_the_api_answers_throughout(local):
    before = _workers(local)
    assert len(before) >= 2, before
    token = requests.post(f"{local.url}/v1/login", timeout=30, json={
        "username": "admin", "password": PASSWORD}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    def whoami(_: int) -> int:
        return requests.get(f"{local.url}/v1/whoami", headers=headers, timeout=30).status_code

    os.kill(before[0], signal.SIGKILL)
    # Requests sent while one worker is gone are answered by the others.
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(whoami, range(40))) == {200}
    deadline = time.monotonic() + 120
    while True:
        now = _workers(local)
        if len(now) == len(before) and before[0] not in now:
            break
        assert time.monotonic() < deadline, (before, now)
        time.sleep(0.2)
    assert "API worker" in "".join(local.output)
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(whoami, range(40))) == {200}

"""Flyte's flytekit-mmcloud connector against the local OpCenter, call for call as it makes
them (docs/clients.md, section 4, cites each file and line; paths below are under
plugins/flytekit-mmcloud/flytekitplugins/mmcloud/):

- connector.py: `float login --info`, else `float login --address --username --password`,
  before every create, get and delete; `float submit --force --format json --cpu N[:M]
  --mem G[:M] --image IMAGE --env K=V... <submit_extra> --job TMPFILE`, the temp file deleted
  as soon as submit returns; `float show --format json --job ID`; `float cancel --force --job
  ID`, whose non-zero exit raises;
- utils.py: the requests/limits to `N` or `N:M`, and the strict status map to Flyte's
  TaskExecution phases.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path

import pytest

from localmode.demo import wait_until
from tests.e2e.clients import float_env, run
from tests.e2e.conftest import PASSWORD, python_image

# utils.py: a plain dict index, so an unknown status raises KeyError.
PHASES = {
    **dict.fromkeys(["Submitted", "Initializing", "Starting", "Executing", "Capturing",
                     "Floating", "Suspended", "Suspending", "Resuming"], "RUNNING"),
    "Completed": "SUCCEEDED",
    **dict.fromkeys(["Cancelled", "Cancelling", "FailToComplete", "FailToExecute",
                     "CheckpointFailed", "Timedout", "NoAvailableHost", "Unknown",
                     "WaitingForLicense"], "FAILED"),
}
SUBMIT_EXTRA = "--migratePolicy [enable=true]"  # the README's example


class Connector:
    def __init__(self, address: str, home: Path) -> None:
        self.address = address
        self.env = float_env(home)

    def _login(self) -> None:
        if run(["login", "--info"], self.env).code != 0:
            done = run(["login", "--address", self.address, "--username", "admin",
                        "--password", PASSWORD], self.env)
            if done.code != 0:
                raise RuntimeError(done.err)

    def create(self, image: str, args: list[str], env: dict[str, str], cpu: str,
               mem: str) -> str:
        """MMCloudConnector.create: the script goes to a temp file gone once submit returns."""
        self._login()
        line = ["submit", "--force", "--format", "json", "--cpu", cpu, "--mem", mem,
                "--image", image]
        for key, value in env.items():
            line += ["--env", f"{key}={value}"]
        line += shlex.split(SUBMIT_EXTRA)
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
            script.write(f"#!/bin/bash\n{shlex.join(args)}\n")
            script.flush()
            done = run([*line, "--job", script.name], self.env)
        if done.code != 0:
            raise RuntimeError(done.err)
        return str(json.loads(done.out)["id"])

    def get(self, job_id: str) -> str:
        self._login()
        done = run(["show", "--format", "json", "--job", job_id], self.env)
        if done.code != 0:
            raise RuntimeError(done.err)
        return PHASES[json.loads(done.out)["status"]]

    def delete(self, job_id: str) -> None:
        self._login()
        done = run(["cancel", "--force", "--job", job_id], self.env)
        if done.code != 0:
            raise RuntimeError(done.err)


@pytest.fixture
def connector(local, tmp_path: Path) -> Connector:
    return Connector(local.url, tmp_path / "flyte-home")


def test_flyte_tasks_through_the_flytekit_mmcloud_connector(local, admin_cli, connector):
    image = python_image(admin_cli)
    # A task with requests only (`--cpu 1 --mem 1`) and one with limits (`N:M`); the
    # environment carries Flyte's values, `=` and `,` included.
    env = {"FLYTE_INTERNAL_EXECUTION_ID": "f7a3b2c1", "FLYTE_INTERNAL_TASK_NAME": "wf.square",
           "FLYTE_SPEC": "a=1,b=[2|3]"}
    square = connector.create(image, ["python3", "-c",
                                      "import os; print(7 * 7, os.environ['FLYTE_SPEC'])"],
                              env, cpu="1", mem="1")
    sleeper = connector.create(image, ["sleep", "300"], {}, cpu="1:2", mem="1:2")

    wait_until("the sleeping task to run", lambda: connector.get(sleeper) == "RUNNING"
         and admin_cli.job(sleeper)["status"] == "Executing", 240)
    connector.delete(sleeper)

    phases = {job: wait_until(f"{job} to finish", lambda j=job: (p := connector.get(j)) != "RUNNING"
                        and p, 300) for job in (square, sleeper)}
    assert phases == {square: "SUCCEEDED", sleeper: "FAILED"}
    done = admin_cli.job(square)
    assert (done["status"], done["rc"]) == ("Completed", 0)
    assert done["env"] == env and done["migratePolicy"]["disable"] is False
    assert done["cpu"] == {"min": 1, "max": 1} and done["mem"] == {"min": 1, "max": 1}
    assert admin_cli.stdout(square) == "49 a=1,b=[2|3]\n"
    assert admin_cli.job(sleeper)["status"] == "Cancelled"
    # Flyte may delete a task that has already ended: that is not an error.
    connector.delete(square)
    assert admin_cli.job(square)["status"] == "Completed"
    for job in (square, sleeper):
        assert not local.live_instances(job)

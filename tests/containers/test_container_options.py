"""How a job asked its container to run: privileged, as root whatever the image says, with
further podman options and directories of the host it runs on, also after it moves."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from agent.podman import podman_environment
from agent.registry import free_port
from chalicelib.wire.agent import CancelCommand, CheckpointCommand, RestoreCommand, RunCommand
from tests.containers.conftest import BUSYBOX, PYTHON, wait_for

NON_ROOT = "localhost/openfloat/busybox-uid1000:test"

# Says who it is and what it may do, reads and writes the host directory, then counts in a
# shell variable (a rerun would start again at 1) and writes the host directory once more.
SCRIPT = """\
echo "uid=$(id -u)"
grep CapEff /proc/self/status
df -k /dev/shm | tail -1 | awk '{print "shm=" $2}'
cat /mnt/host/marker 2>/dev/null || echo "no marker"
echo first > /mnt/host/first
i=0
while [ $i -lt 30 ]; do i=$((i+1)); echo "n=$i"; sleep 0.1; done
ls /mnt/host | tr '\\n' ' '; echo
echo last > /mnt/host/last
"""


@pytest.fixture(scope="module")
def non_root_image() -> Iterator[str]:
    """The busybox image with USER 1000, built from the local one (no registry needed)."""
    built = subprocess.run(["podman", "build", "-q", "-t", NON_ROOT, "-f", "-", "."],
                           input=f"FROM {BUSYBOX}\nUSER 1000\n", text=True, capture_output=True,
                           env=podman_environment(), check=False)
    assert built.returncode == 0, built.stderr
    yield NON_ROOT
    subprocess.run(["podman", "rmi", "-f", NON_ROOT], capture_output=True, check=False,
                   env=podman_environment())


def _lines(fleet, job_id):
    return fleet.stdout(job_id).splitlines()


def test_a_non_root_image_runs_as_its_user_unless_the_job_asks_for_root(fleet, non_root_image):
    agent = fleet.agent("i-users")
    for job_id, extra in (("as-image", {}), ("as-root", {"withRoot": True})):
        agent.handle(RunCommand(taskToken=job_id, job=fleet.launch(
            job_id, non_root_image, 'echo "uid=$(id -u)"\n', **extra)))
        assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
        wait_for(lambda: agent.watch_job() or agent.job is None, 30, f"{job_id} to end")
    assert _lines(fleet, "as-image") == ["uid=1000"]
    assert _lines(fleet, "as-root") == ["uid=0"]


def test_privileged_options_and_host_dirs_reach_the_job_and_follow_it_to_a_new_host(fleet):
    first, second = fleet.agent("i-opts-1"), fleet.agent("i-opts-2")
    marker = fleet.host_root("i-opts-1") / "scratch" / "marker"
    marker.parent.mkdir(parents=True)
    marker.write_text("left by host 1\n")
    launch = fleet.launch("opts", BUSYBOX, SCRIPT, privileged=True,
                          containerOptions=["--shm-size=96m", "--cap-add=SYS_PTRACE"],
                          dirMaps=[{"hostPath": "/scratch", "containerPath": "/mnt/host"}])
    first.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: first.watch_job() or "n=8" in _lines(fleet, "opts"), 30, "the count to 8")
    first.handle(CheckpointCommand(taskToken="ckpt", jobId="opts", reason="move"))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    second.handle(RestoreCommand(taskToken="restore", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to end")

    lines = _lines(fleet, "opts")
    assert lines[0] == "uid=0"
    # Privileged: every capability (a default container lacks most, e.g. CAP_SYS_ADMIN).
    assert int(lines[1].split()[1], 16) >= 0x1FFFFFFFFF
    assert lines[2] == f"shm={96 * 1024}"
    assert lines[3] == "left by host 1"
    # One run, carried across: the count goes on and is never started again.
    assert [line for line in lines if line.startswith("n=")] == [f"n={n}" for n in range(1, 31)]
    # On host 2 the directory is host 2's own: nothing host 1 held or the job wrote there.
    assert lines[-1].strip() == ""
    host1 = fleet.host_root("i-opts-1") / "scratch"
    host2 = fleet.host_root("i-opts-2") / "scratch"
    assert sorted(p.name for p in host1.iterdir()) == ["first", "marker"]
    assert sorted(p.name for p in host2.iterdir()) == ["last"]
    assert [e.exitCode for e in fleet.events() if e.kind == "job-exited"] == [0]


def test_a_job_submitted_never_to_move_refuses_a_checkpoint_and_keeps_running(fleet):
    agent = fleet.agent("i-pinned")
    agent.handle(RunCommand(job=fleet.launch("pinned", BUSYBOX, "sleep 30\n",
                                             checkpointable=False)))
    agent.handle(CheckpointCommand(taskToken="ckpt", jobId="pinned", reason="move"))
    answer = fleet.sfn.answers[-1]
    assert answer["token"] == "ckpt" and answer["error"] == "CheckpointFailed"
    assert "disableMigrate" in answer["cause"]
    assert agent.podman.state(agent.container("pinned")).running


def test_a_published_port_answers_on_the_host(fleet):
    agent = fleet.agent("i-ports")
    port = free_port()
    server = ("#!/usr/bin/python3\nimport http.server\n"
              "http.server.HTTPServer(('', 8080), http.server.SimpleHTTPRequestHandler)"
              ".serve_forever()\n")
    agent.handle(RunCommand(taskToken="web", job=fleet.launch("web", PYTHON, server,
                                                              publish=[f"{port}:8080"])))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]

    def answered() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    wait_for(answered, 30, "the published port to answer")
    agent.handle(CancelCommand(taskToken="stop", jobId="web"))

"""A job's log as `float log` reads it, across a move to another instance and a rerun."""

from __future__ import annotations

from typing import Any

from tests.containers.conftest import BUSYBOX, wait_for
from tests.containers.test_checkpoint_restore import COUNTER

# The same count, slow enough that a machine with both cores busy still checkpoints it half-way.
SLOW_COUNTER = COUNTER.replace("sleep 0.1", "sleep 0.4")

NUMBERS = [str(n) for n in range(1, 41)] + ["done 40"]


class RecordingPuts:
    """Stands between an agent and one of its clients and records every object it puts."""

    def __init__(self, client: Any, puts: list[tuple[str, bytes]]) -> None:
        self._client = client
        self._puts = puts

    def put_object(self, **kwargs: Any) -> Any:
        self._puts.append((kwargs["Key"], kwargs["Body"]))
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_restored_job_sends_only_what_it_prints_after_the_move(fleet):
    puts: list[tuple[str, bytes]] = []
    first = fleet.agent("i-log-1")
    second = fleet.agent("i-log-2", wrap=lambda client: RecordingPuts(client, puts))
    launch = fleet.launch("moving-log", BUSYBOX, SLOW_COUNTER)
    first.run(launch)
    wait_for(lambda: first.watch_job() or len(fleet.stdout("moving-log").splitlines()) >= 8, 30,
             "the counter to reach 8")
    manifest = first.checkpoint("moving-log", "test move")
    shipped = fleet.stdout("moving-log")
    assert manifest.logSize is not None and manifest.logSize > 0

    second.restore(launch)
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to finish")
    log = fleet.stdout("moving-log")
    assert log.splitlines() == NUMBERS
    sent = b"".join(body for key, body in puts if "/logs/stdout/" in key).decode()
    assert sent == log[len(shipped):]


def test_a_job_run_again_from_the_start_shows_only_the_new_runs_output(fleet):
    first, second = fleet.agent("i-rerun-1"), fleet.agent("i-rerun-2")
    first.run(fleet.launch("rerun", BUSYBOX, COUNTER))
    wait_for(lambda: first.watch_job() or len(fleet.stdout("rerun").splitlines()) >= 5, 30,
             "the first run to count")
    first.podman.remove(first.container("rerun"))  # the instance is gone, with no checkpoint

    second.run(fleet.launch("rerun", BUSYBOX, "echo second run\n"))
    assert "1" not in fleet.stdout("rerun").splitlines()  # the first run's output is gone at once
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the rerun to finish")
    assert fleet.stdout("rerun") == "second run\n"

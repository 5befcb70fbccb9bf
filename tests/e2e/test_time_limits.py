"""`--timeLimit` on the local OpCenter: the agent stops a job that has run its limit, and the job
ends Timedout; the time a job spends being moved is not charged to it."""

from __future__ import annotations

import json
from datetime import datetime

from localmode.demo import check_result, expected_result, final_job, run_job_through_reclaims
from tests.e2e.conftest import python_image


def _at(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))


def test_a_job_that_runs_past_its_time_limit_is_stopped_and_ends_timedout(local, admin_cli,
                                                                          tmp_path):
    script = tmp_path / "long.sh"
    script.write_text("#!/bin/sh\necho started\nsleep 60\necho finished\n")
    job_id = json.loads(admin_cli("submit", "-i", python_image(admin_cli), "-j", str(script),
                                  "--timeLimit", "20s", "--format", "json"))["id"]
    job = final_job(admin_cli, job_id, timeout=180)
    assert job["status"] == "Timedout", job["history"]
    assert job["timeLimit"] == 20
    last = job["history"][-1]
    assert last["reason"] == "stopped: it ran for its time limit of 20 s"
    executing = next(h for h in job["history"] if h["to"] == "Executing")
    ran = (_at(last) - _at(executing)).total_seconds()
    assert 20 <= ran < 55, f"stopped after {ran} s of its 60 s sleep"
    stdout = admin_cli.stdout(job_id)
    assert "started" in stdout and "finished" not in stdout
    assert not local.live_instances(job_id)


def test_a_job_moved_twice_is_not_charged_for_its_moves(local, admin_cli):
    # About 36 s of work in a 44 s limit; moving 256 MiB twice takes the wall time past it
    # (48 s at the quickest seen, with the API in its own processes).
    steps, mib, limit = 36, 256, 44
    job = run_job_through_reclaims(admin_cli, python_image(admin_cli), steps=steps, mib=mib,
                                   reclaims=2, notice=15, say=lambda text: None,
                                   name="e2e-limit", at_steps=(5, 15),
                                   submit_flags=("--timeLimit", f"{limit}s"))
    check_result(admin_cli, job, steps, expected_result(steps, mib), reclaims=2)
    first = next(h for h in job["history"] if h["to"] == "Executing")
    wall = (_at(job["history"][-1]) - _at(first)).total_seconds()
    # Were the moves charged, this job would have been stopped: it spent longer than its
    # limit between starting and finishing.
    assert wall > limit, f"the moves took too little time to tell ({wall} s)"

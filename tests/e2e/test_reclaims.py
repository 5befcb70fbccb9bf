"""Real jobs survive real reclaims on the local OpCenter: the job's state lives only in memory,
its instance is reclaimed (warning, metadata notice, SIGKILL when the notice runs out), and it
must come back and finish with the result an uninterrupted run gives."""

from __future__ import annotations

import json
import re

from localmode.demo import (
    FINAL,
    JOB_SCRIPT,
    check_result,
    expected_result,
    final_job,
    last_step,
    run_job_through_reclaims,
    wait_until,
)
from tests.e2e.conftest import python_image


def test_a_job_survives_two_reclaims_with_its_result_intact(local, admin_cli):
    steps, mib = 30, 32
    job = run_job_through_reclaims(admin_cli, python_image(admin_cli), steps=steps, mib=mib,
                                   reclaims=2, notice=15, say=lambda text: None, name="e2e")
    check_result(admin_cli, job, steps, expected_result(steps, mib), reclaims=2)
    assert [m["checkpointSeq"] for m in job["migrations"]] == [1, 2]
    assert all(m["imageBytes"] > mib * 2**20 for m in job["migrations"])
    assert all(m["secondsToExecuting"] < 60 for m in job["migrations"])
    wait_until("the job's instances to be released",
               lambda: not local.live_instances(job["id"]) or None, timeout=30)
    wait_until("the job's containers to be removed",
               lambda: not local.containers_of(job["id"]) or None, timeout=30)


def _submit(cli, image, tmp_path, steps, mib, *extra):
    script = tmp_path / "work.py"
    script.write_text(JOB_SCRIPT)
    return json.loads(cli("submit", "-i", image, "-j", str(script), "-e", f"STEPS={steps}",
                          "-e", f"MIB={mib}", *extra, "--format", "json"))["id"]


def _executing_at_step(cli, job_id, step):
    def ready():
        job = cli.job(job_id)
        assert job["status"] not in FINAL, job["history"]
        return job if job["status"] == "Executing" and last_step(cli.stdout(job_id)) >= step \
            else None
    return wait_until(f"job {job_id} to reach step {step}", ready, timeout=240)


def _final(cli, job_id):
    return final_job(cli, job_id, timeout=400)


def test_a_notice_too_short_for_any_checkpoint_reruns_the_job(local, admin_cli, tmp_path):
    # 256 MiB takes seconds to dump and upload: one second of notice is not enough.
    steps, mib = 25, 256
    job_id = _submit(admin_cli, python_image(admin_cli), tmp_path, steps, mib)
    first = _executing_at_step(admin_cli, job_id, 3)
    admin_cli("reclaim", "-j", job_id, "--notice", "1")
    job = _final(admin_cli, job_id)
    assert job["status"] == "Completed", job["history"]
    assert any(h["reason"].startswith("no checkpoint could be restored: rerun from the start")
               for h in job["history"]), job["history"]
    [move] = job["migrations"]
    assert move["rerun"] is True and move["fromInstance"] == first["instanceId"]
    # The rerun's own output, from its first step to the result a run without reclaims gives.
    stdout = admin_cli.stdout(job_id)
    assert stdout.startswith("step 1/") and stdout.count("step 1/") == 1
    assert stdout.strip().endswith(f"result {expected_result(steps, mib)}")


def test_a_notice_too_short_restores_the_last_committed_checkpoint(local, admin_cli, tmp_path):
    steps, mib = 40, 256
    job_id = _submit(admin_cli, python_image(admin_cli), tmp_path, steps, mib)
    _executing_at_step(admin_cli, job_id, 3)
    admin_cli("reclaim", "-j", job_id, "--notice", "30")  # time enough: checkpoint 1
    _executing_at_step(admin_cli, job_id, 12)
    admin_cli("reclaim", "-j", job_id, "--notice", "1")  # killed while it checkpoints
    job = _final(admin_cli, job_id)
    assert job["status"] == "Completed", job["history"]
    assert re.search(r"\(checkpoint 1, the last committed one, taken \S+Z \(spot .+\): "
                     r"no new checkpoint could be taken\)$",
                     job["history"][-2]["reason"]), job["history"]
    assert [m["checkpointSeq"] for m in job["migrations"]] == [1, 1]
    stdout = admin_cli.stdout(job_id)
    assert stdout.count("step 1/") == 1  # never started over
    assert stdout.strip().endswith(f"result {expected_result(steps, mib)}")


def test_a_job_that_forbids_reruns_ends_checkpoint_failed_saying_why(local, admin_cli, tmp_path):
    job_id = _submit(admin_cli, python_image(admin_cli), tmp_path, 60, 256, "--disableRerun")
    _executing_at_step(admin_cli, job_id, 3)
    admin_cli("reclaim", "-j", job_id, "--notice", "1")
    job = _final(admin_cli, job_id)
    assert job["status"] == "CheckpointFailed", job["history"]
    assert "CheckpointNotFound" in job["history"][-1]["reason"]
    wait_until("the job's instances to be released",
               lambda: not local.live_instances(job_id) or None, timeout=30)


MOVES_ITSELF = """\
#!/bin/sh
i=0
while [ "$i" -lt 20 ]; do
  i=$((i + 1)); echo "step $i"
  if [ "$i" -eq 4 ]; then float migrate -f --reason "inputs loaded" > /dev/null && echo moving; fi
  sleep 1
done
echo "done $i"
"""


def test_a_job_moves_itself_with_float_migrate(local, admin_cli, tmp_path):
    listed = json.loads(admin_cli("image", "list", "--format", "json"))
    if not any(entry["name"] == "e2e-busybox" for entry in listed):
        admin_cli("image", "add", "e2e-busybox", "localhost/openfloat/busybox:local")
    script = tmp_path / "moves.sh"
    script.write_text(MOVES_ITSELF)
    job_id = json.loads(admin_cli("submit", "-i", "e2e-busybox", "-j", str(script),
                                  "--format", "json"))["id"]
    job = final_job(admin_cli, job_id, timeout=300)
    assert job["status"] == "Completed", job["history"]
    asked = [h for h in job["history"] if h["to"] == "Capturing"]
    assert [h["reason"] for h in asked] == [f"migrated by job {job_id} itself: inputs loaded"]
    [move] = job["migrations"]
    assert move["rerun"] is False and move["toInstance"] == job["instanceId"]
    lines = admin_cli.stdout(job_id).splitlines()
    assert lines.count("moving") == 1 and lines[-1] == "done 20" and lines.count("step 1") == 1


def test_a_job_lost_without_warning_resumes_from_its_periodic_checkpoint(local, admin_cli,
                                                                         tmp_path):
    steps, mib = 30, 32
    job_id = _submit(admin_cli, python_image(admin_cli), tmp_path, steps, mib,
                     "--checkpointInterval", "10s")
    assert admin_cli.job(job_id)["checkpointInterval"] == 10
    _executing_at_step(admin_cli, job_id, 3)
    # A checkpoint taken with the job running, reported and shown, while the job goes on.
    taken = wait_until("a periodic checkpoint", lambda: admin_cli.job(job_id)["lastCheckpoint"],
                       timeout=60, poll=0.5)
    assert taken["reason"] == "periodic checkpoint (every 10 s)", taken
    assert admin_cli.job(job_id)["status"] == "Executing"
    at_least = _executing_at_step(admin_cli, job_id, last_step(admin_cli.stdout(job_id)) + 2)
    # The instance is gone with no warning at all: no checkpoint can be taken now.
    admin_cli("reclaim", "-j", job_id, "--kind", "vanish")
    job = _final(admin_cli, job_id)
    assert job["status"] == "Completed", job["history"]
    back = next(h for h in job["history"] if h["reason"].startswith("resumed on"))
    assert re.search(r"\(checkpoint \d+, the last committed one, taken \S+Z \(periodic checkpoint "
                     r"\(every 10 s\)\): no new checkpoint could be taken\)$", back["reason"]), back
    [move] = job["migrations"]
    assert move["rerun"] is False and move["fromInstance"] == at_least["instanceId"]
    assert move["checkpointSeq"] >= taken["seq"]
    stdout = admin_cli.stdout(job_id)
    assert stdout.count("step 1/") == 1  # resumed, never started over
    assert stdout.strip().endswith(f"result {expected_result(steps, mib)}")

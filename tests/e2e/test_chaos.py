"""Chaos: several jobs at once, their instances reclaimed at random moments — while they run,
while they checkpoint (a notice too short to finish), while they restore (the replacement
reclaimed in turn) — or lost with no word at all: the instance gone without a warning or an
event, or the agent killed while the instance and the container live on. Every job must end
Completed with the right result, and nothing may be left running. The seed is printed, and
OPENFLOAT_CHAOS_SEED replays it."""

from __future__ import annotations

import functools
import json
import os
import random
import threading
import time

from localmode.demo import FINAL, JOB_SCRIPT, DemoFailed, expected_result, final_job, wait_until
from tests.e2e.conftest import python_image

STEPS, MIB = 40, 32
KINDS = ("running", "checkpointing", "restoring", "vanished", "agent killed")


def _replacement(cli, job_id: str, old: str) -> dict | None:
    """The job while it moves, once its replacement instance is launched."""
    job = cli.job(job_id)
    return job if job["status"] in ("Capturing", "Floating") and job["instanceId"] != old else None


def _reclaim_at_random(cli, job_id: str, rng: random.Random, log: list[str]) -> None:
    """Two reclaims of the job, each at a random moment of a random kind."""
    for _ in range(2):
        time.sleep(rng.uniform(3, 12))
        kind = rng.choice(KINDS)
        try:
            job = cli.job(job_id)
            if job["status"] in FINAL:
                return
            if kind == "running":
                cli("reclaim", "-j", job_id, "--notice", str(rng.randint(5, 20)))
            elif kind == "checkpointing":
                cli("reclaim", "-j", job_id, "--notice", "1")
            elif kind == "vanished":
                cli("reclaim", "-j", job_id, "--kind", "vanish")
            elif kind == "agent killed":
                cli("reclaim", "-j", job_id, "--kind", "agent")
            else:
                cli("reclaim", "-j", job_id, "--notice", "15")
                # The replacement is the job's instance as soon as it is launched.
                moving = wait_until("the replacement", functools.partial(
                    _replacement, cli, job_id, job["instanceId"]), timeout=60, poll=0.2)
                cli("reclaim", "-j", job_id, "--notice", "1")
                kind += f" ({moving['status']})"
            log.append(f"{job_id}: reclaimed while {kind}")
        except DemoFailed as failure:
            # The job moved on between the look and the reclaim: a race a user can meet too.
            log.append(f"{job_id}: {kind} reclaim not made: {failure}")


def test_reclaims_at_random_moments_end_every_job_well(local, admin_cli, tmp_path):
    seed = int(os.environ.get("OPENFLOAT_CHAOS_SEED", str(int(time.time()))))
    print(f"chaos seed {seed} (replay with OPENFLOAT_CHAOS_SEED={seed})", flush=True)
    rng = random.Random(seed)
    image = python_image(admin_cli)
    script = tmp_path / "work.py"
    script.write_text(JOB_SCRIPT)
    job_ids = [json.loads(admin_cli(
        "submit", "-i", image, "-j", str(script), "-n", f"chaos-{n}", "-e", f"STEPS={STEPS}",
        "-e", f"MIB={MIB}", "--format", "json"))["id"] for n in range(3)]
    for job_id in job_ids:
        wait_until(f"job {job_id} to start", lambda j=job_id: admin_cli.job(j)["status"] in (
            "Executing", *FINAL), timeout=240)
    log: list[str] = []
    chaos = [threading.Thread(target=_reclaim_at_random,
                              args=(admin_cli, job_id, random.Random(rng.random()), log))
             for job_id in job_ids]
    for thread in chaos:
        thread.start()
    for thread in chaos:
        thread.join(timeout=300)

    expected = expected_result(STEPS, MIB)
    story = f"seed {seed}:\n" + "\n".join(log)
    for job_id in job_ids:
        try:
            job = final_job(admin_cli, job_id, timeout=600)
        except DemoFailed as failure:
            raise AssertionError(f"{story}\n{failure}") from None
        assert job["status"] == "Completed", f"{story}\n{job_id}:\n" + "\n".join(
            f"  {step['time']} {step['to']}: {step['reason']}" for step in job["history"])
        assert admin_cli.stdout(job_id).strip().endswith(f"result {expected}"), story
        wait_until(f"job {job_id}'s instances to be released",
                   lambda j=job_id: not local.live_instances(j) or None, timeout=60)
        wait_until(f"job {job_id}'s containers to be removed",
                   lambda j=job_id: not local.containers_of(j) or None, timeout=30)

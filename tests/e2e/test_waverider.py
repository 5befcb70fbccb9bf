"""WaveRider on the local OpCenter, with real containers: each emulated instance's container
has its type's memory and vCPUs, so a job that outgrows its instance is really killed by the
kernel — unless its migratePolicy moves it first. CPU rules move a busy job up and an idle one
down. `float show` names each move's rule and figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

from localmode.demo import FINAL, final_job, wait_until
from tests.e2e.conftest import python_image

# Holds `TARGET_MIB` of memory by the end: fast up to `FAST_MIB`, then 2 MiB at a time, so
# that the control plane hears the job near its limit before the kernel kills it. Each chunk
# has its own byte value; the result is computed from what the memory holds at the end.
GROWER = '''\
#!/usr/bin/env python3
import hashlib, os, time
target = int(os.environ["TARGET_MIB"])
fast = int(os.environ["FAST_MIB"])
chunks = []
while len(chunks) < target:
    chunks.append(bytearray(bytes([len(chunks) % 251 + 1])) * (1 << 20))
    if len(chunks) > fast:
        if len(chunks) % 2 == 0:
            print(f"holding {len(chunks)} MiB", flush=True)
        time.sleep(0.25)
digest = hashlib.sha256()
for chunk in chunks:
    digest.update(chunk[:64])
    digest.update(chunk[-64:])
print(f"result {digest.hexdigest()}", flush=True)
'''

# Busy for SECONDS of wall time, then says so; or idle for as long.
BUSY = '''\
#!/usr/bin/env python3
import os, time
end = time.time() + float(os.environ["SECONDS"])
count = 0
while time.time() < end:
    count += 1
print("busy done", flush=True)
'''
IDLE = '''\
#!/bin/sh
sleep "$SECONDS"
echo "idle done"
'''


def _expected_grower(target_mib: int) -> str:
    import hashlib
    digest = hashlib.sha256()
    for index in range(target_mib):
        value = bytes([index % 251 + 1])
        digest.update(value * 64)
        digest.update(value * 64)
    return digest.hexdigest()


def _submit(cli, tmp_path: Path, script: str, *args: str) -> str:
    path = tmp_path / "job-script"
    path.write_text(script)
    return json.loads(cli("submit", "-i", python_image(cli), "-j", str(path), *args,
                          "--format", "json"))["id"]


def _story(job: dict) -> str:
    """The job's history, one change a line, for a failed assertion."""
    return "\n" + "\n".join(f"{h['time']} {h.get('from')} → {h['to']}: {h['reason']}"
                             for h in job["history"])


def _moves(job: dict) -> list[str]:
    return [m.get("cause") or m["reason"] for m in job["migrations"]]


def test_a_job_that_outgrows_its_instance_is_killed_for_memory_without_a_policy(
        local, admin_cli, tmp_path):
    job_id = _submit(admin_cli, tmp_path, GROWER, "-c", "1", "-m", "0.5",
                     "-e", "TARGET_MIB=900", "-e", "FAST_MIB=300")
    job = final_job(admin_cli, job_id, timeout=300)
    assert job["status"] == "FailToComplete", _story(job)
    assert job["history"][-1]["reason"].startswith(
        "out of memory (OOM): the kernel killed the job, which needed more than the memory "
        "of 0.5 GiB of its instance"), job["history"]
    assert not job["migrations"]
    # It really held memory up to its limit before the kernel killed it.
    held = [int(n) for n in re.findall(r"holding (\d+) MiB", admin_cli.stdout(job_id))]
    assert held and 380 <= max(held) <= 512, held[-5:]


def test_evade_oom_moves_a_growing_job_to_more_memory_before_the_kernel_kills_it(
        local, admin_cli, tmp_path):
    target = 560
    job_id = _submit(admin_cli, tmp_path, GROWER, "-c", "1", "-m", "0.5",
                     "-e", f"TARGET_MIB={target}", "-e", "FAST_MIB=380",
                     "--migratePolicy", "[evadeOOM=true]")
    job = final_job(admin_cli, job_id, timeout=400)
    assert job["status"] == "Completed", _story(job)
    [cause] = _moves(job)
    assert re.fullmatch(r"migrated by WaveRider: evadeOOM: memory \d+% of 0\.5 GB \(≥ 90%\): "
                        r"0\.5 GB → 1 GB", cause), cause
    [move] = job["migrations"]
    assert move["rerun"] is False and move["checkpointSeq"] is not None
    assert job["mem"]["min"] == 1
    stdout = admin_cli.stdout(job_id)
    assert stdout.strip().endswith(f"result {_expected_grower(target)}"), stdout[-300:]
    # Restored, not rerun: each amount was held once.
    assert stdout.count("holding 390 MiB") == 1
    shown = admin_cli("show", "-j", job_id, "-F", "table")
    migrations = shown[shown.index("\nMIGRATIONS\n"):]
    assert re.search(r"evadeOOM: memory \d+% of 0\.5 GB \(≥ 90%\): 0\.5 GB → 1 GB", migrations)
    assert "UTILIZATION:" in shown


def test_a_cpu_bound_job_is_moved_up(local, admin_cli, tmp_path):
    job_id = _submit(admin_cli, tmp_path, BUSY, "-c", "1", "-m", "1", "-e", "SECONDS=50",
                     "--migratePolicy", "[cpu.upperBoundRatio=80,cpu.upperBoundDuration=10s]")
    job = final_job(admin_cli, job_id, timeout=300)
    assert job["status"] == "Completed", _story(job)
    assert admin_cli.stdout(job_id).strip() == "busy done"
    causes = _moves(job)
    assert causes and re.fullmatch(r"migrated by WaveRider: cpu \d+% > 80% for 10 s: "
                                   r"1 vCPU → 2 vCPUs", causes[0]), causes
    assert job["cpu"]["min"] == 2
    utilization = json.loads(admin_cli("top", "-j", job_id, "--format", "json"))
    assert {p["vcpus"] for p in utilization} >= {1, 2}


def test_an_idle_job_is_moved_down(local, admin_cli, tmp_path):
    job_id = _submit(admin_cli, tmp_path, IDLE, "-c", "2", "-m", "2", "-e", "SECONDS=45",
                     "--migratePolicy", "[cpu.lowerBoundRatio=20,cpu.lowerBoundDuration=10s]")
    running = wait_until("the idle job to move", lambda: (
        lambda job: job if job["migrations"] or job["status"] in FINAL else None)(
            admin_cli.job(job_id)), timeout=240)
    assert running["status"] not in FINAL, running["history"]
    job = final_job(admin_cli, job_id, timeout=300)
    assert job["status"] == "Completed", _story(job)
    causes = _moves(job)
    assert causes and re.fullmatch(r"migrated by WaveRider: cpu \d+% < 20% for 10 s: "
                                   r"2 vCPUs → 1 vCPU", causes[0]), causes
    assert job["cpu"]["max"] == 1
    assert admin_cli.stdout(job_id).strip() == "idle done"

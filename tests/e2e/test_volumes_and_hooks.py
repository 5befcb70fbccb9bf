"""What a job keeps outside its checkpoint, across a real reclaim on the local OpCenter: an
NFS export it reads and writes, the host scripts that prepare and clean each host it visits,
and a host directory, which is each host's own."""

from __future__ import annotations

import json
import re

from localmode.demo import final_job, last_step, wait_until
from tests.e2e.conftest import python_image
from tests.nfs_server import start_nfs_server

STEPS = 30
JOB = f"""#!/bin/sh
cat /mnt/shared/input.txt
i=0
while [ $i -lt {STEPS} ]; do
  i=$((i+1))
  echo "n=$i" >> /mnt/shared/journal
  echo "step $i/{STEPS} on $(cat /mnt/host/prepared-by)"
  sleep 0.5
done
"""
HOST_INIT = """#!/bin/sh
echo "init on $FLOAT_INSTANCE_ID for $FLOAT_HOST_EVENT"
mkdir -p "$FLOAT_HOST_ROOT/scratch"
echo "$FLOAT_INSTANCE_ID" > "$FLOAT_HOST_ROOT/scratch/prepared-by"
"""
HOST_TERMINATE = """#!/bin/sh
echo "terminate on $FLOAT_INSTANCE_ID after $FLOAT_HOST_EVENT"
"""


def test_nfs_host_scripts_and_host_dirs_across_a_reclaim(local, admin_cli, tmp_path):
    server = start_nfs_server(tmp_path / "nfs-server")
    try:
        (server.export_dir / "input.txt").write_text("reference genome\n")
        files = {"job.sh": JOB, "init.sh": HOST_INIT, "terminate.sh": HOST_TERMINATE}
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        job_id = json.loads(admin_cli(
            "submit", "-i", python_image(admin_cli), "-j", str(tmp_path / "job.sh"),
            "--dataVolume", f"{server.url}:/mnt/shared", "--dirMap", "/scratch:/mnt/host",
            "--hostInit", str(tmp_path / "init.sh"),
            "--hostTerminate", str(tmp_path / "terminate.sh"), "--format", "json"))["id"]
        wait_until("the job to reach step 8",
                   lambda: last_step(admin_cli.stdout(job_id)) >= 8, timeout=240)
        first = admin_cli.job(job_id)["instanceId"]
        admin_cli("reclaim", "-j", job_id, "--notice", "30")
        job = final_job(admin_cli, job_id, timeout=300)
        journal = (server.export_dir / "journal").read_text().splitlines()
    finally:
        server.stop()

    assert job["status"] == "Completed", job["history"]
    [move] = job["migrations"]
    second = move["toInstance"]
    assert move["fromInstance"] == first and move["rerun"] is False
    # Written through NFS on both hosts, each step once: the job was moved, not started again.
    assert journal == [f"n={n}" for n in range(1, STEPS + 1)]
    stdout = admin_cli.stdout(job_id)
    assert stdout.splitlines()[0] == "reference genome"
    hosts = re.findall(r"(?m)^step (\d+)/\d+ on (\S+)$", stdout)
    assert sorted({int(n) for n, _ in hosts}) == list(range(1, STEPS + 1))
    # The host directory is each host's own: after the move the job read what the new host's
    # hostInit left there, never the old host's file.
    seen = [host for _, host in hosts]
    assert seen[0] == first and seen[-1] == second
    assert seen == sorted(seen, key=lambda host: host == second)
    init = admin_cli("log", "-j", job_id, "cat", "hostinit.log")
    assert f"init on {first} for start" in init and f"init on {second} for restore" in init
    assert init.index(first) < init.index(second)
    terminate = admin_cli("log", "-j", job_id, "cat", "hostterminate.log")
    assert f"terminate on {first} after checkpoint" in terminate
    assert f"terminate on {second} after exit" in terminate
    assert not local.live_instances(job_id)

"""A job whose state lives only in memory survives checkpoint → S3 → restore on another agent."""

import os
import subprocess
import sys
import time

import pytest

from agent.podman import checkpoint_mode
from chalicelib.wire.agent import CheckpointCommand, RestoreCommand, RunCommand
from tests.containers.conftest import BUSYBOX, PYTHON, wait_for

# A counter kept only in a shell variable: if restore started it again it would print 1 again.
COUNTER = """\
i=0
while [ $i -lt 40 ]; do
  i=$((i+1))
  echo $i
  sleep 0.1
done
echo "done $i"
"""

# 256 MB of random bytes that exist only in the process's memory, hashed before and after.
BIG_MEMORY = """\
#!/usr/bin/python3
import hashlib, os, time
data = bytearray(os.urandom(256 * 1024 * 1024))  # incompressible: the image is as big as it
before = hashlib.sha256(data).hexdigest()
print("holding", len(data) // 2**20, "MiB", flush=True)
for i in range(1, 31):
    print(i, flush=True)
    time.sleep(0.2)
print("intact" if hashlib.sha256(data).hexdigest() == before else "CORRUPTED", flush=True)
"""


def _lines(text):
    return text.splitlines()


def test_a_counter_continues_from_where_it_was_after_moving(fleet):
    first, second = fleet.agent("i-first"), fleet.agent("i-second")
    launch = fleet.launch("counter", BUSYBOX, COUNTER)
    first.handle(RunCommand(taskToken="run-1", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]

    def printed_some():
        first.watch_job()
        return len(_lines(fleet.stdout("counter"))) >= 8

    wait_for(printed_some, 30, "the counter to reach 8")
    first.handle(CheckpointCommand(taskToken="ckpt-1", jobId="counter", reason="test move"))
    assert fleet.sfn.answers[-1]["token"] == "ckpt-1" and "error" not in fleet.sfn.answers[-1]
    # While it worked, the agent told the waiting workflow it was alive.
    assert "ckpt-1" in fleet.sfn.heartbeats
    assert first.podman.state(first.container("counter")) is None  # the container is gone
    frozen_at = len(_lines(fleet.stdout("counter")))

    second.handle(RestoreCommand(taskToken="restore-1", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to finish")
    assert _lines(fleet.stdout("counter")) == [str(n) for n in range(1, 41)] + ["done 40"]
    assert 8 <= frozen_at < 40
    exits = [e for e in fleet.events() if e.kind == "job-exited"]
    assert [(e.instanceId, e.exitCode) for e in exits] == [("i-second", 0)]


def test_a_job_holding_256_mb_moves_with_its_memory_intact(fleet, capsys):
    first, second = fleet.agent("i-big-1"), fleet.agent("i-big-2")
    launch = fleet.launch("bigmem", PYTHON, BIG_MEMORY, memoryGiB=1)
    first.handle(RunCommand(job=launch))

    def counting():
        first.watch_job()
        return "3" in _lines(fleet.stdout("bigmem"))

    wait_for(counting, 60, "the job to allocate its memory and start counting")
    manifest = first.checkpoint("bigmem", "test move")
    restore_started = time.monotonic()
    second.restore(launch)
    restore_seconds = time.monotonic() - restore_started
    wait_for(lambda: second.watch_job() or second.job is None, 90, "the job to finish")
    lines = _lines(fleet.stdout("bigmem"))
    assert lines[0] == "holding 256 MiB" and lines[-1] == "intact"
    assert lines[1:-1] == [str(n) for n in range(1, 31)]
    assert manifest.archiveSize > 200 * 2**20
    with capsys.disabled():
        print(f"\n256 MiB job: frozen {manifest.stats.frozenTimeUs / 1e6:.2f}s, "
              f"checkpoint {manifest.checkpointSeconds:.2f}s, image {manifest.archiveSize / 2**20:.0f} MiB "
              f"in {len(manifest.parts)} parts, upload {manifest.uploadSeconds:.2f}s, "
              f"download+restore {restore_seconds:.2f}s, pages written {manifest.stats.pagesWritten}")


# 64 MiB held in memory, one MiB of it changed each step: a dump on a pre-dump holds only those.
# Each step prints the digest of all 64 MiB, as an uninterrupted run prints it.
CHANGING_MEMORY = """\
#!/usr/bin/python3
import hashlib, os, random, time
rng = random.Random(15)
data = bytearray(rng.randbytes(64 * 1024 * 1024))
for i in range(1, 41):
    data[(i % 64) << 20:((i % 64) + 1) << 20] = rng.randbytes(1024 * 1024)
    print(i, hashlib.sha256(data).hexdigest()[:16], flush=True)
    time.sleep(float(os.environ.get("PAUSE", "0.2")))
print("done", flush=True)
"""


def test_an_incremental_chain_restores_correctly(fleet):
    mode = checkpoint_mode()
    if not mode.incremental:
        pytest.skip(f"incremental checkpoints are not taken on this host: {mode.description}")
    first, second = fleet.agent("i-inc-1"), fleet.agent("i-inc-2")
    first.incremental = second.incremental = True
    launch = fleet.launch("chain", PYTHON, CHANGING_MEMORY, memoryGiB=1,
                          checkpointIntervalSeconds=3600)
    first.run(launch)

    def at(step):
        def reached():
            first.watch_job()
            return any(line.startswith(f"{step} ") for line in _lines(fleet.stdout("chain")))
        return reached

    wait_for(at(3), 60, "the job to start changing its memory")
    # A whole dump (there is nothing to build on yet), then a pre-dump.
    first.job.next_checkpoint = time.monotonic()
    periodic = first.periodic_checkpoint()
    assert periodic is not None and first.job.pre_dumped is not None
    pre_dump = first.capsules.manifest("chain", first.job.pre_dumped)
    assert pre_dump is not None and pre_dump.kind == "pre-dump"
    wait_for(at(8), 60, "the job to change more of its memory")
    final = first.checkpoint("chain", "test move")
    # Only what changed since the pre-dump: a few MiB of the 64 the job holds.
    assert final.previousSeq == pre_dump.seq and final.archiveSize < pre_dump.archiveSize / 2
    second.restore(launch)
    wait_for(lambda: second.watch_job() or second.job is None, 90, "the job to finish")
    uninterrupted = subprocess.run([sys.executable, "-c", CHANGING_MEMORY], check=True,
                                   env={**os.environ, "PAUSE": "0"}, capture_output=True,
                                   text=True).stdout
    # A page the chain lost or took from the wrong checkpoint changes every digest after it.
    assert _lines(fleet.stdout("chain")) == _lines(uninterrupted)


def test_restore_refuses_a_corrupted_image_with_a_named_error(fleet):
    first, second = fleet.agent("i-c1"), fleet.agent("i-c2")
    launch = fleet.launch("corrupt", BUSYBOX, COUNTER)
    first.run(launch)
    manifest = first.checkpoint("corrupt", "test")
    s3 = fleet.aws.client("s3")
    key = manifest.parts[0].key
    body = bytearray(s3.get_object(Bucket=fleet.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3.put_object(Bucket=fleet.bucket, Key=key, Body=bytes(body))
    second.handle(RestoreCommand(taskToken="restore-bad", job=launch))
    answer = fleet.sfn.answers[-1]
    assert answer["token"] == "restore-bad" and answer["error"] == "CheckpointCorrupt"
    assert second.podman.state(second.container("corrupt")) is None
    failed = [e for e in fleet.events() if e.kind == "command-failed"]
    assert failed[-1].error == "CheckpointCorrupt"


def test_checkpointing_a_job_that_is_not_here_is_a_named_failure(fleet):
    agent = fleet.agent("i-empty")
    agent.handle(CheckpointCommand(taskToken="t", jobId="ghost", reason="test"))
    assert fleet.sfn.answers[-1]["error"] == "CheckpointFailed"


@pytest.mark.parametrize("image", ["localhost/openfloat/nosuch:1"])
def test_an_unknown_local_image_is_a_named_pull_failure(fleet, image):
    agent = fleet.agent("i-pull")
    agent.handle(RunCommand(taskToken="t", job=fleet.launch("nopull", image, "true")))
    assert fleet.sfn.answers[-1]["error"] == "ImagePullFailed"

"""A job's host scripts around its real container: hostInit on the host before the container
starts and again before it is restored elsewhere, hostTerminate once it has left each host,
their output in the job's logs, and a failing hostInit ending the start or the restore."""

from chalicelib.logs import read_host_log
from chalicelib.wire.agent import CancelCommand, CheckpointCommand, RestoreCommand, RunCommand
from tests.containers.conftest import BUSYBOX, wait_for

# The volume is the job's, mounted on the host before hostInit runs: what hostInit writes
# there the job reads, so it ran first. MARKS is a host path the container never sees.
HOST_INIT = """\
#!/bin/sh
echo "init $FLOAT_INSTANCE_ID $FLOAT_HOST_EVENT" | tee -a "$FLOAT_JOB_DIR/volumes/0/from-host"
echo "init $FLOAT_INSTANCE_ID $FLOAT_HOST_EVENT" >> "$MARKS"
"""
HOST_TERMINATE = """\
echo "terminate $FLOAT_INSTANCE_ID $FLOAT_HOST_EVENT" >> "$MARKS"
echo "bye from $FLOAT_INSTANCE_ID"
"""
COUNTER = """\
cat /mnt/scratch/from-host
i=0
while [ $i -lt 30 ]; do i=$((i+1)); echo $i; sleep 0.1; done
cat /mnt/scratch/from-host
"""


def _with_scripts(fleet, job_id, image, script, init=None, terminate=None, **extra):
    s3 = fleet.aws.client("s3")
    keys = {}
    for name, text in (("hostInit", init), ("hostTerminate", terminate)):
        if text is not None:
            s3.put_object(Bucket=fleet.bucket, Key=f"jobs/{job_id}/{name}", Body=text.encode())
            keys[f"{name}Key"] = f"jobs/{job_id}/{name}"
    return fleet.launch(job_id, image, script, **keys, **extra)


def _host_log(fleet, job_id, script):
    text = read_host_log(fleet.aws.client("s3"), fleet.bucket, job_id, script)
    return (text or b"").decode().splitlines()


def test_host_scripts_run_on_each_host_a_moved_job_visits(fleet, tmp_path):
    marks = tmp_path / "marks"
    first, second = fleet.agent("i-hs-1"), fleet.agent("i-hs-2")
    launch = _with_scripts(fleet, "visits", BUSYBOX, COUNTER, HOST_INIT, HOST_TERMINATE,
                           env={"MARKS": str(marks)}, dataVolumes=["[size=1]:/mnt/scratch"])
    first.handle(RunCommand(taskToken="run", job=launch,
                            volumes=[fleet.attach("i-hs-1", "vol-visits", 0)]))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    assert marks.read_text().splitlines() == ["init i-hs-1 start"]
    wait_for(lambda: first.watch_job() or len(fleet.stdout("visits").splitlines()) >= 6, 30,
             "the job to count")

    first.handle(CheckpointCommand(taskToken="move", jobId="visits", reason="test move"))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    # Taken once the checkpoint was, before the answer that lets the old instance go.
    assert marks.read_text().splitlines()[-1] == "terminate i-hs-1 checkpoint"

    second.handle(RestoreCommand(taskToken="restore", job=launch, volumes=[
        fleet.attach("i-hs-2", "vol-visits", 0, detach_from="i-hs-1")]))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to finish")

    assert marks.read_text().splitlines() == [
        "init i-hs-1 start", "terminate i-hs-1 checkpoint", "init i-hs-2 restore",
        "terminate i-hs-2 exit"]
    lines = fleet.stdout("visits").splitlines()
    # Before its first start the job found what hostInit left; after its restore, what the
    # second host's hostInit added, run before the container came back.
    assert lines[0] == "init i-hs-1 start"
    assert lines[1:31] == [str(n) for n in range(1, 31)]
    assert lines[31:] == ["init i-hs-1 start", "init i-hs-2 restore"]

    init_log = _host_log(fleet, "visits", "hostInit")
    headers = [line for line in init_log if line.startswith("==> hostInit on ")]
    assert [h.split()[3] for h in headers] == ["i-hs-1", "i-hs-2"]
    assert "init i-hs-1 start" in init_log and "init i-hs-2 restore" in init_log
    terminate_log = _host_log(fleet, "visits", "hostTerminate")
    assert [line for line in terminate_log if line.startswith("bye")] == [
        "bye from i-hs-1", "bye from i-hs-2"]
    (exited,) = [e for e in fleet.events() if e.kind == "job-exited"]
    assert (exited.instanceId, exited.exitCode, exited.hostTerminateFailure) == ("i-hs-2", 0, None)


def test_a_failing_host_init_fails_the_start_and_no_container_is_made(fleet):
    agent = fleet.agent("i-hs-bad")
    init = "echo checking\necho 'cannot reach the licence server' >&2\nexit 3\n"
    launch = _with_scripts(fleet, "unlicensed", BUSYBOX, "echo never\n", init)
    agent.handle(RunCommand(taskToken="run", job=launch))
    answer = fleet.sfn.answers[-1]
    assert answer["error"] == "HostInitFailed"
    assert answer["cause"] == ("job unlicensed on i-hs-bad: its hostInit script exited with code "
                               "3 (its last line: cannot reach the licence server)")
    assert agent.job is None and agent.podman.state(agent.container("unlicensed")) is None
    (failed,) = [e for e in fleet.events() if e.kind == "command-failed"]
    assert (failed.command, failed.error) == ("run", "HostInitFailed")
    log = _host_log(fleet, "unlicensed", "hostInit")
    assert log[1:3] == ["checking", "cannot reach the licence server"]
    assert log[-1].startswith("==> exit code 3 after ")
    assert fleet.stdout("unlicensed") == ""


def test_a_host_init_that_fails_on_the_new_host_stops_the_restore(fleet):
    init = '[ "$FLOAT_INSTANCE_ID" != i-hs-r2 ] || { echo "no scratch disk"; exit 5; }\n'
    first, second = fleet.agent("i-hs-r1"), fleet.agent("i-hs-r2")
    launch = _with_scripts(fleet, "stranded", BUSYBOX, "while true; do sleep 1; done\n", init)
    first.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    first.handle(CheckpointCommand(taskToken="move", jobId="stranded", reason="test move"))
    second.handle(RestoreCommand(taskToken="restore", job=launch))
    answer = fleet.sfn.answers[-1]
    assert answer["error"] == "HostInitFailed" and "exited with code 5" in answer["cause"]
    assert "no scratch disk" in answer["cause"]
    assert second.job is None and second.podman.state(second.container("stranded")) is None
    assert [line.split()[3] for line in _host_log(fleet, "stranded", "hostInit")
            if line.startswith("==> hostInit")] == ["i-hs-r1", "i-hs-r2"]


def test_host_terminate_runs_after_a_cancel_and_its_failure_is_reported_with_an_exit(fleet,
                                                                                   tmp_path):
    marks = tmp_path / "marks"
    agent = fleet.agent("i-hs-end")
    terminate = 'echo "terminate $FLOAT_HOST_EVENT" >> "$MARKS"\necho "umount: busy"\nexit 2\n'
    doomed = _with_scripts(fleet, "doomed", BUSYBOX, "while true; do sleep 1; done\n",
                           terminate=terminate, env={"MARKS": str(marks)})
    agent.handle(RunCommand(job=doomed))
    agent.handle(CancelCommand(taskToken="cancel", jobId="doomed"))
    assert fleet.sfn.answers[-1] == {"token": "cancel", "output": {"cancelled": "doomed"}}
    assert marks.read_text().splitlines() == ["terminate cancel"]

    quick = _with_scripts(fleet, "quick", BUSYBOX, "echo done\n", terminate=terminate,
                          env={"MARKS": str(marks)})
    agent.handle(RunCommand(job=quick))
    wait_for(lambda: agent.watch_job() or agent.job is None, 30, "the job to exit")
    (exited,) = [e for e in fleet.events() if e.kind == "job-exited"]
    assert exited.exitCode == 0
    assert exited.hostTerminateFailure == ("its hostTerminate script exited with code 2 (its "
                                           "last line: umount: busy)")
    assert marks.read_text().splitlines() == ["terminate cancel", "terminate exit"]

"""NFS data volumes against a real NFS server: the job's files land on the export, and a job
moved by checkpoint and restore finds the export mounted again on its new host."""

import hashlib
import subprocess

from agent.podman import podman_environment
from agent.volumes import S3Access, mount_volumes, unmount_volumes
from chalicelib.wire.agent import RunCommand
from chalicelib.wire.datavolumes import DataVolume
from tests.containers.conftest import BUSYBOX, wait_for
from tests.nfs_server import start_nfs_server

# Files made, renamed, appended to, listed and removed: what a pipeline step does to a share.
WORKER = """\
mkdir -p /mnt/shared/run-1/tmp
cp /mnt/shared/inputs/sample.txt /mnt/shared/run-1/tmp/copy.txt
echo "read: $(cat /mnt/shared/run-1/tmp/copy.txt)" > /mnt/shared/run-1/tmp/part
echo "written in the job" >> /mnt/shared/run-1/tmp/part
mv /mnt/shared/run-1/tmp/part /mnt/shared/run-1/result.txt
dd if=/dev/zero of=/mnt/shared/run-1/zeros.bin bs=1024 count=4096 2>/dev/null
rm /mnt/shared/run-1/tmp/copy.txt
rmdir /mnt/shared/run-1/tmp
ls /mnt/shared/run-1
echo finished
"""

# Appends a line per step through a file it keeps open across the move (CRIU reopens it on the
# new host's mount); then reads a file the server gained while the job was frozen.
COUNTER = """\
exec 3>> /mnt/shared/counts.txt
i=0
while [ $i -lt 30 ]; do i=$((i+1)); echo $i >&3; echo $i; sleep 0.1; done
echo "saw: $(cat /mnt/shared/between.txt)" >&3
echo finished
"""


def test_a_job_writes_its_files_onto_the_nfs_export(fleet, nfs_server):
    inputs = nfs_server.export_dir / "inputs"
    inputs.mkdir()
    (inputs / "sample.txt").write_text("NA12878\n")
    launch = fleet.launch("nfsjob", BUSYBOX, WORKER,
                          dataVolumes=[f"{nfs_server.url}:/mnt/shared"])
    agent = fleet.agent("i-nfs-1")
    agent.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: agent.watch_job() or agent.job is None, 60, "the job to finish")
    assert fleet.stdout("nfsjob").splitlines() == ["result.txt", "zeros.bin", "finished"]

    run = nfs_server.export_dir / "run-1"
    assert (run / "result.txt").read_text() == "read: NA12878\nwritten in the job\n"
    assert (run / "zeros.bin").read_bytes() == bytes(4096 * 1024)
    assert sorted(p.name for p in run.iterdir()) == ["result.txt", "zeros.bin"]
    # The job is over: its mount and the userspace client serving it are gone.
    assert not any((fleet.job_root / "nfsjob" / "volumes" / "0").iterdir())
    assert not list((fleet.job_root / "nfsjob" / "nfs").glob("*.pid"))


def test_a_moved_job_finds_its_nfs_files_on_the_new_host(fleet, nfs_server):
    launch = fleet.launch("nfsmove", BUSYBOX, COUNTER,
                          dataVolumes=[f"{nfs_server.url}:/mnt/shared"])
    first, second = fleet.agent("i-nfs-a"), fleet.agent("i-nfs-b")
    first.handle(RunCommand(taskToken="run", job=launch))
    assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
    wait_for(lambda: first.watch_job() or len(fleet.stdout("nfsmove").splitlines()) >= 8, 30,
             "the job to count to 8")

    manifest = first.checkpoint("nfsmove", "move")
    mountpoint = fleet.job_root / "nfsmove" / "volumes" / "0"
    assert not any(mountpoint.iterdir())  # unmounted on the old host
    assert manifest.archiveSize < 5 * 2**20  # the share's files are not in the image
    frozen = (nfs_server.export_dir / "counts.txt").read_text().splitlines()
    assert 8 <= len(frozen) < 30
    (nfs_server.export_dir / "between.txt").write_text("written while frozen\n")

    second.restore(launch)
    wait_for(lambda: second.watch_job() or second.job is None, 60, "the job to finish")
    assert fleet.stdout("nfsmove").splitlines()[-1] == "finished"
    counts = (nfs_server.export_dir / "counts.txt").read_text().splitlines()
    # One line per step, none repeated or lost across the move, then the file seen after it.
    assert counts == [str(n) for n in range(1, 31)] + ["saw: written while frozen"]


def test_a_container_user_writes_where_the_export_lets_it_and_owns_what_it_makes(
        nfs_server, tmp_path, local_images):
    (nfs_server.export_dir / "team").mkdir(mode=0o777)
    (nfs_server.export_dir / "team").chmod(0o777)
    (nfs_server.export_dir / "private").mkdir(mode=0o700)
    job_dir = tmp_path / "job"
    [(source, target)] = mount_volumes(
        [DataVolume.model_validate(f"{nfs_server.url}:/mnt/shared")], job_dir, S3Access())
    script = """
        yes 0123456789abcde | head -c 67108864 > /mnt/shared/team/big.txt
        echo mine > /mnt/shared/team/mine.txt && mkdir /mnt/shared/team/dir
        ls /mnt/shared/private 2>/dev/null || echo "private: refused"
        echo x 2>/dev/null > /mnt/shared/top.txt || echo "top: refused"
        wc -c < /mnt/shared/team/big.txt
    """
    try:
        result = subprocess.run(
            ["podman", "run", "--rm", "--network=none", "--user", "1000:1000", "-v",
             f"{source}:{target}", BUSYBOX, "sh", "-c", script],
            env=podman_environment(), capture_output=True, text=True, timeout=120, check=False)
    finally:
        unmount_volumes(job_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["private:", "refused", "top:", "refused", "67108864"]
    team = nfs_server.export_dir / "team"
    assert {(p.name, p.stat().st_uid, p.stat().st_gid) for p in team.iterdir()} == {
        ("big.txt", 1000, 1000), ("mine.txt", 1000, 1000), ("dir", 1000, 1000)}
    expected = hashlib.sha256(b"0123456789abcde\n" * (2**26 // 16)).hexdigest()
    assert hashlib.sha256((team / "big.txt").read_bytes()).hexdigest() == expected
    assert not (nfs_server.export_dir / "top.txt").exists()
    assert not list((job_dir / "nfs").glob("*.pid"))  # the userspace client left with the mount


def test_root_in_a_job_is_squashed_where_the_export_says_so(tmp_path, local_images):
    server = start_nfs_server(tmp_path / "squashing", root_squash=True)
    try:
        (server.export_dir / "open").mkdir()
        (server.export_dir / "open").chmod(0o777)
        job_dir = tmp_path / "job"
        [(source, target)] = mount_volumes(
            [DataVolume.model_validate(f"{server.url}:/mnt/shared")], job_dir, S3Access())
        script = """
            echo a > /mnt/shared/open/by-root.txt
            echo b 2>/dev/null > /mnt/shared/top.txt || echo "top: refused"
        """
        try:
            result = subprocess.run(
                ["podman", "run", "--rm", "--network=none", "-v", f"{source}:{target}", BUSYBOX,
                 "sh", "-c", script],
                env=podman_environment(), capture_output=True, text=True, timeout=120, check=False)
        finally:
            unmount_volumes(job_dir)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["top:", "refused"]
        made = server.export_dir / "open" / "by-root.txt"
        assert made.read_text() == "a\n" and made.stat().st_uid != 0  # the server's anonymous user
        assert not (server.export_dir / "top.txt").exists()
    finally:
        server.stop()

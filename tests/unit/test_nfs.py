"""Which NFS client mounts a volume, and how the kernel's is asked to."""

from pathlib import Path

import pytest

from agent.nfs import NfsExport, choose_client, fuse_command, kernel_mount_command
from chalicelib.wire.failures import JobStartFailed

# /proc/filesystems of this project's test machines: FUSE, no NFS client.
WITHOUT_NFS = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\tfuse\nnodev\tfusectl\n\txfs\n"
# An EC2 kernel once the nfs module is loaded.
WITH_NFS = WITHOUT_NFS + "nodev\tnfs\nnodev\tnfs4\n"


def test_the_kernel_client_is_used_when_the_kernel_lists_nfs():
    assert choose_client(WITH_NFS) == "kernel"
    assert choose_client("nodev\tnfs4\n") == "kernel"


def test_the_userspace_client_is_used_when_the_kernel_has_no_nfs():
    assert choose_client(WITHOUT_NFS) == "fuse"
    assert choose_client("nodev\tnfsd\n\tfuseblk\n") == "fuse"  # nfsd is the server side


def test_an_export_address_may_carry_a_port():
    assert NfsExport.parse("nfs://files.lab/exports/genomes") == NfsExport(
        "files.lab", "/exports/genomes")
    export = NfsExport.parse("nfs://127.0.0.1:20490/export/")
    assert (export.host, export.port, export.path) == ("127.0.0.1", 20490, "/export")
    assert export.url == "nfs://127.0.0.1:20490/export"
    assert NfsExport.parse("nfs://files.lab/").path == "/"


@pytest.mark.parametrize("source", ["nfs:///export", "nfs://host:port/export", "s3://b/k"])
def test_a_malformed_export_address_is_refused_with_the_reason(source):
    with pytest.raises(JobStartFailed, match="nfs://|port"):
        NfsExport.parse(source)


def test_efs_is_mounted_with_nfs_4_1_and_the_options_aws_gives():
    efs = NfsExport.parse("nfs://fs-0123abcd.efs.us-east-1.amazonaws.com/")
    command = kernel_mount_command(efs, Path("/jobs/j1/volumes/0"), read_only=False)
    assert command[:3] == ["mount", "-t", "nfs4"]
    options = command[4].split(",")
    assert options[0] == "vers=4.1"
    assert {"hard", "timeo=600", "retrans=2", "noresvport", "rsize=1048576", "wsize=1048576",
            "rw"} <= set(options)
    assert command[5:] == ["fs-0123abcd.efs.us-east-1.amazonaws.com:/", "/jobs/j1/volumes/0"]


def test_another_server_negotiates_its_version_and_keeps_its_port_and_read_only_mode():
    export = NfsExport.parse("nfs://files.lab:20490/exports/ref")
    command = kernel_mount_command(export, Path("/m"), read_only=True)
    options = command[4].split(",")
    assert not any(option.startswith("vers=") for option in options)
    assert {"hard", "port=20490", "ro"} <= set(options)
    assert command[5] == "files.lab:/exports/ref"


def test_the_userspace_client_is_told_the_export_mountpoint_and_mode():
    export = NfsExport.parse("nfs://127.0.0.1:20490/export")
    command = fuse_command(export, Path("/jobs/j1/volumes/1"), read_only=True, ready_fd=7)
    assert command[1:] == ["-m", "agent.nfsfuse", "nfs://127.0.0.1:20490/export",
                           "/jobs/j1/volumes/1", "--ready-fd", "7", "--read-only"]

"""The agent's cgroup reader against fake /proc and /sys trees: both cgroup layouts, mount roots
that are not "/", limits and their absence, and samples over an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.utilization import KernelLog, Sampler, find_cgroup

MIB = 1024 * 1024
PID = 4242


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def proc_tree(root: Path, cgroup_lines: str, mountinfo: str, threads: dict[int, int]) -> Path:
    proc = root / "proc"
    write(proc / str(PID) / "cgroup", cgroup_lines)
    write(proc / "self" / "mountinfo", mountinfo)
    write(proc / "meminfo", "MemTotal:       8000000 kB\nMemFree:        100 kB\n")
    for tid, wait in threads.items():
        write(proc / str(tid) / "schedstat", f"123 {wait} 7\n")
    return proc


@pytest.fixture
def v2(tmp_path: Path) -> tuple[Path, Path]:
    fs = tmp_path / "sys" / "fs" / "cgroup"
    group = fs / "machine.slice" / "libpod-abc.scope"
    write(group / "cpu.stat", "usage_usec 1000000\nuser_usec 900000\nsystem_usec 100000\n")
    write(group / "cpu.max", "200000 100000\n")
    write(group / "memory.current", str(300 * MIB))
    write(group / "memory.stat", f"anon {200 * MIB}\ninactive_file {100 * MIB}\n")
    write(group / "memory.max", str(1024 * MIB))
    write(group / "memory.swap.current", "0\n")
    write(group / "memory.pressure", "some avg10=1.50 avg60=0.20 avg300=0.00 total=12\n"
                                     "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    write(group / "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    write(group / "cgroup.threads", f"{PID}\n{PID + 1}\n")
    proc = proc_tree(tmp_path, "0::/machine.slice/libpod-abc.scope\n",
                     f"30 23 0:26 / {fs} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
                     {PID: 0, PID + 1: 0})
    return proc, group


def test_v2_cgroup_is_found_from_the_process(v2: tuple[Path, Path]) -> None:
    proc, group = v2
    found = find_cgroup(PID, proc)
    assert found is not None
    assert (found.version, found.memory, found.unified) == (2, group, group)
    assert found.memory_name == "/machine.slice/libpod-abc.scope"


def test_v2_sample_gives_cpu_demand_and_memory_over_the_interval(v2: tuple[Path, Path]) -> None:
    proc, group = v2
    clock = Clock()
    sampler = Sampler.of(PID, proc, clock)
    assert sampler is not None
    assert sampler.look() is not None
    # 10 s pass: 10 CPU-seconds used of a 2-vCPU budget of 20, and the threads waited 4 s more.
    clock.now += 10
    write(group / "cpu.stat", "usage_usec 11000000\n")
    write(proc / str(PID) / "schedstat", "1 3000000000 9\n")
    write(proc / str(PID + 1) / "schedstat", "1 1000000000 9\n")
    write(group / "memory.current", str(600 * MIB))
    write(group / "memory.stat", f"inactive_file {50 * MIB}\n")
    sample = sampler.sample()
    assert sample is not None
    assert sample.seconds == 10.0 and sample.vcpus == 2.0
    assert sample.cpuRatio == 50.0
    assert sample.cpuDemandRatio == 70.0
    assert sample.memoryBytes == 550 * MIB
    assert sample.memoryLimitBytes == 1024 * MIB
    assert sample.memoryPressure == 1.5
    assert sample.oomKills == 1
    assert not sample.pressing


def test_the_peak_between_samples_is_kept(v2: tuple[Path, Path]) -> None:
    proc, group = v2
    clock = Clock()
    sampler = Sampler.of(PID, proc, clock)
    assert sampler is not None
    sampler.look()
    clock.now += 2
    write(group / "memory.current", str(1000 * MIB))
    write(group / "memory.stat", "inactive_file 0\n")
    reading = sampler.look()
    assert reading is not None and reading.pressing  # 1000 of 1024 MiB is ≥ 90 %
    clock.now += 2
    write(group / "memory.current", str(400 * MIB))
    sample = sampler.sample()
    assert sample is not None
    assert (sample.memoryBytes, sample.memoryPeakBytes) == (400 * MIB, 1000 * MIB)
    # The next sample's peak starts again from what the container holds now.
    clock.now += 2
    again = sampler.sample()
    assert again is not None and again.memoryPeakBytes == 400 * MIB


def test_no_limit_means_the_machine_and_swap_or_pressure_press(v2: tuple[Path, Path]) -> None:
    proc, group = v2
    write(group / "memory.max", "max\n")
    write(group / "cpu.max", "max 100000\n")
    clock = Clock()
    sampler = Sampler.of(PID, proc, clock)
    assert sampler is not None
    sampler.host_cpus = 2.0
    sampler.look()
    clock.now += 5
    write(group / "memory.swap.current", str(4 * MIB))
    sample = sampler.sample()
    assert sample is not None
    assert sample.memoryLimitBytes == 8000000 * 1024
    assert sample.vcpus == 2.0
    assert sample.swapBytes == 4 * MIB and sample.pressing
    write(group / "memory.swap.current", "0\n")
    write(group / "memory.pressure", "some avg10=12.00 avg60=1.00 avg300=0.10 total=99\n")
    reading = sampler.look()
    assert reading is not None and reading.pressing


def test_a_sample_too_soon_or_after_the_container_is_gone_is_none(v2: tuple[Path, Path]) -> None:
    proc, group = v2
    clock = Clock()
    sampler = Sampler.of(PID, proc, clock)
    assert sampler is not None
    sampler.look()
    clock.now += 0.5
    assert sampler.sample() is None
    clock.now += 5
    for name in ("cpu.stat", "memory.current"):
        (group / name).unlink()
    assert sampler.look() is None
    assert sampler.sample() is None


def test_a_process_that_is_gone_has_no_cgroup(v2: tuple[Path, Path]) -> None:
    proc, _ = v2
    assert find_cgroup(PID + 99, proc) is None
    assert Sampler.of(PID + 99, proc) is None


@pytest.fixture
def v1(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """cgroup v1 with each controller mounted from a root that is not "/" (as inside a
    container that sees its own part of the host's tree), and the unified tree beside it."""
    fs = tmp_path / "sys" / "fs" / "cgroup"
    name = "/libpod_parent/libpod-abc"
    dirs = {"cpu": fs / "cpu,cpuacct" / "libpod-abc", "memory": fs / "memory" / "libpod-abc",
            "unified": fs / "unified" / "libpod_parent" / "libpod-abc"}
    write(dirs["cpu"] / "cpuacct.usage", "5000000000\n")
    write(dirs["cpu"] / "cpu.cfs_quota_us", "100000\n")
    write(dirs["cpu"] / "cpu.cfs_period_us", "100000\n")
    write(dirs["cpu"] / "tasks", f"{PID}\n")
    write(dirs["memory"] / "memory.usage_in_bytes", str(200 * MIB))
    write(dirs["memory"] / "memory.stat", f"cache {10 * MIB}\ntotal_inactive_file {40 * MIB}\n")
    write(dirs["memory"] / "memory.limit_in_bytes", str(256 * MIB))
    write(dirs["memory"] / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    write(dirs["unified"] / "memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    mountinfo = (
        f"40 30 0:36 /libpod_parent {fs}/cpu\\054cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        f"41 30 0:37 /libpod_parent {fs}/memory rw - cgroup cgroup rw,memory\n"
        f"42 30 0:38 / {fs}/unified rw - cgroup2 cgroup2 rw\n")
    proc = proc_tree(tmp_path, f"12:memory:{name}\n4:cpu,cpuacct:{name}\n0::{name}\n",
                     mountinfo, {PID: 0})
    return proc, dirs


def test_v1_cgroup_under_a_mount_root_is_found(v1: tuple[Path, dict[str, Path]]) -> None:
    proc, dirs = v1
    found = find_cgroup(PID, proc)
    assert found is not None
    assert (found.version, found.cpu, found.cpuacct, found.memory, found.unified) == (
        1, dirs["cpu"], dirs["cpu"], dirs["memory"], dirs["unified"])
    assert found.memory_name == "/libpod_parent/libpod-abc"


def test_v1_sample(v1: tuple[Path, dict[str, Path]]) -> None:
    proc, dirs = v1
    clock = Clock()
    sampler = Sampler.of(PID, proc, clock)
    assert sampler is not None
    sampler.look()
    clock.now += 4
    write(dirs["cpu"] / "cpuacct.usage", "6000000000\n")
    sample = sampler.sample()
    assert sample is not None
    assert (sample.vcpus, sample.cpuRatio, sample.cpuDemandRatio) == (1.0, 25.0, 25.0)
    assert sample.memoryBytes == 160 * MIB and sample.memoryLimitBytes == 256 * MIB
    assert sample.memoryPressure == 0.0 and sample.oomKills == 2 and sample.swapBytes == 0


def test_kernel_log_finds_only_the_named_cgroup(tmp_path: Path) -> None:
    log = tmp_path / "kmsg"
    log.write_text(
        "6,1,2,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
        "mems_allowed=0,oom_memcg=/libpod_parent/libpod-abcd,"
        "task_memcg=/libpod_parent/libpod-abcd,task=python3,pid=1,uid=0\n")
    kernel = KernelLog(log)
    assert kernel.killed_in("/libpod_parent/libpod-abcd")
    assert not kernel.killed_in("/libpod_parent/libpod-abc")
    assert not KernelLog(tmp_path / "missing").killed_in("/libpod_parent/libpod-abcd")

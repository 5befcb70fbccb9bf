"""What the job's container uses of its instance, read from its cgroup: the samples heartbeats
carry (wire.utilization), and whether the kernel killed the job for memory.

Both cgroup layouts are read: v2 (one unified tree, as on Amazon Linux 2023) and v1 (a tree
per controller, with the unified tree beside it for pressure figures where the kernel has one).
The container is found by its main process: `/proc/<pid>/cgroup` names its cgroup in each tree
and `/proc/self/mountinfo` says where those trees are mounted.

CPU demand adds to the CPU time used the time the container's threads were ready to run but
waited for a CPU (the kernel's per-thread `schedstat` run delay). The memory working set is the
usage less the inactive file cache, which the kernel takes back before it kills anything.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chalicelib.wire.utilization import EVADE_PRESSURE, EVADE_RATIO, Utilization

# A limit this high is no limit (v1 writes 2^63 rounded down to a page).
_NO_LIMIT = 2**60
# A sample shorter than this says more about the clock than about the job.
MIN_SAMPLE_SECONDS = 1.0
# Threads whose run delay is read for one sample, at most: a bound on the agent's own work.
MAX_THREADS = 4096


@dataclass(frozen=True)
class Cgroup:
    """Where one container's cgroup files are."""

    version: int
    cpu: Path
    cpuacct: Path
    memory: Path
    # The unified tree's directory (pressure files), if there is one.
    unified: Path | None
    # The memory cgroup's own name, as the kernel prints it in an OOM report.
    memory_name: str


def _unescape(text: str) -> str:
    # mountinfo writes spaces, tabs, newlines and backslashes as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _mounts(mountinfo: str) -> tuple[dict[str, tuple[Path, str]], tuple[Path, str] | None]:
    """v1 controller → (mount point, root), and the unified tree's (mount point, root)."""
    v1: dict[str, tuple[Path, str]] = {}
    v2: tuple[Path, str] | None = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount = (Path(_unescape(fields[4])), _unescape(fields[3]))
        if tail[0] == "cgroup2" and v2 is None:
            v2 = mount
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                v1.setdefault(option, mount)
    return v1, v2


def _under(mount: tuple[Path, str], name: str) -> Path:
    point, root = mount
    if root != "/" and (name == root or name.startswith(root + "/")):
        name = name[len(root):]
    return point / name.lstrip("/")


def find_cgroup(pid: int, proc: Path = Path("/proc")) -> Cgroup | None:
    """The cgroup of process `pid`, or None if it is gone or its trees are not mounted here."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
        v1_mounts, v2_mount = _mounts((proc / "self" / "mountinfo").read_text())
    except OSError:
        return None
    names: dict[str, str] = {}
    unified_name: str | None = None
    for line in lines:
        hierarchy, controllers, name = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            unified_name = name
        for controller in filter(None, controllers.split(",")):
            names[controller] = name
    unified = _under(v2_mount, unified_name) if v2_mount and unified_name is not None else None
    if all(c in names and c in v1_mounts for c in ("memory", "cpu", "cpuacct")):
        found = Cgroup(1, _under(v1_mounts["cpu"], names["cpu"]),
                       _under(v1_mounts["cpuacct"], names["cpuacct"]),
                       _under(v1_mounts["memory"], names["memory"]),
                       unified=unified if unified is not None and unified.is_dir() else None,
                       memory_name=names["memory"])
    elif unified is not None and unified_name is not None:
        found = Cgroup(2, unified, unified, unified, unified, memory_name=unified_name)
    else:
        return None
    return found if found.memory.is_dir() else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _number(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def _keyed(path: Path, key: str) -> int | None:
    """`key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control)."""
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def _pressure(path: Path) -> float | None:
    """PSI `some avg10` (the share of the last 10 s some task stalled), in %."""
    match = re.search(r"^some .*\bavg10=([0-9.]+)", _read(path) or "", re.MULTILINE)
    return float(match.group(1)) if match else None


@dataclass(frozen=True)
class Reading:
    """One look at the cgroup: cumulative CPU, and memory as it is now."""

    at: float
    cpu_ns: int
    wait_ns: dict[int, int]
    working_set: int
    limit: int
    vcpus: float
    swap: int
    pressure: float | None
    oom_kills: int

    @property
    def pressing(self) -> bool:
        """Memory is running out, as Utilization.pressing judges a sample."""
        return (100.0 * self.working_set / self.limit >= EVADE_RATIO or self.swap > 0
                or (self.pressure is not None and self.pressure >= EVADE_PRESSURE))


@dataclass
class Sampler:
    """Reads one container's cgroup. `look` at every watch tick keeps the memory peak between
    heartbeats; `sample` gives what a heartbeat carries, over the time since the last one."""

    pid: int
    cgroup: Cgroup
    proc: Path = Path("/proc")
    clock: Callable[[], float] = time.monotonic
    # The machine's, where the container has no limit of its own.
    host_memory: int = 0
    host_cpus: float = float(os.cpu_count() or 1)
    latest: Reading | None = None
    _since: Reading | None = None
    _peak: int = 0

    @classmethod
    def of(cls, pid: int, proc: Path = Path("/proc"),
           clock: Callable[[], float] = time.monotonic) -> Sampler | None:
        cgroup = find_cgroup(pid, proc)
        if cgroup is None:
            return None
        return cls(pid, cgroup, proc, clock, host_memory=_memtotal(proc))

    def _limits(self) -> tuple[int, float]:
        group = self.cgroup
        if group.version == 1:
            limit = _number(group.memory / "memory.limit_in_bytes")
            quota, period = (_number(group.cpu / "cpu.cfs_quota_us"),
                             _number(group.cpu / "cpu.cfs_period_us"))
        else:
            words = (_read(group.cpu / "cpu.max") or "max").split()
            quota = int(words[0]) if words[0].isdigit() else None
            period = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
            limit = _number(group.memory / "memory.max")
        if limit is None or limit >= _NO_LIMIT:
            limit = self.host_memory or _NO_LIMIT
        vcpus = quota / period if quota and quota > 0 and period else self.host_cpus
        return limit, vcpus

    def _threads(self) -> list[int]:
        name = "tasks" if self.cgroup.version == 1 else "cgroup.threads"
        text = _read(self.cgroup.cpu / name) or ""
        return [int(tid) for tid in text.split()[:MAX_THREADS] if tid.isdigit()]

    def _waits(self) -> dict[int, int]:
        waits: dict[int, int] = {}
        for tid in self._threads():
            words = (_read(self.proc / str(tid) / "schedstat") or "").split()
            if len(words) >= 2 and words[1].isdigit():
                waits[tid] = int(words[1])
        return waits

    def look(self) -> Reading | None:
        """Read the cgroup now; None once it is gone (the container stopped)."""
        group = self.cgroup
        if group.version == 1:
            cpu_ns = _number(group.cpuacct / "cpuacct.usage")
            usage = _number(group.memory / "memory.usage_in_bytes")
            inactive = _keyed(group.memory / "memory.stat", "total_inactive_file")
            with_swap = _number(group.memory / "memory.memsw.usage_in_bytes")
            swap = max(0, with_swap - usage) if with_swap is not None and usage is not None else 0
            oom_kills = _keyed(group.memory / "memory.oom_control", "oom_kill")
        else:
            usec = _keyed(group.cpu / "cpu.stat", "usage_usec")
            cpu_ns = None if usec is None else usec * 1000
            usage = _number(group.memory / "memory.current")
            inactive = _keyed(group.memory / "memory.stat", "inactive_file")
            swap = _number(group.memory / "memory.swap.current") or 0
            oom_kills = _keyed(group.memory / "memory.events", "oom_kill")
        if cpu_ns is None or usage is None:
            return None
        limit, vcpus = self._limits()
        working_set = max(0, usage - (inactive or 0))
        pressure_dir = group.unified if group.version == 1 else group.memory
        reading = Reading(at=self.clock(), cpu_ns=cpu_ns, wait_ns=self._waits(),
                          working_set=working_set, limit=limit, vcpus=vcpus, swap=swap,
                          pressure=None if pressure_dir is None
                          else _pressure(pressure_dir / "memory.pressure"),
                          oom_kills=oom_kills or 0)
        if self._since is None:
            self._since = reading
        self._peak = max(self._peak, working_set)
        self.latest = reading
        return reading

    def sample(self) -> Utilization | None:
        """What the container used since the previous sample (or since it was first read);
        None if the cgroup is gone or too little time has passed to say."""
        before = self._since
        now = self.look()
        if now is None or before is None:
            return None
        seconds = now.at - before.at
        if seconds < MIN_SAMPLE_SECONDS:
            return None
        budget = now.vcpus * seconds * 1e9
        used = max(0, now.cpu_ns - before.cpu_ns)
        waited = sum(max(0, wait - before.wait_ns.get(tid, 0)) for tid, wait in now.wait_ns.items())
        cpu_ratio = min(100.0, 100.0 * used / budget)
        utilization = Utilization(
            seconds=round(seconds, 3), vcpus=round(now.vcpus, 3),
            cpuRatio=round(cpu_ratio, 2),
            cpuDemandRatio=round(max(cpu_ratio, min(100.0, 100.0 * (used + waited) / budget)), 2),
            memoryBytes=now.working_set, memoryPeakBytes=max(self._peak, now.working_set),
            memoryLimitBytes=now.limit, swapBytes=now.swap, memoryPressure=now.pressure,
            oomKills=now.oom_kills)
        self._since, self._peak = now, now.working_set
        return utilization


def _memtotal(proc: Path) -> int:
    kib = _keyed_colon(proc / "meminfo", "MemTotal")
    return kib * 1024 if kib else 0


def _keyed_colon(path: Path, key: str) -> int | None:
    match = re.search(rf"^{key}:\s+(\d+)", _read(path) or "", re.MULTILINE)
    return int(match.group(1)) if match else None


@dataclass
class KernelLog:
    """The kernel's log, read for its OOM reports: the cgroup counters vanish with the
    container, and podman does not always see the kill."""

    path: Path = Path("/dev/kmsg")
    max_records: int = 100_000

    def killed_in(self, memory_name: str) -> bool:
        """Whether the log holds an OOM kill of a task in (or for) the memory cgroup named."""
        pattern = re.compile(rf"oom-kill:.*\b(?:task_memcg|oom_memcg)={re.escape(memory_name)}"
                             r"(?:,|$)")
        return any(pattern.search(record) for record in self._read())

    def _read(self) -> list[str]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return []
        records: list[str] = []
        try:
            while len(records) < self.max_records:
                try:
                    chunk = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError as error:
                    # EPIPE: records were overwritten while reading; the next read goes on.
                    if error.errno == errno.EPIPE:
                        continue
                    break
                if not chunk:
                    break
                records.append(chunk.decode(errors="replace").strip())
        finally:
            os.close(fd)
        return records

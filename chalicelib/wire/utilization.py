"""What a job uses of its instance: the agent's samples, the series the control plane keeps
of them, and the summary `float show` prints.

A sample covers the `seconds` up to the heartbeat that carries it. CPU is measured against the
instance's vCPUs (the container's CPU limit), memory against the instance's memory (its memory
limit). The working set is what the kernel cannot take back without swapping or killing:
usage less the inactive file cache, as `kubectl top` and `docker stats` count it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.wire.base import View

# evadeOOM acts when the working set reaches this share of the limit, or memory pressure
# (PSI some avg10) reaches EVADE_PRESSURE, or the job swaps, or the kernel killed a process.
# The agent reports at once when a sample first shows one of these, without waiting for its
# next heartbeat.
EVADE_RATIO = 90.0
EVADE_PRESSURE = 10.0


class Utilization(BaseModel):
    """One sample, as the agent measured it from the job container's cgroup."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0, le=86400)
    # The CPUs the container may use: the instance's vCPUs.
    vcpus: float = Field(gt=0)
    # CPU time used over the interval, in % of vcpus × seconds.
    cpuRatio: float = Field(ge=0, le=100)
    # CPU time used plus the time the job's threads were ready to run but waited for a CPU
    # (the container's quota, or other work on the machine), in % of vcpus × seconds, at most
    # 100: what the job would use with its vCPUs to itself. A CPU-bound job reads 100 here on
    # a busy machine, as a guest reads its vCPU busy while the hypervisor steals it.
    cpuDemandRatio: float = Field(ge=0, le=100)
    # Working set at the end of the interval, and the highest seen during it.
    memoryBytes: int = Field(ge=0)
    memoryPeakBytes: int = Field(ge=0)
    memoryLimitBytes: int = Field(gt=0)
    swapBytes: int = Field(default=0, ge=0)
    # PSI "some" avg10 of the container's cgroup, where the kernel reports it (cgroup v2).
    memoryPressure: float | None = Field(default=None, ge=0, le=100)
    # Processes of the container the kernel killed for memory since it started here.
    oomKills: int = Field(default=0, ge=0)

    @property
    def memoryRatio(self) -> float:
        """Working set at the end, in % of the memory limit."""
        return 100.0 * self.memoryBytes / self.memoryLimitBytes

    @property
    def memoryPeakRatio(self) -> float:
        return 100.0 * self.memoryPeakBytes / self.memoryLimitBytes

    @property
    def pressing(self) -> bool:
        """Memory is running out: evadeOOM would move the job now (if it has no new OOM kill
        to go by, which only a comparison with the sample before can tell)."""
        return (self.memoryPeakRatio >= EVADE_RATIO or self.swapBytes > 0
                or (self.memoryPressure is not None and self.memoryPressure >= EVADE_PRESSURE))


class UtilizationPoint(Utilization):
    """A sample as the control plane keeps it: when it ended and on which instance."""

    time: str
    instanceId: str
    instanceType: str | None = None


class UtilizationSummary(View):
    """What `float show` prints of a job's use: the latest sample and the peak on record."""

    time: str
    instanceId: str
    instanceType: str | None = None
    vcpus: float
    cpuRatio: float
    cpuDemandRatio: float
    memoryBytes: int
    memoryLimitBytes: int
    memoryRatio: float
    # The highest working set of any sample of the job, on any instance.
    memoryPeakBytes: int
    swapBytes: int = 0


class UtilizationView(View):
    """One point of a job's series as the API serves it (`float top`, the web page's graph)."""

    time: str
    instanceId: str
    instanceType: str | None = None
    seconds: float
    vcpus: float
    cpuRatio: float
    cpuDemandRatio: float
    memoryBytes: int
    memoryPeakBytes: int
    memoryLimitBytes: int
    memoryRatio: float
    swapBytes: int
    memoryPressure: float | None = None
    oomKills: int

    @classmethod
    def of(cls, point: UtilizationPoint) -> UtilizationView:
        return cls(**point.model_dump(), memoryRatio=round(point.memoryRatio, 2))

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

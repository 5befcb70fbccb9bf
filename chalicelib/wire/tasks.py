"""What the workflows hand each Step Functions task function and what it hands back: the JSON
the ASL in statemachines/ writes (`Payload`) and reads (`ResultSelector`), as models.

Inputs ignore what they do not use (a workflow passes its whole state's worth); outputs dump
every field, None included, because a `ResultSelector` path to a missing key fails the task.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from chalicelib.wire.agent import AttachedVolume, JobLaunch
from chalicelib.wire.status import JobStatus

Market = Literal["spot", "on-demand"]


class TaskInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Which state of which execution calls: every workflow passes them, for the logs.
    state: str | None = None
    execution: str | None = None


class TaskOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attempt(BaseModel):
    """One launch to try, after waiting `waitSeconds`: one instance of any of `instanceTypes`
    on a market, EC2 choosing the type and the zone among them."""

    instanceTypes: list[str]
    market: Market
    waitSeconds: int = 0


class CaughtError(BaseModel):
    """An error a workflow caught (`ResultPath: $.error`), as Step Functions spells it."""

    model_config = ConfigDict(extra="ignore")

    Error: str | None = None
    Cause: str | None = None


class Verdict(BaseModel):
    """What a workflow decided for its job."""

    model_config = ConfigDict(extra="ignore")

    jobId: str
    # None with an exit code: Completed on 0, else FailToComplete.
    to: JobStatus | None = None
    exitCode: int | None = None
    # None: nothing new to record when the job already has the status (a move that landed).
    why: str | None = None
    # The error a workflow caught, named in the reason.
    error: CaughtError | None = None
    # The instance an Executing job stays on; by default the one it records.
    keep: str | None = None
    keepQueue: str | None = None

    def status(self) -> JobStatus:
        if self.to is not None:
            return self.to
        return JobStatus.COMPLETED if self.exitCode == 0 else JobStatus.FAIL_TO_COMPLETE

    def reason(self) -> str:
        text = self.why or ""
        if self.error:
            text += f" ({self.error.Error or 'error'}: {self.error.Cause or ''})"
        return text


# ---- inputs ---------------------------------------------------------------------------------


class JobRef(TaskInput):
    jobId: str


class Moved(TaskInput):
    """What a workflow knows of a move once the job runs again on its new instance."""

    fromInstance: str | None = None
    noticeTime: str | None = None
    instanceType: str | None = None
    zone: str | None = None
    # When the replacement's launch returned.
    launchedAt: str | None = None
    # The agent's answer to the restore (wire.checkpoints.Restored), read leniently by the
    # task: an answer without figures still lets the move count. None for a rerun.
    restored: dict[str, Any] | None = None
    # Whether a new checkpoint was taken for this move; if not, an older one was restored.
    captured: bool = True
    # Why the job moved: the reclaim, the user's request or the WaveRider rule.
    cause: str | None = None


class NewInstance(BaseModel):
    """What a status change reads of the launch a job moved to (the Launch state's result)."""

    model_config = ConfigDict(extra="ignore")

    instanceType: str | None = None
    zone: str | None = None
    launchedAt: str | None = None


class StatusChange(TaskInput):
    jobId: str
    to: JobStatus
    reason: str
    instanceId: str | None = None
    moved: Moved | None = None
    # For a job that moved: the instance it moved to, as its launch described it, and the
    # restore's answer (None: it was rerun from the start).
    launched: NewInstance | None = None
    restored: dict[str, Any] | None = None


class InstanceRef(TaskInput):
    jobId: str
    instanceId: str | None = None
    # The instance's command queue, when it is no longer the one recorded on the job.
    commandsQueueUrl: str | None = None


class SettleRequest(TaskInput):
    request: Verdict


class PlanRequest(TaskInput):
    jobId: str
    # A user's migrate: new sizes or market, kept as the job's own from now on.
    target: dict[str, Any] | None = None
    # A move prefers the type the job ran on, and does not wait between Spot rounds.
    preferType: str | None = None
    moving: bool = False


class LaunchRequest(TaskInput):
    jobId: str
    launchNumber: int
    index: int
    attempt: Attempt
    # Another instance for the same attempt, after the first could not restore the job.
    retry: int = 0


class VolumesRequest(TaskInput):
    """Attach the job's block volumes to this instance."""

    jobId: str
    instanceId: str


# ---- outputs --------------------------------------------------------------------------------


class StatusSet(TaskOutput):
    jobId: str
    status: JobStatus


class JobInstance(TaskOutput):
    jobId: str
    # None when the instance is gone already: the replacement is then planned from the spec.
    instanceId: str | None
    commandsQueueUrl: str | None
    instanceType: str | None
    # Whether the job may be started again from the beginning when no checkpoint restores.
    rerunAllowed: bool
    # False for a job submitted with disableMigrate: a reclaim reruns it without a checkpoint.
    captureAllowed: bool = True


class Released(TaskOutput):
    released: str | None


class Settled(TaskOutput):
    jobId: str
    # None: the job does not exist (any instances launched for it were released all the same).
    status: JobStatus | None
    released: list[str]
    alreadyFinal: bool = False


class Plan(TaskOutput):
    attempts: list[Attempt]
    count: int


class Launched(TaskOutput):
    instanceId: str
    # What EC2 chose among the attempt's types and the stack's zones.
    instanceType: str
    zone: str | None
    market: Market
    commandsQueueUrl: str
    job: JobLaunch
    launchedAt: str


class AttachedVolumes(TaskOutput):
    volumes: list[AttachedVolume]

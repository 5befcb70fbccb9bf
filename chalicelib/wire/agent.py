"""Messages between the control plane and the worker agents.

Commands go to an instance's own queue; each may carry a Step Functions task token that the
agent answers with SendTaskSuccess or SendTaskFailure. Events go from agents to the control
plane's events queue. Credentials never travel in either: a command names the Secrets Manager
secret that holds them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.wire.checkpoints import CheckpointManifest
from chalicelib.wire.containers import DirMap
from chalicelib.wire.datavolumes import DataVolume
from chalicelib.wire.utilization import Utilization


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobLaunch(Message):
    """Everything an agent needs to start, or restore, a job's container."""

    jobId: str
    imageUri: str
    credentialsSecretId: str | None = None
    scriptKey: str
    env: dict[str, str] = Field(default_factory=dict)
    cpus: float | None = Field(default=None, gt=0)
    memoryGiB: float | None = Field(default=None, gt=0)
    dataVolumes: list[DataVolume] = Field(default_factory=list)
    # The S3 keys of the volumes that have their own (`credentials: stored`): a JSON object of
    # mount path → {accessKey, secretKey[, sessionToken]} in this Secrets Manager secret.
    volumeKeysSecretId: str | None = None
    # The job may call the API on itself (`float migrate`): where, and the secret holding
    # its own token. The agent makes those calls for it; the container never sees the token.
    apiUrl: str | None = None
    apiTokenSecretId: str | None = None
    # What is left of the job's time limit when this launch was made; the agent stops the
    # container once it has run that long here (or what its checkpoint says is left, if less).
    timeLimitSeconds: float | None = Field(default=None, ge=0)
    # How the container runs: GPUs handed to it, privileged, as root, further podman options
    # (checked at submit), host directories; and whether a reclaim notice checkpoints it.
    gpus: int = 0
    privileged: bool = False
    withRoot: bool = False
    containerOptions: list[str] = Field(default_factory=list)
    dirMaps: list[DirMap] = Field(default_factory=list)
    checkpointable: bool = True
    # Seconds between checkpoints taken with the job left running (None: only on a notice or
    # a move): a reclaim without warning then loses at most this much of its work.
    checkpointIntervalSeconds: int | None = Field(default=None, gt=0)
    publish: list[str] = Field(default_factory=list)
    # The job's host scripts, run by the agent on the host itself: hostInit before the
    # container starts or is restored, hostTerminate once it has left this host.
    hostInitKey: str | None = None
    hostTerminateKey: str | None = None


class AttachedVolume(Message):
    """A new block volume of the job, attached to the agent's instance by the control plane
    before the command was sent: which of the job's data volumes it is, and how it was
    attached (EC2's device name; on Nitro instances the disk is found by its volume id)."""

    index: int = Field(ge=0)
    volumeId: str
    device: str


class RunCommand(Message):
    kind: Literal["run"] = "run"
    taskToken: str | None = None
    job: JobLaunch
    volumes: list[AttachedVolume] = Field(default_factory=list)


class CheckpointCommand(Message):
    kind: Literal["checkpoint"] = "checkpoint"
    taskToken: str | None = None
    jobId: str
    reason: str
    # Stop the container after the dump (migrate, suspend) or let it go on (a safety copy).
    leaveRunning: bool = False


class RestoreCommand(Message):
    kind: Literal["restore"] = "restore"
    taskToken: str | None = None
    job: JobLaunch
    seq: int | None = None  # None: the newest committed checkpoint
    volumes: list[AttachedVolume] = Field(default_factory=list)


class CancelCommand(Message):
    kind: Literal["cancel"] = "cancel"
    taskToken: str | None = None
    jobId: str


class TerminateCommand(Message):
    kind: Literal["terminate"] = "terminate"
    taskToken: str | None = None


Command = Annotated[
    RunCommand | CheckpointCommand | RestoreCommand | CancelCommand | TerminateCommand,
    Field(discriminator="kind"),
]


class CommandEnvelope(Message):
    command: Command


class Event(Message):
    instanceId: str
    time: str


class Registered(Event):
    kind: Literal["registered"] = "registered"
    instanceType: str | None = None
    # How this host checkpoints jobs, and why: "full (...)" where the kernel cannot track the
    # pages a job dirties, which incremental checkpoints need.
    checkpoints: str | None = None


class Heartbeat(Event):
    kind: Literal["heartbeat"] = "heartbeat"
    jobId: str | None = None
    # The instance's address, where the job's published ports are reached.
    address: str | None = None
    # What the job used of the instance since the agent's previous heartbeat; None when the
    # container is not running (starting, checkpointed, gone) or its cgroup could not be read.
    utilization: Utilization | None = None


class ReclaimNoticed(Event):
    """The agent read a reclaim notice from its instance metadata and began a checkpoint."""

    kind: Literal["reclaim-noticed"] = "reclaim-noticed"
    jobId: str | None = None
    action: str
    actionTime: str


class RebalanceNoticed(Event):
    """The instance metadata recommends a rebalance: a reclaim has become more likely."""

    kind: Literal["rebalance-noticed"] = "rebalance-noticed"
    jobId: str | None = None
    noticeTime: str


class CheckpointCommitted(Event):
    kind: Literal["checkpoint-committed"] = "checkpoint-committed"
    jobId: str
    manifest: CheckpointManifest


class JobExited(Event):
    kind: Literal["job-exited"] = "job-exited"
    jobId: str
    exitCode: int
    # The agent stopped the container because the job used up its time limit.
    timedOut: bool = False
    # Why the job's hostTerminate script failed after the exit, if it did.
    hostTerminateFailure: str | None = None
    # The kernel killed the job's process for memory (its cgroup's OOM killer).
    oomKilled: bool = False
    # The container's memory limit then, to name in the job's reason.
    memoryLimitBytes: int | None = Field(default=None, gt=0)


class CommandFailed(Event):
    kind: Literal["command-failed"] = "command-failed"
    jobId: str | None = None
    command: str
    error: str
    message: str


AgentEvent = Annotated[
    Registered | Heartbeat | ReclaimNoticed | RebalanceNoticed | CheckpointCommitted | JobExited
    | CommandFailed,
    Field(discriminator="kind"),
]


class EventEnvelope(Message):
    event: AgentEvent

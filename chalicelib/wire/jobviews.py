"""What the API shows of a job: its settings, its history and its moves."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from chalicelib.wire.base import View
from chalicelib.wire.billing import Savings
from chalicelib.wire.checkpoints import CheckpointSummary
from chalicelib.wire.containers import DirMap
from chalicelib.wire.datavolumes import DataVolume
from chalicelib.wire.specs import CpuRange, MigratePolicy, Range, VmPolicy
from chalicelib.wire.status import JobStatus
from chalicelib.wire.utilization import UtilizationSummary


class HistoryEntry(View):
    """One status change: when, from what, to what, why, and on which instance."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    time: str
    from_: JobStatus | None = Field(default=None, alias="from")
    to: JobStatus
    reason: str
    instance: str | None = None


class MigrationView(View):
    """One move of a job from one instance to another, with what it cost the job."""

    time: str
    reason: str
    # Why the job moved: a reclaim, a user's request, or the WaveRider rule with its figures.
    cause: str | None = None
    fromInstance: str | None = None
    toInstance: str
    instanceType: str | None = None
    # The availability zone of the instance moved to.
    zone: str | None = None
    checkpointSeq: int | None = None
    # The checkpoint image, and what of it was stored: parts are compressed where that pays.
    imageBytes: int | None = None
    storedBytes: int | None = None
    freezeSeconds: float | None = None
    checkpointSeconds: float | None = None
    uploadSeconds: float | None = None
    # From the warning (or the request) until the replacement was launched; it overlaps the
    # checkpoint and the upload on a reclaim.
    launchSeconds: float | None = None
    downloadSeconds: float | None = None
    restoreSeconds: float | None = None
    # From the warning (or the request) to the job executing again on the new instance.
    secondsToExecuting: float | None = None
    rerun: bool = False


class JobView(View):
    """A job as `float show -j ID --format json` prints it."""

    id: str
    name: str | None = None
    user: str
    status: JobStatus
    rc: int | None = None
    image: str
    imageUri: str
    # None only where the stored value could not be read (see `unreadable`).
    cpu: CpuRange | None = None
    mem: Range | None = None
    instType: str | None = None
    instanceId: str | None = None
    # What EC2 chose for the instance among the types and zones its launch allowed.
    instanceType: str | None = None
    instanceZone: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    customTags: dict[str, str] = Field(default_factory=dict)
    portMappings: list[str] = Field(default_factory=list)
    dataVolumes: list[DataVolume] = Field(default_factory=list)
    vmPolicy: VmPolicy | None = None
    migratePolicy: MigratePolicy | None = None
    submitTime: str
    updateTime: str
    disableRerun: bool = False
    timeLimit: int | None = None
    # The interval of periodic checkpoints in force (the job's, else the OpCenter's); the
    # newest checkpoint committed.
    checkpointInterval: int | None = None
    lastCheckpoint: CheckpointSummary | None = None
    gpu: int | None = None
    zone: str | None = None
    securityGroups: list[str] = Field(default_factory=list)
    rootVolSize: int | None = None
    imageVolSize: int | None = None
    disableMigrate: bool = False
    privileged: bool = False
    withRoot: bool = False
    containerOpts: list[str] = Field(default_factory=list)
    dirMaps: list[DirMap] = Field(default_factory=list)
    # Sizes in bytes of the job's host scripts; absent when it has none.
    hostInitSize: int | None = None
    hostTerminateSize: int | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    migrations: list[MigrationView] = Field(default_factory=list)
    # What the job used of its instance at its agent's latest heartbeat, and its peak memory.
    utilization: UtilizationSummary | None = None
    # What its instances cost, as MMCloud prints it ("0.0017 USD"), and against On-demand.
    cost: str | None = None
    savings: Savings | None = None
    # Fields whose stored values this release cannot read, shown as their defaults instead of
    # failing the whole answer (a record written by an older or a broken release).
    unreadable: list[str] = Field(default_factory=list)

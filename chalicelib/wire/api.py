"""Request and response bodies of the HTTPS API, with MMCloud's JSON field names."""

from __future__ import annotations

import json
import re
from typing import Generic, Literal, TypeVar

from pydantic import Field, field_validator, model_validator

# Re-exported (`X as X`): every body of the API is named from this module.
from chalicelib.wire.accounts import HealthView as HealthView
from chalicelib.wire.accounts import ImageRequest as ImageRequest
from chalicelib.wire.accounts import ImageUpdate as ImageUpdate
from chalicelib.wire.accounts import ImageView as ImageView
from chalicelib.wire.accounts import LoginRequest as LoginRequest
from chalicelib.wire.accounts import LoginView as LoginView
from chalicelib.wire.accounts import LogoutView as LogoutView
from chalicelib.wire.accounts import PasswordChange as PasswordChange
from chalicelib.wire.accounts import UserRequest as UserRequest
from chalicelib.wire.accounts import UserView as UserView
from chalicelib.wire.accounts import WhoamiView as WhoamiView
from chalicelib.wire.base import IMAGE_NAME_PATTERN as IMAGE_NAME_PATTERN
from chalicelib.wire.base import USERNAME_PATTERN as USERNAME_PATTERN
from chalicelib.wire.base import (
    Body,
    Printable,
    Reason,
    View,
    check_image_reference,
    field_problem,
)
from chalicelib.wire.base import ErrorView as ErrorView
from chalicelib.wire.base import Role as Role
from chalicelib.wire.base import first_problem as first_problem
from chalicelib.wire.containers import DirMap, check_ports, parse_container_options
from chalicelib.wire.datavolumes import DataVolume
from chalicelib.wire.hostscripts import HOST_INIT, HOST_TERMINATE, check_script
from chalicelib.wire.jobviews import HistoryEntry as HistoryEntry
from chalicelib.wire.jobviews import JobView as JobView
from chalicelib.wire.jobviews import MigrationView as MigrationView
from chalicelib.wire.specs import MAX_TAGS as MAX_TAGS
from chalicelib.wire.specs import (
    CpuRange,
    MigratePolicy,
    Range,
    VmPolicy,
    parse_duration,
)
from chalicelib.wire.specs import check_tags as check_tags

API_VERSION = "v1"
# The OpenFloat release, as pyproject.toml names it: the CLI and the OpCenter each report their own.
RELEASE = "0.1.0"
# Job scripts travel in the submit body and are kept in S3; a script is a launcher, not data.
MAX_JOB_SCRIPT_BYTES = 1024 * 1024
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
LOG_NAMES = ("stdout", "stderr")

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
# A job's environment goes into its stored item and onto podman's command line, where Linux
# takes at most 128 KiB a string; the stored part of a submit must stay far below DynamoDB's
# 400 KB an item, which also holds the job's history and moves.
MAX_ENV_VARS = 1000
MAX_ENV_VALUE_BYTES = 32 * 1024
MAX_STORED_SPEC_BYTES = 128 * 1024
_SECURITY_GROUP = r"^sg-[0-9a-f]{8,17}$"
_ZONE = r"^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$"
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


def _check_instance_type(value: str | None) -> str | None:
    if value is not None and not _INSTANCE_TYPE.match(value):
        raise ValueError(f"{value!r} is not an instance type such as c5.2xlarge")
    return value


class SubmitRequest(Body):
    image: str = Field(min_length=1, max_length=512)
    jobScript: str
    cpu: CpuRange = Field(default_factory=lambda: CpuRange(min=2, max=2))
    mem: Range = Field(default_factory=lambda: Range(min=4, max=4))
    instType: str | None = None
    name: Printable | None = Field(default=None, min_length=1, max_length=128)
    env: dict[str, str] = Field(default_factory=dict)
    customTags: dict[str, str] = Field(default_factory=dict)
    dataVolumes: list[DataVolume] = Field(default_factory=list, max_length=16)
    # Names of storage the user registered (`float storage register`), mounted as volumes.
    storage: list[str] = Field(default_factory=list, max_length=16)
    vmPolicy: VmPolicy = Field(default_factory=VmPolicy)
    migratePolicy: MigratePolicy | None = None
    # When a job cannot be restored from a checkpoint, it is started again from the beginning
    # unless this is set; then it ends CheckpointFailed.
    disableRerun: bool = False
    # Seconds the job may run (`3600`, `"90s"`, `"30m"`, `"2h"`); past it the job is stopped
    # and ends Timedout. Only Executing counts: a move or a suspension does not use it up.
    timeLimit: int | None = None
    # Seconds between checkpoints taken with the job running (at least 10; 0: none), so that a
    # reclaim without warning loses at most that much work. None: the OpCenter's default.
    checkpointInterval: int | None = None
    # The instance: GPUs it must have, its availability zone and security groups, and the
    # sizes in GB of its root volume and of the volume holding the container's image.
    gpu: int | None = Field(default=None, ge=1, le=16)
    zone: str | None = None
    securityGroups: list[str] = Field(default_factory=list, max_length=5)
    rootVolSize: int | None = Field(default=None, ge=8, le=16384)
    imageVolSize: int | None = Field(default=None, ge=1, le=16384)
    # The container: never checkpointed (a reclaim reruns it, or ends it with disableRerun),
    # privileged, run as root whatever the image's USER, further `podman run` options, and
    # directories of the host it runs on.
    disableMigrate: bool = False
    privileged: bool = False
    withRoot: bool = False
    containerOpts: list[str] = Field(default_factory=list, max_length=64)
    dirMaps: list[DirMap] = Field(default_factory=list, max_length=16)
    # `HOST:CONTAINER[/tcp|/udp]`: ports of the container published on its instance.
    publish: list[str] = Field(default_factory=list, max_length=32)

    _ports = field_validator("publish")(check_ports)

    @field_validator("containerOpts", mode="before")
    @classmethod
    def _container_options(cls, value: object) -> object:
        # Given as the text typed after --extraContainerOpts, or as a list of such texts.
        if isinstance(value, str):
            return parse_container_options(value)
        if isinstance(value, list):
            return [option for text in value for option in parse_container_options(str(text))]
        return value

    @field_validator("zone")
    @classmethod
    def _zone(cls, zone: str | None) -> str | None:
        if zone is not None and not re.match(_ZONE, zone):
            raise ValueError(f"{zone!r} is not an availability zone name such as us-east-1a")
        return zone

    @field_validator("securityGroups")
    @classmethod
    def _security_groups(cls, groups: list[str]) -> list[str]:
        for group in groups:
            if not re.match(_SECURITY_GROUP, group):
                raise ValueError(f"{group!r} is not a security group id (sg-0123abcd...)")
        if len(set(groups)) != len(groups):
            raise ValueError("a security group is given twice")
        return groups

    # Scripts run as root on every host the job visits (not in its container): hostInit before
    # the container starts or is restored there, hostTerminate once it has left that host.
    hostInit: str | None = None
    hostTerminate: str | None = None

    @field_validator("hostInit")
    @classmethod
    def _host_init(cls, text: str | None) -> str | None:
        return None if text is None else check_script(HOST_INIT, text)

    @field_validator("hostTerminate")
    @classmethod
    def _host_terminate(cls, text: str | None) -> str | None:
        return None if text is None else check_script(HOST_TERMINATE, text)

    @field_validator("timeLimit", mode="before")
    @classmethod
    def _time_limit(cls, value: object) -> int | None:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError(f"a time limit must be longer than zero, got {value!r}")
        return seconds

    @field_validator("checkpointInterval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> int | None:
        seconds = None if value is None else parse_duration(value)
        if seconds is not None and 0 < seconds < 10:
            raise ValueError(f"a checkpoint interval must be 0 (none) or at least 10 s, got {value!r}")
        return seconds

    @field_validator("jobScript")
    @classmethod
    def _script_size(cls, script: str) -> str:
        size = len(script.encode())
        if size == 0:
            raise ValueError("the job script is empty")
        if size > MAX_JOB_SCRIPT_BYTES:
            raise ValueError(f"the job script is {size} bytes; the limit is {MAX_JOB_SCRIPT_BYTES}")
        return script

    _instance_type = field_validator("instType")(_check_instance_type)

    _image = field_validator("image")(check_image_reference)

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        if len(env) > MAX_ENV_VARS:
            raise ValueError(f"{len(env)} environment variables given; at most {MAX_ENV_VARS}")
        for key, value in env.items():
            if not _ENV_KEY.match(key):
                raise ValueError(f"{key[:80]!r} is not a valid environment variable name")
            if len(value.encode()) > MAX_ENV_VALUE_BYTES:
                raise ValueError(f"{key} is longer than {MAX_ENV_VALUE_BYTES} bytes")
        return env

    @field_validator("customTags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        return check_tags(tags)

    @model_validator(mode="after")
    def _stored_size(self) -> SubmitRequest:
        # Scripts go to S3; everything else is kept in the job's item.
        stored = self.model_dump(mode="json", exclude={"jobScript", "hostInit", "hostTerminate"})
        sizes = {key: len(json.dumps(value)) for key, value in stored.items()}
        if sum(sizes.values()) > MAX_STORED_SPEC_BYTES:
            largest = max(sizes, key=sizes.__getitem__)
            raise field_problem(largest, f"the job's settings take {sum(sizes.values())} bytes, "
                                f"{sizes[largest]} of them {largest}; the limit is "
                                f"{MAX_STORED_SPEC_BYTES}")
        return self

    @model_validator(mode="after")
    def _mounts_unique(self) -> SubmitRequest:
        mounts = [v.mountPath for v in self.dataVolumes] + [d.containerPath for d in self.dirMaps]
        for mount in mounts:
            if mounts.count(mount) > 1:
                raise ValueError(f"two volumes or dirMaps are mounted at {mount}")
        if self.disableMigrate and self.migratePolicy is not None \
                and not self.migratePolicy.disable:
            raise ValueError("a migratePolicy moves the job, which disableMigrate forbids")
        if self.disableMigrate and self.checkpointInterval:
            raise ValueError("disableMigrate means the job is never checkpointed: it cannot "
                             "have a checkpointInterval")
        if self.withRoot and any(o.startswith("--user=") for o in self.containerOpts):
            raise ValueError("withRoot runs the job as root; extraContainerOpts --user says "
                             "otherwise: give one of them")
        return self


T = TypeVar("T")


class Page(View, Generic[T]):
    """One page of a list; pass nextToken back to get the next one (absent on the last page)."""

    items: list[T]
    nextToken: str | None = None


class CancelRequest(Body):
    reason: Reason | None = None


class MigrateRequest(Body):
    """Move a running job: to another instance type, to other cpu/mem ranges, or to the same
    sizes again; `vmPolicy` changes the market for this and later launches."""

    instType: str | None = None
    cpu: CpuRange | None = None
    mem: Range | None = None
    vmPolicy: VmPolicy | None = None
    # Move even when the job would land on the same instance type and market it has now.
    force: bool = False
    reason: Reason | None = None

    _instance_type = field_validator("instType")(_check_instance_type)

    @model_validator(mode="after")
    def _one_target(self) -> MigrateRequest:
        if self.instType is not None and (self.cpu is not None or self.mem is not None):
            raise ValueError("give either instType or cpu/mem ranges, not both")
        return self


class SuspendRequest(Body):
    reason: Reason | None = None


class ResumeRequest(Body):
    reason: Reason | None = None


ReclaimKind = Literal["spot", "vanish", "agent"]


class ReclaimRequest(Body):
    """A reclaim drill. `spot`: EC2's Spot reclaim, the warning `notice` seconds before the
    end. `vanish`: the instance terminated with no warning and no event at all. `agent`: the
    agent process killed (SIGKILL) while the instance and the job's container live on."""

    kind: ReclaimKind = "spot"
    notice: int = Field(default=120, ge=1, le=3600)

    @model_validator(mode="after")
    def _notice_is_for_spot(self) -> ReclaimRequest:
        if self.kind != "spot" and "notice" in self.model_fields_set:
            raise ValueError(f"a {self.kind} drill gives no notice; notice is for kind spot")
        return self


class ReclaimView(View):
    jobId: str
    instanceId: str
    kind: ReclaimKind = "spot"
    noticeSeconds: int | None = None
    # When the instance is terminated, whether or not the job has been moved by then; None
    # when the drill leaves it running (kind agent).
    terminateTime: str | None = None


class LogInfo(View):
    name: str
    size: int
    updateTime: str


class ModifyRequest(Body):
    """Change a live job: its vmPolicy (every later launch and move uses it), its
    migratePolicy (WaveRider's rules), custom tags added or replaced, custom tags removed."""

    vmPolicy: VmPolicy | None = None
    migratePolicy: MigratePolicy | None = None
    addCustomTags: dict[str, str] = Field(default_factory=dict)
    removeCustomTags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    reason: Reason | None = None

    @field_validator("addCustomTags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        return check_tags(tags)

    @model_validator(mode="after")
    def _something(self) -> ModifyRequest:
        both = sorted(set(self.addCustomTags) & set(self.removeCustomTags))
        if both:
            raise ValueError(f"tag {both[0]!r} is both added and removed")
        if (self.vmPolicy is None and self.migratePolicy is None and not self.addCustomTags
                and not self.removeCustomTags):
            raise ValueError("nothing to modify: give vmPolicy, migratePolicy, addCustomTags "
                             "or removeCustomTags")
        return self


class RerunRequest(Body):
    reason: Reason | None = None


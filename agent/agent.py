"""The worker agent: one per instance. It runs the job's container, answers the control plane's
commands (each with its task token), ships logs, reports heartbeats, and checkpoints the job on
its own the moment the instance metadata announces a Spot reclaim.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from agent import jobcalls
from agent.capsule import DEFAULT_PART_SIZE, CapsuleStore
from agent.hostscripts import HostEvent, HostScripts
from agent.imds import Imds, ImdsUnavailable
from agent.jobcalls import JobCalls
from agent.logs import LogShipper
from agent.pipes import written_by
from agent.podman import ContainerState, Credentials, Podman, checkpoint_mode, job_options
from agent.utilization import KernelLog, Sampler
from agent.volumes import (
    BlockDevices,
    S3Access,
    VolumeKeys,
    map_host_dirs,
    mount_volumes,
    unmount_volumes,
    volume_keys,
)
from chalicelib.wire.agent import (
    AttachedVolume,
    CancelCommand,
    CheckpointCommand,
    CheckpointCommitted,
    Command,
    CommandEnvelope,
    CommandFailed,
    EventEnvelope,
    Heartbeat,
    JobExited,
    JobLaunch,
    RebalanceNoticed,
    ReclaimNoticed,
    Registered,
    RestoreCommand,
    RunCommand,
    TerminateCommand,
)
from chalicelib.wire.checkpoints import CheckpointManifest, CriuStats, Restored
from chalicelib.wire.failures import (
    AgentError,
    AgentFailure,
    CheckpointFailed,
    CheckpointNotFound,
    CheckpointUploadFailed,
    RestoreFailed,
)

logger = Logger(service="openfloat-agent")

# At the root: the one directory every image has.
SCRIPT_IN_CONTAINER = "/openfloat-job"
# How often the agent tries to answer a task token before leaving it to the heartbeat timeout.
ANSWER_ATTEMPTS = 4
# A job past its time limit gets SIGTERM, and SIGKILL this long after, as `docker stop` does.
STOP_GRACE_SECONDS = 10


@dataclass(frozen=True)
class AgentSettings:
    instance_id: str
    bucket: str
    commands_queue_url: str
    events_queue_url: str
    imds_url: str
    # Job paths (container log, volumes) must be the same on every host a job visits: podman
    # restores the container with the paths it was created with.
    job_root: Path
    work_dir: Path
    instance_type: str | None = None
    command_wait_seconds: int = 5
    imds_poll_seconds: float = 2.0
    heartbeat_seconds: float = 15.0
    # While a command with a task token is in hand, the workflow hears from the agent this
    # often (it gives up on a silent agent after the workflow's heartbeatSeconds).
    task_heartbeat_seconds: float = 5.0
    part_size: int = DEFAULT_PART_SIZE
    # Where this host's own files are: `/`, or a directory of its own for a local instance,
    # which shares the machine with other instances but must not share their files.
    host_root: Path = Path("/")
    # Where published ports listen: every address of the instance, or `127.0.0.1:` for a local
    # instance, whose addresses are the machine's.
    publish_address: str = ""
    # Where attached EBS volumes appear: EC2's disks (None), or a local instance's directory
    # of the volumes attached to it.
    block_devices: Path | None = None
    # The address others reach the job's published ports at (the instance's private IP, or the
    # publish address): heartbeats carry it to the job's `portMappings`.
    address: str | None = None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _memory_bytes(launch: JobLaunch) -> int | None:
    """The container's memory limit: its instance's memory."""
    return int(launch.memoryGiB * 2**30) if launch.memoryGiB else None


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


def container_name(job_id: str, instance_id: str) -> str:
    """The job's container on this instance. Named after both: a local OpCenter runs many
    instances on one host, and must know which containers die with which instance."""
    return f"openfloat-{job_id}-{instance_id}"


@dataclass
class RunningJob:
    launch: JobLaunch
    shipper: LogShipper
    # Set while the agent itself stops the container (checkpoint, cancel): not a job exit.
    stopping: bool = False
    # The job's own `float migrate` / `float show`, when its OpCenter allows them.
    calls: JobCalls | None = None
    # When (time.monotonic) the job has used up its time limit on this instance; None: no limit.
    deadline: float | None = None
    # Set once the agent stopped the container at its deadline: its exit is a time-out.
    timed_out: bool = False
    # Reads the container's cgroup while it runs here (a restore makes a new one).
    sampler: Sampler | None = None
    # The last sample sent showed memory running out (see Utilization.pressing).
    pressing_sent: bool = False
    # When (time.monotonic) the next periodic checkpoint is due; None: the job takes none.
    next_checkpoint: float | None = None
    # The committed pre-dump whose pages podman keeps here, which the next dump may name.
    pre_dumped: int | None = None

    def checkpoint_taken(self) -> None:
        """A checkpoint was taken, or tried: the next periodic one is a whole interval away."""
        interval = self.launch.checkpointIntervalSeconds
        self.next_checkpoint = None if interval is None or not self.launch.checkpointable \
            else time.monotonic() + interval


@dataclass
class Agent:
    settings: AgentSettings
    s3: Any
    sqs: Any
    sfn: Any
    secrets: Any
    podman: Podman = field(default_factory=Podman)
    imds: Imds | None = None
    s3_access: S3Access = field(default_factory=S3Access.from_environment)
    job: RunningJob | None = None
    last_checkpoint: CheckpointManifest | None = None
    # Whether this host's kernel tracks dirty memory (checked at registration): checkpoints
    # are then incremental.
    incremental: bool = False
    reclaim_noticed: bool = False
    rebalance_noticed: bool = False
    # A job just started or restored here: the next watch tick sends a heartbeat, so the
    # control plane hears this instance's address without waiting a whole heartbeat period.
    heartbeat_due: bool = False
    kernel_log: KernelLog = field(default_factory=KernelLog)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: threading.Event = field(default_factory=threading.Event)
    # Set when a checkpoint that stops the job is wanted (a notice, a move): a periodic one
    # still uploading gives way to it at once.
    _abandon: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.imds is None:
            self.imds = Imds(self.settings.imds_url)
        # The agent's threads share its clients. botocore makes a client's error classes on
        # first use, without a lock: two threads at once would get different classes, and an
        # `except` naming one would miss an error raised as the other. Made now, before any
        # thread starts.
        for client in (self.s3, self.sqs, self.sfn, self.secrets):
            getattr(client, "exceptions", None)
        self.capsules = CapsuleStore(self.s3, self.settings.bucket, self.settings.part_size)
        self.host_scripts = HostScripts(self.s3, self.settings.bucket, self.settings.instance_id,
                                        self.settings.instance_type,
                                        self.settings.work_dir / "host-scripts",
                                        host_root=self.settings.host_root)
        logger.append_keys(instance_id=self.settings.instance_id)

    def _guarded(self, what: str, step: Callable[[], Any], job_id: str | None = None) -> bool:
        """Run one step of the agent's own work; an error is logged with the job and the
        instance, and the agent goes on. False when the step failed."""
        try:
            step()
        except Exception:  # noqa: BLE001 - an agent that stops serving strands its job
            logger.exception(f"{what} failed", extra={
                "job_id": job_id or (self.job.launch.jobId if self.job else None)})
            return False
        return True

    # ---- reporting -------------------------------------------------------------------------

    def emit(self, event: Any) -> None:
        self.sqs.send_message(QueueUrl=self.settings.events_queue_url,
                              MessageBody=EventEnvelope(event=event).model_dump_json())

    def _answer(self, token: str | None, output: dict[str, Any] | None,
                failure: AgentFailure | None, job_id: str | None) -> None:
        """Answer a task token. Tried a few times: an unanswered token leaves its workflow to
        give up on this agent at its heartbeat timeout, which is slower but still an end."""
        if token is None:
            return

        def send() -> None:
            if failure is None:
                self.sfn.send_task_success(taskToken=token, output=json.dumps(output or {}))
            else:
                self.sfn.send_task_failure(taskToken=token, error=failure.name,
                                           cause=failure.message[:32000])

        for attempt in range(ANSWER_ATTEMPTS):
            if self._guarded("answering the task token", send, job_id) \
                    or attempt == ANSWER_ATTEMPTS - 1:
                return
            time.sleep(0.5 * 2**attempt)

    # ---- commands --------------------------------------------------------------------------

    def handle(self, command: Command) -> dict[str, Any] | None:
        """Carry out one command and answer its task token; failures are answered, not raised."""
        handlers: dict[type, Callable[[Any], dict[str, Any]]] = {
            RunCommand: lambda c: self.run(c.job, c.volumes),
            CheckpointCommand: lambda c: self._checkpoint_command(c).model_dump(mode="json"),
            RestoreCommand: lambda c: self.restore(c.job, c.seq, c.volumes).model_dump(
                mode="json"),
            CancelCommand: lambda c: self.cancel(c.jobId),
            TerminateCommand: lambda c: self.terminate(),
        }
        job_id = getattr(command, "jobId", None) or getattr(getattr(command, "job", None), "jobId", None)
        try:
            with self._heartbeats(command.taskToken):
                output = handlers[type(command)](command)
        except AgentFailure as named:
            failure = named
            logger.warning("command failed", extra={"command": command.kind, "job_id": job_id,
                                                     "error": failure.name})
        except Exception as error:  # noqa: BLE001 - answered as a named failure, never lost
            failure = AgentError(f"{command.kind} of job {job_id or '-'} on "
                                 f"{self.settings.instance_id}: {type(error).__name__}: {error}")
            logger.exception("command failed unexpectedly",
                             extra={"command": command.kind, "job_id": job_id})
        else:
            self._answer(command.taskToken, output, None, job_id)
            return output
        self._guarded("reporting the failure", lambda: self.emit(CommandFailed(
            instanceId=self.settings.instance_id, time=_now(), jobId=job_id,
            command=command.kind, error=failure.name, message=failure.message)), job_id)
        self._answer(command.taskToken, None, failure, job_id)
        return None

    @contextlib.contextmanager
    def _heartbeats(self, token: str | None) -> Iterator[None]:
        """Tell the workflow waiting on `token` that this agent is alive and working, until the
        block ends. Started before the command takes the lock: a command waiting for another
        one (the checkpoint a reclaim notice began) is alive too."""
        if token is None:
            yield
            return
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.settings.task_heartbeat_seconds):
                try:
                    self.sfn.send_task_heartbeat(taskToken=token)
                except Exception as error:  # noqa: BLE001 - the workflow gave up or moved on
                    logger.warning("task heartbeat refused", extra={"error": str(error)})
                    return

        thread = threading.Thread(target=beat, name="task-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def _credentials(self, launch: JobLaunch) -> Credentials | None:
        if launch.credentialsSecretId is None:
            return None
        value = self.secrets.get_secret_value(SecretId=launch.credentialsSecretId)["SecretString"]
        data = json.loads(value)
        return Credentials(username=data["username"], token=data["token"])

    def _volume_keys(self, launch: JobLaunch) -> VolumeKeys:
        """The S3 keys the job's volumes brought with them, by mount path."""
        if launch.volumeKeysSecretId is None:
            return {}
        secret = self.secrets.get_secret_value(SecretId=launch.volumeKeysSecretId)
        return volume_keys(secret["SecretString"])

    def _job_calls(self, launch: JobLaunch) -> JobCalls | None:
        """What serves the job's own `float` calls, when the OpCenter gave it a token."""
        if launch.apiUrl is None or launch.apiTokenSecretId is None:
            return None
        secret = launch.apiTokenSecretId
        return JobCalls(
            jobcalls.control_dir(self._job_dir(launch.jobId)), launch.jobId, launch.apiUrl,
            lambda: str(self.secrets.get_secret_value(SecretId=secret)["SecretString"]))

    def container(self, job_id: str) -> str:
        return container_name(job_id, self.settings.instance_id)

    def _job_dir(self, job_id: str) -> Path:
        return self.settings.job_root / job_id

    def _prepare(self, launch: JobLaunch, event: HostEvent,
                 attached: Sequence[AttachedVolume] = ()) -> tuple[Path, list[tuple[Path, str]]]:
        """The job's directory, script and volumes on this host; the image present; its
        hostInit script run (on every host the job visits, before it starts or is restored)."""
        job_dir = self._job_dir(launch.jobId)
        job_dir.mkdir(parents=True, exist_ok=True)
        self.podman.ensure_image(launch.imageUri, self._credentials(launch))
        try:
            mounts = mount_volumes(launch.dataVolumes, job_dir, self.s3_access,
                                   self._volume_keys(launch), attached,
                                   BlockDevices(local_root=self.settings.block_devices))
            self.host_scripts.init(launch, job_dir, event)
        except AgentFailure:
            unmount_volumes(job_dir)
            raise
        if launch.apiUrl is not None:
            # Created before a restore too: the container comes back with this mount.
            mounts.append((jobcalls.control_dir(job_dir), jobcalls.CONTROL_IN_CONTAINER))
        try:
            mounts += map_host_dirs(launch.dirMaps, job_dir, self.settings.host_root)
        except AgentFailure:
            unmount_volumes(job_dir)
            raise
        return job_dir, mounts

    def _leave(self, launch: JobLaunch, event: HostEvent) -> str | None:
        """The job has left this host: its hostTerminate script run, then its volumes
        unmounted. Why the script failed, if it did."""
        run = self.host_scripts.terminate(launch, self._job_dir(launch.jobId), event)
        unmount_volumes(self._job_dir(launch.jobId))
        return None if run is None or run.ok else run.failure()

    def run(self, launch: JobLaunch, attached: Sequence[AttachedVolume] = ()) -> dict[str, Any]:
        with self._lock:
            name = self.container(launch.jobId)
            if self.job is not None and self.job.launch.jobId == launch.jobId:
                return {"container": name, "alreadyRunning": True}
            job_dir, mounts = self._prepare(launch, "start", attached)
            script = job_dir / "script"
            body = self.s3.get_object(Bucket=self.settings.bucket, Key=launch.scriptKey)["Body"]
            script.write_bytes(body.read())
            script.chmod(0o755)
            # A script with a shebang runs under its interpreter; any other under /bin/sh.
            command = [SCRIPT_IN_CONTAINER] if script.read_bytes().startswith(b"#!") else \
                ["/bin/sh", SCRIPT_IN_CONTAINER]
            self.podman.remove(name)
            self.podman.ensure_network()
            # FLOAT_ADDR as MMCloud sets it: job scripts pass it on (`float secret get N -a
            # $FLOAT_ADDR`); the in-job float reaches the OpCenter through this agent anyway.
            address = {"FLOAT_ADDR": launch.apiUrl} if launch.apiUrl is not None else {}
            self.podman.create(
                name, launch.imageUri, command,
                env={**address, **launch.env, "FLOAT_JOB_ID": launch.jobId},
                cpus=launch.cpus,
                memory_bytes=_memory_bytes(launch),
                mounts=mounts, options=job_options(launch), publish=launch.publish,
                publish_address=self.settings.publish_address)
            # Copied into the container's own files, so the script travels with checkpoints.
            self.podman.copy_in(name, script, SCRIPT_IN_CONTAINER)
            if launch.apiUrl is not None:
                # "DIR/." copies what DIR holds (pathlib would drop the "/.").
                self.podman.copy_in(name, f"{jobcalls.IN_JOB_TREE}/.", "/")
            self.podman.start(name)
            # A fresh log: what an earlier run shipped is no longer read once this one opens.
            self.job = RunningJob(launch, LogShipper(self.s3, self.settings.bucket, launch.jobId,
                                                     self.podman.log_path(name), carried=0),
                                  calls=self._job_calls(launch),
                                  deadline=_deadline(launch.timeLimitSeconds))
            self.job.checkpoint_taken()
            self._guarded("shipping the log", self.job.shipper.ship, launch.jobId)
            self.heartbeat_due = True
            logger.info("job started", extra={"job_id": launch.jobId})
            return {"container": name}

    def _checkpoint_command(self, command: CheckpointCommand) -> CheckpointManifest:
        if not command.leaveRunning:
            self._abandon.set()  # before the lock a periodic checkpoint may hold
        return self.checkpoint(command.jobId, command.reason, command.leaveRunning)

    def periodic_checkpoint(self) -> CheckpointManifest | None:
        """Checkpoint the job, left running, once its interval is up. Not while a command
        holds the agent (a move of this very job, say) or after a reclaim notice; a notice or
        a move that comes meanwhile makes it give way (its upload is abandoned, uncommitted)."""
        job = self.job
        if job is None or job.next_checkpoint is None or time.monotonic() < job.next_checkpoint \
                or job.stopping or self.reclaim_noticed or not self._lock.acquire(blocking=False):
            return None
        try:
            if self.job is not job or self.reclaim_noticed:
                return None
            self._abandon.clear()
            try:
                return self.checkpoint(job.launch.jobId, "periodic checkpoint (every "
                                       f"{job.launch.checkpointIntervalSeconds} s)",
                                       leave_running=True, abandon=self._abandon)
            except CheckpointUploadFailed:
                if not self._abandon.is_set():
                    raise
                logger.info("periodic checkpoint abandoned for a checkpoint that stops the job",
                            extra={"job_id": job.launch.jobId})
                return None
            finally:
                job.checkpoint_taken()
        finally:
            self._lock.release()

    def checkpoint(self, job_id: str, reason: str, leave_running: bool = False,
                   abandon: threading.Event | None = None) -> CheckpointManifest:
        """Dump the job's container to S3 and commit it (unless `abandon` is set before the
        upload is done). A second request for a job whose container this agent already
        stopped by a checkpoint gets that checkpoint.

        Where the kernel tracks dirty memory, a dump is built on the last committed pre-dump
        (it holds only the pages changed since), and a checkpoint that leaves the job running
        is followed by a new pre-dump for the next one to build on. A dump resets the kernel's
        record of changed pages, so each pre-dump carries one dump at most: a second one on it
        would leave out what changed before the first."""
        with self._lock:
            if self.job is None or self.job.launch.jobId != job_id:
                if self.last_checkpoint is not None and self.last_checkpoint.jobId == job_id:
                    return self.last_checkpoint
                raise CheckpointFailed(f"job {job_id} is not running on {self.settings.instance_id}")
            job = self.job
            if not job.launch.checkpointable:
                raise CheckpointFailed(f"job {job_id} was submitted with disableMigrate: it is "
                                       "never checkpointed")
            name = self.container(job_id)
            self.settings.work_dir.mkdir(parents=True, exist_ok=True)
            previous, job.pre_dumped = (job.pre_dumped if self.incremental else None), None
            try:
                manifest = self._store_dump(job, name, reason, "dump", leave_running, previous,
                                            abandon)
            except CheckpointFailed as failure:
                if previous is None or leave_running:
                    raise
                # podman could not dump on the pre-dump, and the job still runs: a whole image
                # may still fit, and a notice's checkpoint is the job's last chance.
                logger.warning("checkpoint on the pre-dump failed; taking a full one",
                               extra={"job_id": job_id, "error": str(failure)})
                manifest = self._store_dump(job, name, reason, "dump", False, None, abandon)
            # The log travels in the image too; shipping it now keeps `float log` current and
            # leaves the shipper of a restore nothing of it to send again.
            self._guarded("shipping the log", job.shipper.ship, job_id)
            if not leave_running:
                self.podman.remove(name)
                self._leave(job.launch, "checkpoint")
                self.job = None
                # What a repeated request for this stopped job gets (not a periodic one).
                self.last_checkpoint = manifest
            # Older checkpoints left behind cost storage, not correctness: a restore reads the
            # newest committed one (and the pre-dump it names).
            self._guarded("pruning older checkpoints",
                          lambda: self.capsules.prune(job_id, keep=manifest), job_id)
            # Committed in S3 already, which is what a restore reads: a refused report is
            # logged, not a failed checkpoint.
            self._guarded("reporting the checkpoint", lambda: self.emit(CheckpointCommitted(
                instanceId=self.settings.instance_id, time=_now(), jobId=job_id,
                manifest=manifest)), job_id)
            logger.info("checkpoint committed", extra={"job_id": job_id, "seq": manifest.seq,
                                                       "bytes": manifest.archiveSize,
                                                       "previous_seq": manifest.previousSeq})
            if self.incremental and leave_running:
                self._pre_dump(job, name, reason, abandon)
            return manifest

    def _pre_dump(self, job: RunningJob, name: str, reason: str,
                  abandon: threading.Event | None) -> None:
        """Pre-dump the running job for the next dump to build on. Its pages are kept here
        too, but none may be built on until it is committed; one that fails leaves the next
        dump whole."""
        try:
            job.pre_dumped = self._store_dump(job, name, reason, "pre-dump", True, None,
                                              abandon).seq
        except (CheckpointFailed, CheckpointUploadFailed) as failure:
            logger.warning("pre-dump not taken; the next checkpoint is a whole one",
                           extra={"job_id": job.launch.jobId, "error": str(failure)})

    def _store_dump(self, job: RunningJob, name: str, reason: str, kind: str,
                    leave_running: bool, previous: int | None,
                    abandon: threading.Event | None) -> CheckpointManifest:
        """One podman dump of the job's container streamed into S3 and committed: a whole one,
        a pre-dump, or (with `previous`) the pages changed since that pre-dump."""
        job.stopping = not leave_running
        log_before = job.shipper.log_size()
        started = time.monotonic()
        # What is left of the limit is carried in the checkpoint: a restore elsewhere goes
        # on with it, so the move itself is not charged.
        remaining = None if job.deadline is None else round(max(0.0, job.deadline - started), 3)
        launch, shipper = job.launch, job.shipper
        dumped: list[float] = []

        def dump(pipe: Path) -> CriuStats:
            # Uncompressed: each part is compressed as it goes up, where that pays.
            try:
                return self.podman.checkpoint(name, pipe, leave_running=leave_running,
                                              pre_dump=kind == "pre-dump",
                                              with_previous=previous is not None)
            finally:
                dumped.append(time.monotonic())

        def describe(seq: int, parts: list, size: int) -> CheckpointManifest:
            # Only a dump podman finished is committed: a failed one raises here.
            stats = podman_done.result()
            # How much log the image holds: a stopped container's file is the one exported;
            # one left running may have written on since the dump, so only what came before
            # is sure.
            log_size = log_before if leave_running else shipper.log_size()
            # Freeze to the archive written; the upload overlaps it, and its figure is what
            # was left to store after.
            checkpoint_seconds = dumped[0] - started
            return CheckpointManifest(
                jobId=launch.jobId, seq=seq, kind=kind, previousSeq=previous,
                instanceId=self.settings.instance_id, instanceType=self.settings.instance_type,
                image=launch.imageUri, createTime=_now(), reason=reason, archiveSize=size,
                parts=parts, stats=stats, checkpointSeconds=round(checkpoint_seconds, 3),
                uploadSeconds=round(max(0.0, time.monotonic() - dumped[0]), 3),
                remainingSeconds=remaining, logSize=log_size)

        try:
            with written_by(self.settings.work_dir / f"{name}.checkpoint", dump) as (
                    stream, podman_done):
                return self.capsules.upload(stream, describe, launch.jobId, abandon=abandon)
        except CheckpointFailed:
            # podman's dump failed: the container runs on, its exits are the job's again.
            job.stopping = False
            raise

    def restore(self, launch: JobLaunch, seq: int | None = None,
                attached: Sequence[AttachedVolume] = ()) -> Restored:
        with self._lock:
            name = self.container(launch.jobId)
            manifest = self.capsules.require_latest(launch.jobId)
            if seq is not None and manifest.seq != seq:
                raise CheckpointFailed(f"job {launch.jobId}: checkpoint {seq} is not the newest "
                                       f"committed one ({manifest.seq})")
            # A dump on a pre-dump is restored with it; latest() found both committed.
            previous = self.capsules.previous(manifest)
            if manifest.previousSeq is not None and previous is None:
                raise CheckpointNotFound(f"job {launch.jobId}: checkpoint {manifest.seq} needs "
                                         f"pre-dump {manifest.previousSeq}, which is gone")
            self._prepare(launch, "restore", attached)
            self.settings.work_dir.mkdir(parents=True, exist_ok=True)
            archive = self.settings.work_dir / f"{name}.restore.tar"
            previous_archive = self.settings.work_dir / f"{name}.restore-previous.tar"
            try:
                started = time.monotonic()
                with ThreadPoolExecutor(max_workers=2) as fetching:
                    fetched = [fetching.submit(self.capsules.download, m, path) for m, path in
                               ((manifest, archive), (previous, previous_archive)) if m]
                    for done in fetched:
                        done.result()
                downloaded = time.monotonic()
                self.podman.remove(name)
                self.podman.ensure_network(RestoreFailed)
                self.podman.restore(archive, name, publish=launch.publish,
                                    publish_address=self.settings.publish_address,
                                    previous=previous_archive if previous else None)
                try:
                    self.podman.set_limits(name, launch.cpus, _memory_bytes(launch))
                except RestoreFailed:
                    # Left with the old instance's limits it would run on as if it had not
                    # moved: a job moved up for memory would be killed for it here.
                    self.podman.remove(name)
                    raise
                restored = time.monotonic()
            finally:
                archive.unlink(missing_ok=True)
                previous_archive.unlink(missing_ok=True)
            # The launch's figure counts the job's Executing time up to its launch; the
            # checkpoint's, up to its freeze. The smaller is the truer: a requested move runs
            # on after its replacement is launched.
            left = [s for s in (launch.timeLimitSeconds, manifest.remainingSeconds) if s is not None]
            # The restored log holds what the checkpoint's did; shipping goes on from there.
            self.job = RunningJob(launch, LogShipper(self.s3, self.settings.bucket, launch.jobId,
                                                     self.podman.log_path(name),
                                                     carried=manifest.logSize),
                                  calls=self._job_calls(launch),
                                  deadline=_deadline(min(left) if left else None))
            self.job.checkpoint_taken()
            self._guarded("shipping the log", self.job.shipper.ship, launch.jobId)
            self.heartbeat_due = True
            logger.info("job restored", extra={"job_id": launch.jobId, "seq": manifest.seq})
            return Restored(manifest=manifest, downloadSeconds=round(downloaded - started, 3),
                            restoreSeconds=round(restored - downloaded, 3))

    def cancel(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            if self.job is not None and self.job.launch.jobId == job_id:
                self.job.stopping = True
                self.podman.remove(self.container(job_id))
                self.job.shipper.ship()
                self._leave(self.job.launch, "cancel")
                self.job = None
            return {"cancelled": job_id}

    def terminate(self) -> dict[str, Any]:
        self._stop.set()
        return {"terminating": self.settings.instance_id}

    # ---- watching --------------------------------------------------------------------------

    def watch_job(self) -> None:
        """Ship logs; when the job's container exits by itself, report its exit code."""
        with self._lock:
            job = self.job
            if job is None:
                return
            job.shipper.ship()
            name = self.container(job.launch.jobId)
            state = self.podman.state(name)
            if (job.deadline is not None and not job.stopping and state is not None
                    and state.running and time.monotonic() >= job.deadline):
                logger.info("time limit used up; stopping the job",
                            extra={"job_id": job.launch.jobId})
                job.timed_out = True
                self.podman.stop(name, STOP_GRACE_SECONDS)
                state = self.podman.state(name)
            if state is not None and state.running and not job.stopping:
                self._look_at_usage(job, state)
            if job.stopping or state is None or state.running or state.exit_code is None:
                return
            job.shipper.ship()
            # Before the report, which leads to the instance's release; run once, however
            # often a refused report is sent again.
            failure = self._leave(job.launch, "exit")
            # Reported before the job is let go: a refused report is sent again next tick.
            self.emit(JobExited(instanceId=self.settings.instance_id, time=_now(),
                                jobId=job.launch.jobId, exitCode=state.exit_code,
                                timedOut=job.timed_out, hostTerminateFailure=failure,
                                oomKilled=self._killed_for_memory(job, state),
                                memoryLimitBytes=job.sampler.latest.limit
                                if job.sampler and job.sampler.latest else None))
            self.job = None
            logger.info("job exited", extra={"job_id": job.launch.jobId, "rc": state.exit_code})

    def _look_at_usage(self, job: RunningJob, state: ContainerState) -> None:
        """Keep the memory peak between heartbeats; report at once when memory runs out, so
        that evadeOOM can move the job before the kernel kills it."""
        if state.pid is not None and (job.sampler is None or job.sampler.pid != state.pid):
            job.sampler = Sampler.of(state.pid)
        reading = job.sampler.look() if job.sampler is not None else None
        if reading is not None and reading.pressing and not job.pressing_sent:
            self.heartbeat_due = True

    def _killed_for_memory(self, job: RunningJob, state: ContainerState) -> bool:
        """SIGKILLed by the kernel's OOM killer, as podman, the cgroup's counter or the kernel
        log tells (the counter goes with the container, often before it was last read)."""
        if state.exit_code != 137 or job.timed_out:
            return False
        if state.oom_killed:
            return True
        sampler = job.sampler
        return sampler is not None and (
            (sampler.latest is not None and sampler.latest.oom_kills > 0)
            or self.kernel_log.killed_in(sampler.cgroup.memory_name))

    def watch_metadata(self) -> None:
        """On a reclaim notice, checkpoint at once: the warning window is short and the
        control plane may be slow or unreachable."""
        assert self.imds is not None
        if self.reclaim_noticed:
            return
        try:
            action = self.imds.instance_action()
            rebalance = None if self.rebalance_noticed else self.imds.rebalance_notice()
        except ImdsUnavailable as error:
            logger.warning("instance metadata unavailable", extra={"error": str(error)})
            return
        if rebalance is not None:
            # Reported, not acted on: whether to move early is the control plane's decision.
            self.emit(RebalanceNoticed(instanceId=self.settings.instance_id, time=_now(),
                                       jobId=self.job.launch.jobId if self.job else None,
                                       noticeTime=rebalance))
            self.rebalance_noticed = True
        if action is None:
            return
        self.reclaim_noticed = True
        job_id = self.job.launch.jobId if self.job else None
        # The checkpoint goes ahead even if the report is refused: the EC2 warning reaches the
        # control plane on its own path.
        self._guarded("reporting the reclaim notice", lambda: self.emit(ReclaimNoticed(
            instanceId=self.settings.instance_id, time=_now(), jobId=job_id,
            action=action.action, actionTime=action.time)), job_id)
        if job_id is not None and self.job is not None and not self.job.launch.checkpointable:
            logger.info("reclaim notice: the job is never checkpointed (disableMigrate)",
                        extra={"job_id": job_id})
        elif job_id is not None:
            self._abandon.set()
            self.handle(CheckpointCommand(jobId=job_id,
                                          reason=f"spot {action.action} notice for {action.time}"))

    def serve_job_calls(self) -> None:
        """Answer the job's own `float` calls. Not under the lock: a `float migrate` leads to a
        checkpoint command, which must not wait for this call to end."""
        job = self.job
        if job is not None and job.calls is not None:
            job.calls.serve()

    def heartbeat(self) -> None:
        job = self.job
        usage = job.sampler.sample() if job is not None and job.sampler is not None \
            and not job.stopping else None
        self.emit(Heartbeat(instanceId=self.settings.instance_id, time=_now(),
                            jobId=job.launch.jobId if job else None,
                            address=self.settings.address, utilization=usage))
        if job is not None and usage is not None:
            job.pressing_sent = usage.pressing

    # ---- the process -----------------------------------------------------------------------

    def register(self) -> None:
        """Announce this instance; tried until it is heard (or the agent is told to stop)."""
        delay = 1.0
        mode = checkpoint_mode()
        self.incremental = mode.incremental
        logger.info("checkpoints on this host", extra={"checkpoints": mode.description})
        while not self._guarded("registering", lambda: self.emit(Registered(
                instanceId=self.settings.instance_id, time=_now(),
                instanceType=self.settings.instance_type, checkpoints=mode.description))):
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, 30.0)

    def receive_commands(self) -> None:
        response = self.sqs.receive_message(QueueUrl=self.settings.commands_queue_url,
                                            MaxNumberOfMessages=1,
                                            WaitTimeSeconds=self.settings.command_wait_seconds)
        for message in response.get("Messages", []):
            try:
                command = CommandEnvelope.model_validate_json(message["Body"]).command
            except ValueError as error:
                logger.error("unreadable command dropped", extra={"error": str(error)})
            else:
                self.handle(command)
            # Deleted only once handled: a crash mid-command leaves it for a retry.
            self.sqs.delete_message(QueueUrl=self.settings.commands_queue_url,
                                    ReceiptHandle=message["ReceiptHandle"])

    def serve(self) -> None:
        """Register, then run until told to terminate: commands on this thread, metadata and
        the job's container watched on another."""
        self.register()
        watcher = threading.Thread(target=self._watch_loop, name="watch", daemon=True)
        watcher.start()
        # Its own thread: a long upload must not keep the watch from hearing a notice.
        periodic = threading.Thread(target=self._periodic_loop, name="periodic", daemon=True)
        periodic.start()
        while not self._stop.is_set():
            if not self._guarded("receiving commands", self.receive_commands):
                # The queue refused: wait a moment rather than spin on it.
                self._stop.wait(self.settings.imds_poll_seconds)
        watcher.join(timeout=5)

    def stop(self) -> None:
        self._stop.set()

    def _watch_loop(self) -> None:
        next_heartbeat = 0.0
        while not self._stop.wait(self.settings.imds_poll_seconds):
            self.watch_tick()
            if self.heartbeat_due or time.monotonic() >= next_heartbeat:
                self.heartbeat_due = False
                # A refused heartbeat is tried again on the next tick.
                next_heartbeat = time.monotonic() + self.settings.heartbeat_seconds \
                    if self._guarded("heartbeat", self.heartbeat) else 0.0

    def _periodic_loop(self) -> None:
        while not self._stop.wait(self.settings.imds_poll_seconds):
            self._guarded("taking a periodic checkpoint", self.periodic_checkpoint)

    def watch_tick(self) -> None:
        """One look at the metadata, the job's container and the job's own calls; each guarded
        on its own, so a refused log upload does not stop a reclaim notice being heard."""
        self._guarded("watching the instance metadata", self.watch_metadata)
        self._guarded("watching the job", self.watch_job)
        self._guarded("serving the job's calls", self.serve_job_calls)

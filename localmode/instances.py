"""The local instance manager: every instance the emulated EC2 runs for a job becomes a real
agent process, started with the user data the launch gave the instance, with its own metadata
service and work directory. When the instance is terminated, its agent and its container are
killed at once (SIGKILL: a reclaimed VM does not say goodbye) and EventBridge hears of it as it
would from EC2. Reclaim drills play EC2's part in a Spot reclaim: the warning, the metadata
notice, and the termination when the notice runs out, whatever the job has managed by then.
Each EBS volume of the emulated EC2 is a directory of its own, which an instance sees only while
the volume is attached to it, and which goes when the volume is deleted: a volume that did not
follow its job is missing on the new instance, as on EC2."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from aws_lambda_powertools import Logger

from agent.podman import Podman
from agent.volumes import unmount_volumes
from chalicelib.blockvolumes import OPCENTER_TAG
from chalicelib.errors import Conflict
from chalicelib.events import SPOT_WARNING, STATE_CHANGE
from chalicelib.fleet import JOB_TAG
from localmode.imds import LocalImds

logger = Logger(service="openfloat-local-instances")

ROOT = Path(__file__).resolve().parent.parent
LIVE = frozenset({"pending", "running"})
# The emulated EC2 has one availability zone; its events name it as EC2's do.
ZONE = "us-east-1a"


@dataclass
class LocalInstance:
    instance_id: str
    instance_type: str
    process: subprocess.Popen[bytes]
    imds: LocalImds
    log: BinaryIO


def agent_arguments(user_data: str) -> list[str]:
    """The agent's flags from an instance's user data (`... python3 -m agent FLAGS`)."""
    for line in user_data.splitlines():
        words = shlex.split(line)
        for index in range(len(words) - 2):
            if words[index:index + 3] in (["python3", "-m", "agent"], ["python", "-m", "agent"]):
                return words[index + 3:]
    raise ValueError("the user data starts no agent")


class LocalInstances:
    """Watches the emulated EC2 and keeps one agent process per live OpenFloat instance."""

    def __init__(self, session: Any, state_dir: Path, poll_seconds: float = 0.5) -> None:
        self.ec2 = session.client("ec2")
        self.events = session.client("events")
        self.job_root = state_dir / "jobs"
        self.instance_root = state_dir / "instances"
        self.volume_root = state_dir / "volumes"
        self.poll_seconds = poll_seconds
        self.podman = Podman()
        self._instances: dict[str, LocalInstance] = {}
        self._ended: set[str] = set()
        self._timers: list[threading.Timer] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="local-instances", daemon=True)

    # ---- life of the manager ---------------------------------------------------------------

    def start(self) -> LocalInstances:
        self.job_root.mkdir(parents=True, exist_ok=True)
        self.instance_root.mkdir(parents=True, exist_ok=True)
        self.volume_root.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Kill every agent and container this manager started, and unmount their volumes."""
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            for instance_id in list(self._instances):
                self._kill(instance_id)
        if self.job_root.exists():
            for job_dir in self.job_root.iterdir():
                unmount_volumes(job_dir)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._instances)

    # ---- following EC2 ---------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - keep watching; the next round may succeed
                logger.exception("instance sync failed")

    def sync(self) -> None:
        """Start an agent for each new live instance; kill those of ended ones."""
        found = self.ec2.describe_instances(
            Filters=[{"Name": "tag-key", "Values": [JOB_TAG]}])["Reservations"]
        with self._lock:
            for reservation in found:
                for instance in reservation["Instances"]:
                    instance_id, state = instance["InstanceId"], instance["State"]["Name"]
                    if state in LIVE and instance_id not in self._instances \
                            and instance_id not in self._ended:
                        self._boot(instance_id, instance["InstanceType"],
                                   instance.get("Placement", {}).get("AvailabilityZone", ZONE))
                    elif state not in LIVE and instance_id in self._instances:
                        self._kill(instance_id)
                        self._announce(instance_id, state)
            self._sync_volumes()

    def _sync_volumes(self) -> None:
        """Give each live instance the volumes attached to it (`devices/<volume id>`, a link to
        the volume's own directory) and nothing else; a deleted volume's files go with it."""
        pages = self.ec2.get_paginator("describe_volumes").paginate(
            Filters=[{"Name": "tag-key", "Values": [OPCENTER_TAG]}])
        volumes = [volume for page in pages for volume in page["Volumes"]]
        held: dict[str, set[str]] = {}
        for volume in volumes:
            (self.volume_root / volume["VolumeId"]).mkdir(parents=True, exist_ok=True)
            for attachment in volume.get("Attachments", []):
                if attachment["State"] == "attached":
                    held.setdefault(attachment["InstanceId"], set()).add(volume["VolumeId"])
        for instance_id in self._instances:
            devices = self.instance_root / instance_id / "devices"
            devices.mkdir(parents=True, exist_ok=True)
            wanted = held.get(instance_id, set())
            for link in devices.iterdir():
                if link.name not in wanted:
                    link.unlink()
            for volume_id in wanted - {link.name for link in devices.iterdir()}:
                (devices / volume_id).symlink_to(self.volume_root / volume_id)
        live = {volume["VolumeId"] for volume in volumes}
        for directory in self.volume_root.iterdir():
            if directory.name not in live:
                shutil.rmtree(directory, ignore_errors=True)

    def _boot(self, instance_id: str, instance_type: str, zone: str = ZONE) -> None:
        raw = self.ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="userData")["UserData"].get("Value", "")
        try:
            flags = agent_arguments(base64.b64decode(raw).decode())
        except ValueError as error:
            logger.warning("instance left alone", extra={"instance_id": instance_id,
                                                          "why": str(error)})
            self._ended.add(instance_id)
            return
        imds = LocalImds(instance_id, instance_type, zone=zone).start()
        work = self.instance_root / instance_id
        work.mkdir(parents=True, exist_ok=True)
        log = (work / "agent.log").open("ab")
        command = [sys.executable, "-m", "agent", *flags, "--imds", imds.url,
                   "--job-root", str(self.job_root), "--work-dir", str(work / "work"),
                   # Its own files: no other instance sees them, as on a separate host.
                   "--host-root", str(work / "host"), "--publish-address", "127.0.0.1:",
                   "--block-devices", str(work / "devices")]
        # Its own session: the whole process group dies with the instance.
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self._instances[instance_id] = LocalInstance(instance_id, instance_type, process, imds, log)
        logger.info("instance booted", extra={"instance_id": instance_id, "pid": process.pid})

    def _kill(self, instance_id: str) -> None:
        instance = self._instances.pop(instance_id)
        self._ended.add(instance_id)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(instance.process.pid, signal.SIGKILL)
        instance.process.wait(timeout=30)
        # The instance's containers die with it (conmon is not in the agent's process group).
        for name in self.podman.containers_named(f"-{instance_id}"):
            self.podman.remove(name)
        instance.imds.stop()
        instance.log.close()
        logger.info("instance killed", extra={"instance_id": instance_id})

    def _announce(self, instance_id: str, state: str) -> None:
        self._put_event(STATE_CHANGE, {"instance-id": instance_id, "state": state})

    def _put_event(self, detail_type: str, detail: dict[str, str]) -> None:
        instance_id = detail["instance-id"]
        self.events.put_events(Entries=[{
            "Source": "aws.ec2", "DetailType": detail_type, "Detail": json.dumps(detail),
            "Resources": [f"arn:aws:ec2:{ZONE}:instance/{instance_id}"],
            "Time": datetime.now(UTC)}])

    # ---- reclaim drills --------------------------------------------------------------------

    def reclaim(self, instance_id: str, notice_seconds: int) -> str:
        """Reclaim the instance as EC2 would: the Spot warning into EventBridge, the notice in its
        metadata, and termination when `notice_seconds` have passed. The time it goes."""
        with self._lock:
            instance = self._instances.get(instance_id)
            if instance is None:
                raise Conflict(f"instance {instance_id} is not running here")
            when = datetime.now(UTC) + timedelta(seconds=notice_seconds)
            instance.imds.mark_reclaim(when)
            self._put_event(SPOT_WARNING, {"instance-id": instance_id,
                                           "instance-action": "terminate"})
            timer = threading.Timer(notice_seconds, self._terminate, args=(instance_id,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        logger.info("reclaim notice given", extra={"instance_id": instance_id,
                                                   "seconds": notice_seconds})
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def vanish(self, instance_id: str) -> str:
        """Terminate the instance at once, with no warning and no event: the reconciler, not
        an event handler, must notice. The time it went."""
        with self._lock:
            if instance_id not in self._instances:
                raise Conflict(f"instance {instance_id} is not running here")
            self.ec2.terminate_instances(InstanceIds=[instance_id])
            self._kill(instance_id)  # no longer ours, so the watch announces nothing
        logger.info("instance vanished", extra={"instance_id": instance_id})
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def kill_agent(self, instance_id: str) -> None:
        """SIGKILL the instance's agent (its process group); the instance stays up and its
        containers run on, as when an agent crashes on EC2."""
        with self._lock:
            instance = self._instances.get(instance_id)
            if instance is None:
                raise Conflict(f"instance {instance_id} is not running here")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(instance.process.pid, signal.SIGKILL)
            instance.process.wait(timeout=30)
        logger.info("agent killed", extra={"instance_id": instance_id})

    def _terminate(self, instance_id: str) -> None:
        self.ec2.terminate_instances(InstanceIds=[instance_id])
        with self._lock:
            if instance_id in self._instances:
                self._kill(instance_id)
                self._announce(instance_id, "terminated")

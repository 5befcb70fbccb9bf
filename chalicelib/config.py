"""Configuration: the names of the AWS resources the control plane uses, read once at start."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Environment variable → logical id of the infra/ resource (or output) that provides it.
# Deployment wires each variable to a `Ref` of its resource; the local mode and the tests read
# the same names from the provisioned stack's outputs. This table is the only link between them.
RESOURCE_ENV: dict[str, str] = {
    "JOBS_TABLE": "JobsTable",
    "IMAGES_TABLE": "ImagesTable",
    "USERS_TABLE": "UsersTable",
    "LICENSES_TABLE": "LicensesTable",
    "USAGE_TABLE": "UsageTable",
    "STORAGE_TABLE": "StorageTable",
    "UTILIZATION_TABLE": "UtilizationTable",
    "DATA_BUCKET": "DataBucket",
    "SECRET_PREFIX": "SecretPrefix",
    "AGENT_EVENTS_QUEUE": "AgentEventsQueue",
    "QUEUE_PREFIX": "QueuePrefix",
    "WORKER_IMAGE_ID": "WorkerImageId",
    "EC2_EVENTS_QUEUE": "Ec2EventsQueue",
    "WORKER_LAUNCH_TEMPLATE": "WorkerLaunchTemplate",
    "WORKER_SUBNETS": "WorkerSubnets",
    "OPCENTER_ID": "OpCenterId",
    "LICENSE_ISSUER_KEY": "LicenseIssuerKey",
    "CHECKPOINT_INTERVAL_SECONDS": "CheckpointIntervalSeconds",
}
# WORKER_SUBNETS when the stack was given none: the default subnet of each zone of the
# default VPC, found when the first launch needs them.
DEFAULT_SUBNETS = "default"
_SUBNET = re.compile(r"^subnet-[0-9a-f]+$")


class ConfigError(RuntimeError):
    """A required setting is missing or malformed: the process cannot serve anything."""


def _workflow_arns(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError("WORKFLOW_ARNS must be a JSON object of workflow name → ARN") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError("WORKFLOW_ARNS must be a JSON object of workflow name → ARN")
    return value


def _subnets(text: str) -> tuple[str, ...]:
    if text == DEFAULT_SUBNETS:
        return ()
    subnets = tuple(part.strip() for part in text.split(","))
    wrong = [s for s in subnets if not _SUBNET.match(s)]
    if wrong:
        raise ConfigError(f"WORKER_SUBNETS must be {DEFAULT_SUBNETS!r} or subnet ids separated "
                          f"by commas; {', '.join(repr(w) for w in wrong)} is not a subnet id")
    return subnets


def _interval(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or 0 < int(text) < 10:
        raise ConfigError("CHECKPOINT_INTERVAL_SECONDS must be 0 (none) or at least 10, not "
                          f"{text!r}")
    return int(text)


@dataclass(frozen=True)
class Config:
    jobs_table: str
    images_table: str
    users_table: str
    licenses_table: str
    usage_table: str
    storage_table: str
    utilization_table: str
    data_bucket: str
    secret_prefix: str
    agent_events_queue: str
    queue_prefix: str
    worker_image_id: str
    ec2_events_queue: str
    # The launch template of the stack's workers (its id), and the subnets they launch in;
    # () for the default subnet of each zone of the default VPC.
    worker_launch_template: str
    worker_subnets: tuple[str, ...]
    # What licenses name this OpCenter by, and the public key of the issuer whose licenses it
    # accepts (Ed25519, base64 of the 32 raw bytes).
    opcenter_id: str
    license_issuer_key: str
    # Seconds between checkpoints of a running job that sets no interval of its own; 0: none.
    checkpoint_interval_seconds: int = 0
    token_ttl_seconds: int = 12 * 3600
    # How long a workflow waits for an agent: to commit a checkpoint (inside the two-minute
    # Spot warning), and to start or restore a job (boot, image pull, download).
    checkpoint_timeout_seconds: int = 110
    start_timeout_seconds: int = 900
    # How long to wait for an agent's answer to a quick command (stop the container).
    agent_timeout_seconds: int = 60
    # An agent working on a checkpoint tells the workflow so every few seconds; silence this
    # long means the agent is gone (its instance reclaimed), and the workflow moves on.
    agent_heartbeat_seconds: int = 20
    # A start or a restore is sent before the new instance has booted: its agent's first
    # heartbeat may come this long after the command (boot, agent start, image pull begun).
    start_heartbeat_seconds: int = 300
    # An Executing job's agent reports every 15 s; after this long without a word the
    # reconciler takes it as lost and moves the job.
    agent_silence_seconds: int = 90
    # A job's utilization series is kept this long after each point, then DynamoDB drops it.
    utilization_retention_hours: int = 72
    # No workflow keeps a job in a transitional status longer than this; past it the
    # reconciler ends the job, and an instance this old that no job runs on is left over.
    workflow_limit_seconds: int = 3600
    # Jobs are told the API's address, to call `float` from inside; by default the address
    # the job was submitted to. Set OPENFLOAT_API_URL when clients reach it by another name.
    api_url: str | None = None
    # Workflow name → state machine ARN. Deployment sets WORKFLOW_ARNS (JSON) once the state
    # machines exist; the local mode sets it after creating them from statemachines/.
    workflow_arns: dict[str, str] = field(default_factory=dict)

    def workflow(self, name: str) -> str:
        """The ARN of a workflow's state machine; ConfigError when it was never set."""
        if name not in self.workflow_arns:
            raise ConfigError(f"WORKFLOW_ARNS has no {name} workflow")
        return self.workflow_arns[name]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        missing = [name for name in RESOURCE_ENV if not env.get(name)]
        if missing:
            raise ConfigError(f"missing settings: {', '.join(missing)}")

        def seconds(name: str, default: int) -> int:
            text = env.get(name, str(default))
            if not (text.isascii() and text.isdigit()) or int(text) <= 0:
                raise ConfigError(f"{name} must be a positive whole number, not {text!r}")
            return int(text)

        return cls(
            jobs_table=env["JOBS_TABLE"],
            images_table=env["IMAGES_TABLE"],
            users_table=env["USERS_TABLE"],
            licenses_table=env["LICENSES_TABLE"],
            usage_table=env["USAGE_TABLE"],
            storage_table=env["STORAGE_TABLE"],
            utilization_table=env["UTILIZATION_TABLE"],
            data_bucket=env["DATA_BUCKET"],
            secret_prefix=env["SECRET_PREFIX"],
            agent_events_queue=env["AGENT_EVENTS_QUEUE"],
            queue_prefix=env["QUEUE_PREFIX"],
            worker_image_id=env["WORKER_IMAGE_ID"],
            ec2_events_queue=env["EC2_EVENTS_QUEUE"],
            worker_launch_template=env["WORKER_LAUNCH_TEMPLATE"],
            worker_subnets=_subnets(env["WORKER_SUBNETS"]),
            opcenter_id=env["OPCENTER_ID"],
            license_issuer_key=env["LICENSE_ISSUER_KEY"],
            checkpoint_interval_seconds=_interval(env["CHECKPOINT_INTERVAL_SECONDS"]),
            workflow_arns=_workflow_arns(env.get("WORKFLOW_ARNS", "{}")),
            token_ttl_seconds=seconds("TOKEN_TTL_SECONDS", cls.token_ttl_seconds),
            checkpoint_timeout_seconds=seconds("CHECKPOINT_TIMEOUT_SECONDS",
                                               cls.checkpoint_timeout_seconds),
            start_timeout_seconds=seconds("START_TIMEOUT_SECONDS", cls.start_timeout_seconds),
            agent_timeout_seconds=seconds("AGENT_TIMEOUT_SECONDS", cls.agent_timeout_seconds),
            agent_heartbeat_seconds=seconds("AGENT_HEARTBEAT_SECONDS",
                                            cls.agent_heartbeat_seconds),
            start_heartbeat_seconds=seconds("START_HEARTBEAT_SECONDS",
                                            cls.start_heartbeat_seconds),
            agent_silence_seconds=seconds("AGENT_SILENCE_SECONDS", cls.agent_silence_seconds),
            workflow_limit_seconds=seconds("WORKFLOW_LIMIT_SECONDS", cls.workflow_limit_seconds),
            utilization_retention_hours=seconds("UTILIZATION_RETENTION_HOURS",
                                                cls.utilization_retention_hours),
            api_url=env.get("OPENFLOAT_API_URL") or None,
        )

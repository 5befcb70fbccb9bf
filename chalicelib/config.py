"""Configuration: the names of the AWS resources the control plane uses, read once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Environment variable → logical id of the infra/ resource (or output) that provides it.
# Deployment wires each variable to a `Ref` of its resource; the local mode and the tests read
# the same names from the provisioned stack's outputs. This table is the only link between them.
RESOURCE_ENV: dict[str, str] = {
    "JOBS_TABLE": "JobsTable",
    "IMAGES_TABLE": "ImagesTable",
    "USERS_TABLE": "UsersTable",
    "LICENSES_TABLE": "LicensesTable",
    "USAGE_TABLE": "UsageTable",
    "DATA_BUCKET": "DataBucket",
    "SECRET_PREFIX": "SecretPrefix",
    "AGENT_EVENTS_QUEUE": "AgentEventsQueue",
    "QUEUE_PREFIX": "QueuePrefix",
    "WORKER_IMAGE_ID": "WorkerImageId",
}


class ConfigError(RuntimeError):
    """A required setting is missing or malformed: the process cannot serve anything."""


@dataclass(frozen=True)
class Config:
    jobs_table: str
    images_table: str
    users_table: str
    licenses_table: str
    usage_table: str
    data_bucket: str
    secret_prefix: str
    agent_events_queue: str
    queue_prefix: str
    worker_image_id: str
    token_ttl_seconds: int = 12 * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        missing = [name for name in RESOURCE_ENV if not env.get(name)]
        if missing:
            raise ConfigError(f"missing settings: {', '.join(missing)}")
        ttl_text = env.get("TOKEN_TTL_SECONDS", str(cls.token_ttl_seconds))
        if not ttl_text.isdigit() or int(ttl_text) <= 0:
            raise ConfigError(f"TOKEN_TTL_SECONDS must be a positive whole number, not {ttl_text!r}")
        return cls(
            jobs_table=env["JOBS_TABLE"],
            images_table=env["IMAGES_TABLE"],
            users_table=env["USERS_TABLE"],
            licenses_table=env["LICENSES_TABLE"],
            usage_table=env["USAGE_TABLE"],
            data_bucket=env["DATA_BUCKET"],
            secret_prefix=env["SECRET_PREFIX"],
            agent_events_queue=env["AGENT_EVENTS_QUEUE"],
            queue_prefix=env["QUEUE_PREFIX"],
            worker_image_id=env["WORKER_IMAGE_ID"],
            token_ttl_seconds=int(ttl_text),
        )

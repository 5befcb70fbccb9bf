"""The collaborators every handler needs — AWS clients, clock, id factory — built once per
process from the configuration, or handed in whole by tests and the local mode."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.config import Config as ClientConfig

from chalicelib.config import Config
from chalicelib.store.answers import read_items_directly

_ID_ALPHABET = string.ascii_lowercase + string.digits
PRICING_REGION = "us-east-1"
# Connections each client keeps open. A Lambda instance makes one call at a time; the local
# API workers serve each connection on its own thread and share one client, and past this
# many at once a call opens a connection and drops it after.
_CLIENT_CONFIG = ClientConfig(max_pool_connections=64)


def shared_client(session: boto3.Session, service: str, **options: Any) -> Any:
    """A client that threads may share. botocore makes a client's error classes on first use of
    `client.exceptions`, without a lock: two threads doing so at once get different classes,
    and an error raised with one set is not caught by `except` naming the other. They are made
    here, before any thread sees the client."""
    client = session.client(service, **options)
    client.exceptions  # noqa: B018 - made now, once, for every thread
    return client


def new_job_id() -> str:
    """A 21-character lowercase id, the shape MMCloud job ids have."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(21))


class Reclaimer(Protocol):
    """EC2's part in losing an instance, played on demand: only a local OpCenter has one (its
    instance manager); see reclaims.py for the drills it serves."""

    def reclaim(self, instance_id: str, notice_seconds: int) -> str:
        """Start a Spot reclaim; the time (ISO 8601) the instance will be terminated."""
        ...

    def vanish(self, instance_id: str) -> str:
        """Terminate the instance now, with no warning and no event; the time it went."""
        ...

    def kill_agent(self, instance_id: str) -> None:
        """Kill the instance's agent process; the instance and its containers live on."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    config: Config
    dynamodb: Any
    s3: Any
    secrets: Any
    ec2: Any
    sqs: Any
    stepfunctions: Any
    # The AWS Price List API (On-demand prices): served from us-east-1 for every region.
    pricing: Any
    clock: Callable[[], datetime] = utc_now
    new_id: Callable[[], str] = new_job_id
    cache: dict[str, Any] = field(default_factory=dict)
    # Plays EC2's part in a Spot reclaim; only a local OpCenter has one (see reclaims.py).
    reclaimer: Reclaimer | None = None

    @classmethod
    def from_config(cls, config: Config, session: boto3.Session | None = None) -> Runtime:
        session = session or boto3.Session()
        return cls(
            config=config,
            dynamodb=read_items_directly(shared_client(session, "dynamodb", config=_CLIENT_CONFIG)),
            s3=shared_client(session, "s3", config=_CLIENT_CONFIG),
            secrets=shared_client(session, "secretsmanager", config=_CLIENT_CONFIG),
            ec2=shared_client(session, "ec2", config=_CLIENT_CONFIG),
            sqs=shared_client(session, "sqs", config=_CLIENT_CONFIG),
            stepfunctions=shared_client(session, "stepfunctions", config=_CLIENT_CONFIG),
            pricing=shared_client(session, "pricing", region_name=PRICING_REGION,
                                  config=_CLIENT_CONFIG),
        )

    def now_iso(self) -> str:
        """The current time as ISO 8601 UTC with microseconds; sorts as it reads."""
        return self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_installed: Runtime | None = None


def current() -> Runtime:
    """The process's runtime: the installed one, else built from the environment on first use."""
    global _installed
    if _installed is None:
        _installed = Runtime.from_config(Config.from_env())
    return _installed


def install(runtime: Runtime | None) -> None:
    """Use this runtime from now on (None: build from the environment again on next use)."""
    global _installed
    _installed = runtime

"""Events about instances — EC2's Spot interruption warnings, rebalance recommendations and
state changes (EventBridge → SQS), and the agents' own reports — turned into workflows.

Whatever the duplicates and their order, one reclaim of one instance starts one migration: the
execution is named after the job and the instance, and Step Functions refuses a second
execution of that name. Events for instances OpenFloat does not run are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib import executions
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store
from chalicelib.wire.agent import EventEnvelope, JobExited, ReclaimNoticed
from chalicelib.wire.status import JobStatus

logger = Logger(service="openfloat-events")
metrics = Metrics(namespace="OpenFloat", service="events")

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
STATE_CHANGE = "EC2 Instance State-change Notification"
GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})
# A job in these statuses runs on its instance; losing the instance means moving the job.
MOVABLE = frozenset({JobStatus.EXECUTING})


class Ec2Detail(BaseModel):
    """What OpenFloat reads of an EC2 event's detail (all three kinds name the instance)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    instance_id: str = Field(alias="instance-id")
    # A Spot warning's: terminate, stop or hibernate.
    instance_action: str | None = Field(default=None, alias="instance-action")
    # A state change's: pending, running, stopping, stopped, shutting-down or terminated.
    state: str | None = None


class Ec2Event(EventBridgeModel):
    """An EC2 event in EventBridge's envelope (Powertools' model), its detail typed."""

    detail: Ec2Detail


@dataclass(frozen=True)
class StartWorkflow:
    workflow: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Skip:
    why: str
    managed: bool


Action = StartWorkflow | Skip


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _migrate(job: JobRecord, instance_id: str, reason: str, notice_time: str,
             timeouts: dict[str, int]) -> StartWorkflow:
    name, payload = executions.migrate_start(
        job.id, instance_id, job.version, reason=reason, notice_time=notice_time, reclaim=True,
        target=None, timeouts=timeouts)
    return StartWorkflow("migrate", name, payload)


def decide_ec2(event: Ec2Event, job: JobRecord | None, timeouts: dict[str, int]) -> Action:
    """What an EC2 event means for the job on its instance."""
    instance = event.detail.instance_id
    if job is None:
        return Skip(f"{instance} is not an OpenFloat instance", managed=False)
    if event.detail_type == SPOT_WARNING:
        if job.status not in MOVABLE:
            return Skip(f"job {job.id} is {job.status.value}", managed=True)
        return _migrate(job, instance, f"spot {event.detail.instance_action or 'terminate'} "
                                       f"warning for {instance}", _iso(event.time), timeouts)
    if event.detail_type == STATE_CHANGE and event.detail.state in GONE_STATES:
        if job.status not in MOVABLE:
            return Skip(f"job {job.id} is {job.status.value}", managed=True)
        # Same name as the warning's: after a warning this is a duplicate; without one (the
        # instance vanished) the migration restores the last checkpoint or reruns.
        return _migrate(job, instance, f"{instance} is {event.detail.state}", _iso(event.time),
                        timeouts)
    return Skip(f"{event.detail_type} for {instance} needs no action", managed=True)


def decide_agent(event: Any, job: JobRecord | None, timeouts: dict[str, int]) -> Action:
    """What an agent's report means for its job."""
    if job is None:
        return Skip(f"{event.instanceId} is not an OpenFloat instance", managed=False)
    if isinstance(event, ReclaimNoticed):
        if job.status not in MOVABLE:
            return Skip(f"job {job.id} is {job.status.value}", managed=True)
        return _migrate(job, event.instanceId, f"spot {event.action} notice for "
                                               f"{event.instanceId} (from its agent)", event.time,
                        timeouts)
    if isinstance(event, JobExited):
        return StartWorkflow("finish", f"{job.id}-finish-{event.instanceId}", {
            "jobId": job.id, "instanceId": event.instanceId, "exitCode": event.exitCode})
    return Skip(f"{event.kind} needs no action", managed=True)


@dataclass
class Tally:
    started: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: int = 0
    dropped: int = 0
    unreadable: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"started": self.started, "duplicates": self.duplicates, "skipped": self.skipped,
                "dropped": self.dropped, "unreadable": self.unreadable}


def _carry_out(runtime: Runtime, action: Action, tally: Tally) -> None:
    if isinstance(action, Skip):
        if action.managed:
            tally.skipped += 1
        else:
            tally.dropped += 1
            metrics.add_metric(name="UnmanagedInstanceEvents", unit=MetricUnit.Count, value=1)
        return
    if not executions.start(runtime, action.workflow, action.name, action.input):
        # Started before, by another copy of this event or another report of the same reclaim.
        tally.duplicates.append(action.name)
        return
    tally.started.append(action.name)


def handle_ec2_messages(runtime: Runtime, store: Store, bodies: list[str]) -> Tally:
    """Handle a batch of EventBridge events delivered through SQS."""
    tally = Tally()
    for body in bodies:
        try:
            event = Ec2Event.model_validate_json(body)
        except ValidationError:
            tally.unreadable += 1
            logger.warning("unreadable EC2 event dropped")
            continue
        job = store.job_on_instance(event.detail.instance_id)
        _carry_out(runtime, decide_ec2(event, job, executions.timeouts(runtime.config)), tally)
    if tally.dropped:
        metrics.flush_metrics()
    return tally


def handle_agent_messages(runtime: Runtime, store: Store, bodies: list[str]) -> Tally:
    """Handle a batch of agent events delivered through SQS."""
    tally = Tally()
    for body in bodies:
        try:
            event = EventEnvelope.model_validate_json(body).event
        except ValidationError:
            tally.unreadable += 1
            logger.warning("unreadable agent event dropped")
            continue
        job = store.job_on_instance(event.instanceId)
        _carry_out(runtime, decide_agent(event, job, executions.timeouts(runtime.config)), tally)
    if tally.dropped:
        metrics.flush_metrics()
    return tally

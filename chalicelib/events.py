"""Events about instances — EC2's Spot interruption warnings, rebalance recommendations and
state changes (EventBridge → SQS), and the agents' own reports — turned into workflows.

Whatever the duplicates and their order, one reclaim of one instance starts one migration: the
execution is named after the job and the instance, and Step Functions refuses a second
execution of that name. Events for instances OpenFloat does not run are dropped and counted.

A batch is handled record by record (Powertools' batch processing, `ReportBatchItemFailures` on
the event source): a record whose handling fails — DynamoDB or Step Functions refused — is
named in `batchItemFailures` and only it is delivered again; the others are done with. A record
that cannot be read is dropped and counted instead: it would read no better on any later
delivery, and the dead-letter queue is kept for records worth sending again once AWS recovers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib import executions, rightsizing
from chalicelib.runtime import Runtime
from chalicelib.store import JobRecord, Store
from chalicelib.wire.agent import (
    AgentEvent,
    CheckpointCommitted,
    EventEnvelope,
    Heartbeat,
    JobExited,
    ReclaimNoticed,
)
from chalicelib.wire.checkpoints import CheckpointSummary
from chalicelib.wire.status import JobStatus
from chalicelib.wire.utilization import Utilization, UtilizationPoint

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


@dataclass(frozen=True)
class NoteHeartbeat:
    """The job's agent is alive: the reconciler leaves it alone while these keep coming. Its
    sample of what the job uses joins the job's series, and may move the job (rightsizing)."""

    job: JobRecord
    instance_id: str
    time: str
    address: str | None = None
    utilization: Utilization | None = None


@dataclass(frozen=True)
class NoteCheckpoint:
    """The job's agent committed a checkpoint (a periodic one, say): `float show` names it."""

    job: JobRecord
    instance_id: str
    checkpoint: CheckpointSummary


Action = StartWorkflow | Skip | NoteHeartbeat | NoteCheckpoint


@dataclass(frozen=True)
class Outcome:
    """What handling one event came to; `execution` names the workflow started (or found)."""

    kind: Literal["started", "duplicate", "skipped", "dropped", "heartbeat", "checkpoint"]
    execution: str | None = None


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


def decide_agent(event: AgentEvent, job: JobRecord | None, timeouts: dict[str, int]) -> Action:
    """What an agent's report means for its job."""
    if job is None:
        return Skip(f"{event.instanceId} is not an OpenFloat instance", managed=False)
    if isinstance(event, ReclaimNoticed):
        if job.status not in MOVABLE:
            return Skip(f"job {job.id} is {job.status.value}", managed=True)
        return _migrate(job, event.instanceId, f"spot {event.action} notice for "
                                               f"{event.instanceId} (from its agent)", event.time,
                        timeouts)
    if isinstance(event, Heartbeat):
        if event.jobId != job.id:
            return Skip(f"heartbeat of {event.instanceId} names no job of it", managed=True)
        return NoteHeartbeat(job, event.instanceId, event.time, event.address, event.utilization)
    if isinstance(event, CheckpointCommitted):
        if event.jobId != job.id:
            return Skip(f"checkpoint of {event.instanceId} names no job of it", managed=True)
        return NoteCheckpoint(job, event.instanceId, CheckpointSummary.of(event.manifest))
    if isinstance(event, JobExited):
        name, payload = executions.finish_start(
            job.id, event.instanceId, event.exitCode,
            time_limit=(job.spec.timeLimit or 0) if event.timedOut else None,
            host_terminate_failure=event.hostTerminateFailure,
            out_of_memory=(event.memoryLimitBytes or 0) if event.oomKilled else None,
            evading=bool((policy := rightsizing.policy_of(job)) and policy.evadeOOM))
        return StartWorkflow("finish", name, payload)
    return Skip(f"{event.kind} needs no action", managed=True)


def _carry_out(runtime: Runtime, store: Store, action: Action) -> Outcome:
    if isinstance(action, NoteHeartbeat):
        job = action.job
        point = None if action.utilization is None else UtilizationPoint(
            **action.utilization.model_dump(), time=action.time, instanceId=action.instance_id,
            instanceType=job.instanceType if job.instanceId == action.instance_id else None)
        if point is not None:
            store.record_utilization(job.id, point)
        peak = int((job.utilization or {}).get("memoryPeakBytes") or 0)
        if not store.record_heartbeat(job.id, action.instance_id, action.time, action.address,
                                      utilization=point, peak_before=peak):
            return Outcome("skipped")  # the job moved off that instance, or a later one was noted
        if point is not None:
            rightsizing.consider(runtime, store, job, point)
        return Outcome("heartbeat")
    if isinstance(action, NoteCheckpoint):
        noted = store.record_checkpoint(action.job.id, action.instance_id, action.checkpoint)
        return Outcome("checkpoint" if noted else "skipped")
    if isinstance(action, Skip):
        if action.managed:
            return Outcome("skipped")
        metrics.add_metric(name="UnmanagedInstanceEvents", unit=MetricUnit.Count, value=1)
        return Outcome("dropped")
    if not executions.start(runtime, action.workflow, action.name, action.input):
        # Started before, by another copy of this event or another report of the same reclaim.
        return Outcome("duplicate", action.name)
    return Outcome("started", action.name)


# The workflow each EC2 event handled in this process started or found started, by the
# event's id: EventBridge and SQS deliver an event more than once (three copies of every
# warning is common in a capacity event), and a copy met again here is answered without a
# call to AWS. Only a started workflow is remembered: it is what every later copy comes to,
# while a skip depends on the job's state at the time. The oldest are forgotten past the bound.
_STARTED_BY_EVENT = "events.started-by-event"
_EVENTS_REMEMBERED = 10_000


def handle_ec2_event(runtime: Runtime, store: Store, event: Ec2Event) -> Outcome:
    """Carry out what one EC2 event means; an AWS error raises (the record comes back)."""
    started: OrderedDict[str, str] = runtime.cache.setdefault(_STARTED_BY_EVENT, OrderedDict())
    seen = f"{event.id}/{event.detail.instance_id}"
    execution = started.get(seen)
    if execution is not None:
        return Outcome("duplicate", execution)
    job = store.job_on_instance(event.detail.instance_id)
    outcome = _carry_out(runtime, store,
                         decide_ec2(event, job, executions.timeouts(runtime.config)))
    if outcome.kind in ("started", "duplicate") and outcome.execution:
        started[seen] = outcome.execution
        while len(started) > _EVENTS_REMEMBERED:
            started.popitem(last=False)
    return outcome


def handle_agent_event(runtime: Runtime, store: Store, event: AgentEvent) -> Outcome:
    """Carry out what one agent's report means; an AWS error raises (the record comes back)."""
    job = store.job_on_instance(event.instanceId)
    return _carry_out(runtime, store,
                      decide_agent(event, job, executions.timeouts(runtime.config)))


@dataclass
class Tally:
    """What one batch came to. `failed` names the messages left for redelivery."""

    started: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    skipped: int = 0
    heartbeats: int = 0
    checkpoints: int = 0
    dropped: int = 0
    unreadable: int = 0
    failed: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        if outcome.kind == "started" and outcome.execution:
            self.started.append(outcome.execution)
        elif outcome.kind == "duplicate" and outcome.execution:
            self.duplicates.append(outcome.execution)
        elif outcome.kind == "skipped":
            self.skipped += 1
        elif outcome.kind == "dropped":
            self.dropped += 1
        elif outcome.kind == "heartbeat":
            self.heartbeats += 1
        elif outcome.kind == "checkpoint":
            self.checkpoints += 1

    def as_dict(self) -> dict[str, Any]:
        return {"started": self.started, "duplicates": self.duplicates, "skipped": self.skipped,
                "heartbeats": self.heartbeats, "checkpoints": self.checkpoints,
                "dropped": self.dropped,
                "unreadable": self.unreadable, "failed": self.failed}


@dataclass(frozen=True)
class Batch:
    """A batch handled: the answer Lambda's SQS integration reads, and what it came to."""

    response: PartialItemFailureResponse
    tally: Tally


Parsed = TypeVar("Parsed")


def _handle_batch(sqs_event: dict[str, Any], source: str, read: Callable[[str], Parsed],
                  handle: Callable[[Parsed], Outcome]) -> Batch:
    tally = Tally()

    def record_handler(record: SQSRecord) -> None:
        try:
            parsed = read(record.body)
        except ValidationError:
            tally.unreadable += 1
            metrics.add_metric(name="UnreadableEvents", unit=MetricUnit.Count, value=1)
            logger.warning(f"unreadable {source} event dropped",
                           extra={"message_id": record.message_id, "body": record.body[:500]})
            return
        try:
            tally.add(handle(parsed))
        except Exception:
            tally.failed.append(record.message_id)
            logger.exception(f"{source} event not handled; it will be delivered again",
                             extra={"message_id": record.message_id})
            raise

    try:
        # When every record fails, this raises instead: the whole batch comes back.
        response = process_partial_response(
            event=sqs_event, record_handler=record_handler,
            processor=BatchProcessor(event_type=EventType.SQS))
    finally:
        logger.info(f"{source} events handled", extra=tally.as_dict())
        if tally.dropped or tally.unreadable:
            metrics.flush_metrics()
    return Batch(response, tally)


def handle_ec2_messages(runtime: Runtime, store: Store, sqs_event: dict[str, Any]) -> Batch:
    """Handle one SQS batch of EC2 events, each record on its own."""
    return _handle_batch(sqs_event, "EC2", Ec2Event.model_validate_json,
                         lambda event: handle_ec2_event(runtime, store, event))


def _agent_event(body: str) -> AgentEvent:
    return EventEnvelope.model_validate_json(body).event


def handle_agent_messages(runtime: Runtime, store: Store, sqs_event: dict[str, Any]) -> Batch:
    """Handle one SQS batch of agent events, each record on its own."""
    return _handle_batch(sqs_event, "agent", _agent_event,
                         lambda event: handle_agent_event(runtime, store, event))

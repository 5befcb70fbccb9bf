"""The job status transition table: the only place that says which status may follow which."""

from __future__ import annotations

from datetime import datetime

from chalicelib.errors import IllegalTransition
from chalicelib.wire.api import HistoryEntry
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus

S = JobStatus

# Every status a job may move to from each status. Terminal statuses have no way out.
# Cancelling is reachable from every non-terminal status; a job that never got an instance
# (Submitted, WaitingForLicense) has nothing to tear down and may go straight to Cancelled.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.SUBMITTED: frozenset(
        {S.INITIALIZING, S.WAITING_FOR_LICENSE, S.CANCELLING, S.CANCELLED, S.FAIL_TO_EXECUTE}
    ),
    S.WAITING_FOR_LICENSE: frozenset(
        {S.SUBMITTED, S.INITIALIZING, S.CANCELLING, S.CANCELLED, S.FAIL_TO_EXECUTE}
    ),
    S.INITIALIZING: frozenset(
        {S.STARTING, S.NO_AVAILABLE_HOST, S.FAIL_TO_EXECUTE, S.CANCELLING}
    ),
    S.STARTING: frozenset(
        {S.EXECUTING, S.STARTING, S.NO_AVAILABLE_HOST, S.FAIL_TO_EXECUTE, S.TIMEDOUT,
         S.CANCELLING, S.UNKNOWN}
    ),
    # A status may follow itself where a workflow records something new without a move: a
    # restore on another instance, a move or a suspend that did not happen.
    S.EXECUTING: frozenset(
        {S.EXECUTING, S.COMPLETED, S.FAIL_TO_COMPLETE, S.CAPTURING, S.SUSPENDING, S.STARTING,
         S.TIMEDOUT, S.CANCELLING, S.UNKNOWN}
    ),
    S.CAPTURING: frozenset(
        {S.FLOATING, S.EXECUTING, S.STARTING, S.CHECKPOINT_FAILED, S.NO_AVAILABLE_HOST, S.COMPLETED,
         S.FAIL_TO_COMPLETE, S.TIMEDOUT, S.CANCELLING, S.UNKNOWN}
    ),
    S.FLOATING: frozenset(
        {S.EXECUTING, S.FLOATING, S.STARTING, S.NO_AVAILABLE_HOST, S.CHECKPOINT_FAILED,
         S.FAIL_TO_EXECUTE, S.TIMEDOUT, S.CANCELLING, S.UNKNOWN}
    ),
    S.SUSPENDING: frozenset(
        {S.SUSPENDED, S.EXECUTING, S.CHECKPOINT_FAILED, S.COMPLETED, S.FAIL_TO_COMPLETE,
         S.CANCELLING, S.UNKNOWN}
    ),
    S.SUSPENDED: frozenset({S.SUSPENDED, S.RESUMING, S.CANCELLING, S.CANCELLED}),
    S.RESUMING: frozenset(
        {S.EXECUTING, S.RESUMING, S.SUSPENDED, S.NO_AVAILABLE_HOST, S.CHECKPOINT_FAILED,
         S.FAIL_TO_EXECUTE, S.TIMEDOUT, S.CANCELLING, S.UNKNOWN}
    ),
    S.CANCELLING: frozenset({S.CANCELLED}),
    # Unknown: the agent went silent. It may be heard from again, or the job is written off.
    S.UNKNOWN: frozenset(
        {S.EXECUTING, S.CAPTURING, S.FLOATING, S.STARTING, S.COMPLETED, S.FAIL_TO_COMPLETE,
         S.FAIL_TO_EXECUTE, S.CHECKPOINT_FAILED, S.CANCELLING, S.CANCELLED}
    ),
    **{terminal: frozenset() for terminal in TERMINAL_STATUSES},
}


def is_allowed(current: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(job_id: str, current: JobStatus, target: JobStatus) -> None:
    """Raise IllegalTransition, naming both statuses, unless current → target is allowed."""
    if not is_allowed(current, target):
        if current in TERMINAL_STATUSES:
            detail = f"{current.value} is final"
        else:
            allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current]))
            detail = f"from {current.value} a job may go to {allowed}"
        raise IllegalTransition(
            f"job {job_id} cannot go from {current.value} to {target.value}: {detail}"
        )


def executed_seconds(history: list[HistoryEntry], now: datetime) -> float:
    """How long the job has been Executing, summed over its history up to `now`: what its time
    limit counts. Capturing, Floating, Suspending and Suspended (a move, a pause) do not."""
    total = 0.0
    since: datetime | None = None
    for entry in history:
        at = datetime.fromisoformat(entry.time.replace("Z", "+00:00"))
        if since is not None:
            total += max(0.0, (at - since).total_seconds())
        since = at if entry.to == JobStatus.EXECUTING else None
    if since is not None:
        total += max(0.0, (now - since).total_seconds())
    return total

"""The job status values, spelled exactly as MMCloud spells them."""

from enum import StrEnum


class JobStatus(StrEnum):
    SUBMITTED = "Submitted"
    INITIALIZING = "Initializing"
    STARTING = "Starting"
    EXECUTING = "Executing"
    CAPTURING = "Capturing"
    FLOATING = "Floating"
    SUSPENDING = "Suspending"
    SUSPENDED = "Suspended"
    RESUMING = "Resuming"
    COMPLETED = "Completed"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    FAIL_TO_COMPLETE = "FailToComplete"
    FAIL_TO_EXECUTE = "FailToExecute"
    CHECKPOINT_FAILED = "CheckpointFailed"
    TIMEDOUT = "Timedout"
    NO_AVAILABLE_HOST = "NoAvailableHost"
    WAITING_FOR_LICENSE = "WaitingForLicense"
    UNKNOWN = "Unknown"


# A job in one of these statuses never changes again.
TERMINAL_STATUSES = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.CANCELLED,
        JobStatus.FAIL_TO_COMPLETE,
        JobStatus.FAIL_TO_EXECUTE,
        JobStatus.CHECKPOINT_FAILED,
        JobStatus.TIMEDOUT,
        JobStatus.NO_AVAILABLE_HOST,
    }
)

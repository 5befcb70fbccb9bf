"""The transition table, as a user of the job statuses would rely on it."""

import pytest

from chalicelib.errors import IllegalTransition
from chalicelib.status import TRANSITIONS, check_transition, is_allowed
from chalicelib.wire.status import TERMINAL_STATUSES, JobStatus

MMCLOUD_STATUSES = [
    "Submitted", "Initializing", "Starting", "Executing", "Capturing", "Floating", "Suspending",
    "Suspended", "Resuming", "Completed", "Cancelling", "Cancelled", "FailToComplete",
    "FailToExecute", "CheckpointFailed", "Timedout", "NoAvailableHost", "WaitingForLicense",
    "Unknown",
]


def test_statuses_are_exactly_mmclouds_nineteen():
    assert sorted(s.value for s in JobStatus) == sorted(MMCLOUD_STATUSES)
    assert set(TRANSITIONS) == set(JobStatus)


def test_final_statuses_have_no_way_out():
    for status in TERMINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
    assert JobStatus.COMPLETED in TERMINAL_STATUSES and JobStatus.CANCELLED in TERMINAL_STATUSES


def test_every_running_status_can_be_cancelled():
    for status in set(JobStatus) - TERMINAL_STATUSES - {JobStatus.CANCELLING}:
        assert is_allowed(status, JobStatus.CANCELLING), status
    assert is_allowed(JobStatus.CANCELLING, JobStatus.CANCELLED)


def test_mmcloud_paths_are_allowed():
    paths = [
        ["Submitted", "Initializing", "Starting", "Executing", "Completed"],
        ["Executing", "FailToComplete"],
        ["Executing", "Capturing", "Floating", "Executing"],
        ["Executing", "Suspending", "Suspended", "Resuming", "Executing"],
        ["Executing", "Cancelling", "Cancelled"],
        ["Capturing", "CheckpointFailed"],
    ]
    for path in paths:
        for current, target in zip(path, path[1:], strict=False):
            assert is_allowed(JobStatus(current), JobStatus(target)), (current, target)


@pytest.mark.parametrize("current", list(JobStatus))
def test_every_transition_outside_the_table_is_refused(current):
    for target in JobStatus:
        if target in TRANSITIONS[current]:
            check_transition("j1", current, target)
        else:
            with pytest.raises(IllegalTransition) as refused:
                check_transition("j1", current, target)
            assert current.value in refused.value.message
            assert target.value in refused.value.message


def test_refusal_of_a_final_status_says_it_is_final():
    with pytest.raises(IllegalTransition, match="Completed is final"):
        check_transition("j1", JobStatus.COMPLETED, JobStatus.CANCELLING)


def test_only_executing_time_counts_toward_a_time_limit():
    from datetime import UTC, datetime

    from chalicelib.status import executed_seconds
    from chalicelib.wire.api import HistoryEntry

    def at(second: int, to: JobStatus) -> HistoryEntry:
        return HistoryEntry(time=f"2026-12-02T10:00:{second:02d}Z", to=to, reason="r")

    S = JobStatus
    history = [at(0, S.SUBMITTED), at(5, S.STARTING), at(10, S.EXECUTING), at(20, S.CAPTURING),
               at(30, S.FLOATING), at(40, S.EXECUTING), at(45, S.EXECUTING),  # restored elsewhere
               at(50, S.SUSPENDING), at(52, S.SUSPENDED), at(55, S.RESUMING)]
    now = datetime(2026, 12, 2, 10, 1, 0, tzinfo=UTC)
    assert executed_seconds(history, now) == 10 + 10
    assert executed_seconds([*history, at(58, S.EXECUTING)], now) == 10 + 10 + 2

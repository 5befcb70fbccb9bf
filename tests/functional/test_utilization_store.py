"""A job's utilization series as the store keeps it in the table infra/ defines."""

from datetime import UTC, datetime, timedelta

from chalicelib.wire.utilization import UtilizationPoint

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _point(second: int, instance: str = "i-1", memory: int = 100) -> UtilizationPoint:
    time = (START + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return UtilizationPoint(time=time, instanceId=instance, seconds=15, vcpus=2, cpuRatio=50.5,
                            cpuDemandRatio=60, memoryBytes=memory, memoryPeakBytes=memory,
                            memoryLimitBytes=1000)


def test_points_come_back_oldest_first_from_a_time_on_and_a_repeat_is_kept_once(store):
    for second in (30, 0, 15, 15):
        store.record_utilization("job-1", _point(second))
    store.record_utilization("job-2", _point(20))
    since = (START + timedelta(seconds=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    points = store.recent_utilization("job-1", since, now=START)
    assert [p.time[-3:] for p in points] == ["15Z", "30Z"]
    assert points[0].cpuRatio == 50.5


def test_a_page_is_newest_first_and_the_token_reads_on(store):
    for second in range(5):
        store.record_utilization("job-1", _point(second, memory=second))
    first, token = store.utilization_page("job-1", 3, None, now=START)
    rest, last = store.utilization_page("job-1", 3, token, now=START)
    assert [p.memoryBytes for p in first + rest] == [4, 3, 2, 1, 0] and last is None


def test_points_past_their_retention_are_not_served(store):
    store.record_utilization("job-1", _point(0))
    later = START + timedelta(hours=store._config.utilization_retention_hours, seconds=1)
    assert store.recent_utilization("job-1", "2026-03-01T00:00:00Z", now=later) == []
    assert store.utilization_page("job-1", 10, None, now=later) == ([], None)

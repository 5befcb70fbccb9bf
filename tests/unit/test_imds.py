"""The agent's IMDSv2 client against the local metadata service."""

from datetime import UTC, datetime

import pytest

from agent.imds import Imds, ImdsUnavailable
from localmode.imds import LocalImds


@pytest.fixture
def imds():
    server = LocalImds("i-0123456789abcdef0").start()
    yield server
    server.stop()


def test_nothing_is_announced_until_the_instance_is_marked(imds):
    client = Imds(imds.url)
    assert client.instance_id() == "i-0123456789abcdef0"
    assert client.instance_action() is None and client.rebalance_notice() is None
    imds.mark_rebalance(datetime(2026, 11, 25, 9, 58, tzinfo=UTC))
    imds.mark_reclaim(datetime(2026, 11, 25, 10, 2, tzinfo=UTC))
    action = client.instance_action()
    assert (action.action, action.time) == ("terminate", "2026-11-25T10:02:00Z")
    assert client.rebalance_notice() == "2026-11-25T09:58:00Z"


def test_reads_without_a_session_token_are_refused(imds):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(imds.url + "/latest/meta-data/instance-id", timeout=2)
    assert refused.value.code == 401


def test_an_absent_service_is_a_named_error():
    with pytest.raises(ImdsUnavailable):
        Imds("http://127.0.0.1:9", timeout=0.5).instance_id()

"""Reclaim drills asked by an API worker of the local OpCenter's instance manager."""

from __future__ import annotations

from multiprocessing import AuthenticationError

import pytest

from chalicelib.errors import Conflict, Unavailable
from localmode.api import DrillClient, Drills


class Manager:
    def __init__(self) -> None:
        self.asked: list[tuple] = []

    def reclaim(self, instance_id: str, notice_seconds: int) -> str:
        self.asked.append(("reclaim", instance_id, notice_seconds))
        return "2026-12-05T10:02:00Z"

    def vanish(self, instance_id: str) -> str:
        raise Conflict(f"instance {instance_id} is not running here")

    def kill_agent(self, instance_id: str) -> None:
        raise OSError("no such process")


@pytest.fixture
def drills(tmp_path):
    manager = Manager()
    served = Drills(manager, tmp_path / "drills.sock").start()
    yield served, manager
    served.stop()


def test_a_drill_is_carried_out_by_the_manager_and_its_refusal_comes_back_as_is(drills):
    served, manager = drills
    client = DrillClient(str(served.path), served.key)
    assert client.reclaim("i-1", 30) == "2026-12-05T10:02:00Z"
    assert manager.asked == [("reclaim", "i-1", 30)]
    with pytest.raises(Conflict, match="i-2 is not running here"):
        client.vanish("i-2")
    with pytest.raises(Unavailable, match="kill_agent drill: OSError: no such process"):
        client.kill_agent("i-3")


def test_a_peer_without_the_key_is_refused_and_the_drills_go_on(drills):
    served, manager = drills
    with pytest.raises(AuthenticationError):
        DrillClient(str(served.path), b"not the key").reclaim("i-1", 30)
    assert manager.asked == []
    assert DrillClient(str(served.path), served.key).reclaim("i-4", 5)

"""Incremental checkpoints in the agent, with pretend containers whose memory is pages: where
the kernel tracks dirty memory, a periodic checkpoint is a pre-dump and a dump on it, a later
dump holds only the pages changed since the pre-dump, and a restore puts the two together.
(tests/containers/test_checkpoint_restore.py runs the same chain with real containers where
the kernel allows it.)"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent.capsule import CapsuleStore
from chalicelib.wire.agent import JobLaunch
from chalicelib.wire.checkpoints import CriuStats
from chalicelib.wire.failures import (
    CheckpointFailed,
    CheckpointNotFound,
    CheckpointUploadFailed,
    RestoreFailed,
)
from tests.functional.test_agent_logs import PretendPodman
from tests.functional.test_agent_logs import agents as agents  # noqa: F401 - the fixture

LAUNCH = JobLaunch(jobId="job-1", imageUri="localhost/x:1", scriptKey="jobs/job-1/script",
                   checkpointIntervalSeconds=60)
PAGES = 16


class PagedPodman(PretendPodman):
    """Containers whose memory is PAGES numbered pages, dumped as podman and CRIU do: a
    pre-dump writes every page and keeps them here; a dump with_previous writes only the pages
    changed since (and fails with no pre-dump here); a restore of such a dump needs the
    pre-dump's archive."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.memory: dict[str, list[str]] = {}
        self.kept: dict[str, list[str]] = {}
        self.dumps: list[str] = []

    def create(self, name: str, image: str, command: list[str], **extra: Any) -> None:
        super().create(name, image, command, **extra)
        self.memory[name] = [f"page {n} at start" for n in range(PAGES)]

    def checkpoint(self, name: str, export: Path, leave_running: bool = False,
                   pre_dump: bool = False, with_previous: bool = False, **_: Any) -> CriuStats:
        if with_previous and name not in self.kept:
            raise CheckpointFailed(f"container {name} pre-checkpoint not found")
        pages = dict(enumerate(self.memory[name]))
        if with_previous:
            pages = {n: page for n, page in pages.items() if page != self.kept[name][n]}
        self.dumps.append("pre-dump" if pre_dump else "on previous" if with_previous else "whole")
        export.write_text(json.dumps({"pages": pages, "onPrevious": with_previous,
                                      "log": self.log_path(name).read_text()}))
        if pre_dump:
            self.kept[name] = list(self.memory[name])
        elif not leave_running:
            self.remove(name)
            self.memory.pop(name)
            self.kept.pop(name, None)
        return CriuStats(pagesWritten=len(pages))

    def restore(self, export: Path, name: str, previous: Path | None = None,
                **_: Any) -> CriuStats:
        image = json.loads(export.read_text())
        pages = {int(n): page for n, page in image["pages"].items()}
        if image["onPrevious"]:
            if previous is None:
                raise RestoreFailed("the dump's parent images are missing")
            base = json.loads(previous.read_text())["pages"]
            pages = {**{int(n): page for n, page in base.items()}, **pages}
        self._logs[name] = self._root / f"{name}.restored.log"
        self._logs[name].write_text(image["log"])
        self.memory[name] = [pages[n] for n in range(PAGES)]
        return CriuStats()


@pytest.fixture
def paged(agents, tmp_path):
    def agent(instance_id: str):
        found, _ = agents(instance_id)
        found.podman = PagedPodman(tmp_path / instance_id)
        found.incremental = True
        return found, found.podman

    return agent


def _periodic(agent):
    agent.job.next_checkpoint = time.monotonic()
    return agent.periodic_checkpoint()


def test_a_dump_on_a_pre_dump_holds_only_the_changed_pages_and_restores_whole(runtime, paged):
    first, podman = paged("i-1")
    first.run(LAUNCH)
    name = first.container("job-1")
    podman.memory[name][3] = "page 3 after a minute"
    periodic = _periodic(first)
    assert podman.dumps == ["pre-dump", "on previous"]
    store = CapsuleStore(runtime.s3, first.settings.bucket)
    pre_dump = store.manifest("job-1", periodic.previousSeq)
    assert pre_dump.kind == "pre-dump" and periodic.kind == "dump"
    assert store.latest("job-1") == periodic  # a pre-dump is never the one restored
    # The job runs on and changes two pages; the notice's dump holds those two only.
    podman.memory[name][3] = "page 3 at the notice"
    podman.memory[name][9] = "page 9 at the notice"
    final = first.checkpoint("job-1", "spot terminate notice")
    assert podman.dumps[-1] == "on previous" and final.previousSeq == pre_dump.seq
    assert final.stats.pagesWritten == 2 and final.archiveSize < pre_dump.archiveSize / 4
    # The periodic dump went with pruning; the pre-dump the final one needs did not.
    assert store._sequences("job-1") == [pre_dump.seq, final.seq]

    second, restored_podman = paged("i-2")
    answer = second.restore(LAUNCH)
    assert answer.manifest == final
    expected = [f"page {n} at start" for n in range(PAGES)]
    expected[3], expected[9] = "page 3 at the notice", "page 9 at the notice"
    assert restored_podman.memory[second.container("job-1")] == expected


def test_a_pre_dump_that_was_not_committed_is_never_built_on(runtime, paged):
    agent, podman = paged("i-1")
    agent.run(LAUNCH)
    name = agent.container("job-1")
    first_round = _periodic(agent)
    # The next round's pre-dump is dumped but its upload fails: its pages are kept here, but
    # no checkpoint in S3 has them.
    real_upload = agent.capsules.upload

    def unreachable(stream, *args, **kwargs):
        stream.read()  # as the real upload does: podman is never left blocked
        raise CheckpointUploadFailed("checkpoint 3 of job job-1 was not stored: part 0: "
                                     "the network is unreachable")

    agent.capsules.upload = unreachable
    with pytest.raises(CheckpointUploadFailed):
        _periodic(agent)
    agent.capsules.upload = real_upload
    podman.memory[name][5] = "page 5 at the notice"
    final = agent.checkpoint("job-1", "spot terminate notice")
    assert podman.dumps[-1] == "whole" and final.previousSeq is None
    assert final.stats.pagesWritten == PAGES
    assert first_round.seq < final.seq


def test_a_dump_whose_pre_dump_is_gone_is_not_restored(runtime, paged):
    agent, _ = paged("i-1")
    agent.run(LAUNCH)
    first = _periodic(agent)  # pre-dump n, dump n+1 on it
    store = CapsuleStore(runtime.s3, agent.settings.bucket)
    assert store.latest("job-1") == first
    runtime.s3.delete_object(Bucket=agent.settings.bucket,
                             Key=f"checkpoints/job-1/{first.previousSeq:08d}/manifest.json")
    assert store.latest("job-1") is None
    second, _ = paged("i-2")
    with pytest.raises(CheckpointNotFound):
        second.restore(LAUNCH)


def test_without_dirty_tracking_every_checkpoint_is_whole(paged):
    agent, podman = paged("i-1")
    agent.incremental = False
    agent.run(LAUNCH)
    periodic = _periodic(agent)
    final = agent.checkpoint("job-1", "spot terminate notice")
    assert podman.dumps == ["whole", "whole"]
    assert periodic.previousSeq is None and final.previousSeq is None

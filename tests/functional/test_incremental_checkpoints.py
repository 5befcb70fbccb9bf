"""Incremental checkpoints in the agent, with pretend containers whose memory is pages: where
the kernel tracks dirty memory, a dump holds only the pages changed since the last pre-dump, a
periodic checkpoint is followed by a pre-dump for the next dump, and a restore puts a dump and
its pre-dump together.
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
    """Containers whose memory is PAGES numbered pages, dumped as podman, runc and CRIU do with
    the kernel's soft-dirty bits: a pre-dump writes every page, keeps them here and clears the
    bits; a dump with_previous writes only the pages written since the bits were last cleared,
    and clears them too (runc tracks memory whenever a dump has a parent), and fails with no
    pre-dump here; a restore of such a dump needs the pre-dump's archive."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.memory: dict[str, list[str]] = {}
        self.dirty: dict[str, set[int]] = {}
        self.kept: set[str] = set()
        self.dumps: list[str] = []

    def create(self, name: str, image: str, command: list[str], **extra: Any) -> None:
        super().create(name, image, command, **extra)
        self.memory[name] = [f"page {n} at start" for n in range(PAGES)]
        self.dirty[name] = set(range(PAGES))

    def write(self, name: str, page: int, text: str) -> None:
        self.memory[name][page] = text
        self.dirty[name].add(page)

    def checkpoint(self, name: str, export: Path, leave_running: bool = False,
                   pre_dump: bool = False, with_previous: bool = False, **_: Any) -> CriuStats:
        if with_previous and name not in self.kept:
            raise CheckpointFailed(f"container {name} pre-checkpoint not found")
        pages = dict(enumerate(self.memory[name]))
        if with_previous:
            pages = {n: page for n, page in pages.items() if n in self.dirty[name]}
        if pre_dump or with_previous:
            self.dirty[name] = set()
        self.dumps.append("pre-dump" if pre_dump else "on previous" if with_previous else "whole")
        export.write_text(json.dumps({"pages": pages, "onPrevious": with_previous,
                                      "log": self.log_path(name).read_text()}))
        if pre_dump:
            self.kept.add(name)
        elif not leave_running:
            self.remove(name)
            self.memory.pop(name)
            self.kept.discard(name)
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
        self.dirty[name] = set(range(PAGES))
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
    store = CapsuleStore(runtime.s3, first.settings.bucket)
    # The first periodic checkpoint is whole (there is nothing to build on), then a pre-dump.
    podman.write(name, 3, "page 3 after a minute")
    whole = _periodic(first)
    assert podman.dumps == ["whole", "pre-dump"] and whole.previousSeq is None
    assert store.latest("job-1") == whole  # a pre-dump is never the one restored
    # The second: only the page changed since that pre-dump, and a new pre-dump.
    podman.write(name, 3, "page 3 after two minutes")
    second = _periodic(first)
    assert podman.dumps[2:] == ["on previous", "pre-dump"]
    assert second.previousSeq == whole.seq + 1 and second.stats.pagesWritten == 1
    assert store.manifest("job-1", second.previousSeq).kind == "pre-dump"
    # The notice's dump: the two pages changed since the last pre-dump, built on it (the
    # second periodic dump cleared what changed before it, so the pre-dump before could not
    # serve).
    podman.write(name, 9, "page 9 at the notice")
    podman.write(name, 11, "page 11 at the notice")
    final = first.checkpoint("job-1", "spot terminate notice")
    pre_dump = store.manifest("job-1", final.previousSeq)
    assert podman.dumps[-1] == "on previous" and pre_dump.seq == second.seq + 1
    assert final.stats.pagesWritten == 2 and final.archiveSize < pre_dump.archiveSize / 4
    # Pruning kept only the final dump and the pre-dump it needs.
    assert store._sequences("job-1") == [pre_dump.seq, final.seq]

    other, restored_podman = paged("i-2")
    answer = other.restore(LAUNCH)
    assert answer.manifest == final
    expected = [f"page {n} at start" for n in range(PAGES)]
    expected[3], expected[9] = "page 3 after two minutes", "page 9 at the notice"
    expected[11] = "page 11 at the notice"
    assert restored_podman.memory[other.container("job-1")] == expected


def test_a_pre_dump_that_was_not_committed_is_never_built_on(runtime, paged):
    agent, podman = paged("i-1")
    agent.run(LAUNCH)
    name = agent.container("job-1")
    # The periodic dump is stored; the pre-dump after it is taken, but its upload fails: its
    # pages are kept here, but no checkpoint in S3 has them.
    real_upload = agent.capsules.upload

    def pre_dump_unreachable(stream, describe, job_id, abandon=None):
        if podman.dumps[-1] != "pre-dump":
            return real_upload(stream, describe, job_id, abandon=abandon)
        stream.read()  # as the real upload does: podman is never left blocked
        raise CheckpointUploadFailed("checkpoint 2 of job job-1 was not stored: part 0: "
                                     "the network is unreachable")

    agent.capsules.upload = pre_dump_unreachable
    periodic = _periodic(agent)
    assert podman.dumps == ["whole", "pre-dump"] and periodic is not None
    agent.capsules.upload = real_upload
    podman.write(name, 5, "page 5 at the notice")
    final = agent.checkpoint("job-1", "spot terminate notice")
    assert podman.dumps[-1] == "whole" and final.previousSeq is None
    assert final.stats.pagesWritten == PAGES


def test_a_dump_whose_pre_dump_is_gone_is_not_restored(runtime, paged):
    agent, _ = paged("i-1")
    agent.run(LAUNCH)
    _periodic(agent)  # a whole dump, then a pre-dump
    first = _periodic(agent)  # a dump on that pre-dump, then another pre-dump
    store = CapsuleStore(runtime.s3, agent.settings.bucket)
    assert first.previousSeq is not None and store.latest("job-1") == first
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

"""What a move cost a job, as its migrations table shows it: the checkpoint, the transfer, the
launch, and the seconds from the warning (or request) to Executing again."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ValidationError

from chalicelib.runtime import Runtime
from chalicelib.wire.api import MigrationView
from chalicelib.wire.checkpoints import Restored
from chalicelib.wire.tasks import Moved, StatusChange


def instant(iso: str | None) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; None for none or a malformed one."""
    if iso is None:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


def migration(runtime: Runtime, change: StatusChange, moved: Moved) -> MigrationView:
    """The record of a move that landed: what the agents reported and how long each part took."""
    restored: Restored | None = None
    if moved.restored is not None:
        try:
            restored = Restored.model_validate(moved.restored)
        except ValidationError:
            restored = None  # an agent's reply without figures: the move still counts
    checkpoint = restored.manifest if restored else None
    frozen = checkpoint.stats.frozenTimeUs / 1e6 if checkpoint and checkpoint.stats.frozenTimeUs \
        else None
    notice = instant(moved.noticeTime)
    return MigrationView(
        time=runtime.now_iso(), reason=change.reason, cause=moved.cause,
        fromInstance=moved.fromInstance,
        toInstance=change.instanceId or "", instanceType=moved.instanceType,
        zone=moved.zone,
        checkpointSeq=checkpoint.seq if checkpoint else None,
        imageBytes=checkpoint.archiveSize if checkpoint else None,
        storedBytes=sum(p.size for p in checkpoint.parts) if checkpoint else None,
        freezeSeconds=frozen,
        checkpointSeconds=round(checkpoint.checkpointSeconds, 3) if checkpoint else None,
        uploadSeconds=round(checkpoint.uploadSeconds, 3) if checkpoint else None,
        launchSeconds=_seconds_between(notice, instant(moved.launchedAt)),
        downloadSeconds=restored.downloadSeconds if restored else None,
        restoreSeconds=restored.restoreSeconds if restored else None,
        secondsToExecuting=_seconds_between(notice, runtime.clock().astimezone(UTC)),
        rerun=moved.restored is None)

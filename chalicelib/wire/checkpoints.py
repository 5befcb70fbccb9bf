"""The AppCapsule manifest: what a committed checkpoint holds and how to verify it.

A checkpoint is a set of part objects under one prefix in S3 plus `manifest.json`, written last.
A checkpoint without a manifest does not exist; the manifest's checksums are checked before
anything is restored.

Format 2 (written now): the image is podman's uncompressed archive, cut into parts each stored
compressed or not as measured (`compression`), each with the SHA-256 of its stored bytes and
the number of image bytes it holds. Format 1 (still restored): parts are plain slices of a
zstd-compressed archive, with the whole archive's SHA-256.

Where the kernel tracks dirty memory a checkpoint may come in two: a "pre-dump" (the job's
memory only, taken with it running; never restored alone) and a "dump" naming it as
`previousSeq`, which holds only the pages changed since and is restored with it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_NAME = "manifest.json"


class CheckpointPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    key: str
    size: int = Field(ge=0)
    # Of the bytes as stored.
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # The image bytes the part holds once decompressed; None in format 1 (the stored size).
    rawSize: int | None = Field(default=None, ge=0)
    compression: Literal["none", "lz4", "zstd-1", "zstd-3"] = "none"


class CriuStats(BaseModel):
    """What `podman container checkpoint --print-stats` reports, in microseconds and pages."""

    model_config = ConfigDict(extra="ignore")

    freezingTimeUs: int = 0
    frozenTimeUs: int = 0
    memdumpTimeUs: int = 0
    memwriteTimeUs: int = 0
    pagesScanned: int = 0
    pagesWritten: int = 0


class CheckpointManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    formatVersion: Literal[1, 2] = 2
    jobId: str
    seq: int = Field(ge=1)
    kind: Literal["dump", "pre-dump"] = "dump"
    # The pre-dump holding the pages this dump left out, restored with it; None: it is whole.
    previousSeq: int | None = Field(default=None, ge=1)
    instanceId: str
    instanceType: str | None = None
    image: str
    createTime: str
    reason: str
    # Of the archive podman imports: zstd in format 1, none (the parts carry their own) in 2.
    compression: Literal["zstd", "none"] = "none"
    archiveSize: int = Field(ge=0)
    # Format 1 only: the parts' own checksums and sizes cover the whole image in format 2.
    archiveSha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    parts: list[CheckpointPart]
    stats: CriuStats = Field(default_factory=CriuStats)
    checkpointSeconds: float = Field(ge=0)
    uploadSeconds: float = Field(ge=0)
    # What was left of the job's time limit when the container was frozen; None: no limit.
    remainingSeconds: float | None = Field(default=None, ge=0)
    # Bytes of the container's log file the image holds: a restore's log is the job's own up
    # to there, whatever was shipped after it. None when it could not be measured.
    logSize: int | None = Field(default=None, ge=0)


    @model_validator(mode="after")
    def _chain(self) -> CheckpointManifest:
        if self.previousSeq is not None and (self.kind != "dump" or self.previousSeq >= self.seq):
            raise ValueError(f"checkpoint {self.seq}: only a dump names a previous checkpoint, "
                             "and only an older one")
        return self


class CheckpointSummary(BaseModel):
    """The job's newest committed checkpoint, as `float show` lists it."""

    model_config = ConfigDict(extra="ignore")

    seq: int
    time: str
    reason: str
    instanceId: str
    imageBytes: int
    storedBytes: int
    # The pre-dump it is restored with: its own bytes are only the pages changed since.
    previousSeq: int | None = None

    @classmethod
    def of(cls, manifest: CheckpointManifest) -> CheckpointSummary:
        return cls(seq=manifest.seq, time=manifest.createTime, reason=manifest.reason,
                   instanceId=manifest.instanceId, imageBytes=manifest.archiveSize,
                   storedBytes=sum(part.size for part in manifest.parts),
                   previousSeq=manifest.previousSeq)


class Restored(BaseModel):
    """An agent's answer to a restore: the checkpoint it restored and what that took."""

    model_config = ConfigDict(extra="forbid")

    manifest: CheckpointManifest
    downloadSeconds: float = Field(ge=0)
    restoreSeconds: float = Field(ge=0)

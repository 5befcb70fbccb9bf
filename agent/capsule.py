"""AppCapsule storage: checkpoint images in S3, committed by a manifest written last.

Layout: `checkpoints/{job}/{seq:08d}/part-{n:05d}` and `.../manifest.json`. Each checkpoint
gets a fresh sequence number, so an upload that dies half-way leaves parts without a manifest
and never touches the last committed checkpoint; the newest manifest is the one to restore.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from chalicelib.wire.checkpoints import MANIFEST_NAME, CheckpointManifest, CheckpointPart
from chalicelib.wire.failures import CheckpointCorrupt, CheckpointNotFound, CheckpointUploadFailed

DEFAULT_PART_SIZE = 32 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


def job_prefix(job_id: str) -> str:
    return f"checkpoints/{job_id}/"


def checkpoint_prefix(job_id: str, seq: int) -> str:
    return f"{job_prefix(job_id)}{seq:08d}/"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class CapsuleStore:
    """Upload, find, download and prune the checkpoints of jobs in one bucket."""

    def __init__(self, s3: Any, bucket: str, part_size: int = DEFAULT_PART_SIZE,
                 workers: int = 4) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._part_size = part_size
        self._workers = workers

    # ---- writing ---------------------------------------------------------------------------

    def next_seq(self, job_id: str) -> int:
        """One past every sequence number used so far, committed or not."""
        used = self._sequences(job_id)
        return max(used, default=0) + 1

    def upload(self, archive: Path, describe: Callable[[int, list[CheckpointPart], str, float],
                                                        CheckpointManifest],
               job_id: str) -> CheckpointManifest:
        """Store `archive` as the job's next checkpoint and commit it.

        `describe(seq, parts, sha256, upload_seconds)` builds the manifest once the parts are
        stored; the manifest is written only after every part succeeded.
        """
        seq = self.next_seq(job_id)
        prefix = checkpoint_prefix(job_id, seq)
        size = archive.stat().st_size
        offsets = list(range(0, size, self._part_size)) or [0]
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=self._workers) as pool:
                parts = list(pool.map(
                    lambda item: self._put_part(archive, prefix, item[0], item[1]),
                    enumerate(offsets),
                ))
        except (BotoCoreError, ClientError, OSError) as error:
            raise CheckpointUploadFailed(
                f"checkpoint {seq} of job {job_id} was not stored: {error}") from None
        manifest = describe(seq, parts, sha256_of(archive), time.monotonic() - started)
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=prefix + MANIFEST_NAME,
                Body=manifest.model_dump_json(indent=2).encode(), ContentType="application/json",
            )
        except (BotoCoreError, ClientError) as error:
            raise CheckpointUploadFailed(
                f"checkpoint {seq} of job {job_id} was not committed: {error}") from None
        return manifest

    def _put_part(self, archive: Path, prefix: str, index: int, offset: int) -> CheckpointPart:
        with archive.open("rb") as file:
            file.seek(offset)
            body = file.read(self._part_size)
        digest = hashlib.sha256(body).hexdigest()
        key = f"{prefix}part-{index:05d}"
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body)
        return CheckpointPart(index=index, key=key, size=len(body), sha256=digest)

    # ---- reading ---------------------------------------------------------------------------

    def latest(self, job_id: str) -> CheckpointManifest | None:
        """The newest committed checkpoint of the job, or None."""
        for seq in sorted(self._sequences(job_id), reverse=True):
            key = checkpoint_prefix(job_id, seq) + MANIFEST_NAME
            try:
                body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            except self._s3.exceptions.NoSuchKey:
                continue  # an upload that never committed
            try:
                return CheckpointManifest.model_validate_json(body)
            except ValidationError:
                continue  # a manifest we cannot trust is no commit
        return None

    def require_latest(self, job_id: str) -> CheckpointManifest:
        manifest = self.latest(job_id)
        if manifest is None:
            raise CheckpointNotFound(f"job {job_id} has no committed checkpoint")
        return manifest

    def download(self, manifest: CheckpointManifest, destination: Path) -> None:
        """Fetch every part into `destination`, refusing any byte that does not match."""
        parts = sorted(manifest.parts, key=lambda p: p.index)
        if [p.index for p in parts] != list(range(len(parts))):
            raise CheckpointCorrupt(f"checkpoint {manifest.seq} of job {manifest.jobId} "
                                    "has a gap in its parts")
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            bodies = pool.map(lambda part: self._get_part(manifest, part), parts)
            with destination.open("wb") as out:
                for body in bodies:
                    out.write(body)
        size = destination.stat().st_size
        if size != manifest.archiveSize or sha256_of(destination) != manifest.archiveSha256:
            destination.unlink(missing_ok=True)
            raise CheckpointCorrupt(
                f"checkpoint {manifest.seq} of job {manifest.jobId}: the reassembled image "
                f"({size} bytes) does not match its manifest ({manifest.archiveSize} bytes)")

    def _get_part(self, manifest: CheckpointManifest, part: CheckpointPart) -> bytes:
        where = f"checkpoint {manifest.seq} of job {manifest.jobId}, part {part.index}"
        try:
            body = bytes(self._s3.get_object(Bucket=self._bucket, Key=part.key)["Body"].read())
        except self._s3.exceptions.NoSuchKey:
            raise CheckpointCorrupt(f"{where} is missing") from None
        if len(body) != part.size:
            raise CheckpointCorrupt(f"{where} is {len(body)} bytes, the manifest says {part.size}")
        if hashlib.sha256(body).hexdigest() != part.sha256:
            raise CheckpointCorrupt(f"{where} does not match its sha256")
        return body

    # ---- housekeeping ----------------------------------------------------------------------

    def prune(self, job_id: str, keep: CheckpointManifest) -> int:
        """Delete every checkpoint of the job older than `keep`, committed or not; the count."""
        removed = 0
        for seq in self._sequences(job_id):
            if seq >= keep.seq:
                continue
            keys = self._keys(checkpoint_prefix(job_id, seq))
            for start in range(0, len(keys), 1000):
                self._s3.delete_objects(Bucket=self._bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
            removed += 1
        return removed

    def _sequences(self, job_id: str) -> list[int]:
        prefixes: list[int] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=job_prefix(job_id), Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if name.isdigit():
                    prefixes.append(int(name))
        return prefixes

    def _keys(self, prefix: str) -> list[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        return [obj["Key"] for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix)
                for obj in page.get("Contents", [])]

"""A job's data volumes as submitted: named storage resolved into volumes, and the S3 keys given
with them moved into one Secrets Manager secret of the job's (mount path → keys), which its
agents read to mount them. The job record keeps only that secret's id; the secret is deleted
when the job ends."""

from __future__ import annotations

import contextlib
import json

from chalicelib import storage
from chalicelib.errors import BadRequest
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.datavolumes import CREDENTIALS_STORED, DataVolume


def keys_secret_id(runtime: Runtime, job_id: str) -> str:
    return f"{runtime.config.secret_prefix}jobs/{job_id}/volume-keys"


def resolve(store: Store, runtime: Runtime, owner: str, volumes: list[DataVolume],
            names: list[str]) -> list[DataVolume]:
    """The job's volumes: those given, then each named storage's, its keys with it. Two
    volumes at one mount path, or a name the owner never registered, is a BadRequest."""
    found = list(volumes)
    for volume in volumes:
        if volume.credentials is not None and not volume.has_keys:
            raise BadRequest(f"the volume at {volume.mountPath} says credentials="
                             f"{CREDENTIALS_STORED} but has no keys; give accesskey= and secret=",
                             field="dataVolumes")
    for name in names:
        found.append(storage.as_volume(runtime, store, owner, name))
    mounts = [v.mountPath for v in found]
    for mount in mounts:
        if mounts.count(mount) > 1:
            raise BadRequest(f"two data volumes are mounted at {mount} (see --storage and "
                             "--dataVolume)", field="storage")
    return found


def store_keys(runtime: Runtime, job_id: str,
               volumes: list[DataVolume]) -> tuple[list[DataVolume], str | None]:
    """Move the volumes' keys into the job's secret: the volumes as the job record keeps them
    (`credentials: stored`, no keys) and the secret's id (None when no volume has keys)."""
    keys = {v.mountPath: v.keys() for v in volumes if v.has_keys}
    kept = [v.model_copy(update={"accessKey": None, "secretKey": None, "sessionToken": None,
                                 "credentials": CREDENTIALS_STORED if v.has_keys else None})
            for v in volumes]
    if not keys:
        return kept, None
    secret_id = keys_secret_id(runtime, job_id)
    runtime.secrets.create_secret(Name=secret_id, SecretString=json.dumps(keys),
                                  Description=f"S3 keys of the data volumes of OpenFloat job {job_id}")
    return kept, secret_id


def delete_keys(runtime: Runtime, job_id: str) -> None:
    """Delete the job's volume keys; a job with none is fine."""
    with contextlib.suppress(runtime.secrets.exceptions.ResourceNotFoundException):
        runtime.secrets.delete_secret(SecretId=keys_secret_id(runtime, job_id),
                                      ForceDeleteWithoutRecovery=True)

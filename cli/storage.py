"""Named storage commands: `float storage register|list|remove`. A registered S3 prefix or NFS
export is mounted into a job with `float submit --storage NAME`; its S3 keys are sent, never
printed."""

from __future__ import annotations

import argparse

from chalicelib.wire.vault import StorageRequest, StorageView
from cli import output
from cli.client import segment
from cli.errors import UsageError, validate
from cli.session import connect


def register(args: argparse.Namespace) -> None:
    """`float storage register -n NAME -t s3 -b BUCKET[/PREFIX] -m /mnt/x [-k AK -s SK] ...` or
    `-t nfs --server HOST --path /export -m /mnt/x`."""
    given = {"name": args.storage_name, "kind": args.type, "mountPath": args.mountPoint,
             "bucket": args.bucket, "server": args.server, "path": args.path,
             "mode": args.mode, "endpoint": args.endpoint, "accessKey": args.accessKey,
             "secretKey": args.secret, "sessionToken": args.token}
    body = {key: value for key, value in given.items() if value is not None}
    validate(StorageRequest, body)
    storage = connect(args).call("POST", "/v1/storage", StorageView, body=body)
    output.emit(args.format, storage, storage_table)


def list_storage(args: argparse.Namespace) -> None:
    """`float storage list`: the caller's registered storage."""
    found = connect(args).pages("/v1/storage", StorageView)
    output.emit(args.format, found, lambda items: output.table(
        ("NAME", "TYPE", "SOURCE", "MOUNT POINT", "MODE", "ENDPOINT", "CREDENTIALS"),
        ((s.name, s.kind, s.source, s.mountPath, s.mode, s.endpoint, s.credentials)
         for s in items)))


def remove(args: argparse.Namespace) -> None:
    """`float storage remove NAME` (or `-n NAME`). Jobs already submitted with it keep it."""
    name = args.name or args.storage_name
    if not name or (args.name and args.storage_name and args.name != args.storage_name):
        raise UsageError("name one storage: float storage remove NAME (or -n NAME)")
    storage = connect(args).call("DELETE", f"/v1/storage/{segment(name)}", StorageView)
    output.emit(args.format, storage, storage_table)


def storage_table(storage: StorageView) -> str:
    return output.fields([
        ("NAME", storage.name), ("TYPE", storage.kind), ("SOURCE", storage.source),
        ("MOUNT POINT", storage.mountPath), ("MODE", storage.mode),
        ("ENDPOINT", storage.endpoint), ("CREDENTIALS", storage.credentials),
        ("OWNER", storage.owner), ("CREATE TIME", storage.createTime)])

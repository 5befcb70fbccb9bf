"""The storage table: each user's named S3 prefixes and NFS exports, and where their keys are."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from chalicelib.errors import Conflict
from chalicelib.store.tables import Tables, encode_token, from_item, start_key, to_item


class StorageRecord(BaseModel):
    owner: str
    name: str
    kind: Literal["s3", "nfs"]
    source: str
    mountPath: str
    mode: Literal["r", "rw"]
    endpoint: str | None = None
    # The Secrets Manager id of the storage's S3 keys; the keys never live here.
    secretId: str | None = None
    createTime: str


class StorageTable(Tables):
    def create_storage(self, storage: StorageRecord) -> None:
        self._put(self._config.storage_table, to_item(storage.model_dump()),
                  "attribute_not_exists(#n)",
                  Conflict(f"storage {storage.name} is already registered; remove it first"),
                  names={"#n": "name"})

    def get_storage(self, owner: str, name: str) -> StorageRecord | None:
        return self._get(self._config.storage_table, {"owner": owner, "name": name}, StorageRecord)

    def delete_storage(self, owner: str, name: str) -> StorageRecord:
        return self._delete(self._config.storage_table, {"owner": owner, "name": name},
                            StorageRecord, f"storage {name}")

    def list_storage(self, owner: str, limit: int,
                     token: str | None) -> tuple[list[StorageRecord], str | None]:
        query = {"TableName": self._config.storage_table,
                 "KeyConditionExpression": "#o = :o",
                 "ExpressionAttributeNames": {"#o": "owner"},
                 "ExpressionAttributeValues": {":o": {"S": owner}}}
        items, last_key = self._query_page(query, limit, start_key(token, "owner", owner))
        return [StorageRecord.model_validate(from_item(i)) for i in items], encode_token(last_key)

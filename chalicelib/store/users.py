"""The users table: names, password hashes and roles."""

from __future__ import annotations

from pydantic import BaseModel

from chalicelib.errors import Conflict
from chalicelib.store.tables import Tables, to_item
from chalicelib.wire.api import Role

KIND_USER = "user"


class UserRecord(BaseModel):
    username: str
    passwordHash: str
    role: Role
    createTime: str




class UserTable(Tables):
    def create_user(self, user: UserRecord) -> None:
        self._put(self._config.users_table, to_item({**user.model_dump(), "kind": KIND_USER}),
                  "attribute_not_exists(username)", Conflict(f"user {user.username} already exists"))

    def get_user(self, username: str) -> UserRecord | None:
        return self._get(self._config.users_table, {"username": username}, UserRecord)

    def delete_user(self, username: str) -> UserRecord:
        return self._delete(
            self._config.users_table, {"username": username}, UserRecord, f"user {username}"
        )

    def list_users(self, limit: int, token: str | None) -> tuple[list[UserRecord], str | None]:
        return self._list_kind(self._config.users_table, KIND_USER, UserRecord, limit, token)

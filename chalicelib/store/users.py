"""The users table: names, password hashes and roles; what makes their tokens good; and the
counts of failed logins that throttle password guessing."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from chalicelib.errors import Conflict, NotFound
from chalicelib.store.tables import Tables, from_item, is_conditional_failure, to_item
from chalicelib.wire.api import USERNAME_PATTERN, Role

KIND_USER = "user"
_USERNAME = re.compile(USERNAME_PATTERN)
# Counters of failed logins share the table under keys no username can take (no `#`); they
# carry no `kind`, so the list of users never sees them.
_FAILURES = "#login-failures/"


class UserRecord(BaseModel):
    username: str
    passwordHash: str
    role: Role
    createTime: str
    # Every login token names it: a new one (a password change, or a new user of the same
    # name) makes all earlier tokens of the name worthless. Empty only for users stored before
    # it existed; their first login sets it.
    tokenGeneration: str = ""
    # Tokens given up by `float logout`, by id, each kept until it would have expired (epoch s).
    revokedTokens: dict[str, int] = Field(default_factory=dict)


class FailedLogins(BaseModel):
    """Failed logins of one user or from one address since `windowStart` (epoch seconds)."""

    failures: int
    windowStart: int


class UserTable(Tables):
    def create_user(self, user: UserRecord) -> None:
        self._put(self._config.users_table, to_item({**user.model_dump(), "kind": KIND_USER}),
                  "attribute_not_exists(username)", Conflict(f"user {user.username} already exists"))

    def get_user(self, username: str) -> UserRecord | None:
        if not _USERNAME.match(username):
            return None
        return self._get(self._config.users_table, {"username": username}, UserRecord)

    def delete_user(self, username: str) -> UserRecord:
        return self._delete(
            self._config.users_table, {"username": username}, UserRecord, f"user {username}"
        )

    def list_users(self, limit: int, token: str | None) -> tuple[list[UserRecord], str | None]:
        return self._list_kind(self._config.users_table, KIND_USER, UserRecord, limit, token)

    def _update_user(self, username: str, expression: str, values: dict[str, Any],
                     names: dict[str, str] | None = None, condition: str = "") -> UserRecord:
        request: dict[str, Any] = {
            "TableName": self._config.users_table, "Key": to_item({"username": username}),
            "UpdateExpression": expression, "ExpressionAttributeValues": values,
            "ConditionExpression": "attribute_exists(username)" + (
                f" AND ({condition})" if condition else ""),
            "ReturnValues": "ALL_NEW",
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            response = self._db.update_item(**request)
        except ClientError as error:
            if is_conditional_failure(error):
                raise NotFound(f"user {username} does not exist") from None
            raise
        return UserRecord.model_validate(from_item(response["Attributes"]))

    def set_password(self, username: str, password_hash: str, generation: str) -> UserRecord:
        """A new password and token generation: every earlier token of the user stops working."""
        return self._update_user(
            username, "SET passwordHash = :h, tokenGeneration = :g, revokedTokens = :none",
            {":h": {"S": password_hash}, ":g": {"S": generation}, ":none": {"M": {}}})

    def ensure_generation(self, username: str, generation: str) -> UserRecord:
        """The user with a token generation: theirs if they have one, else `generation`."""
        try:
            return self._update_user(
                username, "SET tokenGeneration = :g", {":g": {"S": generation}, ":empty": {"S": ""}},
                condition="attribute_not_exists(tokenGeneration) OR tokenGeneration = :empty")
        except NotFound:
            user = self.get_user(username)
            if user is None:
                raise
            return user

    def revoke_token(self, username: str, token_id: str, expires: int, now: int) -> None:
        """Keep `token_id` refused until `expires`, and forget revocations already expired."""
        user = self._update_user(username, "SET revokedTokens = if_not_exists(revokedTokens, :m)",
                                 {":m": {"M": {}}})
        expired = [key for key, until in user.revokedTokens.items() if until < now][:50]
        names = {"#new": token_id, **{f"#old{n}": key for n, key in enumerate(expired)}}
        expression = "SET revokedTokens.#new = :until" + (
            " REMOVE " + ", ".join(f"revokedTokens.#old{n}" for n in range(len(expired)))
            if expired else "")
        self._update_user(username, expression, {":until": {"N": str(expires)}}, names)

    # ---- failed logins ----------------------------------------------------------------------

    def failed_logins(self, subject: str) -> FailedLogins | None:
        item = self._db.get_item(TableName=self._config.users_table,
                                 Key=to_item({"username": _FAILURES + subject}),
                                 ConsistentRead=True).get("Item")
        return FailedLogins.model_validate(from_item(item)) if item else None

    def count_failed_login(self, subject: str, now: int, window: int) -> int:
        """Count one more failure in the window that began at most `window` seconds ago (a
        new window if the last one is over); the failures of the window so far."""
        key = to_item({"username": _FAILURES + subject})
        values = {":one": {"N": "1"}, ":now": {"N": str(now)},
                  ":cutoff": {"N": str(now - window)}, ":expires": {"N": str(now + window)}}
        try:
            response = self._db.update_item(
                TableName=self._config.users_table, Key=key,
                UpdateExpression="SET windowStart = if_not_exists(windowStart, :now), "
                                 "expiresAt = :expires ADD failures :one",
                ConditionExpression="attribute_not_exists(windowStart) OR windowStart > :cutoff",
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            self._db.put_item(TableName=self._config.users_table, Item={
                **key, "failures": {"N": "1"}, "windowStart": {"N": str(now)},
                "expiresAt": {"N": str(now + window)}})
            return 1
        return int(response["Attributes"]["failures"]["N"])

    def clear_failed_logins(self, subject: str) -> None:
        self._db.delete_item(TableName=self._config.users_table,
                             Key=to_item({"username": _FAILURES + subject}))

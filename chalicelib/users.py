"""OpCenter users: created, listed and deleted by admins; the first admin is bootstrapped."""

from __future__ import annotations

from chalicelib import storage, vault
from chalicelib.auth import Principal, hash_password
from chalicelib.errors import Conflict
from chalicelib.runtime import Runtime
from chalicelib.store import Store, UserRecord
from chalicelib.wire.api import Page, UserRequest, UserView


def _view(user: UserRecord) -> UserView:
    return UserView(username=user.username, role=user.role, createTime=user.createTime)


def create(runtime: Runtime, store: Store, principal: Principal, request: UserRequest) -> UserView:
    principal.require_admin("create users")
    user = UserRecord(
        username=request.username,
        passwordHash=hash_password(request.password),
        role=request.role,
        createTime=runtime.now_iso(),
    )
    store.create_user(user)
    return _view(user)


def list_users(store: Store, principal: Principal, limit: int, token: str | None) -> Page[UserView]:
    principal.require_admin("list users")
    users, next_token = store.list_users(limit, token)
    return Page[UserView](items=[_view(u) for u in users], nextToken=next_token)


def delete(runtime: Runtime, store: Store, principal: Principal, username: str) -> UserView:
    """Delete the user, then their secrets and named storage: a new user given the same name
    later must not find them."""
    principal.require_admin("delete users")
    if username == principal.username:
        # Deleting oneself could leave the OpCenter with no admin at all.
        raise Conflict("you cannot delete your own account; ask another admin")
    removed = store.delete_user(username)
    vault.forget_owner(runtime, username)
    storage.forget_owner(runtime, store, username)
    return _view(removed)


def ensure_admin(runtime: Runtime, store: Store, username: str, password: str) -> bool:
    """Create the admin `username` unless a user of that name exists; True if created."""
    if store.get_user(username) is not None:
        return False
    try:
        store.create_user(
            UserRecord(
                username=username,
                passwordHash=hash_password(password),
                role="admin",
                createTime=runtime.now_iso(),
            )
        )
    except Conflict:
        return False
    return True

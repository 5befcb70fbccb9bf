"""OpCenter users: created, listed and deleted by admins; the first admin is bootstrapped."""

from __future__ import annotations

from chalicelib import auth, storage, vault
from chalicelib.auth import Principal, check_password, hash_password, new_generation
from chalicelib.errors import Conflict, Forbidden, NotFound, Unauthorized
from chalicelib.runtime import Runtime
from chalicelib.store import Store, UserRecord
from chalicelib.wire.api import Page, PasswordChange, UserRequest, UserView


def _view(user: UserRecord) -> UserView:
    return UserView(username=user.username, role=user.role, createTime=user.createTime)


def create(runtime: Runtime, store: Store, principal: Principal, request: UserRequest) -> UserView:
    principal.require_admin("create users")
    check_password(request.password, request.username)
    user = UserRecord(
        username=request.username,
        passwordHash=hash_password(request.password),
        role=request.role,
        createTime=runtime.now_iso(),
        tokenGeneration=new_generation(),
    )
    store.create_user(user)
    return _view(user)


def list_users(store: Store, principal: Principal, limit: int, token: str | None) -> Page[UserView]:
    principal.require_admin("list users")
    users, next_token = store.list_users(limit, token)
    return Page[UserView](items=[_view(u) for u in users], nextToken=next_token)


def change_password(runtime: Runtime, store: Store, principal: Principal, username: str,
                    request: PasswordChange, address: str) -> UserView:
    """A new password for `username`; every token of theirs stops working, the caller's too
    when it is their own (the CLI logs in again with the new one)."""
    own = principal.username == username
    if not own:
        principal.require_admin("set another user's password")
    if own and request.currentPassword is None:
        raise Forbidden("give your current password (currentPassword) to change it")
    if not own and request.currentPassword is not None:
        raise Forbidden(f"currentPassword is {username}'s to give; an admin sets it without")
    user = store.get_user(username)
    if user is None:
        raise NotFound(f"user {username} does not exist")
    if own:
        # Checked as a login is, throttled too: a stolen token must not guess the password.
        try:
            auth.login(runtime, store, username, request.currentPassword or "", address)
        except Unauthorized:
            raise Forbidden("currentPassword is not your password") from None
    check_password(request.password, username)
    changed = store.set_password(username, hash_password(request.password), new_generation())
    return _view(changed)


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
    check_password(password, username)
    try:
        store.create_user(
            UserRecord(
                username=username,
                passwordHash=hash_password(password),
                role="admin",
                createTime=runtime.now_iso(),
                tokenGeneration=new_generation(),
            )
        )
    except Conflict:
        return False
    return True

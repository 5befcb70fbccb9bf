"""User commands: `float user add|list|delete` (admins only) and `float user passwd`."""

from __future__ import annotations

import argparse

from chalicelib.wire.api import PasswordChange, UserRequest, UserView, WhoamiView
from cli import output, prompt
from cli.client import segment
from cli.errors import validate
from cli.session import connect, job_credentials, load, relog


def add(args: argparse.Namespace) -> None:
    """`float user add USERNAME [--password P] [--role admin|user]`; asks for the password on a
    terminal when it is not given."""
    client = connect(args)
    password = args.new_password or prompt.new_password(
        f"Password for the new user {args.username}: ", "--password PASSWORD")
    body = {"username": args.username, "password": password, "role": args.role}
    validate(UserRequest, body)
    user = client.call("POST", "/v1/users", UserView, body=body)
    output.emit(args.format, user, user_table)


def list_users(args: argparse.Namespace) -> None:
    users = connect(args).pages("/v1/users", UserView)
    output.emit(args.format, users, lambda items: output.table(
        ("USERNAME", "ROLE", "CREATE TIME"), ((u.username, u.role, u.createTime) for u in items)))


def delete(args: argparse.Namespace) -> None:
    user = connect(args).call("DELETE", f"/v1/users/{segment(args.username)}", UserView)
    output.emit(args.format, user, user_table)


def passwd(args: argparse.Namespace) -> None:
    """`float user passwd [USERNAME] [--password P] [--current-password C]`: one's own password
    (the current one asked for too), or as an admin anyone's. Every session of that user ends;
    one's own is logged in again with the new password."""
    client = connect(args)
    me = client.call("GET", "/v1/whoami", WhoamiView)
    username = args.username or me.username
    own = username == me.username
    body: dict[str, str] = {}
    if own:
        body["currentPassword"] = args.current_password or prompt.password(
            "Current password: ", "--current-password PASSWORD")
    body["password"] = args.new_password or prompt.new_password(
        f"New password for {username}: ", "--password PASSWORD")
    validate(PasswordChange, body)
    user = client.call("PUT", f"/v1/users/{segment(username)}/password", UserView, body=body)
    saved = load()
    if own and job_credentials(args) is None and saved is not None \
            and saved.address == client.address and saved.username == username:
        relog(client.address, username, body["password"])
    output.emit(args.format, user, user_table)


def user_table(user: UserView) -> str:
    return output.fields([
        ("USERNAME", user.username), ("ROLE", user.role), ("CREATE TIME", user.createTime)])

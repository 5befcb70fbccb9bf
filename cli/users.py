"""User commands (admins only on the server): `float user add|list|delete`."""

from __future__ import annotations

import argparse

from chalicelib.wire.api import UserRequest, UserView
from cli import output, prompt
from cli.client import segment
from cli.errors import validate
from cli.session import connect


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


def user_table(user: UserView) -> str:
    return output.fields([
        ("USERNAME", user.username), ("ROLE", user.role), ("CREATE TIME", user.createTime)])

"""Secret commands: `float secret set|get|unset|ls`. Each user has their own secrets; `get`
prints the bare value (a job script reads it with `$(float secret get NAME)`), `ls` only names."""

from __future__ import annotations

import argparse
import sys

from chalicelib.wire.vault import SecretRequest, SecretValue, SecretView
from cli import output
from cli.client import segment
from cli.errors import UsageError, validate
from cli.session import connect


def set_secret(args: argparse.Namespace) -> None:
    """`float secret set NAME VALUE` (or `--stdin`): keep VALUE under NAME, replacing any."""
    if args.stdin:
        if args.value is not None:
            raise UsageError("give the value as an argument or with --stdin, not both")
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
    elif args.value is None:
        raise UsageError("give the value: float secret set NAME VALUE (or --stdin)")
    else:
        value = args.value
    body = {"value": value}
    validate(SecretRequest, body)
    secret = connect(args).call("PUT", f"/v1/secrets/{segment(args.name)}", SecretView,
                                body=body)
    output.emit(args.format, secret, _secret_table)


def get_secret(args: argparse.Namespace) -> None:
    """`float secret get NAME`: the value alone and a newline, whatever the format."""
    secret = connect(args).call("GET", f"/v1/secrets/{segment(args.name)}", SecretValue)
    output.line(secret.value)


def unset_secret(args: argparse.Namespace) -> None:
    """`float secret unset NAME`."""
    secret = connect(args).call("DELETE", f"/v1/secrets/{segment(args.name)}", SecretView)
    output.emit(args.format, secret, _secret_table)


def list_secrets(args: argparse.Namespace) -> None:
    """`float secret ls`: the names of the caller's secrets (never their values)."""
    secrets = connect(args).pages("/v1/secrets", SecretView)
    output.emit(args.format, secrets, lambda items: output.table(
        ("NAME", "UPDATE TIME"), ((s.name, s.updateTime) for s in items)))


def _secret_table(secret: SecretView) -> str:
    return output.fields([("NAME", secret.name), ("UPDATE TIME", secret.updateTime)])

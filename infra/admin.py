"""Create an OpCenter's first admin in a deployed stack:

    OPENFLOAT_ADMIN_PASSWORD=... python -m infra.admin STACK_NAME [--username admin]

Reads the stack's outputs for the table and secret names, as the deployed functions do.
"""

from __future__ import annotations

import argparse
import os
import sys

import boto3

from chalicelib.auth import check_password
from chalicelib.config import RESOURCE_ENV, Config
from chalicelib.errors import BadRequest
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.users import ensure_admin


def stack_settings(session: boto3.Session, stack_name: str) -> dict[str, str]:
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for key in RESOURCE_ENV.values() if key not in outputs]
    if missing:
        raise SystemExit(f"infra.admin: stack {stack_name} has no output {', '.join(missing)}")
    return {env: outputs[key] for env, key in RESOURCE_ENV.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.admin", description=__doc__)
    parser.add_argument("stack")
    parser.add_argument("--username", default="admin")
    args = parser.parse_args(argv)
    password = os.environ.get("OPENFLOAT_ADMIN_PASSWORD", "")
    if not password:
        print("infra.admin: set OPENFLOAT_ADMIN_PASSWORD to the first admin's password",
              file=sys.stderr)
        return 1
    try:
        check_password(password, args.username)
    except BadRequest as error:
        print(f"infra.admin: OPENFLOAT_ADMIN_PASSWORD: {error.message}", file=sys.stderr)
        return 1
    session = boto3.Session()
    runtime = Runtime.from_config(Config.from_env(stack_settings(session, args.stack)), session)
    created = ensure_admin(runtime, Store(runtime.dynamodb, runtime.config), args.username, password)
    print(f"admin {args.username} {'created' if created else 'already exists; left unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

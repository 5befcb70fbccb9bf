"""The OpCenter itself: `float version`, `float status` and `float release sync`. They ask the
public health route, so they need no login, only an address (-a, or the saved session's)."""

from __future__ import annotations

import argparse
import time

from chalicelib.wire.api import RELEASE, HealthView, WhoamiView
from cli import output
from cli.client import Client, normalize_address
from cli.errors import CliError, UsageError
from cli.session import job_credentials, load

UNKNOWN = "unknown (the OpCenter does not say)"


def _address(args: argparse.Namespace) -> str:
    if args.address:
        return normalize_address(args.address)
    job = job_credentials(args)
    if job is not None:
        return job[0]
    saved = load()
    if saved is None:
        raise UsageError("give the OpCenter's address with -a ADDR (or log in first)")
    return saved.address


def _health(client: Client) -> HealthView:
    health: HealthView = client.call("GET", "/v1/health", HealthView)
    return health


def version(args: argparse.Namespace) -> None:
    """`float version`: this float's release, and the OpCenter's when one can be asked."""
    info: dict[str, object] = {"client": RELEASE}
    try:
        address = _address(args)
    except UsageError:
        address = None
    if address is not None:
        try:
            health = _health(Client(address))
        except CliError as error:  # this float's own release is still worth printing
            info.update(opCenter=f"unknown: {error.message}", address=address)
        else:
            info.update(opCenter=health.release or UNKNOWN, api=health.version, address=address)
    output.emit(args.format, info, lambda data: output.fields(
        (key.upper() if key != "opCenter" else "OPCENTER", value) for key, value in data.items()))


def status(args: argparse.Namespace) -> None:
    """`float status`: whether the OpCenter answers, how fast, its release, and who the saved
    session (if any, and still valid) logs in as."""
    address = _address(args)
    client = Client(address)
    started = time.monotonic()
    try:
        health = _health(client)
    except CliError as error:
        raise CliError(f"the OpCenter at {address} does not answer: {error.message}") from None
    info: dict[str, object] = {
        "address": address, "status": health.status,
        "answeredInMs": round((time.monotonic() - started) * 1000),
        "api": health.version, "release": health.release or UNKNOWN, "client": RELEASE,
        "user": _user(args, address)}
    output.emit(args.format, info, lambda data: output.fields(
        (key.upper(), value) for key, value in data.items()))


def _user(args: argparse.Namespace, address: str) -> str:
    job = job_credentials(args)
    saved = load()
    token = job[1] if job is not None and job[0] == address else (
        saved.token if saved is not None and saved.address == address else None)
    if token is None:
        return "not logged in"
    try:
        me: WhoamiView = Client(address, token).call("GET", "/v1/whoami", WhoamiView)
    except CliError:
        return "the saved session is no longer valid; run float login"
    return f"{me.username} ({me.role})"


def release_sync(args: argparse.Namespace) -> None:
    """`float release sync`: MMCloud fetches the CLI that matches its OpCenter. This float
    comes with the OpCenter's release (the same source tree), so it says which release each
    runs and whether they match; it changes nothing."""
    address = _address(args)
    health = _health(Client(address))
    server = health.release
    if server is None:
        verdict = "the OpCenter does not say its release"
    elif server == RELEASE:
        verdict = "in step; nothing to sync"
    else:
        verdict = f"they differ; install the float of OpenFloat {server} to match"
    output.line(f"OpCenter at {address} runs OpenFloat {server or UNKNOWN}; this float is "
                f"{RELEASE}: {verdict}")

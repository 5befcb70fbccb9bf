"""Saved sessions: the session file (`$FLOAT_CONFIG_DIR` or `~/.float`, session.json, mode 0600),
the login and logout commands, and the authenticated client every other command starts from.

Inside a job, the OpCenter gives the container FLOAT_ADDRESS (its API base URL), FLOAT_TOKEN (a
bearer token for that one job) and FLOAT_JOB_ID, so the job script can run `float migrate`
without logging in. When both FLOAT_ADDRESS and FLOAT_TOKEN are set and no -u/-p is given, they
are used instead of the session file. FLOAT_ADDRESS is then also the default for -a (so -u/-p log
in there); an explicit -a still wins, and the job's token is only ever sent to FLOAT_ADDRESS
(any other -a uses the session file)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pydantic import BaseModel

from chalicelib.wire.api import LoginRequest, LoginView, LogoutView, WhoamiView
from cli import output, prompt
from cli.client import Client, normalize_address
from cli.errors import CliError, RefusedError, UsageError, validate

JOB_ADDRESS = "FLOAT_ADDRESS"
JOB_TOKEN = "FLOAT_TOKEN"
JOB_ID = "FLOAT_JOB_ID"


class Session(BaseModel):
    address: str
    username: str
    token: str
    expiresAt: str


def session_path() -> Path:
    root = os.environ.get("FLOAT_CONFIG_DIR")
    return (Path(root) if root else Path.home() / ".float") / "session.json"


def load() -> Session | None:
    """The saved session; a missing or damaged file means none (the next login replaces it)."""
    path = session_path()
    try:
        return Session.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    except OSError as error:
        raise CliError(f"cannot read the session in {path}: {error.strerror}") from None


def save(session: Session) -> None:
    path = session_path()
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary.unlink(missing_ok=True)
        # Created 0600 from its first byte, then renamed over the old file: the token is never
        # readable by another user, and a crash never leaves a half-written session.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(session.model_dump_json(indent=2))
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CliError(f"cannot save the session in {path}: {error.strerror}") from None


def connect(args: argparse.Namespace) -> Client:
    """A client for the chosen OpCenter: inside a job as that job (FLOAT_ADDRESS, FLOAT_TOKEN),
    otherwise as the saved user, logging in first when -u/-p are given.

    A token is only ever sent to the address it came from."""
    job = job_credentials(args)
    if job is not None:
        return Client(*job, refused_hint=f"; the token came from {JOB_TOKEN}")
    saved = load()
    address = _address(args, saved)
    if args.login_user or args.login_password:
        if address is None:
            raise UsageError("give the OpCenter's address with -a ADDR")
        return Client(address, _log_in(address, args, saved).token)
    hint = f"float login -a {address or 'ADDR'} -u USER -p PASS"
    if saved is None or address is None:
        raise CliError(f"not logged in; run: {hint}")
    if saved.address != address:
        raise CliError(
            f"not logged in to {address} (the session is for {saved.address}); run: {hint}")
    return Client(address, saved.token)


def job_credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    """(address, token) from FLOAT_ADDRESS and FLOAT_TOKEN when running inside a job and the
    command line does not log in (-u/-p) or point somewhere else (-a)."""
    job = _job_environment()
    if job is None or args.login_user or args.login_password:
        return None
    if args.address and normalize_address(args.address) != job[0]:
        return None
    return job


def _job_environment() -> tuple[str, str] | None:
    """(FLOAT_ADDRESS, FLOAT_TOKEN) when both are set, the address normalized."""
    text, token = os.environ.get(JOB_ADDRESS, "").strip(), os.environ.get(JOB_TOKEN, "").strip()
    if not text or not token:
        return None
    try:
        return normalize_address(text), token
    except UsageError:
        raise CliError(f"{JOB_ADDRESS}={text!r} is not an OpCenter address such as "
                       "http://127.0.0.1:8787") from None


def login(args: argparse.Namespace) -> None:
    """`float login -a ADDR -u USER -p PASS`, or `float login --info`."""
    if args.info:
        client = connect(args)
        me = client.call("GET", "/v1/whoami", WhoamiView)
        session = None if job_credentials(args) else load()
        info = {
            "username": me.username,
            "role": me.role,
            "address": client.address,
            "expiresAt": session.expiresAt if session else None,
        }
        output.emit(args.format, info, lambda data: output.fields(
            (key.upper(), value) for key, value in data.items()))
        return
    saved = load()
    address = _address(args, saved)
    if address is None:
        raise UsageError("give the OpCenter's address: float login -a ADDR -u USER -p PASS")
    view = _log_in(address, args, saved)
    output.line(
        f"Login succeeded: {view.username} ({view.role}) at {address}, "
        f"session valid until {view.expiresAt}"
    )


def logout(args: argparse.Namespace) -> None:
    """`float logout`: revoke the saved session's token at its OpCenter, then forget it.

    The session file goes even when the OpCenter cannot be told; the command then fails,
    saying the token stays good until it expires."""
    saved = load()
    if saved is None:
        output.line("Not logged in")
        return
    try:
        Client(saved.address, saved.token).call("POST", "/v1/logout", LogoutView)
    except RefusedError as error:
        if error.status != 401:  # a 401: the token was already worthless
            session_path().unlink(missing_ok=True)
            raise CliError(f"forgot the session, but {saved.address} did not revoke its token "
                           f"({error.message}); it stays good until {saved.expiresAt}") from None
    except CliError as error:
        session_path().unlink(missing_ok=True)
        raise CliError(f"forgot the session, but could not revoke its token ({error.message}); "
                       f"it stays good until {saved.expiresAt}") from None
    session_path().unlink(missing_ok=True)
    output.line(f"Logged out of {saved.address}")


def relog(address: str, username: str, password: str) -> LoginView:
    """Log in again after the user's own password changed (which ends every session of theirs)."""
    body = {"username": username, "password": password}
    view: LoginView = Client(address).call("POST", "/v1/login", LoginView, body=body)
    save(Session(address=address, username=view.username, token=view.token,
                 expiresAt=view.expiresAt))
    return view


def _address(args: argparse.Namespace, saved: Session | None) -> str | None:
    if args.address:
        return normalize_address(args.address)
    job = _job_environment()
    if job is not None:
        return job[0]
    return saved.address if saved else None


def _log_in(address: str, args: argparse.Namespace, saved: Session | None) -> LoginView:
    """POST /v1/login with the -u/-p flags (asking for the password on a terminal); saves it."""
    username = args.login_user
    if not username and saved is not None and saved.address == address:
        username = saved.username
    if not username:
        raise UsageError("give the username with -u USER")
    password = args.login_password or prompt.password(f"Password for {username}: ", "-p PASS")
    body = {"username": username, "password": password}
    validate(LoginRequest, body)
    view: LoginView = Client(address).call("POST", "/v1/login", LoginView, body=body)
    save(Session(address=address, username=view.username, token=view.token,
                 expiresAt=view.expiresAt))
    return view

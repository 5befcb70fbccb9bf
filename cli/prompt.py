"""What `float` asks the person at the terminal (passwords, confirmations) and what it reads from
stdin (a token); it never asks when stdin is not a terminal, so scripts never hang."""

from __future__ import annotations

import getpass
import sys

from cli.errors import CliError, UsageError


def interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def password(prompt: str, flag: str) -> str:
    """Ask for a password without echo, or explain which flag to give when nobody can answer."""
    if not interactive():
        raise UsageError(f"give {flag}: stdin is not a terminal, so float cannot ask for it")
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise CliError("no password given") from None


def new_password(prompt: str, flag: str) -> str:
    """Ask twice for a password being set, so a typo is not locked in."""
    first = password(prompt, flag)
    if password("Repeat it: ", flag) != first:
        raise CliError("the two passwords differ")
    return first


def confirm(question: str) -> bool:
    """A yes/no question on stderr (stdout stays clean for --format json); 'y' or 'yes' agree."""
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def line_from_stdin(what: str) -> str:
    """One line of stdin without its line ending, e.g. a registry token piped in."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageError(f"no {what} on stdin")
    return line

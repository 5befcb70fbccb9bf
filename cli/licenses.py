"""`float license apply FILE`, `float license info`, `float license remove` (admins): the
OpCenter's license, and what this month has used of it."""

from __future__ import annotations

import argparse
import json

from chalicelib.wire.licenses import LicenseDocument, LicenseView
from cli import output, prompt
from cli.errors import CliError, validate
from cli.session import connect

# A license file is a few hundred bytes; anything much larger is not one.
_MAX_FILE_BYTES = 64 * 1024


def apply(args: argparse.Namespace) -> None:
    document = _read(args.file)
    validate(LicenseDocument, document)
    shown = connect(args).call("PUT", "/v1/license", LicenseView, body=document)
    output.emit(args.format, shown, license_table)


def info(args: argparse.Namespace) -> None:
    output.emit(args.format, connect(args).call("GET", "/v1/license", LicenseView),
                license_table)


def remove(args: argparse.Namespace) -> None:
    """Asks first on a terminal unless -f: new jobs wait until another license is applied."""
    if not args.force and prompt.interactive() and not prompt.confirm(
            "Remove the OpCenter's license? New jobs will wait for another. [y/N] "):
        raise CliError("the license was not removed")
    shown = connect(args).call("DELETE", "/v1/license", LicenseView)
    output.emit(args.format, shown, license_table)


def _read(path: str) -> dict:
    try:
        with open(path, "rb") as file:
            content = file.read(_MAX_FILE_BYTES + 1)
    except OSError as error:
        raise CliError(f"cannot read the license {path}: {error.strerror or error}") from None
    if len(content) > _MAX_FILE_BYTES:
        raise CliError(f"{path} is larger than any license ({_MAX_FILE_BYTES} bytes at most)")
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, ValueError):
        raise CliError(f"{path} is not a license: it is not JSON") from None
    if not isinstance(document, dict):
        raise CliError(f"{path} is not a license: expected a JSON object with license and "
                       "signature")
    return document


def license_table(shown: LicenseView) -> str:
    rows: list[tuple[str, object]] = [("OPCENTER", shown.opcenter)]
    if shown.id is not None:
        rows += [("LICENSE", shown.id), ("CUSTOMER", shown.customer), ("PLAN", shown.plan)]
        if shown.contract:
            rows.append(("CONTRACT", shown.contract))
        rows += [("VALID", f"{shown.start} to {shown.end}"), ("STATUS", shown.status),
                 ("APPLIED", f"{shown.appliedTime} by {shown.appliedBy}")]
    else:
        rows.append(("LICENSE", "none"))
    used = f"{shown.coreHoursUsed} core-hours in {shown.month}"
    if shown.coreHourQuota is not None:
        used += f" of {shown.coreHourQuota} ({shown.coreHoursLeft} left)"
    rows.append(("USED", used))
    if shown.pricePerCoreHour is not None:
        rows.append(("PRICE", f"{shown.pricePerCoreHour} USD a core-hour"))
    if shown.hold:
        rows.append(("NEW JOBS", f"wait: {shown.hold}"))
    return output.fields(rows)

"""The license issuer's side: make an issuer key pair, and issue signed licenses for an
OpCenter. The OpCenter holds only the public key (stack parameter LicenseIssuerKey).

    python -m infra.license keygen --out DIR
    python -m infra.license issue --key DIR/issuer.key --opcenter ID --customer NAME \\
        --plan pro --quota 10000 --price 0.01 [--days 365 | --end TIME] [--start TIME] \\
        [--id ID] [--out FILE]
    python -m infra.license issue ... --plan enterprise --contract REF

`float license info` prints an OpCenter's id; `float license apply FILE` applies a license.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from chalicelib.wire.api import first_problem
from chalicelib.wire.licenses import LicenseTerms, canonical

PRIVATE_NAME, PUBLIC_NAME = "issuer.key", "issuer.pub"


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public half as LicenseIssuerKey takes it: base64 of its 32 bytes."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def issue(key: Ed25519PrivateKey, **terms: Any) -> dict[str, Any]:
    """A signed license document of `terms` (checked as LicenseTerms first)."""
    terms.setdefault("issued", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    checked = LicenseTerms.model_validate(terms).model_dump(exclude_none=True)
    signature = key.sign(canonical(checked))
    return {"license": checked, "signature": base64.b64encode(signature).decode()}


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise SystemExit(f"license: cannot read {path}: {error.strerror}") from None
    except ValueError:
        raise SystemExit(f"license: {path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"license: {path} is not an Ed25519 key")
    return key


def _keygen(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    private = out / PRIVATE_NAME
    if private.exists():
        raise SystemExit(f"license: {private} exists; keep it, or remove it to make a new pair "
                         "(licenses it signed will no longer be accepted by a new key)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    (out / PUBLIC_NAME).write_text(public_key_text(key) + "\n")
    print(f"private key: {private} (keep it secret; it signs licenses)", file=sys.stderr)
    print(public_key_text(key))


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"license: {text!r} is not an ISO 8601 time such as "
                         "2026-12-01T00:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _issue(args: argparse.Namespace) -> None:
    key = load_key(Path(args.key))
    start = _time(args.start) if args.start else datetime.now(UTC).replace(microsecond=0)
    end = _time(args.end) if args.end else start + timedelta(days=args.days)
    terms = {"id": args.id or f"lic-{secrets.token_hex(6)}", "customer": args.customer,
             "plan": args.plan, "coreHourQuota": args.quota, "pricePerCoreHour": args.price,
             "contract": args.contract, "opcenter": args.opcenter,
             "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        document = issue(key, **{k: v for k, v in terms.items() if v is not None})
    except ValidationError as error:
        where, why = first_problem(error)
        raise SystemExit(f"license: {where + ' ' if where else ''}{why}") from None
    text = json.dumps(document, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(f"license {document['license']['id']} written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.license",
                                     description="make an issuer key pair; issue licenses")
    commands = parser.add_subparsers(dest="command", required=True)
    keygen = commands.add_parser("keygen", help="a new issuer key pair")
    keygen.add_argument("--out", required=True, metavar="DIR",
                        help=f"writes DIR/{PRIVATE_NAME} (0600) and DIR/{PUBLIC_NAME}; prints "
                        "the public key for the stack's LicenseIssuerKey")
    keygen.set_defaults(run=_keygen)
    sign = commands.add_parser("issue", help="a signed license for one OpCenter")
    sign.add_argument("--key", required=True, metavar="FILE", help="the issuer's private key")
    sign.add_argument("--opcenter", required=True, metavar="ID",
                      help="the OpCenter's id, as float license info prints it")
    sign.add_argument("--customer", required=True)
    sign.add_argument("--plan", required=True, choices=("pro", "enterprise"))
    sign.add_argument("--quota", type=int, metavar="CORE_HOURS",
                      help="pro: core-hours a month")
    sign.add_argument("--price", metavar="USD", help="pro: price of a core-hour")
    sign.add_argument("--contract", metavar="REF", help="enterprise: the contract")
    sign.add_argument("--start", metavar="TIME", help="default: now")
    sign.add_argument("--end", metavar="TIME", help="default: --days after the start")
    sign.add_argument("--days", type=int, default=365, help="default 365")
    sign.add_argument("--id", help="default: a new lic-... id")
    sign.add_argument("--out", metavar="FILE", help="default: stdout")
    sign.set_defaults(run=_issue)
    args = parser.parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

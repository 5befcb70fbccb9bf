"""Application Library commands: `float image add|list|show|update|delete`. Registry tokens are
sent, never printed."""

from __future__ import annotations

import argparse

from chalicelib.wire.api import ImageRequest, ImageUpdate, ImageView
from cli import output, prompt
from cli.client import segment
from cli.errors import UsageError, validate
from cli.session import connect


def add(args: argparse.Namespace) -> None:
    """`float image add NAME URI [--username U --token T | --token-stdin]`."""
    body = {"name": args.name, "uri": args.uri, **_credentials(args)}
    validate(ImageRequest, body)
    image = connect(args).call("POST", "/v1/images", ImageView, body=body)
    output.emit(args.format, image, image_table)


def list_images(args: argparse.Namespace) -> None:
    """`float image list`: the whole library, across all pages."""
    images = connect(args).pages("/v1/images", ImageView)
    output.emit(args.format, images, lambda items: output.table(
        ("NAME", "URI", "PRIVATE", "OWNER", "UPDATE TIME"),
        ((i.name, i.uri, "yes" if i.private else "no", i.owner, i.updateTime) for i in items),
    ))


def show(args: argparse.Namespace) -> None:
    image = connect(args).call("GET", f"/v1/images/{segment(args.name)}", ImageView)
    output.emit(args.format, image, image_table)


def update(args: argparse.Namespace) -> None:
    """`float image update NAME [--uri U] [--username U --token T] [--public]` (PATCH)."""
    body: dict[str, object] = {**_credentials(args)}
    if args.uri is not None:
        body["uri"] = args.uri
    if args.public:
        body["public"] = True
    validate(ImageUpdate, body)
    image = connect(args).call("PATCH", f"/v1/images/{segment(args.name)}", ImageView, body=body)
    output.emit(args.format, image, image_table)


def delete(args: argparse.Namespace) -> None:
    image = connect(args).call("DELETE", f"/v1/images/{segment(args.name)}", ImageView)
    output.emit(args.format, image, image_table)


def image_table(image: ImageView) -> str:
    return output.fields([
        ("NAME", image.name), ("URI", image.uri), ("PRIVATE", "yes" if image.private else "no"),
        ("OWNER", image.owner), ("CREATE TIME", image.createTime),
        ("UPDATE TIME", image.updateTime),
    ])


def _credentials(args: argparse.Namespace) -> dict[str, str]:
    """Registry username and token, from the flags or (the token) from one line of stdin."""
    token = args.token
    if args.token_stdin:
        if token is not None:
            raise UsageError("give the token with --token or --token-stdin, not both")
        token = prompt.line_from_stdin("registry token")
    credentials = {"username": args.registry_username, "token": token}
    return {key: value for key, value in credentials.items() if value is not None}

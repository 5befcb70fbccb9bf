"""The web interface's files, served by the API itself: the page at `/` and its scripts and
styles under `/ui/`. They are plain files (no build step, nothing from elsewhere); the page
calls only the public `/v1` API with the token its login form gets, as the CLI does."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from chalice import Response

from chalicelib.errors import NotFound

ASSETS = Path(__file__).with_name("web_assets")
HTML = "text/html; charset=utf-8"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".html": HTML}
# The page runs only its own scripts and styles and talks only to the OpCenter; user data it
# shows is always put in as text, and this keeps a slip from becoming a script that runs.
_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; form-action 'none'; base-uri 'self'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": _POLICY, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
_PAGE = "index.html"
_BASE_MARK = "{{BASE}}"


@dataclass(frozen=True)
class Asset:
    content: str
    content_type: str


@functools.cache
def _assets() -> dict[str, Asset]:
    found = {}
    for path in sorted(ASSETS.iterdir()):
        if path.suffix in _TYPES and path.name != _PAGE:
            found[path.name] = Asset(path.read_text(encoding="utf-8"), _TYPES[path.suffix])
    return found


@functools.cache
def _page_template() -> str:
    return (ASSETS / _PAGE).read_text(encoding="utf-8")


def page(stage: str | None) -> Response:
    """The page, with the path the API is served under (API Gateway's stage, or `/`) as the base
    every script and API call is resolved against."""
    base = f"/{stage}/" if stage else "/"
    text = _page_template().replace(_BASE_MARK, base)
    return Response(body=text, status_code=200,
                    headers={**_HEADERS, "Content-Type": HTML, "Cache-Control": "no-cache"})


def asset(name: str) -> Response:
    """One script or style sheet of the page; any other name is not found."""
    found = _assets().get(name)
    if found is None:
        raise NotFound(f"the web interface has no file {name!r}")
    return Response(body=found.content, status_code=200,
                    headers={**_HEADERS, "Content-Type": found.content_type,
                             "Cache-Control": "no-cache"})

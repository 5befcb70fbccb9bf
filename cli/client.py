"""HTTP calls to the OpCenter's v1 API over urllib: JSON in, wire models out, and every failure
turned into one readable CliError (server message, unreachable address, unexpected reply)."""

from __future__ import annotations

import http.client
import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from chalicelib.wire.api import ErrorView, Page
from cli.errors import CliError, RefusedError, UsageError, invalid

M = TypeVar("M", bound=BaseModel)

JSON = "application/json"
TIMEOUT_SECONDS = 60.0


def normalize_address(text: str) -> str:
    """`127.0.0.1:8787` → `http://127.0.0.1:8787`. A bare host gets http:// only when it is this
    machine (the local mode); anything remote gets https:// so a password never leaves in clear."""
    address = text.strip().rstrip("/")
    if "://" not in address:
        host = urllib.parse.urlsplit("//" + address).hostname or ""
        address = ("http://" if _is_loopback(host) else "https://") + address
    parts = urllib.parse.urlsplit(address)
    try:
        well_formed = (
            parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
            and not parts.query and not parts.fragment
        )
    except ValueError:  # .port on a port that is not a number
        well_formed = False
    if not well_formed:
        raise UsageError(f"{text!r} is not an OpCenter address such as http://127.0.0.1:8787")
    return address


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # Following a redirect would forward the Authorization header to wherever it points.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """One OpCenter, optionally as one user (a bearer token). `refused_hint` follows the server's
    message when it refuses the token (401)."""

    def __init__(self, address: str, token: str | None = None,
                 refused_hint: str = "; run float login again") -> None:
        self.address = address
        self._token = token
        self._refused_hint = refused_hint
        handlers: list[urllib.request.BaseHandler] = [_RefuseRedirects()]
        if _is_loopback(urllib.parse.urlsplit(address).hostname or ""):
            handlers.append(urllib.request.ProxyHandler({}))  # a local OpCenter is never proxied
        self._opener = urllib.request.build_opener(*handlers)

    def call(self, method: str, path: str, reply: Any, body: Any = None,
             query: dict[str, str] | None = None) -> Any:
        """Send a JSON request and return the reply validated as `reply` (a model or list[...])."""
        raw = self._send(method, path, body, query, JSON)
        try:
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise CliError(f"the OpCenter's reply to {method} {path} is not JSON") from None
        try:
            return TypeAdapter(reply).validate_python(data)
        except ValidationError as error:
            raise CliError(
                f"unexpected reply from the OpCenter to {method} {path}: {invalid(error).message}"
            ) from None

    def pages(self, path: str, item: type[M], query: dict[str, str] | None = None) -> list[M]:
        """Every item of a paged list, following nextToken until the last page."""
        items: list[M] = []
        seen: set[str] = set()
        params = dict(query or {})
        while True:
            page = self.call("GET", path, Page[item], query=params)  # type: ignore[valid-type]
            items.extend(page.items)
            if not page.nextToken:
                return items
            if page.nextToken in seen:
                raise CliError(f"the OpCenter sent the same page token twice for GET {path}")
            seen.add(page.nextToken)
            params["nextToken"] = page.nextToken

    def read(self, path: str) -> bytes:
        """A plain-text resource (a log), byte for byte."""
        return self._send("GET", path, None, None, "text/plain")

    def read_with_headers(self, path: str,
                          query: dict[str, str]) -> tuple[bytes, http.client.HTTPMessage]:
        """A plain-text resource and the reply's headers (a log slice says where it lies)."""
        return self._send("GET", path, None, query, "text/plain", with_headers=True)

    def _send(self, method: str, path: str, body: Any, query: dict[str, str] | None,
              accept: str, with_headers: bool = False) -> Any:
        url = self.address + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", accept)
        request.add_header("User-Agent", "float (OpenFloat)")
        if data is not None:
            request.add_header("Content-Type", JSON)
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with self._opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                data = bytes(response.read())
                return (data, response.headers) if with_headers else data
        except urllib.error.HTTPError as error:
            raise self._refused(error) from None
        except urllib.error.URLError as error:
            raise self._unreachable(error.reason) from None
        except (OSError, http.client.HTTPException) as error:
            raise self._unreachable(error) from None

    def _unreachable(self, reason: Any) -> CliError:
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return CliError(f"cannot reach the OpCenter at {self.address}: {text}")

    def _refused(self, error: urllib.error.HTTPError) -> CliError:
        if 300 <= error.code < 400:
            where = error.headers.get("Location", "another address")
            return RefusedError(
                f"the OpCenter at {self.address} redirects to {where}; use that with -a", error.code)
        try:
            message = ErrorView.model_validate_json(error.read()).message
        except (ValueError, OSError, http.client.HTTPException):
            message = f"the OpCenter answered {error.code} {error.reason}"
        if error.code == 401 and self._token:
            message = f"{message}{self._refused_hint}"
        return RefusedError(message, error.code)


def segment(value: str) -> str:
    """One path segment (a job id, image or user name), quoted so it cannot change the path."""
    return urllib.parse.quote(value, safe="")

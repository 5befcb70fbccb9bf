"""How a route runs: authenticate, parse the body into its model, call the domain, and turn
the result or the domain error into a response. Also records each route for the OpenAPI doc."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from chalice import Chalice, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib import pagetokens
from chalicelib import runtime as runtime_module
from chalicelib.auth import Principal, authenticate
from chalicelib.errors import BadRequest, Forbidden, OpenFloatError, TooManyRequests, http_status
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.api import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ErrorView, Page, first_problem
from chalicelib.wire.base import find_nul, parse_whole

logger = Logger(service="openfloat-api")

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Operation:
    """One route as the OpenAPI document describes it."""

    method: str
    path: str
    summary: str
    body: type[BaseModel] | None
    response: Any
    public: bool
    status: int
    query: tuple[tuple[str, str], ...]
    content_type: str = JSON
    # May a job's own token (see auth.issue_job_token) call it?
    job_token: bool = False
    # Error statuses this route answers beyond every route's (see openapi._SOMETIMES).
    also: tuple[str, ...] = ()


@dataclass
class Call:
    """What a view function gets: the collaborators, the caller, the request."""

    runtime: Runtime
    store: Store
    principal: Principal
    request: Request
    body: Any = None
    # The list a page token belongs to: route, caller and filters (see pagetokens).
    scope: str = ""

    def query(self, name: str) -> str | None:
        params = self.request.query_params
        return None if params is None else params.get(name)

    def page_token(self) -> str | None:
        """The resume point of the nextToken given, which this same list must have handed out."""
        token = self.query("nextToken")
        return pagetokens.unseal(self.runtime, self.scope, token) if token else None

    def source_address(self) -> str:
        """The caller's address as API Gateway saw it (never a header the caller can set)."""
        identity = (self.request.context or {}).get("identity") or {}
        return str(identity.get("sourceIp") or "unknown")

    def api_url(self) -> str:
        """The API's base URL as this caller reached it (or as configured)."""
        if self.runtime.config.api_url:
            return self.runtime.config.api_url.rstrip("/")
        headers = self.request.headers
        scheme = headers.get("x-forwarded-proto", "http")
        stage = (self.request.context or {}).get("stage")
        return f"{scheme}://{headers.get('host', 'localhost')}" + (f"/{stage}" if stage else "")

    def page_size(self) -> int:
        text = self.query("limit")
        if text is None:
            return DEFAULT_PAGE_SIZE
        size = parse_whole(text)
        if size is None or not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}, "
                             f"got {text[:40]!r}", field="limit")
        return size


_ANONYMOUS = Principal(username="", role="user")


def _error_response(error: OpenFloatError) -> Response:
    body = ErrorView(error=type(error).__name__, message=error.message, field=error.field)
    headers: dict[str, str | list[str]] = {"Content-Type": JSON}
    if isinstance(error, TooManyRequests):
        headers["Retry-After"] = str(error.retry_after)
    return Response(
        body=body.model_dump_json(exclude_none=True),
        status_code=http_status(error),
        headers=headers,
    )


def _validation_error(error: ValidationError) -> BadRequest:
    where, why = first_problem(error)
    return BadRequest(f"{where}: {why}", field=where) if where else BadRequest(why)


def _parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    raw = request.raw_body or b""
    if not raw.strip():
        raw = b"{}"
    if b"\\u0000" in raw:
        # JSON can only carry a NUL escaped; find which field holds it.
        try:
            where = find_nul(json.loads(raw))
        except ValueError:
            where = None
        if where:
            raise BadRequest(f"{where}: holds a NUL character", field=where)
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise _validation_error(error) from None


def _list_scope(method: str, path: str, principal: Principal, request: Request,
                params: dict[str, str]) -> str:
    """What a page token is bound to: the route with its parameters, the caller, the filters."""
    query = {name: value for name, value in (request.query_params or {}).items()
             if name not in ("limit", "nextToken")}
    return json.dumps([method, path, sorted(params.items()), principal.username, principal.job,
                       sorted(query.items())])


def text_response(body: str, headers: dict[str, str]) -> Response:
    """A text/plain 200 that also carries `headers` (a log slice's offsets)."""
    return Response(body=body, status_code=200, headers={**headers, "Content-Type": TEXT})


def _render(result: Any, status: int, content_type: str) -> Response:
    if isinstance(result, Response):
        return result
    if content_type != JSON:
        return Response(body=result, status_code=status, headers={"Content-Type": content_type})
    if isinstance(result, BaseModel):
        body = result.model_dump_json(by_alias=True)
    else:
        body = json.dumps(
            [item.model_dump(mode="json", by_alias=True) for item in result]
            if isinstance(result, list)
            else result
        )
    return Response(body=body, status_code=status, headers={"Content-Type": JSON})


@dataclass
class Routes:
    """Registers views on a Chalice app and remembers them as operations."""

    app: Chalice
    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        response: Any,
        body: type[BaseModel] | None = None,
        public: bool = False,
        status: int = 200,
        query: tuple[tuple[str, str], ...] = (),
        content_type: str = JSON,
        job_token: bool = False,
        also: tuple[str, ...] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            summary = (view.__doc__ or view.__name__).strip().splitlines()[0]
            self.operations.append(
                Operation(method, path, summary, body, response, public, status, query, content_type,
                          job_token, also)
            )

            @functools.wraps(view)
            def handler(**params: str) -> Response:
                request = self.app.current_request
                assert request is not None  # Chalice sets it before calling a view
                try:
                    rt = runtime_module.current()
                    store = Store(rt.dynamodb, rt.config)
                    principal = (
                        _ANONYMOUS
                        if public
                        else authenticate(rt, store, request.headers.get("authorization"))
                    )
                    if principal.job is not None and not job_token:
                        raise Forbidden(f"the token of job {principal.job} may only show or "
                                        "migrate that job and read its owner's secrets; log in "
                                        "as a user for anything else")
                    call = Call(rt, store, principal, request,
                                scope=_list_scope(method, path, principal, request, params))
                    if body is not None:
                        call.body = _parse_body(request, body)
                    result = view(call, **params)
                    if isinstance(result, Page) and result.nextToken:
                        result.nextToken = pagetokens.seal(rt, call.scope, result.nextToken)
                except OpenFloatError as error:
                    logger.info(
                        "request refused",
                        extra={"method": method, "path": path, "status": http_status(error),
                               "error": type(error).__name__},
                    )
                    return _error_response(error)
                return _render(result, status, content_type)

            self.app.route(path, methods=[method])(handler)
            return view

        return register

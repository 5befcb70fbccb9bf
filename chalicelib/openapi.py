"""The OpenAPI 3.1 document of the HTTPS API, built from the routes as registered."""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib.routing import JSON, Operation
from chalicelib.wire.api import API_VERSION, ErrorView

_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}]+)}")
_ERRORS = {
    "400": "the request is malformed; `field` names the offending part",
    "401": "missing, malformed or expired token",
    "403": "the caller may not do this",
    "404": "no such resource visible to the caller",
    "409": "the request conflicts with the current state",
    "503": "an AWS service the request needs failed; trying again later may work",
}
# Answered only by some routes, each naming them in `also`.
_SOMETIMES = {
    "401": "wrong username or password",
    "429": "too many failed logins; the Retry-After header says when to try again",
}
# Chalice's own answer, on any route, to a Content-Type other than application/json.
_UNSUPPORTED_MEDIA = {
    "description": "the request's Content-Type is not application/json",
    "content": {JSON: {"schema": {
        "type": "object", "required": ["Code", "Message"],
        "properties": {"Code": {"type": "string"}, "Message": {"type": "string"}}}}},
}


def _response_models(operation: Operation) -> list[type[BaseModel]]:
    response = operation.response
    if isinstance(response, type) and issubclass(response, BaseModel):
        return [response]
    args = typing.get_args(response)
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


def _schema_of(response: Any, names: dict[Any, str]) -> dict[str, Any]:
    if response is str:
        return {"type": "string"}
    if response is dict:
        return {"type": "object"}
    if isinstance(response, type) and issubclass(response, BaseModel):
        return {"$ref": _REF.format(model=names[response])}
    (item,) = typing.get_args(response)
    return {"type": "array", "items": {"$ref": _REF.format(model=names[item])}}


def build(operations: list[Operation], title: str = "OpenFloat OpCenter") -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ErrorView, "serialization")
    ]
    for op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        models.extend((m, "serialization") for m in _response_models(op))
    unique = list(dict.fromkeys(models))
    keyed, definitions = models_json_schema(unique, ref_template=_REF)
    names = {model: keyed[(model, mode)]["$ref"].rsplit("/", 1)[-1] for model, mode in unique}

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(op.path)
        ] + [
            {"name": name, "in": "query", "required": False, "description": text,
             "schema": {"type": "string"}}
            for name, text in op.query
        ]
        responses: dict[str, Any] = {
            str(op.status): {
                "description": op.summary,
                "content": {op.content_type: {"schema": _schema_of(op.response, names)}},
            }
        }
        codes = {code: text for code, text in _ERRORS.items()
                 if not (op.public and code in ("401", "403"))}
        codes.update({code: _SOMETIMES[code] for code in op.also})
        responses["415"] = _UNSUPPORTED_MEDIA
        for code, text in sorted(codes.items()):
            responses[code] = {
                "description": text,
                "content": {JSON: {"schema": {"$ref": _REF.format(model=names[ErrorView])}}},
            }
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_')}"
            .replace("{", "").replace("}", ""),
            "parameters": parameters,
            "responses": responses,
            "security": [] if op.public else [{"bearer": []}],
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": {"$ref": _REF.format(model=names[op.body])}}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": API_VERSION},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

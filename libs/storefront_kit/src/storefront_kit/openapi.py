"""The OpenAPI document says what the API answers: every error is a problem.

FastAPI documents its own validation errors as ``{"detail": [...]}`` (the platform
answers an RFC 9457 problem with ``errors``), documents a route's ``responses`` model
under ``application/json``, and leaves out what the platform answers on every route.
:func:`install_problem_openapi` rewrites the generated document once, when it is
first asked for:

- every 4xx/5xx response is ``application/problem+json`` with the ``Problem`` schema
  (``ValidationProblem``, which adds ``errors``, for 422);
- an operation with a request body documents the 400 of a body that cannot be parsed
  and the 422 of one that does not validate;
- an operation with path parameters documents 404;
- every operation documents 503: the admission limit refuses excess requests and an
  unreachable database or Redis is a 503 ``dependency_unavailable``, on any route.
"""

from typing import Any

from fastapi import FastAPI

from storefront_kit.problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["install_problem_openapi", "problem_openapi"]

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
_DESCRIPTIONS = {
    400: "The body is not valid JSON (or not JSON at all)",
    404: "Not found",
    422: "The request does not validate; `errors` lists each problem",
    503: "Overloaded, or a dependency is unavailable; retry after `Retry-After`",
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_VALIDATION_REF = {"$ref": "#/components/schemas/ValidationProblem"}


def _problem_schemas() -> dict[str, Any]:
    problem = Problem.model_json_schema()
    problem["description"] = (
        "RFC 9457 problem details; `code` is the stable, machine-readable part."
    )
    problem["additionalProperties"] = True
    validation = {
        "title": "ValidationProblem",
        "description": "A problem whose `errors` (for request validation) name each field.",
        "allOf": [_PROBLEM_REF],
        "type": "object",
        "properties": {
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                    "required": ["loc", "msg", "type"],
                },
            }
        },
    }
    return {"Problem": problem, "ValidationProblem": validation}


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a generated OpenAPI document) with every error documented as a problem."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(_problem_schemas())
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            if "requestBody" in operation:
                responses.setdefault("400", {"description": _DESCRIPTIONS[400]})
                responses.setdefault("422", {"description": _DESCRIPTIONS[422]})
            if any(p.get("in") == "path" for p in parameters):
                responses.setdefault("404", {"description": _DESCRIPTIONS[404]})
            responses.setdefault("503", {"description": _DESCRIPTIONS[503]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    ref = _VALIDATION_REF if status == "422" else _PROBLEM_REF
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": dict(ref)}}
    # FastAPI's own validation models are no longer referenced by any response.
    text = repr(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}'" not in text:
            components.pop(name, None)
    return schema


def install_problem_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the document with every error as a problem."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""The FastAPI app: /openapi.json (the openapi export), one POST per plugin, /health."""

from __future__ import annotations

import hmac
import json
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from r1deploy.gateway.routes import Route, compile_routes
from r1deploy.gateway.upstream import GatewayError, Upstream
from r1deploy.tools.export import operation_path, to_openapi

OPEN_PATHS = frozenset({"/health"})


def _error(exc: GatewayError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


def _authorised(request: Request, key: str) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def create_app(
    plugins: list[dict],
    key: str,
    server_url: str | None = None,
    environ=None,
) -> FastAPI:
    """The gateway for validated plugins; raises GatewayConfigError (missing env vars)."""
    if not key:
        raise ValueError("the gateway needs a bearer key (TOOLS_GATEWAY_KEY or --key-file)")
    routes = compile_routes(plugins, environ)
    document = to_openapi(plugins, server_url)
    upstream = Upstream()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await upstream.aclose()

    # The export is the spec: FastAPI's generated one and its docs pages are turned off.
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.routes = {route.name: route for route in routes}

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if request.url.path not in OPEN_PATHS and not _authorised(request, key):
            return _error(
                GatewayError(
                    401,
                    "unauthorised",
                    "missing or wrong bearer key: send Authorization: Bearer <TOOLS_GATEWAY_KEY>",
                )
            )
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "tools": len(routes)}

    @app.get("/openapi.json")
    async def openapi() -> dict:
        return document

    for route in routes:
        app.add_api_route(
            operation_path({"name": route.name}),
            _endpoint(route, upstream),
            methods=["POST"],
            include_in_schema=False,
            name=route.name,
        )
    return app


def _endpoint(route: Route, upstream: Upstream):
    async def call_tool(request: Request) -> Response:
        try:
            arguments = _parse_arguments(await request.body())
            problems = route.argument_errors(arguments)
            if problems:
                pointer, message = problems[0]
                raise GatewayError(
                    400,
                    "invalid-arguments",
                    f"{route.name}: argument {pointer or '(body)'}: {message}",
                    pointer,
                )
            answer = await upstream.call(route, arguments)
        except GatewayError as exc:
            return _error(exc)
        return Response(answer.content, status_code=answer.status, media_type=answer.content_type)

    call_tool.__name__ = f"call_{route.name}"
    return call_tool


def _parse_arguments(raw: bytes) -> object:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise GatewayError(
            400, "invalid-json", f"the request body is not JSON: {exc}", ""
        ) from None

"""The FastAPI app: /openapi.json (the openapi export), one POST per plugin, /health,
/metrics."""

from __future__ import annotations

import hmac
import json
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from r1deploy import doclimits
from r1deploy.diagnostics import json_pointer
from r1deploy.gateway.metrics import OK, GatewayMetrics, ToolMetrics, outcome_of
from r1deploy.gateway.routes import InvalidArguments, Route, compile_routes
from r1deploy.gateway.upstream import GatewayError, Upstream
from r1deploy.tools.export import operation_path, to_openapi

UNAUTHORISED = GatewayError(
    401,
    "unauthorised",
    "missing or wrong bearer key: send Authorization: Bearer <TOOLS_GATEWAY_KEY>",
)
# A guessable key opens every tool to anyone who reaches the port; the r1_stack role
# generates 40 characters.
MIN_KEY_CHARS = 32
# Tool arguments are small; a larger body is a mistake or an attack.
MAX_REQUEST_BYTES = 1024 * 1024


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
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(
            f"the gateway needs a bearer key of at least {MIN_KEY_CHARS} characters "
            f"(TOOLS_GATEWAY_KEY or --key-file); this one has {len(key)}"
        )
    routes = compile_routes(plugins, environ)
    document = to_openapi(plugins, server_url)
    upstream = Upstream()
    metrics = GatewayMetrics([route.name for route in routes])

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await upstream.aclose()

    # The export is the spec: FastAPI's generated one and its docs pages are turned off.
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.routes = {route.name: route for route in routes}
    app.state.metrics = metrics

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "tools": len(routes)}

    @app.get("/openapi.json")
    async def openapi(request: Request) -> Response:
        if not _authorised(request, key):
            return _error(UNAUTHORISED)
        return JSONResponse(document)

    # Open like /health: counts and latencies by tool name, no arguments and no secrets. It
    # answers where the gateway listens (loopback, or the compose network).
    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    for route in routes:
        app.add_api_route(
            operation_path({"name": route.name}),
            _endpoint(route, upstream, key, metrics.tools[route.name]),
            methods=["POST"],
            include_in_schema=False,
            name=route.name,
        )
    return app


def _endpoint(route: Route, upstream: Upstream, key: str, metrics: ToolMetrics):
    async def call_tool(request: Request) -> Response:
        metrics.in_flight.inc()
        try:
            return await _call(request)
        finally:
            metrics.in_flight.dec()

    async def _call(request: Request) -> Response:
        # Checked in each handler: an HTTP middleware would cost more than the whole call.
        if not _authorised(request, key):
            metrics.count(outcome_of(UNAUTHORISED))
            return _error(UNAUTHORISED)
        try:
            arguments = _parse_arguments(route, await _read_capped_body(request))
            problems = route.argument_errors(arguments)
            if problems:
                raise _invalid(route, *problems[0])
            # Observed whatever the upstream answered; not for arguments that cannot make a
            # request (InvalidArguments: nothing left the host).
            started = time.perf_counter()
            try:
                answer = await upstream.call(route, arguments)
            except GatewayError:
                metrics.upstream_seconds.observe(time.perf_counter() - started)
                raise
            metrics.upstream_seconds.observe(time.perf_counter() - started)
        except InvalidArguments as exc:
            error = _invalid(route, exc.pointer, exc.message)
            metrics.count(outcome_of(error))
            return _error(error)
        except GatewayError as exc:
            metrics.count(outcome_of(exc))
            return _error(exc)
        metrics.count(OK)
        return Response(answer.content, status_code=answer.status, media_type=answer.content_type)

    call_tool.__name__ = f"call_{route.name}"
    return call_tool


async def _read_capped_body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise GatewayError(
                413, "request-too-large", f"the arguments exceed {MAX_REQUEST_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _invalid(route: Route, pointer: str, message: str) -> GatewayError:
    detail = f"{route.name}: argument {pointer or '(body)'}: {message}"
    return GatewayError(400, "invalid-arguments", detail, pointer)


def _parse_arguments(route: Route, raw: bytes) -> object:
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GatewayError(
            400, "invalid-json", f"the request body is not UTF-8: {exc}", ""
        ) from None
    # Checked on the text: json.loads recurses once per level (RecursionError, a 500).
    shape = doclimits.json_shape_error(text)
    if shape:
        raise _invalid(route, json_pointer(shape.path), shape.problem)
    try:
        arguments = json.loads(text)
    except ValueError as exc:
        raise GatewayError(
            400, "invalid-json", f"the request body is not JSON: {exc}", ""
        ) from None
    # NaN and Infinity pass every schema bound, then cannot be sent on as JSON.
    not_finite = next(doclimits.non_finite_numbers(arguments), None)
    if not_finite is not None:
        raise _invalid(route, json_pointer(not_finite), "NaN and Infinity are not JSON numbers")
    return arguments

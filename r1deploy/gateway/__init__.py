"""The tool gateway: tools.json served as an OpenAPI tool server (`r1deploy serve-tools`)."""

from r1deploy.gateway.routes import GatewayConfigError, Route, compile_routes

__all__ = ["GatewayConfigError", "Route", "compile_routes", "create_app"]


def create_app(*args, **kwargs):
    """The FastAPI app (imported lazily: fastapi is the optional `gateway` extra)."""
    from r1deploy.gateway.app import create_app as _create_app

    return _create_app(*args, **kwargs)

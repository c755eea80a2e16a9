"""A small Open WebUI admin API client (requests).

Endpoints as in open-webui 0.12.4 (open_webui/routers/auths.py, configs.py, openai.py).
"""

from __future__ import annotations

import requests


class WebUIError(RuntimeError):
    """An Open WebUI call failed: which endpoint, the status, and its detail."""


class WebUIClient:
    def __init__(self, url: str, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()

    def _request(self, method: str, path: str, **kwargs):
        url = f"{self.url}{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise WebUIError(f"cannot reach Open WebUI at {url}: {exc}") from None
        if not response.ok:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise WebUIError(f"{method} {path}: HTTP {response.status_code}: {detail}")
        return response.json()

    def get(self, path: str):
        return self._request("GET", path)

    def post(self, path: str, body: dict):
        return self._request("POST", path, json=body)

    def sign_in(self, email: str, password: str) -> None:
        """Sign in; later calls carry the admin's token."""
        try:
            answer = self.post("/api/v1/auths/signin", {"email": email, "password": password})
        except WebUIError as exc:
            raise WebUIError(
                f"cannot sign in to Open WebUI as {email}: {exc}. The admin is created on the "
                "first start from WEBUI_ADMIN_EMAIL/WEBUI_ADMIN_PASSWORD in the stack's .env; "
                "if the password was changed in the UI, put the new one in .env"
            ) from None
        if answer.get("role") != "admin":
            raise WebUIError(f"{email} signed in but is not an admin (role {answer.get('role')})")
        self.session.headers["Authorization"] = f"Bearer {answer['token']}"

    # --- the config endpoints reconcile uses -------------------------------------------------

    def openai_config(self) -> dict:
        return self.get("/openai/config")

    def set_openai_config(self, config: dict) -> dict:
        return self.post("/openai/config/update", config)

    def tool_servers(self) -> list[dict]:
        return self.get("/api/v1/configs/tool_servers")["TOOL_SERVER_CONNECTIONS"] or []

    def set_tool_servers(self, connections: list[dict]) -> list[dict]:
        body = {"TOOL_SERVER_CONNECTIONS": connections}
        return self.post("/api/v1/configs/tool_servers", body)["TOOL_SERVER_CONNECTIONS"]

    def verify_tool_server(self, connection: dict) -> dict:
        """The tool server's OpenAPI document, fetched by Open WebUI itself."""
        return self.post("/api/v1/configs/tool_servers/verify", connection)

    def tools(self) -> list[dict]:
        return self.get("/api/v1/tools/")

    def admin_config(self) -> dict:
        return self.get("/api/v1/auths/admin/config")

    def set_admin_config(self, config: dict) -> dict:
        return self.post("/api/v1/auths/admin/config", config)

    def models_config(self) -> dict:
        return self.get("/api/v1/configs/models")

    def set_models_config(self, config: dict) -> dict:
        return self.post("/api/v1/configs/models", config)

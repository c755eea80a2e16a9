"""A small Open WebUI admin API client (httpx).

Endpoints as in open-webui 0.12.4 (open_webui/routers/auths.py, configs.py, openai.py).
"""

from __future__ import annotations

import sys
import time

import httpx

SIGNIN_PATH = "/api/v1/auths/signin"
# open-webui 0.12.4 (utils/rate_limit.py, routers/auths.py): 15 sign-ins per account, counted
# in 1-minute buckets over the current minute and the 3 before it. Refused attempts count
# too, so a retry only helps once a minute: each lands in a new bucket while old ones age out.
SIGNIN_RATE_LIMIT = "15 sign-ins per account in 3 minutes"
SIGNIN_RATE_LIMIT_WAIT_S = 300.0
SIGNIN_RETRY_EVERY_S = 61.0


def post_signin(
    session: httpx.Client,
    url: str,
    email: str,
    password: str,
    *,
    timeout_s: float,
    wait_s: float | None = None,
    retry_every_s: float = SIGNIN_RETRY_EVERY_S,
) -> httpx.Response:
    """POST the sign-in; while Open WebUI rate-limits it (HTTP 429), retry for up to
    ``wait_s`` (default SIGNIN_RATE_LIMIT_WAIT_S).

    Back-to-back deploys, smokes and reconciles each sign in, so a burst of day-2 work can
    reach the limit: waiting it out beats failing a deploy that is otherwise fine.
    """
    wait_s = SIGNIN_RATE_LIMIT_WAIT_S if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        response = session.post(
            url.rstrip("/") + SIGNIN_PATH,
            json={"email": email, "password": password},
            timeout=timeout_s,
        )
        if response.status_code != 429 or time.monotonic() + retry_every_s > deadline:
            return response
        if not told:
            print(
                f"Open WebUI rate-limits sign-ins ({SIGNIN_RATE_LIMIT}); retrying every "
                f"{retry_every_s:g} s for up to {wait_s:g} s",
                file=sys.stderr,
                flush=True,
            )
            told = True
        time.sleep(retry_every_s)


class WebUIError(RuntimeError):
    """An Open WebUI call failed: which endpoint, the status, and its detail."""


class WebUIClient:
    def __init__(self, url: str, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = httpx.Client()

    def _request(self, method: str, path: str, **kwargs):
        url = f"{self.url}{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        except httpx.HTTPError as exc:
            raise WebUIError(f"cannot reach Open WebUI at {url}: {exc}") from None
        return self._answer(method, path, response)

    @staticmethod
    def _answer(method: str, path: str, response: httpx.Response):
        if response.is_error:
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
            response = post_signin(
                self.session, self.url, email, password, timeout_s=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise WebUIError(f"cannot reach Open WebUI at {self.url}: {exc}") from None
        if response.status_code == 429:
            raise WebUIError(
                f"cannot sign in to Open WebUI as {email}: still rate-limited (HTTP 429) after "
                f"{SIGNIN_RATE_LIMIT_WAIT_S:g} s; Open WebUI allows {SIGNIN_RATE_LIMIT}. "
                "Fix: wait a few minutes, then run again"
            )
        try:
            answer = self._answer("POST", SIGNIN_PATH, response)
        except WebUIError as exc:
            raise WebUIError(
                f"cannot sign in to Open WebUI as {email}: {exc}. The admin is created on the "
                "first start from WEBUI_ADMIN_EMAIL/WEBUI_ADMIN_PASSWORD in the stack's .env; "
                "if the password was changed in the UI, put the new one in .env"
            ) from None
        if answer.get("role") != "admin":
            raise WebUIError(f"{email} signed in but is not an admin (role {answer.get('role')})")
        self.token = answer["token"]

    @property
    def token(self) -> str | None:
        header = self.session.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") or None

    @token.setter
    def token(self, value: str | None) -> None:
        if value:
            self.session.headers["Authorization"] = f"Bearer {value}"
        else:
            self.session.headers.pop("Authorization", None)

    def resume(self, token: str, email: str) -> bool:
        """Use a token from an earlier sign-in if it is still the admin's session."""
        self.token = token
        try:
            user = self.get("/api/v1/auths/")
        except WebUIError:
            user = {}
        if user.get("role") == "admin" and str(user.get("email", "")).lower() == email.lower():
            return True
        self.token = None
        return False

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

    def change_password(self, current: str, new: str) -> None:
        """Change the signed-in user's password (routers/auths.py update/password)."""
        self.post("/api/v1/auths/update/password", {"password": current, "new_password": new})

    # --- the served model's entry (routers/models.py) ----------------------------------------

    def model_entry(self, model_id: str) -> dict | None:
        """The model's entry, or None while it has none (Open WebUI answers 404)."""
        try:
            response = self.session.get(
                f"{self.url}/api/v1/models/model", params={"id": model_id}, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise WebUIError(f"cannot reach Open WebUI at {self.url}: {exc}") from None
        if response.status_code == 404:
            return None
        return self._answer("GET", "/api/v1/models/model", response)

    def create_model(self, form: dict) -> dict:
        return self.post("/api/v1/models/create", form)

    def update_model(self, form: dict) -> dict:
        return self.post("/api/v1/models/model/update", form)

    def set_model_access(self, model_id: str, grants: list[dict]) -> dict:
        return self.post(
            "/api/v1/models/model/access/update", {"id": model_id, "access_grants": grants}
        )

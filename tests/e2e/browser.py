"""A person in Open WebUI: Playwright for Python driving Debian's Chromium (its own browser
download is not reachable here; ``executable_path`` takes the system one).

Each step is what a person does (fill the sign-in form, type into the chat and press
Enter, open a menu, click); screenshots of every journey are kept under build/e2e/journeys/.
An answer is read where the page shows it, and checked against what Open WebUI stored for
that message: an error stored there fails the journey with the error's text.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

# As root (CI) Chromium's sandbox refuses to start; the rest keep it off this machine's
# closed network (background updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
ANSWER_TIMEOUT_MS = 120_000


def chromium_path() -> str:
    path = shutil.which("chromium")
    if not path:
        raise FileNotFoundError("chromium not found: tests/e2e/browser.sh installs it")
    return path


def _trust(ca_file: Path, home: Path) -> None:
    """Chromium on Linux trusts what NSS trusts: a user database in $HOME/.pki/nssdb holding
    the stack's CA as a trusted issuer (certutil, Debian's libnss3-tools)."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{nssdb}",
            "-n",
            "r1deploy stack CA",
            "-t",
            "C,,",
            "-i",
            str(ca_file),
        ],
        check=True,
    )


@contextlib.contextmanager
def chromium(ca_file: Path | None = None):
    """Debian's Chromium; with ``ca_file``, trusting that CA as a person who installed it
    would (no certificate error is ignored)."""
    with (
        tempfile.TemporaryDirectory(prefix="r1deploy-browser-home-") as home,
        sync_playwright() as playwright,
    ):
        env = dict(os.environ)
        if ca_file:
            _trust(Path(ca_file), Path(home))
            env["HOME"] = home
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, env=env
        )
        try:
            yield browser
        finally:
            browser.close()


class Person:
    """One person's browser session (its own cookies and storage) in Open WebUI."""

    def __init__(self, browser: Browser, url: str, shots: Path, name: str):
        self.context = browser.new_context(viewport=VIEWPORT, locale="en-US")
        self.page: Page = self.context.new_page()
        # Open WebUI's release notes open over the chat after a first sign-in, late on a
        # loaded machine (after the sign-in's own 5 s wait), and then swallow every click:
        # whenever they show, a person closes them before going on.
        self.page.add_locator_handler(
            self.page.get_by_role("button", name="Okay, Let's Go!"), lambda button: button.click()
        )
        self.url, self.shots, self.name = url.rstrip("/"), shots, name
        self._shot = 0

    def close(self) -> None:
        self.context.close()

    def shot(self, what: str) -> Path:
        """A screenshot kept as an artefact: build/e2e/journeys/<person>-NN-<what>.png."""
        self._shot += 1
        path = self.shots / f"{self.name}-{self._shot:02d}-{what}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path

    # --- signing in and out -----------------------------------------------------------

    def sign_in(self, email: str, password: str) -> None:
        page = self.page
        page.goto(f"{self.url}/auth")
        page.locator('input[type="email"]').fill(email)
        page.locator('input[type="password"]').fill(password)
        self.shot("sign-in-form")
        page.locator('button[type="submit"]').click()
        page.wait_for_url(lambda url: "/auth" not in url, timeout=60_000)
        # A first sign-in opens the release notes over the chat page.
        with contextlib.suppress(Exception):
            page.get_by_role("button", name="Okay, Let's Go!").click(timeout=5_000)
        expect(page.locator("#chat-input")).to_be_visible(timeout=60_000)

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="User menu").click()
        self.page.get_by_text("Sign Out", exact=True).click()
        self.page.wait_for_url(re.compile(r".*/auth.*"), timeout=30_000)

    # --- chatting ------------------------------------------------------------------------

    def new_chat(self) -> None:
        self.page.goto(f"{self.url}/")
        expect(self.page.locator("#chat-input")).to_be_visible(timeout=60_000)

    def switch_on_tools(self, server_name: str) -> None:
        """Integrations > Tools > the tool server's switch, as a person turns tools on."""
        page = self.page
        page.locator("#integration-menu-button").click()
        page.get_by_role("menuitem", name="Tools").click()
        item = page.get_by_role("menuitemcheckbox", name=server_name)
        item.click()
        expect(item).to_have_attribute("aria-checked", "true")
        self.shot("tools-switched-on")
        page.keyboard.press("Escape")

    def ask(self, question: str) -> dict:
        """Type the question into the chat, press Enter, wait for the answer; returns the
        stored assistant message (AssertionError with the error's text if it has one)."""
        page = self.page
        page.locator("#chat-input").click()
        page.keyboard.type(question)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/c/[0-9a-f-]+$"), timeout=60_000)
        chat_id = page.url.rsplit("/", 1)[1]
        message = self._wait_for_stored_answer(chat_id)
        # The page shows the finished answer: its action row (copy, regenerate...) is there.
        expect(page.get_by_role("button", name="Copy").last).to_be_visible(timeout=30_000)
        self.shot("answer")
        return message | {"chat_id": chat_id}

    def _wait_for_stored_answer(self, chat_id: str) -> dict:
        deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
        message: dict = {}
        while time.monotonic() < deadline:
            chat = self.api(f"/api/v1/chats/{chat_id}")
            history = (chat.get("chat") or {}).get("history") or {}
            message = (history.get("messages") or {}).get(history.get("currentId")) or {}
            if message.get("role") == "assistant" and (message.get("done") or message.get("error")):
                break
            time.sleep(0.5)
        else:
            self.shot("no-answer")
            raise AssertionError(f"no finished answer in chat {chat_id}: {str(message)[:300]}")
        if message.get("error"):
            self.shot("error")
            error = message["error"]
            raise AssertionError(
                "the chat shows an error: "
                + str(error.get("content") if isinstance(error, dict) else error)
            )
        return message

    def api(self, path: str) -> dict:
        """GET an Open WebUI API path with this person's session (as the page's own code)."""
        return self.page.evaluate(
            """async (path) => {
                 const headers = {Authorization: `Bearer ${localStorage.token}`};
                 const r = await fetch(path, {headers});
                 return r.ok ? await r.json() : {status: r.status};
               }""",
            path,
        )

    def last_answer(self):
        """The last assistant message on the page."""
        return self.page.locator("#messages-container .chat-assistant").last

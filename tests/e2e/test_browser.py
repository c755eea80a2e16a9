"""A real headless Chromium signs in to the real Open WebUI and sees the model. The
screenshots are kept under build/e2e/ as CI artifacts."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e import stack as stacklib
from tests.e2e.cdp import Browser
from tests.e2e.conftest import BUILD

HERE = stacklib.REPO / "tests" / "e2e"


@pytest.fixture(scope="module")
def browser():
    subprocess.run([str(HERE / "browser.sh")], check=True)
    chromium = Browser()
    yield chromium
    chromium.close()


def _fill(selector: str, value: str) -> str:
    # Svelte binds inputs through their `input` event: set the value the way typing does.
    return (f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            "if (!el) return false;"
            "const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;"
            f"set.call(el, {json.dumps(value)});"
            "el.dispatchEvent(new Event('input', {bubbles: true})); return true; })()")


DISMISS_RELEASE_NOTES = """(() => {
  const ok = [...document.querySelectorAll('button')].find(b => /Let's Go/i.test(b.innerText));
  if (ok) ok.click();
  return !!ok;
})()"""


def _visible_text(text: str) -> str:
    """JavaScript: some leaf element shows ``text`` on screen."""
    return ("[...document.querySelectorAll('body *')].some(el => el.children.length === 0"
            f" && (el.innerText || '').includes({json.dumps(text)})"
            " && el.getClientRects().length > 0"
            " && getComputedStyle(el).visibility !== 'hidden')")


def test_webui_renders_signs_in_and_shows_the_model(stack, browser):
    url = stacklib.read_settings(stack)["webui"]["url"]
    env = stacklib.read_env(stack)
    browser.navigate(f"{url}/auth")
    browser.wait_for(_fill('input[type="email"]', ""), timeout_s=90)
    browser.screenshot(BUILD / "webui-signin.png")
    assert browser.evaluate("document.title"), "the page has no title"

    assert browser.evaluate(_fill('input[type="email"]', env["WEBUI_ADMIN_EMAIL"]))
    assert browser.evaluate(_fill('input[type="password"]', env["WEBUI_ADMIN_PASSWORD"]))
    browser.evaluate("document.querySelector('button[type=\"submit\"]').click()")
    browser.wait_for("!!localStorage.token", timeout_s=60)
    served = stacklib.read_settings(stack)["model"]["served_name"]
    browser.wait_for(f"document.body.innerText.includes({json.dumps(served)})", timeout_s=90)
    # A first sign-in opens the release notes over the chat page: close them.
    browser.evaluate(DISMISS_RELEASE_NOTES)
    assert browser.wait_for(_visible_text(served), timeout_s=30)
    shot = browser.screenshot(BUILD / "webui-signed-in.png")
    assert shot.stat().st_size > 10_000
    assert "/auth" not in browser.evaluate("location.pathname")

"""A person's first hour in Open WebUI, in a real browser (Playwright on Debian's Chromium)
over the real stack: vLLM serving the scripted test model, the tool gateway, Open WebUI,
all started as the native role starts them and reconciled as a deploy leaves them. Every
journey runs against each engine: vLLM, and llama.cpp serving the same model quantized to
Q4_K_M (the cpu profile's engine, tests/e2e/llamacpp_fixtures.py).

Each journey types and clicks as a person does; screenshots are kept under
build/e2e/journeys/. A journey that meets an error in the chat fails with its text.
"""

from __future__ import annotations

import re
import secrets
from types import SimpleNamespace

import pytest
import requests
from playwright.sync_api import expect

from r1deploy.testmodel import script
from tests.e2e import stack as stacklib
from tests.e2e.browser import Person, chromium
from tests.e2e.conftest import BUILD

pytestmark = pytest.mark.e2e
SHOTS = BUILD / "journeys"
TOOL_SERVER_NAME = "r1deploy tools"  # the gateway's name in Open WebUI (roles/r1_stack)


# The session fixtures of each engine's stack: its directory and its Open WebUI server.
ENGINES = {"vllm": ("stack", "webui"), "llamacpp": ("llamacpp_stack", "llamacpp_webui")}


@pytest.fixture(scope="module", params=sorted(ENGINES))
def served(request) -> SimpleNamespace:
    """One engine's whole stack, up and reconciled (the journeys run once per engine)."""
    stack_fixture, webui_fixture = ENGINES[request.param]
    return SimpleNamespace(
        engine=request.param,
        stack=request.getfixturevalue(stack_fixture),
        webui=request.getfixturevalue(webui_fixture),
    )


@pytest.fixture(scope="module")
def site(served) -> dict:
    """Where a person reaches the stack: the front door's HTTPS URL, its CA trusted (the
    vLLM stack); Open WebUI's own URL where the stack has no front door (the llama.cpp
    stack's fixtures start none)."""
    env = stacklib.read_env(served.stack)
    settings = stacklib.read_settings(served.stack)
    door = settings.get("front_door") or {}
    if door.get("enabled"):
        url, ca_file = door["url"], served.stack / door["ca_file"]
    else:
        url, ca_file = settings["webui"]["url"], None
    return {
        "url": url,
        "ca_file": ca_file,
        "email": env["WEBUI_ADMIN_EMAIL"],
        "password": env["WEBUI_ADMIN_PASSWORD"],
    }


@pytest.fixture(scope="module")
def browser(site):
    with chromium(site["ca_file"]) as browser:
        yield browser


@pytest.fixture
def person(browser, site, request):
    people = []

    def open_as(name: str) -> Person:
        someone = Person(browser, site["url"], SHOTS, f"{request.node.name}-{name}")
        people.append(someone)
        return someone

    yield open_as
    for someone in people:
        someone.close()


def test_the_product_guides_maths_problem_answers_with_reasoning_and_rendered_maths(person, site):
    admin = person("admin")
    admin.sign_in(site["email"], site["password"])
    message = admin.ask(script.MATHS_PROMPT)

    assert message["content"] == script.MATHS.answer_text
    answer = admin.last_answer()
    # The reasoning is in Open WebUI's collapsible block, closed, and opens on a click.
    reasoning = script.MATHS.reasoning[0].strip()
    thought = answer.get_by_text(re.compile(r"^Thought for"))
    expect(thought).to_be_visible()
    expect(answer.get_by_text(reasoning)).to_be_hidden()
    thought.click()
    expect(answer.get_by_text(reasoning)).to_be_visible()
    admin.shot("reasoning-open")
    # The LaTeX steps render as KaTeX: display maths, the boxed result.
    katex = answer.locator(".katex")
    expect(katex.first).to_be_visible()
    assert katex.count() >= 4, answer.inner_html()[:2000]
    expect(answer.locator(".katex .boxpad").first).to_be_visible()
    assert "$$" not in answer.inner_text()  # nothing left as raw LaTeX


def test_tools_switched_on_in_a_chat_call_the_gateway_which_calls_the_upstream_stand_in(
    person, site, stack_upstream
):
    admin = person("admin")
    admin.sign_in(site["email"], site["password"])
    calls_before = len(stack_upstream.seen)
    admin.switch_on_tools(TOOL_SERVER_NAME)
    message = admin.ask(script.WEATHER_PROMPT)

    # The scripted model called get_weather under tool_choice auto; Open WebUI ran it through
    # the gateway, which called the stand-in at the plugin's base_url_env.
    [call] = stack_upstream.seen[calls_before:]
    assert call.method == "GET" and call.path == f"/weather/{script.TOOL_CITY}"
    assert message["content"] == script.TOOL_RESULT.answer_text
    # The tool call is in the chat, and its result shows the stand-in's data.
    answer = admin.last_answer()
    answer.get_by_text("Explored").click()
    answer.get_by_text(f"View Result from {script.TOOL_NAME}").click()
    expect(answer.get_by_text(f"{script.TOOL_CITY}: Sunny, +21°C")).to_be_visible()
    admin.shot("tool-result-open")


def test_admin_creates_a_user_who_chats_but_cannot_administer_and_signs_out(person, site):
    email = f"ada-{secrets.token_hex(3)}@r1deploy.test"
    password = secrets.token_urlsafe(16)

    admin = person("admin")
    admin.sign_in(site["email"], site["password"])
    admin.page.goto(f"{site['url']}/admin/users")
    admin.page.get_by_role("button", name="Add User").click()
    dialog = admin.page.get_by_role("dialog")
    dialog.get_by_label("Role").select_option("user")
    dialog.get_by_label("Name").fill("Ada")
    dialog.get_by_label("Email").fill(email)
    dialog.locator("input[type=password]").fill(password)
    admin.shot("add-user-form")
    dialog.locator("button[type=submit]").click()
    expect(admin.page.get_by_text(email)).to_be_visible(timeout=30_000)
    admin.shot("user-added")
    admin.sign_out()

    user = person("ada")
    user.sign_in(email, password)
    message = user.ask("Hello!")
    assert message["content"] == script.ANSWER
    # Not an admin: the admin settings send her back to the chat, and her menu has no
    # Admin Panel.
    user.page.goto(f"{site['url']}/admin/settings")
    user.page.wait_for_url(lambda url: "/admin" not in url, timeout=30_000)
    user.page.get_by_role("button", name="User menu").click()
    expect(user.page.get_by_text("Sign Out", exact=True)).to_be_visible()
    expect(user.page.get_by_text("Admin Panel", exact=True)).to_have_count(0)
    user.shot("user-menu-without-admin")
    user.page.keyboard.press("Escape")
    user.sign_out()

    # Signup stays closed: the sign-in page offers none, and the API refuses one.
    visitor = person("visitor")
    visitor.page.goto(f"{site['url']}/auth")
    expect(visitor.page.locator('input[type="password"]')).to_be_visible(timeout=60_000)
    expect(visitor.page.get_by_text("Sign up", exact=True)).to_have_count(0)
    visitor.shot("no-signup")
    refused = requests.post(
        f"{site['url']}/api/v1/auths/signup",
        timeout=30,
        verify=str(site["ca_file"]) if site["ca_file"] else True,
        json={"name": "x", "email": f"x-{email}", "password": password},
    )
    assert refused.status_code >= 400, refused.text


def test_a_chat_survives_a_restart_of_open_webui(person, site, served):
    webui = served.webui
    admin = person("admin")
    admin.sign_in(site["email"], site["password"])
    message = admin.ask(script.MATHS_PROMPT)
    chat_url = f"{site['url']}/c/{message['chat_id']}"

    webui.stop()
    webui.start()
    webui.wait_healthy(300)
    admin.page.goto(chat_url)
    question = admin.page.locator("#messages-container .chat-user")
    expect(question.get_by_text(script.MATHS_PROMPT.split(" of ")[0])).to_be_visible(timeout=60_000)
    expect(admin.last_answer().locator(".katex").first).to_be_visible()
    admin.shot("after-restart")

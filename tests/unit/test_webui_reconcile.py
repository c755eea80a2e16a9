"""Reconcile writes only what differs: every write is counted against a fake Open WebUI that
stores what the real one stores (open-webui 0.12.4's config and model routes), and what it
writes for the served model's entry is pinned."""

from __future__ import annotations

import copy

from r1deploy.webui.reconcile import (
    EVERYONE_READS,
    TOOL_SERVER_DEFAULTS,
    Desired,
    ModelEntry,
    reconcile,
)

MODEL = ModelEntry(
    id="deepseek-r1-distill-qwen-1.5b",
    name="DeepSeek R1 1.5B",
    description="Reasons step by step before it answers.",
    image_url="",
    capabilities={"builtin_tools": False, "vision": False, "citations": True},
    params={"temperature": 0.6, "top_p": 0.95, "max_tokens": 6388},
    default_tool_ids=[],
)
CONNECTION = {
    "url": "http://tools-gateway:8090",
    "path": "openapi.json",
    "type": "openapi",
    "auth_type": "bearer",
    "key": "gk",
    "config": {"enable": True, "access_grants": [EVERYONE_READS]},
    "info": {"id": "r1deploy-tools", "name": "r1deploy tools"},
    **{k: v for k, v in TOOL_SERVER_DEFAULTS.items() if k != "type"},
}


def desired(**over) -> Desired:
    values = {
        "openai_base_urls": ["http://vllm:8000/v1"],
        "openai_api_keys": ["vk"],
        "tool_servers": [CONNECTION],
        "enable_signup": False,
        "default_models": MODEL.id,
        "model": MODEL,
    }
    return Desired(**(values | over))


class FakeWebUI:
    """The client surface reconcile uses, backed by dicts; counts every write."""

    def __init__(self):
        self.openai = {
            "ENABLE_OPENAI_API": True,
            "OPENAI_API_BASE_URLS": ["https://api.openai.com/v1"],
            "OPENAI_API_KEYS": [""],
            "OPENAI_API_CONFIGS": {},
        }
        self.servers: list[dict] = []
        self.admin = {"ENABLE_SIGNUP": True, "DEFAULT_USER_ROLE": "pending"}
        self.models_cfg = {"DEFAULT_MODELS": None, "MODEL_ORDER_LIST": []}
        self.models: dict[str, dict] = {}
        self.writes: list[str] = []

    def openai_config(self):
        return copy.deepcopy(self.openai)

    def set_openai_config(self, config):
        self.writes.append("openai")
        self.openai = copy.deepcopy(config)

    def tool_servers(self):
        return copy.deepcopy(self.servers)

    def set_tool_servers(self, connections):
        self.writes.append("tool_servers")
        # Open WebUI stores each connection with its defaults filled in (configs.py).
        self.servers = [{**TOOL_SERVER_DEFAULTS, **c} for c in copy.deepcopy(connections)]

    def admin_config(self):
        return copy.deepcopy(self.admin)

    def set_admin_config(self, config):
        self.writes.append("admin_config")
        self.admin = copy.deepcopy(config)

    def models_config(self):
        return copy.deepcopy(self.models_cfg)

    def set_models_config(self, config):
        self.writes.append("models_config")
        self.models_cfg = copy.deepcopy(config)

    def model_entry(self, model_id):
        return copy.deepcopy(self.models.get(model_id))

    def create_model(self, form):
        self.writes.append("create_model")
        self.created = copy.deepcopy(form)
        grants = [dict(g, id=f"g{i}") for i, g in enumerate(form.pop("access_grants", []))]
        self.models[form["id"]] = {**form, "user_id": "admin", "access_grants": grants}

    def update_model(self, form):
        self.writes.append("update_model")
        entry = self.models[form["id"]]
        entry.update(copy.deepcopy(form))

    def set_model_access(self, model_id, grants):
        self.writes.append("model_access")
        self.models[model_id]["access_grants"] = [dict(g, id=f"g{i}") for i, g in enumerate(grants)]

    def verify_tool_server(self, connection):
        return {"paths": {"/tools/get_weather": {}}}


def test_first_run_writes_each_item_once_and_a_second_run_writes_nothing():
    webui = FakeWebUI()
    first = reconcile(webui, desired())
    assert first.changed and first.ok
    assert sorted(webui.writes) == sorted(
        ["openai", "tool_servers", "admin_config", "models_config", "create_model"]
    )
    webui.writes.clear()
    second = reconcile(webui, desired())
    assert webui.writes == []
    assert not second.changed and second.ok


def test_the_model_entry_it_creates_is_pinned():
    webui = FakeWebUI()
    reconcile(webui, desired())
    assert webui.created == {
        "id": "deepseek-r1-distill-qwen-1.5b",
        "base_model_id": None,
        "name": "DeepSeek R1 1.5B",
        "meta": {
            "description": "Reasons step by step before it answers.",
            "capabilities": {"builtin_tools": False, "vision": False, "citations": True},
            "toolIds": [],
            "profile_image_url": None,
        },
        # R1's sampling, a max_tokens that fits the context, no system prompt
        "params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 6388},
        "is_active": True,
        # without a grant, users who are not admins cannot even see the model
        "access_grants": [EVERYONE_READS],
    }


def test_an_entry_changed_in_the_ui_is_put_back_keeping_what_reconcile_does_not_own():
    webui = FakeWebUI()
    reconcile(webui, desired())
    entry = webui.models[MODEL.id]
    entry["meta"]["capabilities"]["builtin_tools"] = True  # an admin switched them on
    entry["meta"]["tags"] = [{"name": "maths"}]  # and tagged it
    entry["params"]["system"] = "You are a helpful assistant."
    webui.writes.clear()
    outcome = reconcile(webui, desired())
    assert webui.writes == ["update_model"]
    [item] = [i for i in outcome.items if i.item == "model"]
    assert "meta.capabilities" in item.detail and "params.system" in item.detail
    entry = webui.models[MODEL.id]
    assert entry["meta"]["capabilities"]["builtin_tools"] is False
    assert entry["meta"]["tags"] == [{"name": "maths"}]
    assert "system" not in entry["params"]


def test_a_private_entry_is_opened_to_users_without_touching_the_rest():
    webui = FakeWebUI()
    reconcile(webui, desired())
    webui.models[MODEL.id]["access_grants"] = []
    webui.writes.clear()
    reconcile(webui, desired())
    assert webui.writes == ["model_access"]
    grants = webui.models[MODEL.id]["access_grants"]
    assert [{k: g[k] for k in EVERYONE_READS} for g in grants] == [EVERYONE_READS]


def test_tools_on_by_default_become_the_models_tool_ids():
    webui = FakeWebUI()
    on = ModelEntry(**{**MODEL.__dict__, "default_tool_ids": ["server:r1deploy-tools"]})
    reconcile(webui, desired(model=on))
    assert webui.models[MODEL.id]["meta"]["toolIds"] == ["server:r1deploy-tools"]


def test_check_mode_reports_what_differs_and_writes_nothing():
    webui = FakeWebUI()
    outcome = reconcile(webui, desired(), apply=False)
    assert webui.writes == []
    assert {i.item for i in outcome.items if i.changed} == {
        "openai_connections",
        "tool_servers",
        "signup",
        "default_model",
        "model",
    }

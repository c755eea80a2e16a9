"""Every rule of ``r1deploy compose validate``, declared once: the one registry findings refer to.

``r1deploy compose rules`` prints it; docs/rules.md is generated from it
(``python -m tests.lint.rules_doc``). The modules of r1deploy/compose/rules/ take their rules
from here by id (a typo fails at import), and a finding can only name an entry of it.
"""

from __future__ import annotations

from r1deploy.rules import INPUT_RULES, Rule, index

COMPOSE_RULES: tuple[Rule, ...] = (
    *INPUT_RULES,
    Rule("yaml-syntax", "syntax", "not YAML, or more than one document: the line of the error"),
    Rule(
        "yaml-limit",
        "syntax",
        "nested deeper, or holding more values or alias expansions, than the YAML limits "
        "allow: not parsed",
    ),
    Rule(
        "duplicate-key",
        "syntax",
        "a key appears twice in one mapping: docker compose refuses the file",
    ),
    Rule(
        "compose-schema",
        "schema",
        "not valid against the Compose specification's schema; an unknown key gets the "
        "closest known one",
    ),
    Rule(
        "image-pinned",
        "images",
        "an image without a tag, or with one that moves (latest, main, nightly, master, dev); "
        "a service with neither image nor build",
    ),
    Rule(
        "gpu-reservation",
        "gpu",
        "GPU reservations: capabilities [gpu], count or device_ids (not both), qualified CDI "
        "names; vLLM reserves a GPU, and as many as its tensor parallel size",
    ),
    Rule(
        "vllm-flags",
        "vllm",
        "vLLM's flags: tensor parallel divides the served model's attention heads and "
        "--max-model-len fits its context (r1deploy/model_facts.json), no removed flags, tool "
        "calling flags in pairs, a tools chat template, shared memory",
    ),
    Rule(
        "webui-env",
        "webui",
        "Open WebUI variables it does not read (OPENAI_BASE_URL), near misses of the ones it "
        "reads, TOOL_SERVER_CONNECTIONS that is not JSON",
    ),
    Rule(
        "webui-backend",
        "webui",
        "OPENAI_API_BASE_URL names a model server of the file, on its container port, ending "
        "in /v1, with the key the server requires",
    ),
    Rule(
        "webui-depends",
        "webui",
        "Open WebUI waits for its model servers to be healthy, and what it waits for has a "
        "healthcheck",
        "warning",
    ),
    Rule(
        "secret-literal",
        "secrets",
        "a secret written in the file: values of *_KEY/TOKEN/SECRET/PASSWORD, --api-key, "
        "tool server keys, Hugging Face tokens, values of the .env beside it",
    ),
    Rule(
        "public-port",
        "exposure",
        "a model server (vLLM, llama.cpp) published beyond loopback, or on the host network: "
        "its key guards only /v1/*",
    ),
    Rule(
        "front-door-only",
        "exposure",
        "with a front door (the nginx service r1deploy renders), no other service is "
        "published beyond loopback: HTTPS and the API keys are the only way in",
    ),
)

RULES = index(COMPOSE_RULES)

"""llama-server's command line and environment from a rendered stack (settings.json
``llamacpp.args``, exactly the compose command), for a runtime that starts it from a built
prefix rather than the image: the e2e tier now, roles/r1_native once it runs llama.cpp.

The translation is the one the native runtime makes for vLLM: the model becomes the host's
GGUF file, ``/stack/...`` paths the stack directory's, and the server listens on the model
API's published address; the API key comes from .env through the environment
(LLAMA_API_KEY, as compose gives it), never the command line, which ``ps`` shows.
"""

from __future__ import annotations

STACK_MOUNT = "/stack/"
# Flags whose value names the model in the compose command (replaced by --model FILE).
MODEL_FLAGS = ("--model", "-m", "--hf-repo", "-hf", "--hf-file", "-hff")


def _without(args: list[str], flags: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        else:
            out.append(arg)
    return out


def _set(args: list[str], flag: str, value: str) -> list[str]:
    return [*_without(args, (flag,)), flag, value]


def server_argv(
    settings: dict, *, llama_server: str, model_path: str, stack_dir: str, host: str, port: int
) -> list[str]:
    """The llama-server command of the stack, serving ``model_path`` on ``host:port``."""
    try:
        args = [str(a) for a in settings["llamacpp"]["args"]]
    except (KeyError, TypeError):
        raise ValueError(
            "settings.json has no llamacpp.args: the stack was rendered for "
            "another engine (settings.json engine)"
        ) from None
    stack = stack_dir.rstrip("/") + "/"
    args = [
        stack + a[len(STACK_MOUNT) :] if a.startswith(STACK_MOUNT) else a
        for a in _without(args, MODEL_FLAGS)
    ]
    args = _set(_set(args, "--host", host), "--port", str(port))
    return [llama_server, "--model", model_path, *args]


def server_env(dotenv: dict) -> dict:
    """The server's environment: the model API key from .env (compose: LLAMA_API_KEY)."""
    key = dotenv.get("VLLM_API_KEY")
    if not key:
        raise ValueError(".env has no VLLM_API_KEY: render the stack again")
    return {"LLAMA_API_KEY": key}

"""Figures of the real-server stack (make bench): vLLM time-to-healthy with a cold and a
kept compile cache, Open WebUI time-to-healthy, and the smoke suite's wall time against
the warm stack. Needs the cached server envs (tests/e2e/envs.sh)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from r1deploy.smoke.checks import CHECKS, Context
from r1deploy.smoke.config import load_config
from r1deploy.smoke.runner import FAIL, run_checks
from r1deploy.tools.validate import load_plugins
from tests.e2e import stack as stacklib
from tests.e2e.conftest import BUILD, PORT_BASE, REPO, build_test_model, native_server, reconcile
from tests.support.stub_upstream import StubUpstream

SMOKE_TARGET_S = 15.0
SMOKE_RUNS = 3
VLLM_PORT, WEBUI_PORT, GATEWAY_PORT = PORT_BASE + 5, PORT_BASE + 6, PORT_BASE + 7


class SmokeArgs:
    """The CLI namespace `r1deploy smoke --stack-dir DIR` would give."""

    def __init__(self, stack: Path):
        self.stack_dir = str(stack)
        self.vllm = self.webui = self.model = self.max_model_len = None
        self.admin_email = self.gateway = self.tool = self.tools = None
        self.vllm_key_file = self.admin_password_file = self.gateway_key_file = None
        self.timeout, self.quality = 60.0, False


def _logged(services: dict, name: str, log: str | None = None) -> dict:
    return {**services[name], "log": BUILD / "logs" / f"bench-{log or name}.log"}


def _vllm(services: dict, log: str) -> stacklib.Server:
    """vLLM as the native runtime runs it; its compile cache is the stack's data/vllm-cache
    (fresh for the first start, kept for the second)."""
    return native_server("vllm", _logged(services, "vllm", log))


def _tools_file(directory: Path) -> Path:
    """The shipped tools.json, whose weather plugin may reach the loopback stand-in."""
    plugins = load_plugins(str(REPO / "tools.json"))
    for plugin in plugins:
        if plugin["name"] == "get_weather":
            plugin["allow_private_network"] = True
    path = directory / "tools.json"
    path.write_text(stacklib.json.dumps(plugins, indent=2))
    return path


def main() -> None:
    model = build_test_model("scripted")
    with (
        tempfile.TemporaryDirectory(prefix="r1deploy-bench-") as tmp,
        StubUpstream() as upstream,
    ):
        tmp = Path(tmp)
        stack = stacklib.render_test_stack(
            tmp / "stack",
            vllm_port=VLLM_PORT,
            webui_port=WEBUI_PORT,
            gateway_port=GATEWAY_PORT,
            tools_file=_tools_file(tmp),
        )
        services = stacklib.native_services(
            stack, model, {"tools-gateway": {"R1_WEATHER_BASE_URL": f"{upstream.url}/weather"}}
        )
        servers = []
        try:
            cold = _vllm(services, "vllm-cold").start()
            servers.append(cold)
            cold_s = cold.wait_healthy(600)
            cold.stop()
            warm = _vllm(services, "vllm-warm").start()
            servers.append(warm)
            warm_s = warm.wait_healthy(600)
            gateway = native_server("tools-gateway", _logged(services, "tools-gateway")).start()
            servers.append(gateway)
            gateway.wait_healthy(120)
            webui = native_server("open-webui", _logged(services, "open-webui")).start()
            servers.append(webui)
            webui_s = webui.wait_healthy(600)
            reconcile(stack)  # as every deploy does: the model's entry, the tool server
            walls = []
            for _ in range(SMOKE_RUNS):
                ctx = Context(load_config(SmokeArgs(stack)))
                start = time.perf_counter()
                results = run_checks(CHECKS, ctx)
                walls.append(time.perf_counter() - start)
                failed = [f"{r.name}: {r.message}" for r in results if r.status == FAIL]
                assert not failed, f"smoke failed on the bench stack: {failed}"
        finally:
            for server in servers:
                server.stop()
    median = statistics.median(walls)
    verdict = "ok" if median < SMOKE_TARGET_S else "OVER TARGET"
    print(
        f"smoke suite against a warm stack ({len(CHECKS)} checks, {SMOKE_RUNS} runs): "
        f"median {median:.2f} s, best {min(walls):.2f} s (target < {SMOKE_TARGET_S:.0f} s) "
        f"{verdict}"
    )
    print(
        f"vLLM time-to-healthy, tiny model on {os.cpu_count()} CPUs: cold compile cache "
        f"{cold_s:.1f} s, compile cache kept {warm_s:.1f} s"
    )
    print(f"Open WebUI time-to-healthy (fresh data dir): {webui_s:.1f} s")


if __name__ == "__main__":
    main()

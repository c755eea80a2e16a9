"""The doctor's checks, in the order they run: (id, description, function) each.

Each function takes a DoctorContext (r1deploy/doctor/core.py) and returns a Verdict: PASS,
WARN, FAIL or SKIP, what it saw and, for WARN/FAIL, the cause and the fix. docs/doctor.md
describes each one.
"""

from __future__ import annotations

from r1deploy.doctor.core import DoctorCheck
from r1deploy.doctor.gateway import gateway_upstreams
from r1deploy.doctor.host import disk_free, frontdoor_certificate
from r1deploy.doctor.monitoring import monitoring_alerts, monitoring_targets
from r1deploy.doctor.nvidia import (
    gpu_cdi_spec,
    gpu_container_nvml,
    gpu_docker_runtime,
    gpu_driver_mismatch,
    gpu_module,
)
from r1deploy.doctor.secrets import secrets_controller_match
from r1deploy.doctor.services import clock_skew, services_reachable
from r1deploy.doctor.tools import tools_strict
from r1deploy.doctor.vllm import vllm_context_pressure, vllm_oom, vllm_tool_flags
from r1deploy.doctor.webui import (
    webui_builtin_tools,
    webui_env_drift,
    webui_function_calling,
    webui_sampling,
    webui_signup,
)

DOCTOR_CHECKS: list[DoctorCheck] = [
    DoctorCheck(
        "services.reachable",
        "each service of settings.json answers its health URL; "
        "for one that does not, the cause its log shows",
        services_reachable,
    ),
    DoctorCheck("vllm.oom", "no out-of-memory error in the model server's log", vllm_oom),
    DoctorCheck("vllm.tool_flags", "vLLM is started so that tool calls trigger", vllm_tool_flags),
    DoctorCheck(
        "vllm.context_pressure",
        "requests do not come near max_model_len (answers that stall or repeat)",
        vllm_context_pressure,
    ),
    DoctorCheck(
        "webui.builtin_tools",
        "the admin signs in; Open WebUI's built-in tools fit the context",
        webui_builtin_tools,
    ),
    DoctorCheck(
        "webui.signup",
        "Open WebUI's signup is closed when the stack says so",
        webui_signup,
    ),
    DoctorCheck(
        "webui.env_drift",
        "Open WebUI's stored configuration is what the stack's environment says",
        webui_env_drift,
    ),
    DoctorCheck(
        "webui.function_calling",
        "Open WebUI sends the chat's tools to the model (not its legacy prompt mode)",
        webui_function_calling,
    ),
    DoctorCheck(
        "tools.strict",
        "vLLM holds the model's calls to each tool's schema (strict tools)",
        tools_strict,
    ),
    DoctorCheck(
        "webui.sampling",
        "the model's entry samples within the model's recommended range",
        webui_sampling,
    ),
    DoctorCheck(
        "gateway.upstreams",
        "this machine resolves and reaches each tool's upstream API",
        gateway_upstreams,
    ),
    DoctorCheck(
        "secrets.controller_match",
        "the controller's secrets (--secrets-dir) are the host's",
        secrets_controller_match,
    ),
    DoctorCheck(
        "monitoring.targets",
        "the stack's Prometheus scrapes every service it should",
        monitoring_targets,
    ),
    DoctorCheck("monitoring.alerts", "no alert rule is firing", monitoring_alerts),
    DoctorCheck("disk.free", "free space for the stack and the model", disk_free),
    DoctorCheck(
        "frontdoor.certificate",
        "the front door's certificate is not about to end",
        frontdoor_certificate,
    ),
    DoctorCheck("clock.skew", "the services' clock agrees with this machine's", clock_skew),
    DoctorCheck(
        "gpu.module",
        "the nvidia kernel module is loaded (Secure Boot does not refuse it)",
        gpu_module,
    ),
    DoctorCheck(
        "gpu.driver_mismatch",
        "the kernel module and the driver's library are the same version (no reboot pending)",
        gpu_driver_mismatch,
    ),
    DoctorCheck(
        "gpu.docker_runtime",
        "Docker has the nvidia runtime the stack's GPU reservation needs",
        gpu_docker_runtime,
    ),
    DoctorCheck("gpu.cdi_spec", "the CDI spec names the driver that runs", gpu_cdi_spec),
    DoctorCheck(
        "gpu.container_nvml",
        "the model server's container still reaches the GPU (NVML)",
        gpu_container_nvml,
    ),
]

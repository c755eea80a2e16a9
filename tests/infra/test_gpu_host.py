"""The driver answers, Docker runs with the nvidia runtime and Compose v2."""

import json


def test_nvidia_driver_loaded_and_nvidia_smi_answers(host, gpu):
    assert gpu.rc == 0, gpu.stderr
    assert "GPU 0:" in gpu.stdout
    assert host.file("/proc/driver/nvidia/version").exists


def test_docker_running_and_enabled(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled


def test_docker_daemon_answers(host):
    assert host.run("docker version --format '{{.Server.Version}}'").rc == 0


def test_compose_v2_plugin_present(host):
    res = host.run("docker compose version --short")
    assert res.rc == 0, res.stderr
    assert res.stdout.strip().lstrip("v").startswith("2.")


def test_nvidia_runtime_registered_in_docker(host, gpu):
    runtimes = json.loads(host.check_output("docker info --format '{{json .Runtimes}}'"))
    assert "nvidia" in runtimes, "nvidia-ctk runtime configure --runtime=docker was not applied"


def test_container_sees_the_gpu(host, gpu, host_vars):
    image = host_vars.get(
        "nvidia_container_toolkit_verify_image", "nvidia/cuda:12.4.1-base-ubuntu22.04"
    )
    res = host.run(f"docker run --rm --gpus all {image} nvidia-smi -L")
    assert res.rc == 0, res.stderr
    assert "GPU 0:" in res.stdout

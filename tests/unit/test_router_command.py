"""r1deploy.router.command: the vllm-router command line from a worker list."""

from __future__ import annotations

import pytest

from r1deploy.router import DEFAULT_POLICY, POLICIES, RouterConfigError, RouterSettings
from r1deploy.router import router_command as command

WORKERS = ["http://10.0.0.1:8000", "http://10.0.0.2:8000"]


def option(argv: list[str], flag: str) -> list[str]:
    """The values after ``flag`` up to the next flag."""
    start = argv.index(flag) + 1
    end = next((i for i in range(start, len(argv)) if argv[i].startswith("--")), len(argv))
    return argv[start:end]


def test_workers_policy_and_port_reach_the_command():
    argv = command(WORKERS, RouterSettings(port=9000, policy="round_robin"))
    assert argv[0] == "vllm-router"
    assert option(argv, "--worker-urls") == WORKERS
    assert option(argv, "--policy") == ["round_robin"]
    assert option(argv, "--port") == ["9000"]
    assert option(argv, "--host") == ["127.0.0.1"]


def test_defaults_cache_aware_fast_health_checks_and_retries():
    argv = command(WORKERS)
    assert DEFAULT_POLICY == "cache_aware"
    assert option(argv, "--policy") == ["cache_aware"]
    # A dead replica leaves rotation in about interval x threshold seconds, not 3 minutes.
    assert option(argv, "--health-check-interval-secs") == ["5"]
    assert option(argv, "--health-failure-threshold") == ["2"]
    assert option(argv, "--health-check-endpoint") == ["/health"]
    assert option(argv, "--retry-max-retries") == ["3"]
    assert option(argv, "--prometheus-port") == ["29000"]


def test_no_api_key_on_the_command_line():
    # The client's Authorization header is forwarded to the replicas, which check it.
    assert not any("key" in arg.lower() for arg in command(WORKERS))


def test_worker_urls_are_normalised():
    argv = command(["HTTP://Replica-1:8000/", "https://[::1]:8443"])
    assert option(argv, "--worker-urls") == ["http://replica-1:8000", "https://[::1]:8443"]


def test_every_setting_is_passed():
    settings = RouterSettings(
        port=18520,
        host="0.0.0.0",
        policy="power_of_two",
        prometheus_port=18521,
        prometheus_host="0.0.0.0",
        health_check_interval_s=7,
        health_check_timeout_s=2,
        health_failure_threshold=4,
        health_success_threshold=1,
        health_check_endpoint="/ping",
        retry_max_attempts=1,
        request_timeout_s=60,
        worker_startup_timeout_s=30,
        log_level="debug",
        binary="/opt/router/bin/vllm-router",
    )
    argv = command(WORKERS, settings)
    assert argv[0] == "/opt/router/bin/vllm-router"
    expected = {
        "--host": "0.0.0.0",
        "--port": "18520",
        "--policy": "power_of_two",
        "--prometheus-port": "18521",
        "--prometheus-host": "0.0.0.0",
        "--health-check-interval-secs": "7",
        "--health-check-timeout-secs": "2",
        "--health-failure-threshold": "4",
        "--health-success-threshold": "1",
        "--health-check-endpoint": "/ping",
        "--retry-max-retries": "1",
        "--request-timeout-secs": "60",
        "--worker-startup-timeout-secs": "30",
        "--log-level": "debug",
    }
    assert {flag: option(argv, flag) for flag in expected} == {
        flag: [value] for flag, value in expected.items()
    }


@pytest.mark.parametrize("policy", POLICIES)
def test_each_offered_policy_is_accepted(policy):
    assert option(command(WORKERS, RouterSettings(policy=policy)), "--policy") == [policy]


def test_balance_threshold_is_passed_only_when_given():
    assert "--balance-abs-threshold" not in command(WORKERS)
    argv = command(WORKERS, RouterSettings(balance_abs_threshold=2))
    assert option(argv, "--balance-abs-threshold") == ["2"]


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        (RouterSettings(policy="round_robin", balance_abs_threshold=2), "cache_aware's"),
        (RouterSettings(balance_abs_threshold=-1), "0 or more"),
    ],
)
def test_bad_balance_threshold_is_an_error(settings, why):
    with pytest.raises(RouterConfigError, match=why):
        command(WORKERS, settings)


def test_no_workers_is_an_error():
    with pytest.raises(RouterConfigError, match="no workers"):
        command([])


def test_one_string_instead_of_a_list_is_an_error():
    with pytest.raises(RouterConfigError, match="list of URLs"):
        command("http://10.0.0.1:8000")


@pytest.mark.parametrize(
    "second", ["http://10.0.0.1:8000", "http://10.0.0.1:8000/", "HTTP://10.0.0.1:8000"]
)
def test_duplicate_workers_are_an_error(second):
    with pytest.raises(RouterConfigError, match="listed twice"):
        command(["http://10.0.0.1:8000", second])


def test_same_host_other_port_is_not_a_duplicate():
    urls = ["http://10.0.0.1:8000", "http://10.0.0.1:8001"]
    assert option(command(urls), "--worker-urls") == urls


@pytest.mark.parametrize("policy", ["cache-aware", "kv_aware", "least_loaded", ""])
def test_unknown_policy_is_an_error_naming_the_choices(policy):
    with pytest.raises(RouterConfigError, match="unknown policy") as error:
        command(WORKERS, RouterSettings(policy=policy))
    assert "cache_aware" in str(error.value) and "round_robin" in str(error.value)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("10.0.0.1:8000", "not http"),
        ("ftp://10.0.0.1:8000", "not http"),
        ("http://10.0.0.1", "no port"),
        ("http://10.0.0.1:99999", "bad port"),
        ("http://10.0.0.1:8000/v1", "path"),
        ("http://user:pw@10.0.0.1:8000", "credentials"),
    ],
)
def test_bad_worker_urls_are_errors(url, why):
    with pytest.raises(RouterConfigError, match=why):
        command([url])


@pytest.mark.parametrize(
    "settings",
    [
        RouterSettings(port=0),
        RouterSettings(port=70000),
        RouterSettings(prometheus_port=8000),  # the router's own port
        RouterSettings(health_check_interval_s=0),
        RouterSettings(health_failure_threshold=-1),
        RouterSettings(retry_max_attempts=0),
        RouterSettings(request_timeout_s=True),
        RouterSettings(health_check_endpoint="health"),
    ],
)
def test_bad_settings_are_errors(settings):
    with pytest.raises(RouterConfigError):
        command(WORKERS, settings)

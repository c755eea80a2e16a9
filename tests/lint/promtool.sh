#!/usr/bin/env bash
# make lint: check the Prometheus alerting rules in monitoring/rules/ and run their unit tests
# in monitoring/tests/ with promtool, installing Debian's prometheus package first when
# promtool is missing and this runs as root (the package's own service is not started).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v promtool >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "promtool is missing: run 'apt-get install -y --no-install-recommends prometheus'" \
            "as root, then make lint" >&2
        exit 1
    fi
    # policy-rc.d 101: install the package without starting a system Prometheus on port 9090
    # (one already there, as in Debian's container images, is left as it is).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    install=(apt-get install -y -qq --no-install-recommends prometheus)
    "${install[@]}" >/dev/null || { apt-get update -qq && "${install[@]}" >/dev/null; }
fi
promtool --version 2>&1 | head -n 1
promtool check rules monitoring/rules/*.yml
promtool test rules monitoring/tests/*.yml

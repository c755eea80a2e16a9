#!/usr/bin/env bash
# Install Debian's chromium for the headless browser check, when it is missing.
set -euo pipefail
if command -v chromium >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "chromium is missing: run 'apt-get install -y chromium' as root" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

#!/usr/bin/env bash
# Install pebble, Let's Encrypt's ACME test server (Debian's package), for the deploy tier's
# ACME test, when it is missing.
set -euo pipefail
if command -v pebble >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "pebble is missing: run 'apt-get install -y pebble' as root" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble >/dev/null

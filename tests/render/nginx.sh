#!/usr/bin/env bash
# Install Debian's nginx for the render tier's `nginx -t` of the front door, when it is missing
# (the package's own service is not started: only its binary and mime.types are used).
set -euo pipefail
if command -v nginx >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "nginx is missing: run 'apt-get install -y nginx-light' as root" >&2
    exit 1
fi
apt-get update -qq
# policy-rc.d 101: install the package without starting a system nginx on port 80.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null

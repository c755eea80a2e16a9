#!/usr/bin/env bash
# debian-package.sh COMMAND PACKAGE: install Debian's PACKAGE when COMMAND is missing (as
# root), without starting any service the package ships (policy-rc.d 101: a system nginx
# would take port 80). The test tiers' own tools: chromium, nginx, pebble.
set -euo pipefail
command=${1:?usage: debian-package.sh COMMAND PACKAGE}
package=${2:?usage: debian-package.sh COMMAND PACKAGE}
if command -v "$command" >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "$command is missing: run 'apt-get install -y $package' as root" >&2
    exit 1
fi
apt-get update -qq
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null

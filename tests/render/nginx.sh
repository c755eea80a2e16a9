#!/usr/bin/env bash
# Install Debian's nginx for the render tier's `nginx -t` of the front door, when it is
# missing (its own service is not started: only its binary and mime.types are used).
exec "$(dirname "$0")/../support/debian-package.sh" nginx nginx-light

#!/usr/bin/env bash
# Install Debian's chromium for the headless browser check, when it is missing.
exec "$(dirname "$0")/../support/debian-package.sh" chromium chromium

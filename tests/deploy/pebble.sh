#!/usr/bin/env bash
# Install pebble, Let's Encrypt's ACME test server (Debian's package), for the deploy tier's ACME test, when it is missing.
exec "$(dirname "$0")/../support/debian-package.sh" pebble pebble

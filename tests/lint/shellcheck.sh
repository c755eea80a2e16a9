#!/usr/bin/env bash
# make lint: shellcheck every shell script of the checkout (found by its #! line), installing
# Debian's shellcheck first when it is missing and this runs as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v shellcheck >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "shellcheck is missing: run 'apt-get install -y shellcheck' as root, then make lint" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq shellcheck >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }
fi
mapfile -t scripts < <(git ls-files -z --cached --others --exclude-standard | xargs -0 awk \
    'FNR == 1 { if (/^#!(.*\/|.*env +)(ba|da)?sh( |$)/) print FILENAME; nextfile }')
echo "shellcheck: ${scripts[*]}"
shellcheck "${scripts[@]}"

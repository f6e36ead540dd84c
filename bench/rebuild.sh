#!/usr/bin/env bash
# bench/rebuild.sh — issue 4 benchmark (c): upload once. A 200 MiB context (3 files of 40 MiB, 400 of 100 KiB,
# 4000 of 10 KiB, one of 1.875 MiB, nested folders, a symlink; random bytes, so nothing compresses) built by
# `coordinator build` for linux/amd64 + linux/arm64 (2 hosts); rebuilt with nothing changed (context bytes
# sent, read from the metadata file's coordinator.platforms[].contextBytesSent, must be 0); then one 100 KiB
# file is changed and it is rebuilt (bytes sent must be < 1 % of 200 MiB, on each host and in total).
# The byte figures are exact, so one round is enough; BENCH_RUNS rounds of the two rebuilds give median times
# (round r > 1 changes the file again, and the "unchanged" rebuild then repeats the last context).
#
#   bench/rebuild.sh      (as root; BENCH_SKIP_BUILD=1 to reuse the binary)
#
# Prints: rebuild: unchanged 0 bytes sent (X s), one file changed N bytes sent = P % (Y s), first build Z s
# Exit status: 0 byte targets met, 1 a byte target missed or a failure.
set -euo pipefail

BENCH_NAME=rebuild
BENCH_BASE=${BENCH_BASE:-127.0.43}
BENCH_PORT=${BENCH_PORT:-5843}
# shellcheck source=bench/lib-build.sh
. "$(dirname "$0")/lib-build.sh"

bench_setup

ctx=$BENCH_DIR/context
mkdir -p "$ctx/big" "$ctx/src/medium" "$ctx/src/small/deep/er" "$BENCH_DIR/gen"
bench_log "making the 200 MiB context"
for i in 1 2 3; do head -c $((40 << 20)) /dev/urandom >"$ctx/big/blob$i.bin"; done
head -c $((400 * 102400)) /dev/urandom >"$BENCH_DIR/gen/medium"
split -b 102400 -a 3 -d "$BENCH_DIR/gen/medium" "$ctx/src/medium/m"
head -c $((4000 * 10240)) < <(base64 -w 76 </dev/urandom) >"$BENCH_DIR/gen/small"
split -b 10240 -a 4 -d "$BENCH_DIR/gen/small" "$ctx/src/small/s"
mv "$ctx/src/small/s000"* "$ctx/src/small/deep/"
mv "$ctx/src/small/deep/s0000"* "$ctx/src/small/deep/er/"
rm -rf "$BENCH_DIR/gen"
ln -s ../big/blob1.bin "$ctx/src/link-to-blob"
cat >"$ctx/Dockerfile" <<EOF
FROM $BENCH_BASE_IMAGE
COPY . /ctx
RUN ls -R /ctx | wc -l >/files
EOF
# Pad to exactly 200 MiB of file bytes, Dockerfile included.
size=$(find "$ctx" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
head -c $(((200 << 20) - size)) /dev/urandom >"$ctx/big/pad.bin"
total=$(find "$ctx" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
nfiles=$(find "$ctx" -type f | wc -l)
[ "$total" -eq $((200 << 20)) ] || bench_die "the context is $total bytes, not 200 MiB"
limit=$((total / 100))
repo=$REGISTRY/bench/rebuild

build() { # ID; sets t and sent (total), max (largest per platform)
    t=$(bench_coordinator "$repo:$1" "$ctx" "$BENCH_DIR/meta-$1.json" "$BENCH_DIR/$1.log")
    bench_check_index "$repo:$1" linux/amd64 linux/arm64
    sent=$(bench_bytes_sent "$BENCH_DIR/meta-$1.json")
    max=$(jq '[.coordinator.platforms[].contextBytesSent] | max' "$BENCH_DIR/meta-$1.json")
    [ "$(jq '.coordinator.platforms | length' "$BENCH_DIR/meta-$1.json")" = 2 ] || bench_die "$1: not 2 platforms in the report"
}

bench_log "first build of $total bytes in $nfiles files"
build first
first_t=$t first_sent=$sent
[ "$first_sent" -ge $((2 * total)) ] || bench_die "the first build sent $first_sent bytes, less than the context twice over"
bench_log "first build: $first_t s, $first_sent bytes sent (both hosts)"

unchanged_t=() changed_t=() unchanged_sent=0 changed_sent=0 changed_max=0
for ((r = 1; r <= BENCH_RUNS; r++)); do
    build "unchanged-$r"
    unchanged_t+=("$t")
    unchanged_sent=$((unchanged_sent + sent))
    bench_log "round $r: unchanged rebuild $t s, $sent bytes sent (load $(bench_load))"
    head -c 102400 /dev/urandom >"$ctx/src/medium/m$(printf '%03d' $((r * 7)))"
    build "changed-$r"
    changed_t+=("$t")
    [ "$sent" -le "$changed_sent" ] || changed_sent=$sent
    [ "$max" -le "$changed_max" ] || changed_max=$max
    bench_log "round $r: one-file-changed rebuild $t s, $sent bytes sent, $max per host at most (load $(bench_load))"
done

ut=$(bench_median "${unchanged_t[@]}")
ct=$(bench_median "${changed_t[@]}")
pct=$(awk -v a="$changed_sent" -v b="$total" 'BEGIN { printf "%.3f", 100 * a / b }')
status=0
[ "$unchanged_sent" -eq 0 ] || { echo "rebuild: TARGET MISSED: an unchanged rebuild sent $unchanged_sent bytes" >&2; status=1; }
[ "$changed_sent" -lt "$limit" ] || { echo "rebuild: TARGET MISSED: a one-file rebuild sent $changed_sent bytes (limit $limit)" >&2; status=1; }
echo
echo "== rebuild ($total bytes in $nfiles files, 2 platforms; rebuild times over $BENCH_RUNS rounds: unchanged ${unchanged_t[*]}; one file changed ${changed_t[*]})"
echo "uptime: $(uptime)"
echo "rebuild: unchanged $unchanged_sent bytes sent (target 0; median $ut s), one 100 KiB file changed" \
    "$changed_sent bytes sent over both hosts, $changed_max per host = $pct % of 200 MiB (target < 1 %; median $ct s)," \
    "first build $first_t s ($first_sent bytes sent)"
exit "$status"

#!/usr/bin/env bash
# bench/e2e.sh — issue 4 benchmark (a): `coordinator build` end to end on 2 hosts (x86_64 + aarch64) of a small
# context, against the hand-written bash pipeline a user would otherwise write with plain OpenSSH + buildah:
#   per host:  tar c | ssh host 'tar x';  ssh host buildah bud --platform P;  ssh host buildah push (temp tag)
#   locally:   buildah manifest create / add / push --all
# run once host after host (as such scripts usually are) and once in parallel (`&` + `wait` per host).
# Every round builds from scratch on both sides (a fresh nonce is the first COPY, so no layer is reused).
# A fourth contender is the parallel script with `buildah bud --layers`, as the coordinator builds (it keeps a
# layer cache between runs; with vfs storage every step then costs a commit). Rounds alternate the order of
# the contenders; the figures are medians over BENCH_RUNS rounds.
#
#   bench/e2e.sh          (as root; BENCH_RUNS=5 for more rounds, BENCH_SKIP_BUILD=1 to reuse the binary)
#
# Prints: e2e: coordinator X s, parallel script Y s (ratio R, target <= 1.0x), sequential Z s (R2)
# Exit status: 0 measured (a missed target is reported, and fails only with BENCH_STRICT=1), 1 failure.
set -euo pipefail

BENCH_NAME=e2e
BENCH_BASE=${BENCH_BASE:-127.0.41}
BENCH_PORT=${BENCH_PORT:-5841}
# shellcheck source=bench/lib-build.sh
. "$(dirname "$0")/lib-build.sh"

bench_setup

# The context: a few small files, a Dockerfile that copies them and runs a short step.
ctx=$BENCH_DIR/context
mkdir -p "$ctx/app/static"
for i in 1 2 3 4 5; do head -c $((i * 4096)) /dev/urandom | base64 >"$ctx/app/part$i.txt"; done
printf 'hello from the e2e benchmark\n' >"$ctx/app/static/index.html"
printf '#!/bin/sh\necho app\n' >"$ctx/app/run.sh"
chmod 755 "$ctx/app/run.sh"
cat >"$ctx/Dockerfile" <<EOF
FROM $BENCH_BASE_IMAGE
COPY nonce.txt /nonce.txt
COPY app/ /app/
RUN cat /app/*.txt | wc -c >/app/size && ls -R /app >/app/list && uname -m >/app/arch
EOF

repo=$REGISTRY/bench/e2e
ssh_opts=(-i "$FLEET_CLIENT_KEY" -o UserKnownHostsFile="$FLEET_KNOWN_HOSTS" -o StrictHostKeyChecking=yes
    -o BatchMode=yes -o LogLevel=ERROR -p "$FLEET_PORT")
hosts=("$FLEET_H1_ADDRESS:$FLEET_H1_PLATFORM" "$FLEET_H2_ADDRESS:$FLEET_H2_PLATFORM")

# --- The baseline: what a user writes by hand -------------------------------------------------------------

# One host's part: upload the context, build, push under a temp tag, clean up. Values here are plain words.
# shellcheck disable=SC2029 # the remote commands are expanded here on purpose: plain words only
script_host() { # ADDRESS PLATFORM ID
    local addr=$1 platform=$2 id=$3 arch=${2#*/}
    tar -c -C "$ctx" . | ssh "${ssh_opts[@]}" "root@$addr" "rm -rf ctx-$id && mkdir ctx-$id && tar -x -C ctx-$id"
    ssh "${ssh_opts[@]}" "root@$addr" "buildah bud -q $bud_flags --platform $platform --tls-verify=false -t localhost/e2e:$id ctx-$id" >/dev/null
    ssh "${ssh_opts[@]}" "root@$addr" "buildah push -q --tls-verify=false localhost/e2e:$id docker://$repo:tmp-$id-$arch &&
        buildah rmi localhost/e2e:$id >/dev/null && rm -rf ctx-$id"
}

# The local part: one index of the temp tags.
script_manifest() { # ID
    local id=$1 list=localhost/e2e-list-$1 h
    buildah manifest create "$list" >/dev/null
    for h in "${hosts[@]}"; do
        buildah manifest add --tls-verify=false "$list" "docker://$repo:tmp-$id-${h##*/}" >/dev/null
    done
    buildah manifest push -q --all --tls-verify=false "$list" "docker://$repo:script-$id"
    buildah manifest rm "$list" >/dev/null
}

script_sequential() { # ID
    local h
    for h in "${hosts[@]}"; do script_host "${h%%:*}" "${h#*:}" "$1"; done
    script_manifest "$1"
}

script_parallel() { # ID
    local h pids=() pid
    for h in "${hosts[@]}"; do
        script_host "${h%%:*}" "${h#*:}" "$1" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    script_manifest "$1"
}

# Times one contender; prints seconds. The nonce makes every build start from the base image.
run_one() { # coordinator|parallel|sequential ID
    local kind=$1 id=$2 start t
    printf '%s %s\n' "$kind" "$id" >"$ctx/nonce.txt"
    case $kind in
        coordinator)
            t=$(bench_coordinator "$repo:coord-$id" "$ctx" "$BENCH_DIR/meta-$id.json" "$BENCH_DIR/coord-$id.log")
            bench_check_index "$repo:coord-$id" linux/amd64 linux/arm64
            ;;
        nolayers) # the same build semantics as the plain script: inventory layerCache false
            t=$(FLEET_INVENTORY=$nolayers_inventory bench_coordinator "$repo:nolayers-$id" "$ctx" "$BENCH_DIR/meta-nl-$id.json" "$BENCH_DIR/nolayers-$id.log")
            bench_check_index "$repo:nolayers-$id" linux/amd64 linux/arm64
            ;;
        parallel | sequential | layers)
            start=$(bench_now)
            local bud_flags='' fn=script_$kind
            [ "$kind" != layers ] || { bud_flags=--layers fn=script_parallel; }
            timeout 300 bash -c "$(declare -p ctx repo ssh_opts hosts bud_flags); $(declare -f script_host script_manifest "$fn"); $fn $id" \
                >"$BENCH_DIR/$kind-$id.log" 2>&1 || bench_die "the $kind script failed: $(tail -n 15 "$BENCH_DIR/$kind-$id.log")"
            t=$(bench_since "$start")
            bench_check_index "$repo:script-$id" linux/amd64 linux/arm64
            ;;
    esac
    echo "$t"
}

bud_flags=''
nolayers_inventory=$BENCH_DIR/inventory-nolayers.json
jq '.hosts |= map(.layerCache = false)' "$FLEET_INVENTORY" >"$nolayers_inventory"
bench_log "warm-up (base image pulled on each host, not timed)"
run_one coordinator warm >/dev/null
run_one parallel warm >/dev/null

bench_rounds "coordinator parallel sequential layers nolayers" "parallel nolayers layers sequential coordinator" \
    "sequential coordinator nolayers layers parallel"

# shellcheck disable=SC2086 # word lists of numbers
{
    c=$(bench_median ${BENCH_TIMES[coordinator]})
    p=$(bench_median ${BENCH_TIMES[parallel]})
    s=$(bench_median ${BENCH_TIMES[sequential]})
    l=$(bench_median ${BENCH_TIMES[layers]})
    n=$(bench_median ${BENCH_TIMES[nolayers]})
}
rn=$(bench_ratio "$n" "$p")
rl=$(bench_ratio "$c" "$l")
rp=$(bench_ratio "$c" "$p")
rs=$(bench_ratio "$c" "$s")
verdict="target met"
bench_le "$rp" 1.0 || verdict="TARGET MISSED"
echo
echo "== e2e (medians of $BENCH_RUNS rounds; coordinator:${BENCH_TIMES[coordinator]}; parallel:${BENCH_TIMES[parallel]}; sequential:${BENCH_TIMES[sequential]}; parallel with --layers:${BENCH_TIMES[layers]})"
echo "uptime: $(uptime)"
echo "e2e: coordinator $c s, parallel script $p s (ratio ${rp}x, target <= 1.0x, $verdict), sequential $s s (${rs}x)"
echo "e2e: (same build semantics as the coordinator, which builds with --layers to keep a layer cache: parallel script with buildah bud --layers $l s, ratio ${rl}x)"
echo "e2e: (coordinator with inventory layerCache false, the plain script's build semantics: $n s, ratio ${rn}x to the parallel script)"
if [ "$verdict" != "target met" ] && [ "${BENCH_STRICT:-}" = 1 ]; then exit 1; fi

#!/usr/bin/env bash
# bench/nightly.sh — nightly plans (issue 5, item 8), ratios measured in one run:
#   (a) 8 images x 2 platforms (linux/amd64, linux/arm64) on 4 hosts (2 x86_64, 2 aarch64, maxJobs 2 each)
#       as ONE `coordinator build --plan` run, against the baseline: the same 8 images as 8
#       `coordinator build` runs one after another (same fleet, same registry). Every image is
#       `FROM busybox; COPY id.txt; RUN sleep 2`, with an id.txt unique to the image, the side and the round,
#       so neither side gets a layer-cache or context-cache hit; the base image is pulled onto every host
#       before the first round, so both sides start equally warm. Rounds alternate which side goes first;
#       the medians are reported. Target: plan / sequential <= 0.6x.
#   (b) peak RSS of the coordinator (`/usr/bin/time -v`, Debian package `time`) running one plan of
#       16 images x 2 platforms on 32 hosts (16 x86_64, 16 aarch64, maxJobs 1). Target: <= 64 MiB.
# Starts and stops its own test fleets (Deploy/test-fleet.sh) and docker-registry (by pid), all on loopback.
#
# Usage (as root): bench/nightly.sh [ROUNDS]        (default 3)
# Environment: COORDINATOR=path (skip the release build), NIGHTLY_SLEEP (seconds per build step, default 2),
#   NIGHTLY_MAXJOBS (per host in (a), default 2), NIGHTLY_DEADLINE (whole run, seconds, default 1800).
# Exit status: 0 measured (targets met or not: the summary says), 1 a build or a step failed, 2 usage/setup.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
ROUNDS=${1:-3}
SLEEP=${NIGHTLY_SLEEP:-2}
MAXJOBS=${NIGHTLY_MAXJOBS:-2}
DEADLINE=$((SECONDS + ${NIGHTLY_DEADLINE:-1800}))
IMAGES=8
RSS_HOSTS=32
RSS_IMAGES=16
RSS_TARGET_KIB=$((64 * 1024))
RATIO_TARGET=0.6

die() { echo "bench/nightly: $*" >&2; exit "${2:-1}"; }
log() { echo "bench/nightly: $*" >&2; }
# A failed coordinator run: its whole output is kept (the work folder is removed at exit) and the lines that
# say why are printed first.
die_run() { # LOG WHAT
    local kept=${TMPDIR:-/tmp}/bench-nightly-failed-$$-${2// /-}.log
    cp "$1" "$kept" 2>/dev/null || kept="(not kept)"
    die "$2 failed; whole output in $kept; failure lines:
$(grep -i -E 'fail|error|lost|exit' "$1" | head -n 40)
last lines:
$(tail -n 20 "$1")"
}

[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "ROUNDS must be 1...99, got '$ROUNDS'" 2
[[ $SLEEP =~ ^[0-9]+$ ]] || die "NIGHTLY_SLEEP must be whole seconds" 2
[[ $MAXJOBS =~ ^[1-9][0-9]?$ ]] || die "NIGHTLY_MAXJOBS must be 1...99" 2
[ "$(id -u)" = 0 ] || die "run as root: the test fleet starts sshd instances on loopback addresses" 2
for tool in docker-registry buildah skopeo jq ssh timeout curl /usr/bin/time /bin/busybox; do
    command -v "$tool" >/dev/null || die "$tool is not installed (see Deploy/packages.txt)" 2
done

export PATH=/opt/swift/usr/bin:$PATH
if [ -z "${COORDINATOR:-}" ]; then
    (cd "$ROOT" && swift build -c release --product coordinator >&2) || die "release build failed"
    COORDINATOR=$(cd "$ROOT" && swift build -c release --show-bin-path)/coordinator
fi
[ -x "$COORDINATOR" ] || die "no coordinator binary at $COORDINATOR" 2

WORK=$(mktemp -d /tmp/bench-nightly.XXXXXX)
REGISTRY_PID=
FLEETS=()
cleanup() {
    local f
    for f in "${FLEETS[@]}"; do "$ROOT/Deploy/test-fleet.sh" stop "$f" >/dev/null 2>&1 || true; done
    if [ -n "$REGISTRY_PID" ]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command with what is left of the whole run's time budget (SIGTERM, then SIGKILL 15 s later).
bounded() {
    local left=$((DEADLINE - SECONDS))
    [ "$left" -gt 0 ] || die "time budget (NIGHTLY_DEADLINE) used up before: $*"
    timeout -k 15 "$left" "$@"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", b - a }'; } # START END
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# A free TCP port on 127.0.0.1: nothing answers on it.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# ---------------------------------------------------------------------------------------------------------
# Registry, base image

PORT=$(free_port)
REGISTRY=127.0.0.1:$PORT
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
http:
  addr: $REGISTRY
YAML
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://$REGISTRY/v2/" >/dev/null || die "docker-registry did not start: $(tail -n 5 "$WORK/registry/registry.log")"

# busybox as a linux/amd64 + linux/arm64 index, so Dockerfiles can RUN (same as Tests/TestHarness/BuildHarness.swift).
push_base() {
    local root=$WORK/busybox-root arch c tool
    bench_local_buildah "$WORK"
    mkdir -p "$root/bin" "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for tool in sh sleep printf cat echo ls touch uname env test '['; do ln -s busybox "$root/bin/$tool"; done
    buildah manifest create localhost/bench-busybox-list >/dev/null
    for arch in amd64 arm64; do
        c=$(buildah from scratch)
        buildah copy "$c" "$root" / >/dev/null
        buildah config --arch "$arch" --os linux --env PATH=/bin "$c"
        buildah commit -q --format oci "$c" "localhost/bench-busybox-$arch" >/dev/null
        buildah rm "$c" >/dev/null
        buildah push -q --tls-verify=false "localhost/bench-busybox-$arch" "docker://$REGISTRY/base/busybox:$arch"
        buildah manifest add --tls-verify=false localhost/bench-busybox-list "docker://$REGISTRY/base/busybox:$arch" >/dev/null
    done
    buildah manifest push -q --all --tls-verify=false localhost/bench-busybox-list "docker://$REGISTRY/base/busybox:1"
    unset CONTAINERS_STORAGE_CONF BUILDAH_ISOLATION REGISTRY_AUTH_FILE
}
push_base || die "pushing the busybox base image failed"
BASE=$REGISTRY/base/busybox:1

# ---------------------------------------------------------------------------------------------------------
# Fleets

# Starts COUNT hosts (x86_64, aarch64 alternating) in DIR on a free loopback /24 and port; sets maxJobs.
start_fleet() { # DIR COUNT MAXJOBS
    local dir=$1 count=$2 jobs=$3 try rc base port
    for try in 1 2 3 4 5 6 7 8; do
        base=127.0.$((100 + RANDOM % 150))
        port=$(free_port)
        FLEETS+=("$dir")
        rc=0
        bounded "$ROOT/Deploy/test-fleet.sh" start "$dir" "$count" --base "$base" --port "$port" \
            --arch x86_64,aarch64 --engine buildah >"$dir.log" 2>&1 || rc=$?
        [ "$rc" = 0 ] && break
        [ "$rc" = 3 ] || die "test-fleet start failed: $(tail -n 5 "$dir.log")"
        log "address $base.x:$port taken (try $try), picking another"
    done
    [ "$rc" = 0 ] || die "no free loopback range for the fleet"
    jq --argjson j "$jobs" '.hosts |= map(. + {maxJobs: $j})' "$dir/inventory.json" >"$dir/inventory.tmp"
    mv "$dir/inventory.tmp" "$dir/inventory.json"
}

# Pulls the base image onto every host of DIR (each has its own storage), in parallel.
warm_fleet() { # DIR
    local dir=$1 h pids=() p
    # shellcheck source=/dev/null
    . "$dir/fleet.env"
    for h in $FLEET_HOSTS; do
        local addr_var="FLEET_${h^^}_ADDRESS"
        bounded ssh -n -q -i "$FLEET_CLIENT_KEY" -o UserKnownHostsFile="$FLEET_KNOWN_HOSTS" -o StrictHostKeyChecking=yes \
            -o BatchMode=yes -p "$FLEET_PORT" "root@${!addr_var}" \
            "buildah pull -q --tls-verify=false $BASE >/dev/null" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "pulling the base image onto a host of $dir failed"; done
}

# Writes context DIR/NAME (Dockerfile + an id file unique to it).
write_context() { # DIR NAME SLEEP
    mkdir -p "$1/$2"
    printf 'FROM %s\nCOPY id.txt /id.txt\nRUN sleep %s\n' "$BASE" "$3" >"$1/$2/Dockerfile"
    printf '%s %s %s\n' "$1" "$2" "$(date +%s.%N)" >"$1/$2/id.txt"
}

# Writes PLAN for images img1..imgN (contexts under the plan's folder), tagged REPO_PREFIX/imgI:TAG.
write_plan() { # PLAN N TAG SLEEP
    local plan=$1 n=$2 tag=$3 i sep='' dir
    dir=$(dirname "$1")
    {
        printf '{"images":[\n'
        for ((i = 1; i <= n; i++)); do
            write_context "$dir" "img$i" "$4"
            printf '%s {"name":"img%s","context":"img%s","tags":["%s/bench/img%s:%s"],"platforms":["linux/amd64","linux/arm64"]}' \
                "$sep" "$i" "$i" "$REGISTRY" "$i" "$tag"
            sep=$',\n'
        done
        printf '\n]}\n'
    } >"$plan"
}

# Every image img1..imgN is published under TAG as an index of exactly 2 platforms.
check_published() { # N TAG
    local i count
    for ((i = 1; i <= $1; i++)); do
        count=$(skopeo inspect --tls-verify=false --raw "docker://$REGISTRY/bench/img$i:$2" | jq '.manifests | length') ||
            die "img$i:$2 is not in the registry"
        [ "$count" = 2 ] || die "img$i:$2 has $count platforms, expected 2"
    done
}

coordinator() { COORDINATOR_STATE_DIR=$WORK/state bounded "$COORDINATOR" "$@"; }

# ---------------------------------------------------------------------------------------------------------
# (a) one plan vs 8 sequential builds

log "uptime before: $(uptime)"
FLEET_A=$WORK/fleet4
start_fleet "$FLEET_A" 4 "$MAXJOBS"
warm_fleet "$FLEET_A"
INV_A=$FLEET_A/inventory.json

run_plan() { # ROUND
    local d=$WORK/r$1-plan t0 t1
    mkdir -p "$d"
    write_plan "$d/plan.json" "$IMAGES" "r$1-plan" "$SLEEP"
    t0=$(now)
    coordinator build --hosts "$INV_A" --plan "$d/plan.json" --lock "$WORK/lock" --progress plain \
        --metadata-file "$d/report.json" >"$d/out.log" 2>&1 || die_run "$d/out.log" "plan run round $1"
    t1=$(now)
    check_published "$IMAGES" "r$1-plan"
    elapsed "$t0" "$t1" >>"$WORK/plan.times"
}

run_sequential() { # ROUND
    local d=$WORK/r$1-seq t0 t1 i
    mkdir -p "$d"
    for ((i = 1; i <= IMAGES; i++)); do write_context "$d" "img$i" "$SLEEP"; done
    t0=$(now)
    for ((i = 1; i <= IMAGES; i++)); do
        coordinator build --hosts "$INV_A" --platform linux/amd64,linux/arm64 --lock "$WORK/lock" --progress plain \
            -t "$REGISTRY/bench/img$i:r$1-seq" "$d/img$i" >"$d/out$i.log" 2>&1 ||
            die_run "$d/out$i.log" "sequential build img$i round $1"
    done
    t1=$(now)
    check_published "$IMAGES" "r$1-seq"
    elapsed "$t0" "$t1" >>"$WORK/seq.times"
}

: >"$WORK/plan.times"
: >"$WORK/seq.times"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then run_plan "$r"; run_sequential "$r"; else run_sequential "$r"; run_plan "$r"; fi
    log "round $r: plan $(tail -n 1 "$WORK/plan.times") s, sequential $(tail -n 1 "$WORK/seq.times") s; load $(cut -d' ' -f1-3 /proc/loadavg)"
done
PLAN_S=$(median <"$WORK/plan.times")
SEQ_S=$(median <"$WORK/seq.times")
RATIO=$(awk -v p="$PLAN_S" -v s="$SEQ_S" 'BEGIN { printf "%.2f", p / s }')
"$ROOT/Deploy/test-fleet.sh" stop "$FLEET_A" >/dev/null 2>&1 || true

# ---------------------------------------------------------------------------------------------------------
# (b) peak RSS: 32 hosts, 16 images in one plan

FLEET_B=$WORK/fleet32
start_fleet "$FLEET_B" "$RSS_HOSTS" 1
RSS_DIR=$WORK/rss
mkdir -p "$RSS_DIR"
write_plan "$RSS_DIR/plan.json" "$RSS_IMAGES" rss 1
COORDINATOR_STATE_DIR=$WORK/state bounded /usr/bin/time -v -o "$RSS_DIR/time.txt" "$COORDINATOR" build \
    --hosts "$FLEET_B/inventory.json" --plan "$RSS_DIR/plan.json" --lock "$WORK/lock" --progress plain \
    >"$RSS_DIR/out.log" 2>&1 || die_run "$RSS_DIR/out.log" "32-host plan run"
check_published "$RSS_IMAGES" rss
RSS_KIB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$RSS_DIR/time.txt")
[[ $RSS_KIB =~ ^[0-9]+$ ]] || die "no peak RSS in /usr/bin/time output"
RSS_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$RSS_DIR/time.txt")
RSS_MIB=$(awk -v k="$RSS_KIB" 'BEGIN { printf "%.1f", k / 1024 }')

# ---------------------------------------------------------------------------------------------------------
# Summary

ratio_verdict=$(awk -v r="$RATIO" -v t="$RATIO_TARGET" 'BEGIN { print (r <= t) ? "met" : "MISSED" }')
rss_verdict=$([ "$RSS_KIB" -le "$RSS_TARGET_KIB" ] && echo met || echo MISSED)
echo "nightly: $ROUNDS rounds, $IMAGES images x 2 platforms on 4 hosts (maxJobs $MAXJOBS), RUN sleep $SLEEP"
echo "nightly: plan runs (s):       $(tr '\n' ' ' <"$WORK/plan.times")"
echo "nightly: sequential runs (s): $(tr '\n' ' ' <"$WORK/seq.times")"
echo "nightly: 32-host plan wall $RSS_WALL, peak RSS $RSS_KIB KiB"
echo "nightly: uptime after: $(uptime)"
echo "nightly: plan $PLAN_S s, sequential $SEQ_S s (ratio ${RATIO}x, target <= ${RATIO_TARGET}x: $ratio_verdict);" \
    "peak RSS $RSS_HOSTS hosts x $RSS_IMAGES images: $RSS_MIB MiB (target <= 64 MiB: $rss_verdict)"

# shellcheck shell=bash
# lib-build.sh: what bench/e2e.sh, bench/parallel.sh and bench/rebuild.sh share (sourced, never run).
# A fleet of 2 buildah hosts on loopback (Deploy/test-fleet.sh, x86_64 + simulated aarch64), a local
# docker-registry started by pid, a local buildah storage (vfs, chroot) for the busybox base image and for the
# baseline scripts' `buildah manifest`, timing and medians, and a cleanup that stops only what it started.
#
# The sourcing script sets BENCH_NAME, BENCH_BASE (127.X.Y of its fleet) and BENCH_PORT (registry port)
# before calling bench_setup. Environment knobs: BENCH_RUNS (rounds, default 3), BENCH_TIMEOUT (whole
# script, seconds), BENCH_KEEP=1 (keep the temp folder), BENCH_SKIP_BUILD=1 (use the existing release binary).

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COORDINATOR=$BENCH_ROOT/.build/release/coordinator
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_DIR=''
BENCH_REGISTRY_PID=''
BENCH_WATCHDOG_PID=''
BENCH_FLEET_STARTED=''
REGISTRY=''
BENCH_BASE_IMAGE=''

bench_log() { echo "[$BENCH_NAME $(date +%T)] $*" >&2; }
bench_die() {
    echo "$BENCH_NAME: FAILED: $*" >&2
    exit 1
}

# Seconds since the epoch with microseconds.
bench_now() { echo "$EPOCHREALTIME"; }

# Seconds from START to now, 2 decimals.
bench_since() { # START
    local d=$(((${EPOCHREALTIME/./} - ${1/./}) / 10000))
    printf '%d.%02d' $((d / 100)) $((d % 100))
}

# The median of the numbers given.
bench_median() { # N...
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# A / B, 2 decimals.
bench_ratio() { # A B
    awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) { print "inf"; exit } printf "%.2f", a / b }'
}

# True when A <= B (numbers).
bench_le() { # A B
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'
}

# The 1-minute load average.
bench_load() { cut -d' ' -f1 /proc/loadavg; }

bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$BENCH_WATCHDOG_PID" ]; then kill "$BENCH_WATCHDOG_PID" 2>/dev/null || true; fi
    if [ -n "$BENCH_REGISTRY_PID" ]; then
        kill "$BENCH_REGISTRY_PID" 2>/dev/null || true
        wait "$BENCH_REGISTRY_PID" 2>/dev/null || true
    fi
    if [ -n "$BENCH_FLEET_STARTED" ]; then "$BENCH_ROOT/Deploy/test-fleet.sh" stop "$BENCH_DIR/fleet" --clean >/dev/null 2>&1 || true; fi
    if [ -n "$BENCH_DIR" ] && [ -d "$BENCH_DIR" ]; then
        if [ "${BENCH_KEEP:-}" = 1 ] || [ "$rc" -ne 0 ]; then
            echo "$BENCH_NAME: logs kept in $BENCH_DIR" >&2
            rm -rf "$BENCH_DIR/buildah" "$BENCH_DIR/registry/data"
        else
            rm -rf "$BENCH_DIR"
        fi
    fi
    exit "$rc"
}

# Checks tools, builds the coordinator, starts the fleet, the registry and the watchdog, pushes the base image.
bench_setup() {
    [ "$(id -u)" = 0 ] || bench_die "run as root: the fleet is sshd instances on loopback addresses"
    local tool
    for tool in buildah skopeo docker-registry curl ssh tar awk /bin/busybox; do
        command -v "$tool" >/dev/null || bench_die "$tool is missing (see Deploy/packages.txt; busybox-static for /bin/busybox)"
    done
    trap bench_cleanup EXIT
    trap 'echo "$BENCH_NAME: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR
    trap 'exit 130' INT
    trap 'exit 143' TERM
    BENCH_DIR=$(mktemp -d "/tmp/coordinator-bench-$BENCH_NAME.XXXXXX")
    # The whole script is bounded: the watchdog sends SIGTERM, the trap cleans up.
    # Its sleep dies with it (the trap), so no stray process keeps the script's output open.
    (
        trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
        sleep "${BENCH_TIMEOUT:-1200}" >/dev/null 2>&1 &
        sleeper=$!
        wait "$sleeper"
        echo "$BENCH_NAME: timed out after ${BENCH_TIMEOUT:-1200} s" >&2
        kill -TERM $$
    ) </dev/null >/dev/null &
    BENCH_WATCHDOG_PID=$!

    if [ "${BENCH_SKIP_BUILD:-}" != 1 ] || [ ! -x "$COORDINATOR" ]; then
        bench_log "swift build -c release --product coordinator"
        (cd "$BENCH_ROOT" && PATH=/opt/swift/usr/bin:$PATH timeout 1200 swift build -c release --product coordinator) >"$BENCH_DIR/swift-build.log" 2>&1 ||
            bench_die "swift build failed: $(tail -n 20 "$BENCH_DIR/swift-build.log")"
    fi

    bench_log "fleet: 2 hosts on $BENCH_BASE.1-2 (x86_64, aarch64)"
    BENCH_FLEET_STARTED=1
    "$BENCH_ROOT/Deploy/test-fleet.sh" start "$BENCH_DIR/fleet" 2 --base "$BENCH_BASE" --arch x86_64,aarch64 --engine buildah >/dev/null ||
        bench_die "the fleet did not start (another on $BENCH_BASE? set BENCH_BASE)"
    # shellcheck source=/dev/null
    . "$BENCH_DIR/fleet/fleet.env"

    REGISTRY=127.0.0.1:${BENCH_PORT:?set by the sourcing script}
    if (: <>"/dev/tcp/127.0.0.1/$BENCH_PORT") 2>/dev/null; then bench_die "$REGISTRY is taken (set BENCH_PORT)"; fi
    mkdir -p "$BENCH_DIR/registry/data"
    cat >"$BENCH_DIR/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $BENCH_DIR/registry/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
YAML
    docker-registry serve "$BENCH_DIR/registry/config.yml" >"$BENCH_DIR/registry/registry.log" 2>&1 &
    BENCH_REGISTRY_PID=$!
    local i
    for i in $(seq 100); do
        curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break
        [ "$i" -lt 100 ] || bench_die "the registry did not answer on $REGISTRY"
        sleep 0.1
    done

    # Local buildah (baseline scripts' manifest steps, base image) in a storage of its own.
    mkdir -p "$BENCH_DIR/buildah"
    cat >"$BENCH_DIR/buildah/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$BENCH_DIR/buildah/graph"
runroot = "$BENCH_DIR/buildah/run"
EOF
    echo '{}' >"$BENCH_DIR/buildah/auth.json"
    export CONTAINERS_STORAGE_CONF=$BENCH_DIR/buildah/storage.conf BUILDAH_ISOLATION=chroot
    export REGISTRY_AUTH_FILE=$BENCH_DIR/buildah/auth.json
    bench_push_busybox
}

# REGISTRY/base/busybox:1, an index of linux/amd64 + linux/arm64 holding /bin/busybox (as BuildHarness does).
bench_push_busybox() {
    local root=$BENCH_DIR/busybox-root tool arch c list=localhost/bench-busybox-list
    mkdir -p "$root/bin" "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for tool in sh sleep printf cat echo ls touch uname env test [ head dd md5sum sha256sum wc date; do
        ln -sf busybox "$root/bin/$tool"
    done
    buildah manifest create "$list" >/dev/null
    for arch in amd64 arm64; do
        c=$(buildah from scratch)
        buildah copy "$c" "$root" / >/dev/null
        buildah config --arch "$arch" --os linux --env PATH=/bin "$c"
        buildah commit -q --format oci "$c" "localhost/bench-busybox-$arch" >/dev/null
        buildah rm "$c" >/dev/null
        buildah push -q --tls-verify=false "localhost/bench-busybox-$arch" "docker://$REGISTRY/base/busybox:$arch"
        buildah manifest add --tls-verify=false "$list" "docker://$REGISTRY/base/busybox:$arch" >/dev/null
    done
    buildah manifest push -q --all --tls-verify=false "$list" "docker://$REGISTRY/base/busybox:1"
    BENCH_BASE_IMAGE=$REGISTRY/base/busybox:1
    bench_log "base image $BENCH_BASE_IMAGE pushed"
}

# BENCH_RUNS rounds of `run_one KIND rR` (the sourcing script defines it; it prints seconds); round r runs
# the kinds of ORDER[(r-1) % count], so the order alternates. Times collect in BENCH_TIMES[KIND] (" t1 t2 …").
declare -gA BENCH_TIMES=()
bench_rounds() { # ORDER...
    local orders=("$@") r kind t
    for ((r = 1; r <= BENCH_RUNS; r++)); do
        for kind in ${orders[(r - 1) % ${#orders[@]}]}; do
            t=$(run_one "$kind" "r$r")
            BENCH_TIMES[$kind]="${BENCH_TIMES[$kind]:-} $t"
            bench_log "round $r: $kind $t s (load $(bench_load))"
        done
    done
}

# Runs `coordinator build` for TAG on CONTEXT; its report goes to METADATA, its log to LOG; prints the wall time.
bench_coordinator() { # TAG CONTEXT METADATA LOG [BUILD OPTION...]
    local tag=$1 context=$2 metadata=$3 log=$4 start
    shift 4
    start=$(bench_now)
    # Each log line gets the seconds since the start (where the time goes, when a target is missed).
    if ! timeout 600 "$COORDINATOR" build --hosts "$FLEET_INVENTORY" -t "$tag" --metadata-file "$metadata" \
        --progress plain "$@" "$context" 2>&1 | bench_stamp "$start" >"$log"; then
        bench_die "coordinator build of $tag failed: $(tail -n 15 "$log")"
    fi
    bench_since "$start"
}

# Prefixes each line of stdin with the seconds since START.
bench_stamp() { # START
    local line d
    while IFS= read -r line; do
        d=$(((${EPOCHREALTIME/./} - ${1/./}) / 10000))
        printf '%4d.%02d %s\n' $((d / 100)) $((d % 100)) "$line"
    done
}

# Checks that REF is an index with exactly the platforms given (skopeo as an independent client).
bench_check_index() { # REF PLATFORM...
    local ref=$1 raw got want
    shift
    raw=$(skopeo inspect --tls-verify=false --raw "docker://$ref") || bench_die "$ref is not in the registry"
    got=$(jq -r '.manifests[] | .platform.os + "/" + .platform.architecture' <<<"$raw" | sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    [ "$got" = "$want" ] || bench_die "$ref holds [$got], expected [$want]"
}

# Sum of the report's context bytes sent over every platform.
bench_bytes_sent() { # METADATA
    jq '[.coordinator.platforms[].contextBytesSent] | add' "$1"
}

# Per-step timestamps of a coordinator log (for the record when a target is missed).
bench_steps() { # LOG
    grep -E 'coordinator|building|context|built|publish|index|pushed|STEP|COMMIT|Writing' "$1" | head -n 40 >&2 || true
}

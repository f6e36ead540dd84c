# shellcheck shell=bash
# bench/lib.sh: helpers shared by the benchmark scripts (sourced, not run).
# Provides: logging, medians, timing, the release build, a test fleet that is always stopped on exit.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
readonly BENCH_ROOT
readonly BENCH_FLEET_SCRIPT=$BENCH_ROOT/Deploy/test-fleet.sh
BENCH_BIN=${BENCH_BIN:-$BENCH_ROOT/.build/release}

# This process's own buildah: vfs storage and an empty auth file under DIR, chroot isolation (exported).
bench_local_buildah() { # DIR
    cat >"$1/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$1/graph"
runroot = "$1/run"
CONF
    echo '{"auths":{}}' >"$1/auth.json"
    export CONTAINERS_STORAGE_CONF=$1/storage.conf BUILDAH_ISOLATION=chroot REGISTRY_AUTH_FILE=$1/auth.json
}

bench_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

bench_die() {
    printf 'bench: %s\n' "$*" >&2
    exit 1
}

# Seconds since the epoch with microseconds (no fork).
bench_now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }

# B - A for two bench_now values, 3 decimals.
bench_elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

# The median of the numbers given as arguments (mean of the two middle ones for an even count).
bench_median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# A / B with DIGITS decimals.
bench_ratio() { # A B [DIGITS]
    awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b == 0) print "inf"; else printf "%.*f\n", d, a / b }'
}

# The median of the per-run ratios A[i] / B[i] of two lists given as "A1 A2 ..." "B1 B2 ...": runs measured
# next to each other share the machine's load, so this is steadier than a ratio of medians on a busy machine.
bench_paired_ratio() { # "A..." "B..."
    local a=() b=() i ratios=()
    read -ra a <<<"$1"
    read -ra b <<<"$2"
    for i in "${!a[@]}"; do ratios+=("$(bench_ratio "${a[i]}" "${b[i]}" 3)"); done
    bench_median "${ratios[@]}" | awk '{ printf "%.2f\n", $1 }'
}

# True when A <= B (floating point).
bench_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# The load of the machine, for the report.
bench_load() { uptime | sed 's/^ *//'; }

# Builds the release products the benchmarks run (one `swift build` per product: SwiftPM builds only the
# last of several --product flags). BENCH_NO_BUILD=1 skips this and uses what is in $BENCH_BIN.
bench_build() { # PRODUCT...
    local product
    if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
        command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
        for product in "$@"; do
            bench_log "swift build -c release --product $product"
            (cd "$BENCH_ROOT" && timeout 1800 swift build -c release --product "$product" >&2) ||
                bench_die "release build of $product failed"
        done
    fi
    for product in "$@"; do
        [ -x "$BENCH_BIN/$product" ] || bench_die "$BENCH_BIN/$product is missing"
    done
}

# Fleet handling. bench_fleet_start sets BENCH_FLEET_DIR and sources its fleet.env; the EXIT trap set by
# bench_setup_cleanup stops every fleet started here (test-fleet.sh stops hosts by pid) and removes the
# scratch folder.
BENCH_FLEETS=()
BENCH_SCRATCH=''
BENCH_REMOVE=() # further paths to remove on exit

bench_cleanup() {
    local rc=$? dir
    trap - EXIT INT TERM
    for dir in "${BENCH_FLEETS[@]}"; do
        timeout 60 bash "$BENCH_FLEET_SCRIPT" stop "$dir" --clean >/dev/null 2>&1 ||
            printf 'bench: stopping the fleet in %s failed\n' "$dir" >&2
    done
    [ -z "$BENCH_SCRATCH" ] || rm -rf "$BENCH_SCRATCH"
    [ "${#BENCH_REMOVE[@]}" -eq 0 ] || rm -rf "${BENCH_REMOVE[@]}"
    exit "$rc"
}

# Creates the scratch folder and installs the cleanup trap.
bench_setup_cleanup() {
    BENCH_SCRATCH=$(mktemp -d /tmp/coordinator-bench.XXXXXX)
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Starts a fleet of COUNT hosts in BENCH_SCRATCH/NAME; extra arguments go to test-fleet.sh start.
# Loopback bases 127.230-249.Y stay clear of the tests' 127.20-219.Y; a taken base (exit 3) moves on.
bench_fleet_start() { # NAME COUNT [ARGS...]
    local name=$1 count=$2 attempt base rc=0
    shift 2
    BENCH_FLEET_DIR=$BENCH_SCRATCH/$name
    BENCH_FLEETS+=("$BENCH_FLEET_DIR")
    for attempt in 0 1 2 3 4 5 6 7; do
        base=127.$((230 + ($$ + attempt) % 20)).$((($$ / 20 + attempt * 37) % 250 + 1))
        rc=0
        timeout 120 bash "$BENCH_FLEET_SCRIPT" start "$BENCH_FLEET_DIR" "$count" --base "$base" "$@" >&2 || rc=$?
        [ "$rc" -eq 3 ] || break
    done
    [ "$rc" -eq 0 ] || bench_die "test-fleet.sh start failed (exit $rc)"
    # shellcheck source=/dev/null
    . "$BENCH_FLEET_DIR/fleet.env"
}

# OpenSSH options for a fleet host: the fleet's key and known_hosts, no user config, no multiplexing.
bench_ssh_opts() {
    # shellcheck disable=SC2034 # read by the scripts that source this file
    BENCH_SSH_OPTS=(-F none -i "$FLEET_CLIENT_KEY" -o UserKnownHostsFile="$FLEET_KNOWN_HOSTS"
        -o StrictHostKeyChecking=yes -o BatchMode=yes -o ControlMaster=no -o ControlPath=none
        -o ConnectTimeout=10 -p "$FLEET_PORT")
}

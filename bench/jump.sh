#!/usr/bin/env bash
# bench/jump.sh — context upload through a bastion vs direct to the same host, in one run.
# Two loopback fleet hosts (Deploy/test-fleet.sh): h2 is the target, h1 the bastion. The same tree
# (SIZE_MIB of incompressible data in 64 files, --compression none so the wire carries all of it) is uploaded
# RUNS times each way, alternating; prints median seconds and MB/s of each path and the ratio jump/direct
# (target: ≥ 0.5×). Usage: bench/jump.sh [RUNS] [SIZE_MIB]   (defaults 5, 256)
# BENCH=path uses that coordinator-bench binary instead of building a release one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-5}
SIZE=${2:-256}
export PATH=/opt/swift/usr/bin:$PATH
if [ -z "${BENCH:-}" ]; then
  (cd "$ROOT" && swift build -c release --product coordinator-bench >/dev/null)
  BENCH=$(cd "$ROOT" && swift build -c release --show-bin-path)/coordinator-bench
fi

WORK=$(mktemp -d /tmp/bench-jump.XXXXXX)
FLEET=$WORK/fleet
cleanup() {
  bash "$ROOT/Deploy/test-fleet.sh" stop "$FLEET" --clean >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

started=
for attempt in 0 1 2 3 4 5; do
  base=127.$((60 + attempt)).$(($$ % 200 + 1))
  if bash "$ROOT/Deploy/test-fleet.sh" start "$FLEET" 2 --base "$base" >/dev/null 2>"$WORK/fleet.err"; then started=1; break; fi
  [ $? -eq 3 ] || break
done
[ -n "$started" ] || { cat "$WORK/fleet.err" >&2; exit 1; }
# shellcheck source=/dev/null
. "$FLEET/fleet.env"

mkdir -p "$WORK/src"
for i in $(seq 64); do head -c $((SIZE * 1024 * 16)) /dev/urandom >"$WORK/src/f$i"; done

common=(--port "$FLEET_PORT" --user root --key "$FLEET_CLIENT_KEY" --known-hosts "$FLEET_KNOWN_HOSTS" --compression none)
declare -a direct jump
for run in $(seq "$RUNS"); do
  for mode in direct jump; do
    extra=()
    [ "$mode" = jump ] && extra=(--jump "root@$FLEET_H1_ADDRESS:$FLEET_PORT")
    dest=$FLEET_H2_WORKDIR/bench-$mode-$run
    out=$("$BENCH" upload --address "$FLEET_H2_ADDRESS" "${common[@]}" "${extra[@]}" "$WORK/src" "$dest")
    secs=$(sed -E 's/.*"seconds": ([0-9.e+-]+).*/\1/' <<<"$out")
    if [ "$mode" = direct ]; then direct+=("$secs"); else jump+=("$secs"); fi
    rm -rf "$dest"
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
d=$(median "${direct[@]}")
j=$(median "${jump[@]}")
awk -v d="$d" -v j="$j" -v mib="$SIZE" -v runs="$RUNS" 'BEGIN {
  mb = mib * 1048576 / 1e6
  printf "upload %d MiB, %d runs each, medians (libssh2, no compression):\n", mib, runs
  printf "  direct to h2:        %6.2f s  %7.1f MB/s\n", d, mb / d
  printf "  through bastion h1:  %6.2f s  %7.1f MB/s\n", j, mb / j
  printf "  ratio jump/direct:   %.2fx (target >= 0.5x)\n", d / j
}'

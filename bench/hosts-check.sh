#!/usr/bin/env bash
# bench/hosts-check.sh: `coordinator hosts check` of 32 fleet hosts vs OpenSSH running the same probe on the
# same 32 hosts in parallel, measured in one run.
#
#   bench/hosts-check.sh [--runs N] [--hosts COUNT]
#
# Fleet: COUNT (default 32) sshd hosts, archs alternating x86_64/aarch64, buildah engine.
# Baseline: one `ssh HOST PROBE &` per host, then `wait`. PROBE is Preflight.probeScript for buildah (arch,
#           engine version, free disk of workDir, QEMU handlers in binfmt_misc), OpenSSH defaults.
# Ours:     coordinator hosts check --hosts inventory.json --format json (probe + one `true` round trip per
#           host), and the same on a 1-host inventory. Peak RSS from /usr/bin/time.
# Runs alternate baseline/ours; medians of wall-clock seconds.
# Exit status: 0 measured (whether or not a target is met), 1 a run failed, 2 usage.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=5
COUNT=32
while [ "$#" -gt 0 ]; do
    case $1 in
        --runs) [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || { echo "usage: --runs 1..99" >&2; exit 2; }; RUNS=$2; shift 2 ;;
        --hosts)
            if ! [[ ${2:-} =~ ^[1-9][0-9]{0,2}$ ]] || [ "$2" -gt 200 ]; then echo "usage: --hosts 1..200" >&2; exit 2; fi
            COUNT=$2; shift 2 ;;
        -h | --help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
readonly RUN_TIMEOUT=120

[ -x /usr/bin/time ] || bench_die "/usr/bin/time is missing (apt-get install time)"

bench_setup_cleanup
bench_build coordinator
bench_fleet_start check "$COUNT" --arch x86_64,aarch64
bench_ssh_opts
COORDINATOR=$BENCH_BIN/coordinator
INVENTORY=$FLEET_INVENTORY

# A 1-host inventory: the fleet's inventory with only its first host.
ONE=$BENCH_SCRATCH/inventory-1.json
awk '/^    \{ "name"/ { if (seen++) next; sub(/,$/, "") } { print }' "$INVENTORY" >"$ONE"
if ! grep -q '"name": "h1"' "$ONE" || grep -q '"name": "h2"' "$ONE"; then bench_die "could not derive a 1-host inventory"; fi

# Preflight.probeScript(for:) for a buildah host with workDir DIR (keep in step with Sources/Build/Preflight.swift).
probe() { # WORKDIR
    cat <<EOF
echo "arch=\$(uname -m)"
if v=\$(buildah --version 2>&1); then echo "engine=\$v"; else echo "engine-error=\$(echo "\$v" | head -n 1)"; fi
d='$1'; while [ ! -d "\$d" ]; do d=\$(dirname "\$d"); done
echo "disk=\$(df -Pk "\$d" | awk 'NR==2 {print \$4}')"
for f in /proc/sys/fs/binfmt_misc/*; do
  case "\${f##*/}" in status|register|'*') continue ;; esac
  [ -f "\$f" ] && grep -q '^enabled' "\$f" && grep -qi '^interpreter .*qemu' "\$f" && echo "binfmt=\${f##*/}"
done
exit 0
EOF
}

# The hosts' addresses and probes, once.
ADDRESSES=()
PROBES=()
for name in $FLEET_HOSTS; do
    upper=${name^^}
    address_var=FLEET_${upper}_ADDRESS workdir_var=FLEET_${upper}_WORKDIR
    ADDRESSES+=("${!address_var}")
    PROBES+=("$(probe "${!workdir_var}")")
done

# One baseline run over the first N hosts; prints seconds. Every ssh must succeed and report its arch.
run_openssh() { # N
    local n start end pids=() i failed=0
    start=$(bench_now)
    for ((i = 0; i < $1; i++)); do
        timeout "$RUN_TIMEOUT" ssh "${BENCH_SSH_OPTS[@]}" "root@${ADDRESSES[i]}" "${PROBES[i]}" \
            >"$BENCH_SCRATCH/openssh-$i.out" 2>&1 &
        pids+=("$!")
    done
    for n in "${pids[@]}"; do wait "$n" || failed=$((failed + 1)); done
    end=$(bench_now)
    [ "$failed" -eq 0 ] || bench_die "OpenSSH baseline: $failed of $1 ssh runs failed ($(head -c 300 "$BENCH_SCRATCH/openssh-0.out"))"
    for ((i = 0; i < $1; i++)); do
        grep -q '^arch=' "$BENCH_SCRATCH/openssh-$i.out" || bench_die "OpenSSH baseline: host $i printed no arch"
    done
    bench_elapsed "$start" "$end"
}

# One coordinator run on INVENTORY expecting N usable hosts; prints "seconds peak-rss-kib".
run_coordinator() { # INVENTORY N
    local start end rss usable
    start=$(bench_now)
    timeout "$RUN_TIMEOUT" /usr/bin/time -f '%M' -o "$BENCH_SCRATCH/time.out" \
        "$COORDINATOR" hosts check --hosts "$1" --format json >"$BENCH_SCRATCH/check.json" ||
        bench_die "coordinator hosts check failed (exit $?): $(head -c 600 "$BENCH_SCRATCH/check.json")"
    end=$(bench_now)
    usable=$(sed -n 's/^ *"usable" *: *\([0-9]*\).*/\1/p' "$BENCH_SCRATCH/check.json")
    [ "$usable" = "$2" ] || bench_die "coordinator hosts check: $usable of $2 hosts usable"
    rss=$(tail -n 1 "$BENCH_SCRATCH/time.out")
    printf '%s %s\n' "$(bench_elapsed "$start" "$end")" "$rss"
}

load_before=$(bench_load)
ours=() ours_one=() theirs=() theirs_one=() rss=()
bench_log "warm-up: one run of each"
run_openssh "$COUNT" >/dev/null
run_coordinator "$INVENTORY" "$COUNT" >/dev/null
for ((run = 1; run <= RUNS; run++)); do
    if ((run % 2)); then
        theirs+=("$(run_openssh "$COUNT")")
        read -r t r < <(run_coordinator "$INVENTORY" "$COUNT")
    else
        read -r t r < <(run_coordinator "$INVENTORY" "$COUNT")
        theirs+=("$(run_openssh "$COUNT")")
    fi
    ours+=("$t")
    rss+=("$r")
    read -r t r < <(run_coordinator "$ONE" 1)
    ours_one+=("$t")
    rss+=("$r")
    theirs_one+=("$(run_openssh 1)")
    bench_log "run $run: $COUNT hosts OpenSSH ${theirs[-1]} s, coordinator ${ours[-1]} s; 1 host OpenSSH ${theirs_one[-1]} s, coordinator ${ours_one[-1]} s"
done

t_ours=$(bench_median "${ours[@]}")
t_theirs=$(bench_median "${theirs[@]}")
t_one=$(bench_median "${ours_one[@]}")
t_theirs_one=$(bench_median "${theirs_one[@]}")
ratio=$(bench_ratio "$t_ours" "$t_theirs")
paired=$(bench_paired_ratio "${ours[*]}" "${theirs[*]}")
scale=$(bench_ratio "$t_ours" "$t_one" 1)
peak_kib=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n 1)
peak_mib=$(awk -v k="$peak_kib" 'BEGIN { printf "%.1f\n", k / 1024 }')
verdict=met
bench_le "$ratio" 0.5 || verdict=MISSED
rss_verdict=met
bench_le "$peak_mib" 64 || rss_verdict=MISSED

echo
echo "== bench/hosts-check.sh: $RUNS runs, medians; fleet of $COUNT hosts ($FLEET_BASE.1-$COUNT:$FLEET_PORT)"
echo "hosts check $COUNT hosts: coordinator ${t_ours} s, OpenSSH ${t_theirs} s, ratio ${ratio}x (target <= 0.5x, $verdict); median of per-run ratios ${paired}x"
echo "hosts check 1 host: coordinator ${t_one} s, OpenSSH ${t_theirs_one} s; coordinator $COUNT-host/1-host ${scale}x"
echo "coordinator peak RSS ${peak_mib} MiB (target <= 64 MiB, $rss_verdict)"
echo "  runs (s) coordinator $COUNT: ${ours[*]}; OpenSSH $COUNT: ${theirs[*]}"
echo "  runs (s) coordinator 1: ${ours_one[*]}; OpenSSH 1: ${theirs_one[*]}"
echo "load before: $load_before"
echo "load after:  $(bench_load)"

#!/usr/bin/env bash
# test-fleet.sh: a fleet of build "hosts" on one machine, one sshd per loopback address (DESIGN.md §8).
# Every test, the demo and the benchmarks use it. Run as root; nothing leaves 127.0.0.0/8.
#
#   start DIR COUNT [--base 127.0.1] [--port 2222] [--arch ARCH[,ARCH...]] [--engine buildah|podman|docker]
#   stop DIR [--clean]          kill every host's sshd and sessions; --clean also removes DIR
#   kill DIR hN                 kill -9 the host's sshd and sessions (host died)
#   freeze DIR hN / thaw DIR hN kill -STOP / -CONT the host's sshd and sessions (host hangs / recovers)
#   restart DIR hN              stop the host and start it again (same keys, same address)
#   status DIR                  one line per host: name address:port arch state pid process-count
#
# With --engine docker every host also gets its own Docker daemon (Debian's docker.io, DESIGN.md §8): vfs storage,
# no iptables, no bridge, data in hN/docker/, exec-root and socket in hN/dx/ (or, when that path would be too
# long for a unix socket, in /run/coordinator-fleet/HASH/), and DOCKER_HOST in that host's SetEnv. stop, kill
# and restart stop it by the pid in its pidfile as well; restart starts it again.
#
# Exit status: 0 done, 1 failed, 2 usage, 3 an address:port of the fleet is already taken (pick another base).
#
# A host's processes are its listener (the pid in its PidFile, if that process is still the sshd of its
# config) and every process carrying COORDINATOR_FLEET_HOSTDIR=DIR/hosts/hN in its environment (each session
# gets it through SetEnv; sshd itself overwrites its environment with its process title), plus all their
# descendants: a session process that was reparented is still found.
set -euo pipefail

SSHD=${SSHD:-/usr/sbin/sshd}
DOCKERD=${DOCKERD:-dockerd}
readonly MARKER=COORDINATOR_FLEET_HOSTDIR
# What dockerd's containerd appends to a host's DOCKER_RUN for its longest socket path
# ("/exec/containerd/containerd-debug.sock", 38 bytes, and some slack); unix socket paths are limited to 107 bytes.
readonly EXEC_ROOT_TAIL=40

usage() {
    sed -n '5,10s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

fail() { # CODE MESSAGE...
    local code=$1
    shift
    echo "test-fleet: $*" >&2
    exit "$code"
}

in_range() { # VALUE MIN MAX: VALUE is a decimal number within MIN...MAX
    [[ $1 =~ ^[0-9]{1,6}$ ]] || return 1
    [ "$((10#$1))" -ge "$2" ] && [ "$((10#$1))" -le "$3" ]
}

# ---------------------------------------------------------------------------------------------------------
# Processes

# True when PID exists and is not a zombie (an unreaped zombie still answers kill -0).
alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# The pid of the listening sshd of HOSTDIR, if it runs (its process title names its config).
listener_pid() { # HOSTDIR
    local pid words=()
    read -r pid 2>/dev/null <"$1/sshd.pid" || return 0
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 0
    mapfile -d '' words 2>/dev/null <"/proc/$pid/cmdline" || return 0
    if [[ " ${words[*]} " == *" -f $1/sshd_config "* ]]; then echo "$pid"; fi
}

# Pids (one a line) of every live process of the given host folders.
host_pids() { # HOSTDIR...
    local patterns=() dir roots
    for dir in "$@"; do patterns+=(-e "$MARKER=$dir"); done
    roots=$(grep -lsxFz "${patterns[@]}" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 | tr '\n' ' ') || true
    roots="$roots $(for dir in "$@"; do listener_pid "$dir"; done | tr '\n' ' ')"
    [ -n "${roots// /}" ] || return 0
    ps -e -o pid=,ppid=,stat= | awk -v roots="$roots" -v self="$$" '
        { kids[$2] = kids[$2] " " $1; state[$1] = $3 }
        END {
            n = split(roots, queue, " ")
            for (i = 1; i <= n; i++) seen[queue[i]] = 1
            for (i = 1; i <= n; i++) {
                m = split(kids[queue[i]], k, " ")
                for (j = 1; j <= m; j++) if (!(k[j] in seen)) { seen[k[j]] = 1; queue[++n] = k[j] }
            }
            for (p in seen) if (p != self && (p in state) && state[p] !~ /^Z/) print p
        }'
}

# Sends SIG to every process of the host folders until a listing finds none it has not signalled yet
# (a process may fork between the listing and the signal).
signal_hosts() { # SIG HOSTDIR...
    local sig=$1 round pid new
    shift
    local -A sent=()
    for ((round = 0; round < 8; round++)); do
        new=()
        while read -r pid; do
            if [ -z "${sent[$pid]:-}" ]; then
                new+=("$pid")
                sent[$pid]=1
            fi
        done < <(host_pids "$@")
        [ "${#new[@]}" -gt 0 ] || return 0
        kill "-$sig" "${new[@]}" 2>/dev/null || true
    done
}

# Waits until no process of the host folders is left; true if that happened within SECONDS.
wait_gone() { # SECONDS HOSTDIR...
    local deadline=$((SECONDS + $1))
    shift
    while [ -n "$(host_pids "$@")" ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# Stops hosts for good: thaw (a stopped process ignores TERM), their Docker daemons (by pid, so that each
# shuts its containerd down), TERM, then KILL what is left.
stop_hosts() { # HOSTDIR...
    [ "$#" -gt 0 ] || return 0
    signal_hosts CONT "$@"
    stop_dockerds "$@"
    signal_hosts TERM "$@"
    wait_gone 2 "$@" && { unmount_dockers "$@"; return 0; }
    signal_hosts KILL "$@"
    wait_gone 5 "$@" || fail 1 "processes of the fleet survived SIGKILL: $(host_pids "$@" | tr '\n' ' ')"
    unmount_dockers "$@"
}

# ---------------------------------------------------------------------------------------------------------
# Docker daemons (--engine docker)

# Sets DOCKER_DATA DOCKER_RUN DOCKER_SOCK DOCKER_PIDFILE for HOSTDIR, or returns 1 if it has no daemon.
docker_paths() { # HOSTDIR
    DOCKER_RUN=''
    [ -f "$1/docker.env" ] || return 1
    # shellcheck source=/dev/null
    . "$1/docker.env"
    [ -n "$DOCKER_RUN" ]
}

# The pid of HOSTDIR's dockerd, if it runs (its command line names its pidfile).
dockerd_pid() { # HOSTDIR
    local pid words=()
    docker_paths "$1" || return 0
    read -r pid 2>/dev/null <"$DOCKER_PIDFILE" || return 0
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 0
    mapfile -d '' words 2>/dev/null <"/proc/$pid/cmdline" || return 0
    if [[ " ${words[*]} " == *" --pidfile $DOCKER_PIDFILE "* ]]; then echo "$pid"; fi
}

# Writes HOSTDIR/docker.env: where the host's daemon keeps its data, its exec-root and its socket.
setup_docker() { # HOSTDIR
    local h=$1 run=$1/dx
    if [ "$((${#run} + EXEC_ROOT_TAIL))" -gt 107 ]; then
        run=/run/coordinator-fleet/$(printf '%s' "$h" | sha256sum | cut -c1-16)
    fi
    mkdir -p "$h/docker/data" "$run/exec"
    write_file "$h/docker.env" <<EOF
DOCKER_DATA='$h/docker/data'
DOCKER_RUN='$run'
DOCKER_SOCK='$run/docker.sock'
DOCKER_PIDFILE='$h/docker/dockerd.pid'
EOF
}

# Starts HOSTDIR's dockerd in a session of its own, marked as a process of the host (so that kill, freeze and
# status see it and its containerd), and appends its pid to `daemons`. Its log goes to HOSTDIR/dockerd.log.
launch_dockerd() { # HOSTDIR
    docker_paths "$1" || return 0
    [ -z "$(dockerd_pid "$1")" ] || fail 1 "dockerd of $1 is already running"
    # Pid files left by a daemon that was killed: its pid may still exist for a moment as an unreaped zombie,
    # which dockerd would take for a running daemon.
    rm -f "$DOCKER_SOCK" "$DOCKER_PIDFILE" "$DOCKER_RUN/exec/containerd/containerd.pid"
    env "$MARKER=$1" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        setsid "$DOCKERD" --storage-driver vfs --iptables=false --ip6tables=false --bridge=none \
        --data-root "$DOCKER_DATA" --exec-root "$DOCKER_RUN/exec" -H "unix://$DOCKER_SOCK" \
        --pidfile "$DOCKER_PIDFILE" </dev/null >/dev/null 2>>"$1/dockerd.log" &
    daemons+=("$!")
}

# Waits until the dockerd launched as PID answers /_ping on its socket.
wait_dockerd() { # HOSTDIR PID DEADLINE
    docker_paths "$1" || return 0
    until curl -sf --max-time 2 --unix-socket "$DOCKER_SOCK" http://docker/_ping >/dev/null 2>&1; do
        alive "$2" || fail 1 "dockerd of $1 exited: $(tail -n 5 "$1/dockerd.log" 2>/dev/null)"
        [ "$SECONDS" -lt "$3" ] || fail 1 "dockerd of $1 did not answer on $DOCKER_SOCK"
        sleep 0.1
    done
}

# Stops the Docker daemons of the host folders by their pids: TERM, up to 15 s to shut down, then KILL.
stop_dockerds() { # HOSTDIR...
    local h pid pids=() deadline=$((SECONDS + 15))
    for h in "$@"; do
        pid=$(dockerd_pid "$h")
        [ -z "$pid" ] || pids+=("$pid")
    done
    [ "${#pids[@]}" -gt 0 ] || return 0
    kill -CONT "${pids[@]}" 2>/dev/null || true
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do
        while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        ! alive "$pid" || kill -KILL "$pid" 2>/dev/null || true
    done
}

# kill -9 the Docker daemons of the host folders by their pids (the rest goes with the host's processes).
kill_dockerds() { # HOSTDIR...
    local h pid
    for h in "$@"; do
        pid=$(dockerd_pid "$h")
        [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    done
}

# Unmounts what a killed dockerd left mounted under its host's folders (it bind-mounts its data-root onto itself
# and unmounts that only when it shuts down cleanly), deepest first.
unmount_dockers() { # HOSTDIR...
    local h m
    for h in "$@"; do
        docker_paths "$h" || continue
        awk -v a="$h/" -v b="$DOCKER_RUN/" 'index($5 "/", a) == 1 || index($5 "/", b) == 1 { print $5 }' \
            /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    done
}

# Removes the short exec-roots outside the fleet folder (/run/coordinator-fleet/HASH).
remove_docker_runs() { # HOSTDIR...
    local h
    for h in "$@"; do
        if docker_paths "$h" && [[ $DOCKER_RUN == /run/coordinator-fleet/* ]]; then rm -rf "$DOCKER_RUN"; fi
    done
}

# ---------------------------------------------------------------------------------------------------------
# Folders and files

# The absolute fleet folder. The characters are restricted so that sshd_config, JSON and shell need no quoting.
fleet_dir() { # DIR
    local dir
    mkdir -p "$1"
    dir=$(cd "$1" && pwd -P)
    [[ $dir =~ ^[A-Za-z0-9._/+@,=-]+$ ]] || fail 2 "DIR must be a path of letters, digits and ._/+@,=- only: $dir"
    printf '%s\n' "$dir"
}

existing_fleet_dir() { # DIR
    [ -d "$1/hosts" ] || fail 1 "no fleet in $1"
    (cd "$1" && pwd -P)
}

# The host folders h1, h2, ... in order.
host_dirs() { # FLEETDIR
    local n
    for ((n = 1; n <= 254; n++)); do
        [ -f "$1/hosts/h$n/sshd_config" ] || return 0
        printf '%s\n' "$1/hosts/h$n"
    done
}

host_dir() { # FLEETDIR NAME
    if ! [[ $2 =~ ^h[0-9]+$ ]] || ! [ -f "$1/hosts/$2/sshd_config" ]; then fail 2 "no host $2 in $1"; fi
    printf '%s\n' "$1/hosts/$2"
}

# The platform an inventory lists for a simulated `uname -m`.
platform_of() {
    case $1 in
        x86_64) echo linux/amd64 ;;
        aarch64) echo linux/arm64 ;;
        armv7l) echo linux/arm/v7 ;;
    esac
}

normalise_arch() {
    case $1 in
        x86_64 | amd64) echo x86_64 ;;
        aarch64 | arm64) echo aarch64 ;;
        armv7l | armhf | arm) echo armv7l ;;
        *) fail 2 "unknown arch '$1' (x86_64, aarch64, armv7l)" ;;
    esac
}

# Writes standard input to FILE.
write_file() { # FILE
    local content
    IFS= read -r -d '' content || true
    printf '%s' "$content" >"$1"
}

# Everything host NAME needs, written into HOSTDIR: keys, config, PATH shim, storage, home, workDir, and for
# ENGINE docker the daemon's folders.
setup_host() { # FLEETDIR NAME ADDRESS PORT ARCH ENGINE
    local fleet=$1 name=$2 address=$3 port=$4 arch=$5 engine=$6
    local h=$fleet/hosts/$name type platform docker_env=''
    platform=$(platform_of "$arch")
    if [ "$engine" = docker ]; then
        setup_docker "$h"
        docker_paths "$h"
        docker_env=" DOCKER_HOST=unix://$DOCKER_SOCK"
    fi
    mkdir -p "$h/bin" "$h/home" "$h/work" "$h/tmp" "$h/storage/graph" "$h/storage/run" "$h/storage/libpod"
    for type in ed25519 ecdsa; do
        [ -f "$h/ssh_host_${type}_key" ] ||
            ssh-keygen -q -t "$type" -N '' -C "$name" -f "$h/ssh_host_${type}_key" </dev/null >/dev/null
    done
    write_file "$h/authorized_keys" <"$fleet/client/id_ed25519.pub"

    write_file "$h/bin/uname" <<EOF
#!/bin/sh
# Simulated machine of fleet host $name; every other question goes to the real uname.
case "\$*" in
    -m | --machine | -p | --processor | -i | --hardware-platform) echo $arch ;;
    *) exec /usr/bin/uname "\$@" ;;
esac
EOF
    printf '#!/bin/sh\necho %s\n' "$arch" >"$h/bin/arch"
    chmod 755 "$h/bin/uname" "$h/bin/arch"

    write_file "$h/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$h/storage/graph"
runroot = "$h/storage/run"
EOF
    write_file "$h/containers.conf" <<EOF
[engine]
tmp_dir = "$h/storage/libpod"
events_logger = "file"
EOF

    write_file "$h/sshd_config" <<EOF
# Fleet host $name: $address:$port, simulated $arch. Generated by test-fleet.sh.
ListenAddress $address:$port
HostKey $h/ssh_host_ed25519_key
HostKey $h/ssh_host_ecdsa_key
PidFile $h/sshd.pid
AuthorizedKeysFile $h/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel ERROR
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 64
MaxSessions 64
Subsystem sftp internal-sftp
SetEnv PATH=$h/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=$h/home TMPDIR=$h/tmp CONTAINERS_STORAGE_CONF=$h/storage.conf CONTAINERS_CONF=$h/containers.conf BUILDAH_ISOLATION=chroot COORDINATOR_FLEET_HOST=$name $MARKER=$h$docker_env
EOF

    write_file "$h/host.env" <<EOF
NAME='$name'
ADDRESS='$address'
PORT='$port'
ARCH='$arch'
PLATFORM='$platform'
DIR='$h'
WORKDIR='$h/work'
EOF
}

# Sets NAME ADDRESS PORT ARCH PLATFORM WORKDIR from HOSTDIR/host.env.
load_host() { # HOSTDIR
    NAME='' ADDRESS='' PORT='' ARCH='' PLATFORM='' WORKDIR=''
    # shellcheck source=/dev/null
    . "$1/host.env"
}

# Launches the sshd of HOSTDIR in a session of its own and appends its pid to `launched`.
# Its log goes to HOSTDIR/sshd.log.
launch() { # HOSTDIR
    rm -f "$1/sshd.pid"
    setsid "$SSHD" -D -e -f "$1/sshd_config" </dev/null >/dev/null 2>>"$1/sshd.log" &
    launched+=("$!")
}

# Waits until the sshd launched as PID has written its PidFile (sshd does that once it listens), then
# checks that ADDRESS:PORT accepts TCP. Exit 3 when the address was taken.
wait_listening() { # HOSTDIR PID ADDRESS PORT DEADLINE
    until [ -s "$1/sshd.pid" ]; do
        if ! alive "$2"; then
            grep -q 'Address already in use' "$1/sshd.log" 2>/dev/null &&
                fail 3 "$3:$4 is already in use"
            fail 1 "sshd of $1 exited: $(tail -n 5 "$1/sshd.log" 2>/dev/null)"
        fi
        [ "$SECONDS" -lt "$5" ] || fail 1 "sshd of $1 did not start listening on $3:$4"
        sleep 0.01
    done
    (: <>"/dev/tcp/$3/$4") 2>/dev/null || fail 1 "sshd of $1 does not accept connections on $3:$4"
}

write_inventory() { # FLEETDIR PORT ENGINE HOSTDIR...
    local fleet=$1 port=$2 engine=$3 sep='' h
    shift 3
    {
        printf '{\n  "defaults": { "user": "root", "port": %s, "identityFile": "%s", "knownHosts": "%s",\n' \
            "$port" "$fleet/client/id_ed25519" "$fleet/known_hosts"
        printf '                "hostKeyPolicy": "yes", "engine": "%s" },\n  "hosts": [\n' "$engine"
        for h in "$@"; do
            (load_host "$h" && printf '%s    { "name": "%s", "address": "%s", "platforms": ["%s"], "workDir": "%s" }' \
                "$sep" "$NAME" "$ADDRESS" "$PLATFORM" "$WORKDIR")
            sep=$',\n'
        done
        printf '\n  ]\n}\n'
    } >"$fleet/inventory.json.tmp"
    mv "$fleet/inventory.json.tmp" "$fleet/inventory.json"
}

write_env() { # FLEETDIR COUNT BASE PORT ENGINE HOSTDIR...
    local fleet=$1 count=$2 base=$3 port=$4 engine=$5 names='' h name key value
    shift 5
    {
        echo "# Fleet in $fleet, generated by test-fleet.sh; source it from any POSIX shell."
        printf "FLEET_DIR='%s'\nFLEET_COUNT='%s'\nFLEET_BASE='%s'\nFLEET_PORT='%s'\nFLEET_ENGINE='%s'\n" \
            "$fleet" "$count" "$base" "$port" "$engine"
        printf "FLEET_CLIENT_KEY='%s'\nFLEET_KNOWN_HOSTS='%s'\nFLEET_INVENTORY='%s'\n" \
            "$fleet/client/id_ed25519" "$fleet/known_hosts" "$fleet/inventory.json"
        for h in "$@"; do
            names="$names${names:+ }${h##*/}"
            while IFS='=' read -r key value; do
                name=${h##*/}
                echo "FLEET_${name^^}_$key=$value"
            done <"$h/host.env"
        done
        echo "FLEET_HOSTS='$names'"
    } >"$fleet/fleet.env.tmp"
    mv "$fleet/fleet.env.tmp" "$fleet/fleet.env"
}

# ---------------------------------------------------------------------------------------------------------
# Commands

cmd_start() {
    [ "$#" -ge 2 ] || usage
    local dir=$1 count=$2 base=127.0.1 port=2222 archs=x86_64 engine=buildah
    shift 2
    while [ "$#" -gt 0 ]; do
        [ "$#" -ge 2 ] || usage
        case $1 in
            --base) base=$2 ;;
            --port) port=$2 ;;
            --arch) archs=$2 ;;
            --engine) engine=$2 ;;
            *) usage ;;
        esac
        shift 2
    done
    in_range "$count" 1 254 || fail 2 "COUNT must be 1...254"
    local octets=()
    IFS=. read -ra octets <<<"$base."
    if [ "${#octets[@]}" -ne 3 ] || [ "${octets[0]}" != 127 ] || ! in_range "${octets[1]}" 0 255 ||
        ! in_range "${octets[2]}" 0 255; then fail 2 "--base must be 127.X.Y: $base"; fi
    in_range "$port" 1 65535 || fail 2 "--port must be 1...65535"
    case $engine in buildah | podman | docker) ;; *) fail 2 "--engine must be buildah, podman or docker" ;; esac
    local arch_list=() a
    IFS=',' read -ra arch_list <<<"$archs"
    [ "${#arch_list[@]}" -gt 0 ] || fail 2 "--arch needs at least one arch"
    for a in "${!arch_list[@]}"; do arch_list[a]=$(normalise_arch "${arch_list[a]}"); done
    [ -x "$SSHD" ] || fail 1 "$SSHD is missing (apt-get install openssh-server)"
    if [ "$engine" = docker ]; then
        command -v "$DOCKERD" >/dev/null || fail 1 "$DOCKERD is missing (apt-get install docker.io)"
        command -v curl >/dev/null || fail 1 "curl is missing (apt-get install curl)"
    fi
    command -v ssh-keygen >/dev/null || fail 1 "ssh-keygen is missing (apt-get install openssh-client)"

    local fleet
    fleet=$(fleet_dir "$dir")
    # A fleet left running in DIR is stopped first, so that `start` can be repeated.
    local old
    mapfile -t old < <(host_dirs "$fleet")
    stop_hosts "${old[@]}"
    remove_docker_runs "${old[@]}"
    rm -rf "$fleet/hosts" "$fleet/inventory.json" "$fleet/fleet.env" "$fleet/known_hosts"
    mkdir -p "$fleet/client" "$fleet/hosts" /run/sshd
    chmod 700 "$fleet/client"
    [ -f "$fleet/client/id_ed25519" ] ||
        ssh-keygen -q -t ed25519 -N '' -C coordinator-test-fleet -f "$fleet/client/id_ed25519" </dev/null >/dev/null

    local n address jobs=() job
    hosts=()
    for ((n = 1; n <= count; n++)); do
        address=$base.$n
        hosts+=("$fleet/hosts/h$n")
        setup_host "$fleet" "h$n" "$address" "$port" "${arch_list[(n - 1) % ${#arch_list[@]}]}" "$engine" &
        jobs+=($!)
    done
    for job in "${jobs[@]}"; do wait "$job" || fail 1 "setting up a host failed"; done

    # If anything below fails, the hosts already launched are stopped again.
    launched=() daemons=()
    trap 'kill -9 "${launched[@]}" "${daemons[@]}" 2>/dev/null || true; stop_hosts "${hosts[@]}"; remove_docker_runs "${hosts[@]}"' EXIT
    local h deadline=$((SECONDS + 15))
    for h in "${hosts[@]}"; do launch "$h"; done
    if [ "$engine" = docker ]; then for h in "${hosts[@]}"; do launch_dockerd "$h"; done; fi
    for n in "${!hosts[@]}"; do
        wait_listening "${hosts[n]}" "${launched[n]}" "$base.$((n + 1))" "$port" "$deadline"
    done
    deadline=$((SECONDS + 60))
    for n in "${!daemons[@]}"; do wait_dockerd "${hosts[n]}" "${daemons[n]}" "$deadline"; done

    local type algorithm key name
    for n in "${!hosts[@]}"; do
        # known_hosts names a host on a port other than 22 as [address]:port.
        name="[$base.$((n + 1))]:$port"
        [ "$port" != 22 ] || name=$base.$((n + 1))
        for type in ed25519 ecdsa; do
            read -r algorithm key _ <"${hosts[n]}/ssh_host_${type}_key.pub"
            printf '%s %s %s\n' "$name" "$algorithm" "$key"
        done
    done >"$fleet/known_hosts"
    write_inventory "$fleet" "$port" "$engine" "${hosts[@]}"
    write_env "$fleet" "$count" "$base" "$port" "$engine" "${hosts[@]}"
    trap - EXIT
    echo "test-fleet: $count hosts on $base.1-$base.$count port $port; inventory $fleet/inventory.json"
}

cmd_stop() {
    in_range "$#" 1 2 || usage
    local clean=${2:-}
    [ -z "$clean" ] || [ "$clean" = --clean ] || usage
    [ -d "$1" ] || { [ -n "$clean" ] && return 0; fail 1 "no fleet in $1"; }
    local fleet hosts
    fleet=$(cd "$1" && pwd -P)
    mapfile -t hosts < <(host_dirs "$fleet")
    stop_hosts "${hosts[@]}"
    [ -z "$clean" ] || { remove_docker_runs "${hosts[@]}"; rm -rf "$fleet"; }
}

cmd_host() { # COMMAND DIR NAME
    [ "$#" -eq 3 ] || usage
    local fleet h
    fleet=$(existing_fleet_dir "$2")
    h=$(host_dir "$fleet" "$3")
    case $1 in
        kill)
            kill_dockerds "$h"
            signal_hosts KILL "$h"
            wait_gone 5 "$h" || fail 1 "processes of $3 survived SIGKILL"
            unmount_dockers "$h"
            ;;
        freeze) signal_hosts STOP "$h" ;;
        thaw) signal_hosts CONT "$h" ;;
        restart)
            stop_hosts "$h"
            launched=() daemons=()
            load_host "$h"
            launch "$h"
            launch_dockerd "$h"
            wait_listening "$h" "${launched[0]}" "$ADDRESS" "$PORT" $((SECONDS + 15))
            [ "${#daemons[@]}" -eq 0 ] || wait_dockerd "$h" "${daemons[0]}" $((SECONDS + 60))
            ;;
    esac
}

cmd_status() {
    [ "$#" -eq 1 ] || usage
    local fleet h pid state stat sessions
    fleet=$(existing_fleet_dir "$1")
    while read -r h; do
        pid=$(listener_pid "$h")
        state=down
        if [ -n "$pid" ]; then
            state=running
            read -r stat <"/proc/$pid/stat"
            if [[ $stat =~ \)\ T ]]; then state=frozen; fi
        else
            pid=-
        fi
        sessions=$(host_pids "$h" | grep -cvx "$pid") || true
        (load_host "$h" && printf '%-4s %s:%s %-8s %-8s pid %-7s processes %s\n' \
            "$NAME" "$ADDRESS" "$PORT" "$ARCH" "$state" "$pid" "$sessions")
    done < <(host_dirs "$fleet")
}

[ "$#" -ge 1 ] || usage
command=$1
shift
case $command in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill | freeze | thaw | restart) cmd_host "$command" "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac

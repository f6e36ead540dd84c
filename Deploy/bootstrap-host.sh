#!/usr/bin/env bash
# bootstrap-host.sh: prepare a NEW build host for coordinator. Run as root on that host (Amazon Linux 2023,
# Debian or Ubuntu; x86_64 or aarch64/Graviton). It installs one engine, creates the build user with the
# coordinator's public key, creates the workDir, sets up rootless storage for podman/buildah, warns about QEMU
# binfmt handlers (coordinator refuses to emulate), and prints this host's inventory entry as JSON on stdout.
# Everything else goes to stderr, so `bootstrap-host.sh ... > entry.json` keeps only the entry.
# --dry-run prints the commands it would run and changes nothing (root not needed).
set -euo pipefail

engine=podman
user=builder
authorized_key=""
work_dir=/var/tmp/coordinator
max_jobs=1
dry_run=0
host_name=""
host_address=""
# For tests: a fake os-release, machine name and binfmt_misc folder.
os_release=/etc/os-release
machine=""
binfmt_dir=/proc/sys/fs/binfmt_misc

usage() {
    cat <<'EOF'
usage: bootstrap-host.sh --authorized-key FILE|KEY [options]

  --engine podman|buildah|docker   engine to install (default podman)
  --user NAME                      build user to create (default builder)
  --authorized-key FILE|KEY        the coordinator's public key (a .pub file or the key text)
  --work-dir DIR                   coordinator workDir on this host (default /var/tmp/coordinator)
  --max-jobs N                     maxJobs for the printed inventory entry (default 1)
  --name NAME                      inventory name (default: short hostname)
  --address ADDR                   inventory address (default: first address of `hostname -I`)
  --dry-run                        print what would be done, change nothing
  --os-release FILE                read this instead of /etc/os-release (tests)
  --machine ARCH                   use this instead of `uname -m` (tests)
  --binfmt-dir DIR                 read this instead of /proc/sys/fs/binfmt_misc (tests)
  -h, --help                       this text
EOF
}

say() { printf 'bootstrap: %s\n' "$*" >&2; }
warn() { printf 'bootstrap: warning: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit "${2:-1}"; }

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value" 2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --engine) need_value "$@"; engine=$2; shift 2 ;;
        --user) need_value "$@"; user=$2; shift 2 ;;
        --authorized-key) need_value "$@"; authorized_key=$2; shift 2 ;;
        --work-dir) need_value "$@"; work_dir=$2; shift 2 ;;
        --max-jobs) need_value "$@"; max_jobs=$2; shift 2 ;;
        --name) need_value "$@"; host_name=$2; shift 2 ;;
        --address) need_value "$@"; host_address=$2; shift 2 ;;
        --os-release) need_value "$@"; os_release=$2; shift 2 ;;
        --machine) need_value "$@"; machine=$2; shift 2 ;;
        --binfmt-dir) need_value "$@"; binfmt_dir=$2; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" 2 ;;
    esac
done

case $engine in podman | buildah | docker) ;; *) die "--engine must be podman, buildah or docker (got '$engine')" 2 ;; esac
[[ $user =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user '$user' is not a valid user name" 2
[[ $work_dir == /* ]] || die "--work-dir must be an absolute path" 2
[[ $max_jobs =~ ^[1-9][0-9]*$ ]] || die "--max-jobs must be a positive integer" 2
[[ -n $authorized_key ]] || die "--authorized-key FILE|KEY is required (the coordinator's public key)" 2
if [[ $dry_run -eq 0 && $EUID -ne 0 ]]; then die "run as root (or with --dry-run)" 2; fi

# run CMD...: runs it, or under --dry-run prints it (shell-quoted) instead.
run() {
    if [[ $dry_run -eq 1 ]]; then
        printf '+' >&2
        printf ' %q' "$@" >&2
        printf '\n' >&2
    else
        "$@"
    fi
}

# write_file PATH MODE OWNER CONTENT: replaces PATH (or prints what would be written).
write_file() {
    local path=$1 mode=$2 owner=$3 content=$4
    if [[ $dry_run -eq 1 ]]; then
        printf '+ write %s (mode %s, owner %s):\n' "$path" "$mode" "$owner" >&2
        printf '%s\n' "$content" | sed 's/^/|   /' >&2
        return
    fi
    printf '%s\n' "$content" >"$path.tmp.$$"
    chmod "$mode" "$path.tmp.$$"
    chown "$owner" "$path.tmp.$$"
    mv -f "$path.tmp.$$" "$path"
}

json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# --- what this host is ---------------------------------------------------------------------------------------
[[ -r $os_release ]] || die "cannot read $os_release" 2
os_id=$(
    # shellcheck source=/dev/null
    . "$os_release"
    printf '%s' "${ID:-}"
)
os_like=$(
    # shellcheck source=/dev/null
    . "$os_release"
    printf '%s' "${ID_LIKE:-}"
)
os_version=$(
    # shellcheck source=/dev/null
    . "$os_release"
    printf '%s' "${VERSION_ID:-}"
)
if [[ $os_id == amzn ]]; then
    [[ $os_version == 2023 || $os_version == 2023.* ]] ||
        die "Amazon Linux $os_version is not supported (Amazon Linux 2023 only: AL2 has no podman/buildah)" 2
    family=al2023
elif [[ $os_id == debian || $os_id == ubuntu || " $os_like " == *" debian "* ]]; then
    family=debian
else
    die "unsupported OS '$os_id' (supported: Amazon Linux 2023, Debian, Ubuntu)" 2
fi

machine=${machine:-$(uname -m)}
case $machine in
    x86_64 | amd64) platform=linux/amd64 ;;
    aarch64 | arm64) platform=linux/arm64 ;;
    *) die "unsupported machine '$machine' (x86_64 or aarch64)" 2 ;;
esac
say "host: $os_id $os_version ($family), $machine -> $platform, engine $engine, user $user"

# --- the key ------------------------------------------------------------------------------------------------
if [[ -f $authorized_key ]]; then
    key_text=$(grep -v '^[[:space:]]*#' "$authorized_key" | grep -m1 .) || die "no key in $authorized_key" 2
else
    key_text=$authorized_key
fi
case $key_text in
    ssh-ed25519\ * | ecdsa-sha2-nistp256\ * | ecdsa-sha2-nistp384\ * | ecdsa-sha2-nistp521\ *) ;;
    ssh-rsa\ *) die "RSA keys do not work: libssh2 1.10 signs with SHA-1, which OpenSSH >= 8.8 refuses; use an ed25519 key" 2 ;;
    *) die "--authorized-key is neither a readable .pub file nor an ssh-ed25519/ecdsa public key" 2 ;;
esac

# --- engine -------------------------------------------------------------------------------------------------
case $family:$engine in
    al2023:podman) packages=(podman tar shadow-utils) ;;
    al2023:buildah) packages=(buildah tar shadow-utils) ;;
    al2023:docker) packages=(docker tar) ;;
    debian:podman) packages=(podman uidmap slirp4netns tar) ;;
    debian:buildah) packages=(buildah uidmap tar) ;;
    debian:docker) packages=(docker.io tar) ;;
esac
say "installing ${packages[*]}"
if [[ $family == al2023 ]]; then
    run dnf install -y "${packages[@]}"
else
    run env DEBIAN_FRONTEND=noninteractive apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
if [[ $engine == docker ]]; then
    run systemctl enable --now docker || warn "could not start docker with systemctl: start dockerd yourself"
    if [[ $dry_run -eq 0 ]] && ! docker buildx version >/dev/null 2>&1; then
        warn "docker buildx is missing: install the buildx plugin (docker-buildx / docker-buildx-plugin) for BuildKit builds"
    fi
fi

# --- user, key, workDir -------------------------------------------------------------------------------------
if id "$user" >/dev/null 2>&1; then
    say "user $user exists"
else
    run useradd --create-home --shell /bin/bash "$user"
fi
home=$(getent passwd "$user" | cut -d: -f6 || true)
home=${home:-/home/$user}
if [[ $engine == docker ]]; then
    warn "adding $user to the docker group: that is root-equivalent on this host"
    run usermod -aG docker "$user"
fi
run install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
if [[ -f $home/.ssh/authorized_keys ]] && grep -qxF "$key_text" "$home/.ssh/authorized_keys"; then
    say "key already authorised"
else
    existing=""
    if [[ -f $home/.ssh/authorized_keys ]]; then existing=$(cat "$home/.ssh/authorized_keys"); fi
    write_file "$home/.ssh/authorized_keys" 0600 "$user:$user" "${existing:+$existing
}$key_text"
fi
run install -d -m 0750 -o "$user" -g "$user" "$work_dir"

# --- rootless storage (podman / buildah) --------------------------------------------------------------------
if [[ $engine != docker ]]; then
    for map in /etc/subuid /etc/subgid; do
        if [[ -f $map ]] && grep -q "^$user:" "$map"; then
            say "$map already has a range for $user"
            continue
        fi
        # The first 65536 ids after every range already handed out (at least 100000).
        start=100000
        if [[ -f $map ]]; then
            start=$(awk -F: 'BEGIN { m = 100000 } { e = $2 + $3; if (e > m) m = e } END { print m }' "$map")
        fi
        flag=--add-subuids
        [[ $map == /etc/subgid ]] && flag=--add-subgids
        run usermod "$flag" "$start-$((start + 65535))" "$user"
    done
    kernel=$(uname -r)
    major=${kernel%%.*}
    minor=${kernel#*.}
    minor=${minor%%.*}
    if ((major > 5 || (major == 5 && minor >= 13))); then
        storage='[storage]
driver = "overlay"'
    else
        say "kernel $kernel < 5.13 has no rootless overlay: using fuse-overlayfs"
        if [[ $family == al2023 ]]; then run dnf install -y fuse-overlayfs; else run apt-get install -y -q fuse-overlayfs; fi
        storage='[storage]
driver = "overlay"

[storage.options.overlay]
mount_program = "/usr/bin/fuse-overlayfs"'
    fi
    run install -d -m 0700 -o "$user" -g "$user" "$home/.config" "$home/.config/containers"
    write_file "$home/.config/containers/storage.conf" 0644 "$user:$user" "$storage"
    # Keeps /run/user/UID (XDG_RUNTIME_DIR, podman's runtime state) alive between SSH sessions.
    run loginctl enable-linger "$user" || warn "loginctl enable-linger $user failed: without it podman needs a login session"
fi

# --- emulation check ----------------------------------------------------------------------------------------
qemu=()
if [[ -d $binfmt_dir ]]; then
    for handler in "$binfmt_dir"/*; do
        [[ -f $handler ]] || continue
        case ${handler##*/} in register | status) continue ;; esac
        if grep -q '^enabled' "$handler" && grep -qi 'qemu' "$handler"; then qemu+=("${handler##*/}"); fi
    done
fi
if [[ ${#qemu[@]} -gt 0 ]]; then
    warn "QEMU binfmt_misc handlers are registered: ${qemu[*]}"
    warn "coordinator refuses hosts that could emulate; remove them (e.g. uninstall qemu-user-static/binfmt-support," \
        "or: echo -1 > $binfmt_dir/<name>) before adding this host"
fi

# --- the inventory entry ------------------------------------------------------------------------------------
host_name=${host_name:-${HOSTNAME%%.*}}
if [[ -z $host_address ]]; then
    read -r host_address _ < <(hostname -I 2>/dev/null || true) || true
    host_address=${host_address:-$host_name}
fi
for key_file in /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub; do
    if [[ -r $key_file ]]; then
        say "known_hosts line for the coordinator (hostKeyPolicy \"yes\"): $host_address $(cut -d' ' -f1,2 "$key_file")"
        break
    fi
done
say "inventory entry (stdout):"
printf '{ "name": %s, "address": %s, "platforms": [%s], "user": %s, "engine": %s, "workDir": %s, "maxJobs": %s }\n' \
    "$(json_string "$host_name")" "$(json_string "$host_address")" "$(json_string "$platform")" \
    "$(json_string "$user")" "$(json_string "$engine")" "$(json_string "$work_dir")" "$max_jobs"

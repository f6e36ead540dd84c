#!/usr/bin/env bash
# Quickstart: a local demo fleet (two sshd hosts on loopback addresses, one simulating an Arm/Graviton host)
# and a local registry, then a real `coordinator build` of Deploy/examples/hello for linux/amd64 + linux/arm64,
# and the index it pushed. Run as root on Debian 12:   Deploy/demo.sh        (stop everything: Deploy/demo.sh stop)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${DEMO_DIR:-/tmp/coordinator-demo}
port=${DEMO_REGISTRY_PORT:-5077}
registry=127.0.0.1:$port

die() { echo "demo: $*" >&2; exit 1; }

stop() {
    "$root/Deploy/test-fleet.sh" stop "$dir" >/dev/null 2>&1 || true
    if [ -f "$dir/registry.pid" ]; then
        kill "$(cat "$dir/registry.pid")" 2>/dev/null || true
        rm -f "$dir/registry.pid"
    fi
}

[ "$(id -u)" = 0 ] || die "run as root: the demo starts sshd instances on loopback addresses"
if [ "${1:-}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

missing=()
while read -r pkg; do
    case "$pkg" in ''|'#'*) continue ;; esac
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done < "$root/Deploy/packages.txt"
if [ "${#missing[@]}" -gt 0 ]; then
    echo "demo: installing ${missing[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

export PATH=/opt/swift/usr/bin:$PATH
(cd "$root" && swift build -c release --product coordinator) >&2
bin=$root/.build/release/coordinator

stop
mkdir -p "$dir/registry/data"
"$root/Deploy/test-fleet.sh" start "$dir" 2 --base 127.0.77 --arch x86_64,aarch64 --engine buildah >&2

cat > "$dir/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/registry/data
  delete:
    enabled: true
http:
  addr: $registry
YAML
docker-registry serve "$dir/registry/config.yml" >"$dir/registry/registry.log" 2>&1 &
echo $! > "$dir/registry.pid"
for _ in $(seq 50); do
    curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done

echo "== coordinator hosts check"
"$bin" hosts check --hosts "$dir/inventory.json"
echo
echo "== coordinator build (each platform natively on its own host, in parallel)"
"$bin" build --hosts "$dir/inventory.json" -t "$registry/demo/hello:1.0" -t "$registry/demo/hello:latest" \
    --metadata-file "$dir/metadata.json" --progress plain "$root/Deploy/examples/hello"
echo
echo "== coordinator inspect $registry/demo/hello:1.0"
"$bin" inspect "$registry/demo/hello:1.0"
echo
echo "== the index as an independent client (skopeo) sees it"
skopeo inspect --tls-verify=false --raw "docker://$registry/demo/hello:1.0"
echo
echo "demo fleet and registry are still running (inventory: $dir/inventory.json); stop them with: Deploy/demo.sh stop"

#!/usr/bin/env bash
# bench/merge.sh — `coordinator merge` against the baseline a user would otherwise run:
#   buildah manifest create + buildah manifest add (one per child) + buildah manifest push
# for the same children (already pushed by digest), with 2 and with 8 platforms, on a real
# docker-registry on loopback. Prints median wall times, the ratio, and the requests each side made
# (counted from the registry's own request log). Usage: bench/merge.sh [RUNS]   (default 5)
# COORDINATOR=path uses that binary instead of building a release one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
RUNS=${1:-5}
export PATH=/opt/swift/usr/bin:$PATH
for tool in docker-registry buildah; do
  command -v "$tool" >/dev/null || { echo "bench/merge: $tool is not installed" >&2; exit 2; }
done
if [ -z "${COORDINATOR:-}" ]; then
  (cd "$ROOT" && swift build -c release --product coordinator >/dev/null)
  COORDINATOR=$(cd "$ROOT" && swift build -c release --show-bin-path)/coordinator
fi

WORK=$(mktemp -d /tmp/bench-merge.XXXXXX)
REGISTRY_PID=
cleanup() {
  if [ -n "$REGISTRY_PID" ]; then kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A free loopback port: nothing answers on it.
while :; do
  PORT=$((20000 + RANDOM % 40000))
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
done
HOST=127.0.0.1:$PORT
cat >"$WORK/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $WORK/data
http:
  addr: $HOST
YAML
docker-registry serve "$WORK/config.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

bench_local_buildah "$WORK"

PLATFORMS=(amd64 arm64 arm/v7 arm/v6 386 ppc64le s390x riscv64)
declare -A DIGEST
for p in "${PLATFORMS[@]}"; do
  arch=${p%%/*}; variant=; [ "$p" != "$arch" ] && variant=${p#*/}
  name=child-${p//\//-}
  echo "$p" >"$WORK/file"
  c=$(buildah from scratch)
  buildah copy "$c" "$WORK/file" /platform.txt >/dev/null
  buildah config --os linux --arch "$arch" ${variant:+--variant "$variant"} "$c"
  buildah commit -q --format oci "$c" "localhost/$name" >/dev/null
  buildah rm "$c" >/dev/null
  buildah push -q --tls-verify=false --digestfile "$WORK/d" "localhost/$name" "docker://$HOST/bench/app:$name"
  DIGEST[$p]=$(cat "$WORK/d")
done

now_ms() { date +%s%3N; }
log_lines() { grep -c 'msg="response completed' "$WORK/registry.log" || true; }
# Requests logged after line N, summarised as "total (GET manifest m, HEAD manifest h, GET blob b, PUT manifest p, other o)".
requests_since() {
  grep 'msg="response completed' "$WORK/registry.log" | tail -n +"$(($1 + 1))" | awk '
    { m = ""; u = ""
      for (i = 1; i <= NF; i++) { if ($i ~ /^http.request.method=/) m = substr($i, 21); if ($i ~ /^http.request.uri=/) u = $i }
      if (u ~ /\/manifests\// && m == "GET") gm++; else if (u ~ /\/manifests\// && m == "HEAD") hm++
      else if (u ~ /\/blobs\/sha256/ && m == "GET") gb++; else if (u ~ /\/manifests\// && m == "PUT") pm++; else o++
      t++ }
    END { printf "%d (GET manifest %d, HEAD manifest %d, GET blob %d, PUT manifest %d, other %d)", t, gm, hm, gb, pm, o }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

printf '%-10s %14s %12s %7s\n' platforms coordinator_ms buildah_ms ratio
REPORT=
for n in 2 8; do
  sources=(); refs=()
  for p in "${PLATFORMS[@]:0:$n}"; do sources+=("$HOST/bench/app@${DIGEST[$p]}"); refs+=("docker://$HOST/bench/app@${DIGEST[$p]}"); done
  ct=(); bt=()
  for run in $(seq "$RUNS"); do
    before=$(log_lines); t0=$(now_ms)
    "$COORDINATOR" merge -t "$HOST/bench/app:coord-$n-$run" "${sources[@]}" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    ct+=($(($(now_ms) - t0))); creq=$(requests_since "$before")

    before=$(log_lines); t0=$(now_ms)
    list=list-$n-$run
    buildah manifest create "$list" >/dev/null
    for r in "${refs[@]}"; do buildah manifest add --tls-verify=false "$list" "$r" >/dev/null; done
    buildah manifest push --quiet --tls-verify=false "$list" "docker://$HOST/bench/app:buildah-$n-$run" >/dev/null
    bt+=($(($(now_ms) - t0))); breq=$(requests_since "$before")
    buildah manifest rm "$list" >/dev/null
  done
  cm=$(printf '%s\n' "${ct[@]}" | median); bm=$(printf '%s\n' "${bt[@]}" | median)
  printf '%-10s %14s %12s %7s\n' "$n" "$cm" "$bm" "$(awk -v a="$cm" -v b="$bm" 'BEGIN { printf "%.2fx", a / b }')"
  REPORT+="  $n platforms: coordinator $creq"$'\n'"  $n platforms: buildah     $breq"$'\n'
done
echo "requests per merge (last run, from the registry log):"
printf '%s' "$REPORT"
echo "ratio = coordinator wall time / buildah wall time (median of $RUNS runs; target <= 0.50x)"

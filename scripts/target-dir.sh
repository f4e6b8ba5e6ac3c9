#!/usr/bin/env bash
# Prints the directory cargo builds into for this workspace: CARGO_TARGET_DIR, or
# build.target-dir of a cargo config, or target/. Scripts use it instead of assuming target/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'

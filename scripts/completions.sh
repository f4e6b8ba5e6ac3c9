#!/usr/bin/env bash
# Regenerates the committed shell completion scripts in completions/ from the clap definition
# (`kubectl rotate completion SHELL`). Run it after changing a verb or a flag; the test
# `committed_completion_scripts_match_the_clap_definition` (tests/completions.rs) fails until then.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --locked --bin kubectl-rotate
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/kubectl-rotate"
mkdir -p completions
for pair in bash:kubectl-rotate.bash zsh:_kubectl-rotate fish:kubectl-rotate.fish powershell:_kubectl-rotate.ps1; do
  shell="${pair%%:*}" file="${pair#*:}"
  "$bin" completion "$shell" >"completions/$file"
  echo "completions: wrote completions/$file" >&2
done

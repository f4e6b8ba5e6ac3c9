#!/usr/bin/env bash
# Builds the release archive of one platform and renders the krew manifest krew/rotate.yaml.
#
#   scripts/release.sh [--target TRIPLE] [--binary PATH] [--dist DIR] [--manifest PATH]
#   scripts/release.sh --manifest-only [--dist DIR] [--manifest PATH]
#
# 1. Builds kubectl-rotate with `cargo build --release --locked` for TRIPLE (default: this
#    machine's), or packs the binary given with --binary. CARGO=cross builds another target.
# 2. Packs DIST/kubectl-rotate_vVERSION_OS_ARCH.tar.gz (the binary, LICENSE, README.md; DIST
#    defaults to dist/) and writes its sha256 beside it (`.sha256`, sha256sum's format).
# 3. Renders .krew.yaml, the krew-release-bot template, into the manifest: every platform whose
#    archive for this version is in DIST gets its uri and sha256; platforms without one are left
#    out and named on stderr. With the five archives of a release in DIST (the CI matrix in the
#    README builds them), the manifest lists all five platforms.
#
# Prints the archive's path on stdout; progress on stderr. Needs bash, tar, gzip, python3 and
# sha256sum (or shasum).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'release: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

target="" binary="" dist="dist" manifest="krew/rotate.yaml" manifest_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="${2:?--target needs a value}"; shift 2 ;;
    --binary) binary="${2:?--binary needs a value}"; shift 2 ;;
    --dist) dist="${2:?--dist needs a value}"; shift 2 ;;
    --manifest) manifest="${2:?--manifest needs a value}"; shift 2 ;;
    --manifest-only) manifest_only=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
[ -n "$version" ] || die "no version in Cargo.toml"
tag="v$version"

# The krew platform (os_arch) of a Rust target triple; krew names them the way Go does.
platform_of() {
  case "$1" in
    x86_64-unknown-linux-*) echo linux_amd64 ;;
    aarch64-unknown-linux-*) echo linux_arm64 ;;
    x86_64-apple-darwin) echo darwin_amd64 ;;
    aarch64-apple-darwin) echo darwin_arm64 ;;
    x86_64-pc-windows-*) echo windows_amd64 ;;
    *) die "no krew platform for target $1 (supported: linux, darwin and windows on x86_64, linux and darwin on aarch64)" ;;
  esac
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

mkdir -p "$dist"

if [ "$manifest_only" = 0 ]; then
  # Without --target, the host's build (target/release, shared with `cargo build --release`).
  target_args=() out_dir="release"
  if [ -n "$target" ]; then
    target_args=(--target "$target") out_dir="$target/release"
  else
    target="$(rustc -vV | sed -n 's/^host: //p')"
  fi
  platform="$(platform_of "$target")"
  exe=""
  case "$platform" in windows_*) exe=".exe" ;; esac
  if [ -z "$binary" ]; then
    log "building kubectl-rotate $tag for $target (release)"
    ${CARGO:-cargo} build --release --locked --bin kubectl-rotate ${target_args[@]+"${target_args[@]}"} >&2
    target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' | tr -d '\r')"
    binary="$target_dir/$out_dir/kubectl-rotate$exe"
  fi
  [ -x "$binary" ] || die "no executable at $binary"

  archive="kubectl-rotate_${tag}_${platform}.tar.gz"
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' EXIT
  cp "$binary" "$stage/kubectl-rotate$exe"
  cp LICENSE README.md "$stage/"
  # Reproducible where GNU tar allows it: fixed order, owner and time (the last commit's).
  epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
  tar_flags=()
  if tar --version 2>/dev/null | grep -q 'GNU tar'; then
    tar_flags=(--sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch")
  fi
  tar -C "$stage" ${tar_flags[@]+"${tar_flags[@]}"} -cf - "kubectl-rotate$exe" LICENSE README.md | gzip -n >"$dist/$archive"
  sha="$(sha256_of "$dist/$archive")"
  printf '%s  %s\n' "$sha" "$archive" >"$dist/$archive.sha256"
  log "packed $dist/$archive ($(wc -c <"$dist/$archive" | tr -d ' ') bytes, sha256 $sha)"
  echo "$dist/$archive"
fi

# Render the template: {{ .TagName }} becomes the tag, each platform's addURIAndSha line becomes
# its uri and sha256 (quoted: a digest of digits only would read as a number), or the platform is
# dropped when its archive is not in DIST.
mkdir -p "$(dirname "$manifest")"
python3 - "$tag" "$dist" .krew.yaml "$manifest" <<'PY'
import os, re, sys

tag, dist, template, out = sys.argv[1:]
text = open(template).read().replace("{{ .TagName }}", tag)
head, sep, rest = text.partition("  platforms:\n")
if not sep:
    sys.exit("release: error: .krew.yaml has no `  platforms:` list")
blocks = re.split(r"(?m)^(?=  - selector:)", rest)
kept, missing = [], []
uri_line = re.compile(r'^(\s*)\{\{\s*addURIAndSha\s+"([^"]+)"\s+\.TagName\s*\}\}\s*$', re.M)
for block in blocks:
    if not block.strip():
        continue
    found = uri_line.search(block)
    if not found:
        sys.exit("release: error: a platform in .krew.yaml has no addURIAndSha line")
    indent, uri = found.groups()
    archive = uri.rsplit("/", 1)[1]
    sha_file = os.path.join(dist, archive + ".sha256")
    if not os.path.exists(sha_file):
        missing.append(archive)
        continue
    sha = open(sha_file).read().split()[0]
    kept.append(block[:found.start()] + f"{indent}uri: {uri}\n{indent}sha256: \"{sha}\"" + block[found.end():])
if not kept:
    sys.exit(f"release: error: no archive of {tag} in {dist}; build one first")
with open(out, "w") as f:
    f.write("# Rendered by scripts/release.sh from .krew.yaml; do not edit.\n")
    f.write(head + sep + "".join(kept))
print(f"release: wrote {out} with {len(kept)} platform(s)", file=sys.stderr)
for archive in missing:
    print(f"release: warning: {archive} is not in {dist}: its platform is left out of {out}", file=sys.stderr)
PY

//! The krew manifest: the committed `krew/rotate.yaml` and the krew-release-bot template
//! `.krew.yaml` pass krew's validation rules, the template covers the five release platforms,
//! the committed manifest is what `scripts/release.sh` renders from the template, a manifest
//! rendered beside a real archive carries that archive's sha256 (and the check of it fails on a
//! wrong one), and the validator itself rejects what krew rejects. The install test is
//! `tests/e2e/krew.rs`.

#[path = "common/krew_manifest.rs"]
mod krew_manifest;

use std::path::{Path, PathBuf};
use std::process::Command;

use krew_manifest::{validate, validate_file};
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const FIVE: [(&str, &str); 5] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("windows", "amd64"),
];

/// Renders `.krew.yaml` with `scripts/release.sh --manifest-only`, one `.sha256` file per
/// platform in a scratch dist directory standing in for the release's archives.
fn render(shas: &[(String, String)]) -> String {
    let dist = tempfile::tempdir().unwrap();
    for (archive, sha) in shas {
        std::fs::write(
            dist.path().join(format!("{archive}.sha256")),
            format!("{sha}  {archive}\n"),
        )
        .unwrap();
    }
    let out = dist.path().join("rotate.yaml");
    let run = Command::new(repo().join("scripts/release.sh"))
        .arg("--manifest-only")
        .arg("--dist")
        .arg(dist.path())
        .arg("--manifest")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

fn archive(os: &str, arch: &str) -> String {
    format!(
        "kubectl-rotate_v{}_{os}_{arch}.tar.gz",
        env!("CARGO_PKG_VERSION")
    )
}

fn fail_on(
    problems: Result<Vec<krew_manifest::Platform>, Vec<String>>,
) -> Vec<krew_manifest::Platform> {
    problems.unwrap_or_else(|problems| panic!("krew would refuse it:\n{}", problems.join("\n")))
}

#[test]
fn the_committed_manifest_passes_krews_validation_rules() {
    let platforms = fail_on(validate_file(&repo().join("krew/rotate.yaml")));
    let manifest: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("krew/rotate.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["spec"]["version"].as_str(),
        Some(format!("v{}", env!("CARGO_PKG_VERSION")).as_str()),
        "krew/rotate.yaml is for another version: run scripts/release.sh"
    );
    for platform in platforms {
        assert_eq!(platform.files[0].0, platform.bin);
        assert!(platform.files.iter().any(|(from, _)| from == "LICENSE"));
    }
}

#[test]
fn the_release_template_renders_a_valid_manifest_for_all_five_platforms() {
    let shas: Vec<(String, String)> = FIVE
        .iter()
        .enumerate()
        .map(|(i, (os, arch))| (archive(os, arch), format!("{i:x}").repeat(64)))
        .collect();
    let rendered = render(&shas);
    let platforms = fail_on(validate(&rendered, "rotate"));
    let selected: Vec<(String, String)> =
        platforms.iter().flat_map(|p| p.selects.clone()).collect();
    let expected: Vec<(String, String)> = FIVE
        .iter()
        .map(|(os, arch)| (os.to_string(), arch.to_string()))
        .collect();
    assert_eq!(selected, expected);
    for (platform, (archive, sha)) in platforms.iter().zip(&shas) {
        assert!(
            platform
                .uri
                .ends_with(&format!("/v{}/{archive}", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(&platform.sha256, sha);
    }
    assert_eq!(platforms[4].bin, "kubectl-rotate.exe");
    // krew-release-bot fills each platform in from one addURIAndSha line.
    let template = std::fs::read_to_string(repo().join(".krew.yaml")).unwrap();
    assert_eq!(template.matches("{{addURIAndSha \"").count(), 5);
    assert_eq!(template.matches("version: {{ .TagName }}").count(), 1);
}

#[test]
fn the_committed_manifest_is_what_the_release_script_renders_from_the_template() {
    let path = repo().join("krew/rotate.yaml");
    let committed = std::fs::read_to_string(&path).unwrap();
    let platforms = fail_on(validate_file(&path));
    let shas: Vec<(String, String)> = platforms
        .iter()
        .map(|p| {
            let archive = p.uri.rsplit('/').next().unwrap().to_string();
            (archive, p.sha256.clone())
        })
        .collect();
    assert!(
        render(&shas) == committed,
        "krew/rotate.yaml differs from .krew.yaml: run scripts/release.sh and commit the result"
    );
}

/// Checks manifest `text` against the archives in `dist`: every platform whose archive (the last
/// segment of its `uri`) is in `dist` must have as `sha256` the sha256 of that file's bytes, as
/// krew checks a download. The archives checked, or every mismatch.
fn check_shas_against_archives(text: &str, dist: &Path) -> Result<Vec<String>, String> {
    let platforms = validate(text, "rotate").map_err(|problems| problems.join("\n"))?;
    let mut checked = Vec::new();
    let mut wrong = Vec::new();
    for platform in &platforms {
        let archive = platform.uri.rsplit('/').next().unwrap_or_default();
        let path = dist.join(archive);
        if !path.exists() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let actual = format!("{:x}", Sha256::digest(&bytes));
        if platform.sha256 == actual {
            checked.push(archive.to_string());
        } else {
            wrong.push(format!(
                "{archive}: the manifest says sha256 {}, the archive's is {actual}",
                platform.sha256
            ));
        }
    }
    if wrong.is_empty() {
        Ok(checked)
    } else {
        Err(wrong.join("\n"))
    }
}

/// Packs a real archive for this machine with `scripts/release.sh --binary` (a small script
/// standing in for the plugin) and renders the manifest beside it: the scratch directory, the
/// archive's file name and the manifest's text.
fn pack_host_archive() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("kubectl-rotate");
    std::fs::write(&binary, "#!/bin/sh\necho kubectl-rotate stand-in\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let dist = dir.path().join("dist");
    let manifest = dir.path().join("rotate.yaml");
    let run = Command::new(repo().join("scripts/release.sh"))
        .arg("--binary")
        .arg(&binary)
        .arg("--dist")
        .arg(&dist)
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed = String::from_utf8(run.stdout).unwrap();
    let archive = Path::new(printed.trim())
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&manifest).unwrap();
    (dir, archive, text)
}

#[test]
fn a_rendered_manifest_carries_the_sha256_of_each_archive_in_dist() {
    let (dir, archive, text) = pack_host_archive();
    let dist = dir.path().join("dist");
    let checked =
        check_shas_against_archives(&text, &dist).unwrap_or_else(|wrong| panic!("{wrong}"));
    assert_eq!(
        checked,
        vec![archive.clone()],
        "only the host's archive is in dist"
    );
    // The `.sha256` beside the archive says the same, in sha256sum's format.
    let sha = format!(
        "{:x}",
        Sha256::digest(std::fs::read(dist.join(&archive)).unwrap())
    );
    assert_eq!(
        std::fs::read_to_string(dist.join(format!("{archive}.sha256"))).unwrap(),
        format!("{sha}  {archive}\n")
    );
}

#[test]
fn the_sha256_check_fails_when_the_manifest_or_the_archive_is_altered() {
    let (dir, archive, text) = pack_host_archive();
    let dist = dir.path().join("dist");
    let sha = format!(
        "{:x}",
        Sha256::digest(std::fs::read(dist.join(&archive)).unwrap())
    );
    assert!(text.contains(&sha));
    // Another valid digest in the manifest: one hex digit changed.
    let first = if sha.starts_with('0') { "1" } else { "0" };
    let tampered = text.replace(&sha, &format!("{first}{}", &sha[1..]));
    let wrong = check_shas_against_archives(&tampered, &dist)
        .expect_err("a manifest with another sha256 passed the check");
    assert!(wrong.contains(&archive), "{wrong}");
    // The manifest as rendered, but the archive changed after it.
    let mut bytes = std::fs::read(dist.join(&archive)).unwrap();
    bytes.push(0);
    std::fs::write(dist.join(&archive), bytes).unwrap();
    let wrong = check_shas_against_archives(&text, &dist)
        .expect_err("an archive changed after rendering passed the check");
    assert!(wrong.contains(&archive), "{wrong}");
}

fn valid() -> String {
    let sha = "a".repeat(64);
    let platform = |selector: &str, file: &str| {
        format!(
            "  - selector:\n      matchLabels: {selector}\n    uri: https://example.invalid/{file}.tar.gz\n    \
             sha256: {sha}\n    files: [{{from: {file}, to: .}}, {{from: LICENSE, to: .}}]\n    bin: {file}\n"
        )
    };
    format!(
        "apiVersion: krew.googlecontainertools.github.com/v1alpha2\nkind: Plugin\nmetadata:\n  name: rotate\n\
         spec:\n  version: v0.1.0\n  shortDescription: Rotate Secrets\n  description: |\n    Rotates Secrets.\n  \
         platforms:\n{}{}",
        platform("{os: linux, arch: amd64}", "kubectl-rotate"),
        platform("{os: windows}", "kubectl-rotate.exe"),
    )
}

fn refused(text: &str, file_name: &str, expected: &str) {
    match validate(text, file_name) {
        Ok(_) => panic!("accepted, expected a problem containing {expected:?}:\n{text}"),
        Err(problems) => assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected:?} not in {problems:?}"
        ),
    }
}

#[test]
fn the_validator_refuses_what_krew_refuses() {
    fail_on(validate(&valid(), "rotate"));
    refused(&valid(), "rotate-secret", "must equal the file name");
    refused(
        &valid().replace("v0.1.0", "0.1.0"),
        "rotate",
        "v-prefixed semver",
    );
    refused(
        &valid().replace("v0.1.0", "v0.1"),
        "rotate",
        "v-prefixed semver",
    );
    refused(
        &valid().replacen(&"a".repeat(64), &"A".repeat(64), 1),
        "rotate",
        "64 lower-case hex",
    );
    refused(
        &valid().replacen(&"a".repeat(64), &"a".repeat(63), 1),
        "rotate",
        "64 lower-case hex",
    );
    refused(
        &valid().replace("{os: windows}", "{os: windows, distro: x}"),
        "rotate",
        "key \"distro\" is not supported",
    );
    refused(
        &valid().replace("{os: windows}", "{arch: amd64}"),
        "rotate",
        "overlapping selectors",
    );
    refused(
        &valid().replace("Rotate Secrets\n", &format!("{}\n", "x".repeat(51))),
        "rotate",
        "1 to 50 characters",
    );
    refused(
        &valid().replace("Rotates Secrets.", &"word ".repeat(17)),
        "rotate",
        "over 80 columns",
    );
    refused(
        &valid().replacen(", {from: LICENSE, to: .}", "", 1),
        "rotate",
        "must install a LICENSE",
    );
    refused(
        &valid().replace("bin: kubectl-rotate.exe", "bin: kubectl-rotate"),
        "rotate",
        "must end in .exe",
    );
    refused(
        &valid().replace("name: rotate", "name: rot ate"),
        "rot ate",
        "must match",
    );
    assert!(validate_file(Path::new("/nonexistent/rotate.yml")).is_err());
}

//! From a release archive to `kubectl rotate <TAB>`, the way krew installs a plugin and the way
//! the README says: `scripts/release.sh` packs the host archive and renders the manifest; the
//! archive is checked against the manifest's sha256 and extracted per its `files` into a krew
//! store; krew's `bin` directory (on PATH) links `kubectl-rotate` to it. Then, through real
//! kubectl: `kubectl rotate --help`, `kubectl plugin list`, `kubectl rotate completion kubectl
//! --install`, and `kubectl __complete rotate status -n NS ""` lists the demo app's Secret.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

#[path = "../common/krew_manifest.rs"]
mod krew_manifest;

use crate::TestFn;
use crate::support::{TestEnv, assert_silent_helper, candidates, kubectl_binary, repo_root};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![(
        "a_krew_style_install_of_the_release_archive_runs_and_completes_through_kubectl",
        a_krew_style_install_of_the_release_archive_runs_and_completes_through_kubectl,
    )]
}

/// krew's `os`/`arch` for this machine.
fn host_platform() -> (String, String) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (os.to_string(), arch.to_string())
}

fn a_krew_style_install_of_the_release_archive_runs_and_completes_through_kubectl(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "krew")?;
    env.seed_demo_app()?;
    let work = tempfile::tempdir()?;
    let dist = work.path().join("dist");
    let manifest = work.path().join("rotate.yaml");

    // The release: the binary under test, packed as a release is (a release build would take
    // minutes here; the packing and the manifest are what is under test).
    let release = Command::new(repo_root().join("scripts/release.sh"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_kubectl-rotate"))
        .arg("--dist")
        .arg(&dist)
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .context("running scripts/release.sh")?;
    ensure!(
        release.status.success(),
        "scripts/release.sh failed: {}",
        String::from_utf8_lossy(&release.stderr)
    );
    let platforms = krew_manifest::validate_file(&manifest)
        .map_err(|problems| anyhow::anyhow!("krew would refuse it: {problems:?}"))?;
    let host = host_platform();
    let Some(platform) = platforms.iter().find(|p| p.selects.contains(&host)) else {
        bail!("no platform of the manifest selects {host:?}");
    };

    // krew: download (here: the local archive of the same name), check the sha256, extract.
    let archive = dist.join(platform.uri.rsplit('/').next().unwrap_or_default());
    let bytes =
        std::fs::read(&archive).with_context(|| format!("reading {}", archive.display()))?;
    let sha = format!("{:x}", Sha256::digest(&bytes));
    ensure!(
        sha == platform.sha256,
        "sha256 {sha} != manifest {}",
        platform.sha256
    );
    let extracted = work.path().join("extracted");
    std::fs::create_dir_all(&extracted)?;
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&extracted)
        .status()?;
    ensure!(tar.success(), "tar -xzf {} failed", archive.display());
    let mut listed: Vec<String> = std::fs::read_dir(&extracted)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    listed.sort();
    ensure!(
        listed == ["LICENSE", "README.md", "kubectl-rotate"],
        "the archive holds {listed:?}"
    );
    let krew_root = work.path().join("krew");
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let store = krew_root.join("store/rotate").join(&version);
    std::fs::create_dir_all(&store)?;
    for (from, to) in &platform.files {
        let target = store.join(to).join(from);
        std::fs::create_dir_all(target.parent().expect("a parent"))?;
        std::fs::rename(extracted.join(from), &target)
            .with_context(|| format!("moving {from} to {}", target.display()))?;
    }
    ensure!(store.join("LICENSE").is_file(), "no LICENSE installed");
    let bin_dir = krew_root.join("bin");
    std::fs::create_dir_all(&bin_dir)?;
    std::os::unix::fs::symlink(store.join(&platform.bin), bin_dir.join("kubectl-rotate"))?;

    // A user's PATH: krew's bin and kubectl, nothing else of ours.
    let kubectl_dir = work.path().join("kubectl");
    std::fs::create_dir_all(&kubectl_dir)?;
    std::os::unix::fs::symlink(kubectl_binary(), kubectl_dir.join("kubectl"))?;
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        bin_dir.display(),
        kubectl_dir.display()
    );
    let krew_root_var = krew_root.to_string_lossy().into_owned();
    let user = [
        ("PATH", path.as_str()),
        ("KREW_ROOT", krew_root_var.as_str()),
    ];

    let help = env.kubectl_with(&["rotate", "--help"], &user, None)?;
    help.success()?;
    ensure!(
        help.stdout
            .contains("Usage: kubectl rotate [OPTIONS] <COMMAND>"),
        "{}",
        help.stdout
    );
    let list = env.kubectl_with(&["plugin", "list"], &user, None)?;
    list.success()?;
    let installed: PathBuf = bin_dir.join("kubectl-rotate");
    ensure!(
        list.stdout
            .lines()
            .any(|l| l.trim() == installed.to_string_lossy()),
        "{}",
        list.stdout
    );
    ensure!(!list.stderr.contains("warning"), "{}", list.stderr);

    // The README's next step: completion inside kubectl.
    let install = env.kubectl_with(
        &["rotate", "completion", "kubectl", "--install"],
        &user,
        None,
    )?;
    install.success()?;
    let helper = bin_dir.join("kubectl_complete-rotate");
    ensure!(
        install
            .stdout
            .starts_with(&format!("created {} -> kubectl-rotate", helper.display())),
        "{}",
        install.stdout
    );
    let run = env.kubectl_with(
        &["__complete", "rotate", "status", "-n", &env.namespace, ""],
        &user,
        None,
    )?;
    run.success()?;
    ensure!(candidates(&run).0 == ["app-secrets"], "{}", run.stdout);
    assert_silent_helper(&run)
}

//! `kubectl rotate completion SHELL [--install]`, and the `kubectl_complete-rotate` helper.
//!
//! For bash, zsh, fish and PowerShell this prints the script clap_complete generates from the
//! clap definition (the same text as the committed files in `completions/`). For `kubectl` it
//! sets up completion inside kubectl: kubectl (1.26 or newer) runs `kubectl_complete-rotate` from
//! PATH, and this binary answers under that name (`main.rs` dispatches on argv[0]). `--install`
//! creates that name as a link to this binary; without it, a small script doing the same is
//! printed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap_complete::{Generator, Shell};

use crate::cli::CompletionShell;
use crate::cli::completion::lookup::{ClusterLookup, LOOKUP_BOUND};
use crate::cli::completion::{self, HELPER_NAME};
use crate::model::environment::Environment;
use crate::ui::Printer;

/// The command the shell scripts complete: the plugin's file name.
const BIN_NAME: &str = "kubectl-rotate";

/// What `completion` was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct CompletionOptions {
    pub shell: CompletionShell,
    pub install: bool,
}

pub fn run(options: CompletionOptions, printer: &mut Printer) -> Result<u8> {
    let shell = match options.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
        CompletionShell::Powershell => Shell::PowerShell,
        CompletionShell::Kubectl if options.install => return install_helper(printer),
        CompletionShell::Kubectl => {
            printer.text(HELPER_SCRIPT);
            return Ok(0);
        }
    };
    if options.install {
        bail!(
            "--install only sets up completion inside kubectl (`kubectl rotate completion kubectl \
             --install`); for {shell}, see the README's \"Shell completion\" section"
        );
    }
    printer.text(&script(shell));
    Ok(0)
}

/// The completion script for `shell`, generated from the clap definition.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    // The built-in presets are verbs too; a config file's are completed live, inside kubectl.
    let mut command = crate::cli::command::command(&crate::plan::presets::built_in());
    clap_complete::generate(shell, &mut command, BIN_NAME, &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    match shell {
        // clap_complete's bash script spells the state of a verb one way where it is set
        // (`kubectl__rotate__subcmd__status`) and another where it is matched
        // (`kubectl__subcmd__rotate__subcmd__status`) when the command name has a hyphen, so
        // nothing after a verb completed (clap-rs/clap#6421). Matching the setter's spelling
        // fixes it; once clap_complete is fixed this replaces nothing.
        Shell::Bash => script.replace("kubectl__subcmd__rotate__", "kubectl__rotate__"),
        _ => script,
    }
}

/// The file `completions/` holds the script for `shell` in (clap_complete's names).
pub fn script_file_name(shell: Shell) -> String {
    shell.file_name(BIN_NAME)
}

/// A stand-in for the link `--install` creates, for a file system where links will not do.
const HELPER_SCRIPT: &str = r#"#!/bin/sh
# kubectl_complete-rotate: kubectl (1.26 or newer) runs this to complete `kubectl rotate ...`.
# Save it as an executable file named kubectl_complete-rotate in a directory on PATH, or let
# `kubectl rotate completion kubectl --install` link the plugin binary under that name instead.
exec kubectl-rotate __complete "$@"
"#;

/// Answers kubectl's completion request: candidates, then the directive. Never an error.
pub async fn complete_for_kubectl(words: &[String], env: &Environment) -> Vec<String> {
    let lookup = ClusterLookup::new(env.clone(), LOOKUP_BOUND);
    // The presets shape the command line: load them the way a run would (--config among the
    // words, KUBECTL_ROTATE_CONFIG, the user's config file); a broken file means built-ins only.
    let mut argv: Vec<std::ffi::OsString> = vec!["kubectl-rotate".into()];
    argv.extend(words.iter().map(std::ffi::OsString::from));
    let presets = crate::cli::command::load_presets(&argv, env);
    completion::complete(
        &crate::cli::command::command(&presets.presets),
        words,
        &lookup,
    )
    .await
    .protocol_lines()
}

/// Where the helper goes and what it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperLink {
    /// `DIR/kubectl_complete-rotate` (with `.exe` on Windows).
    pub link: PathBuf,
    /// The file name it points at, in the same directory.
    pub target: PathBuf,
}

/// Beside the plugin as kubectl found it on PATH; for a krew install (the binary lives under
/// `$KREW_ROOT/store/`), in `$KREW_ROOT/bin` beside krew's own link, so that it follows upgrades.
pub fn helper_link(invoked: &Path, real: &Path, krew_root: &Path) -> HelperLink {
    let suffix = std::env::consts::EXE_SUFFIX;
    let helper = format!("{HELPER_NAME}{suffix}");
    if real.starts_with(krew_root.join("store")) {
        return HelperLink {
            link: krew_root.join("bin").join(helper),
            target: PathBuf::from(format!("{BIN_NAME}{suffix}")),
        };
    }
    let dir = invoked.parent().unwrap_or(Path::new("."));
    let target = invoked
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("{BIN_NAME}{suffix}")));
    HelperLink {
        link: dir.join(helper),
        target,
    }
}

/// The path this binary was started as: kubectl passes the full path it found on PATH;
/// a bare name typed in a shell is looked up on PATH the way the shell did.
fn invoked_path(argv0: Option<OsString>, path_var: Option<OsString>) -> Result<PathBuf> {
    let current = std::env::current_exe().context("cannot tell where this binary is")?;
    let Some(argv0) = argv0.map(PathBuf::from) else {
        return Ok(current);
    };
    if argv0.components().count() > 1 {
        return Ok(std::path::absolute(&argv0).unwrap_or(argv0));
    }
    let found = path_var
        .iter()
        .flat_map(std::env::split_paths)
        .find_map(|dir| {
            let candidate = dir.join(&argv0);
            candidate.is_file().then_some(candidate)
        });
    Ok(found.unwrap_or(current))
}

fn install_helper(printer: &mut Printer) -> Result<u8> {
    let path_var = std::env::var_os("PATH");
    let invoked = invoked_path(std::env::args_os().next(), path_var.clone())?;
    let real = std::fs::canonicalize(&invoked).unwrap_or_else(|_| invoked.clone());
    let krew_root = std::env::var_os("KREW_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".krew")))
        .unwrap_or_default();
    let HelperLink { link, target } = helper_link(&invoked, &real, &krew_root);

    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if std::fs::read_link(&link).is_ok_and(|t| t == target) {
                printer.line(&format!(
                    "{} already links to {}; nothing to do",
                    link.display(),
                    target.display()
                ));
                return Ok(0);
            }
            std::fs::remove_file(&link)
                .with_context(|| format!("cannot replace the link {}", link.display()))?;
        }
        Ok(_) => bail!(
            "{} already exists and is not a link; remove it and run this again",
            link.display()
        ),
        Err(_) => {}
    }
    make_link(&target, &link).with_context(|| {
        format!(
            "cannot create {} (a link to {}); create it yourself, e.g. `ln -s {} {}`",
            link.display(),
            target.display(),
            target.display(),
            link.display()
        )
    })?;
    printer.line(&format!(
        "created {} -> {}: `kubectl rotate <TAB>` now completes verbs, flags and names from your \
         cluster (kubectl 1.26 or newer)",
        link.display(),
        target.display()
    ));
    let dir = link.parent().unwrap_or(Path::new("."));
    let on_path = path_var
        .iter()
        .flat_map(std::env::split_paths)
        .any(|p| p == dir);
    if !on_path {
        printer.warn(&format!(
            "{} is not on PATH, so kubectl will not find the helper there; add it to PATH",
            dir.display()
        ));
    }
    Ok(0)
}

#[cfg(unix)]
fn make_link(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Symbolic links need a privilege on Windows: a hard link (or a copy) serves as well.
#[cfg(not(unix))]
fn make_link(target: &Path, link: &Path) -> std::io::Result<()> {
    let source = link.with_file_name(target);
    std::fs::hard_link(&source, link).or_else(|_| std::fs::copy(&source, link).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_goes_beside_the_plugin_kubectl_found() {
        let link = helper_link(
            Path::new("/usr/local/bin/kubectl-rotate"),
            Path::new("/opt/rotate/kubectl-rotate"),
            Path::new("/home/u/.krew"),
        );
        assert_eq!(
            link,
            HelperLink {
                link: PathBuf::from(format!(
                    "/usr/local/bin/kubectl_complete-rotate{}",
                    std::env::consts::EXE_SUFFIX
                )),
                target: PathBuf::from("kubectl-rotate"),
            }
        );
    }

    #[test]
    fn for_a_krew_install_the_helper_goes_into_krew_bin_and_follows_upgrades() {
        let link = helper_link(
            Path::new("/home/u/.krew/bin/kubectl-rotate"),
            Path::new("/home/u/.krew/store/rotate/v0.1.0/kubectl-rotate"),
            Path::new("/home/u/.krew"),
        );
        let suffix = std::env::consts::EXE_SUFFIX;
        assert_eq!(
            link.link,
            PathBuf::from(format!("/home/u/.krew/bin/kubectl_complete-rotate{suffix}"))
        );
        assert_eq!(
            link.target,
            PathBuf::from(format!("kubectl-rotate{suffix}"))
        );
    }

    #[test]
    fn the_helper_script_calls_the_plugin_with_dunder_complete() {
        assert!(HELPER_SCRIPT.starts_with("#!/bin/sh\n"));
        assert!(HELPER_SCRIPT.ends_with("exec kubectl-rotate __complete \"$@\"\n"));
    }

    #[test]
    fn scripts_complete_the_plugin_file_name_and_its_verbs() {
        let bash = script(Shell::Bash);
        assert!(bash.contains("kubectl-rotate"), "{bash}");
        assert!(bash.contains("status"), "{bash}");
        assert_eq!(script_file_name(Shell::Zsh), "_kubectl-rotate");
    }
}

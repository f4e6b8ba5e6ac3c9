//! kubectl-rotate: a kubectl plugin that rotates Kubernetes Secrets safely.
//!
//! The crate is layered, and every `use crate::...` points down the list; nothing below names
//! anything above it (`../shared/tools/rust-shape` shows no import cycle):
//!
//! - `cli` parses the command line (clap types, flag values, the presets' verbs), resolves
//!   settings and hands each verb its options; `completion` serves kubectl's plugin completion.
//! - `commands`: one file and one entry function per verb: build a request, hand it to the
//!   engine, print what comes back.
//! - `engine`: the pipeline every writing verb shares (guards, preview, confirm, the journaled
//!   run, its ending), the runner, the runs kept in the cluster, the per-Secret lock.
//! - `systems`: the edge, one folder per system a key lives in (`secret`, `workloads`,
//!   `postgres`, `redis`, `encryption`): applying and reading back its steps, its preflight, its
//!   `verify` checks.
//! - `ui`: the one printer and the pure renderers (preview, status table, rollout progress).
//! - `plan`: pure decisions over objects already read: the steps of a change and their undo
//!   (one file per system under `plan/steps/`), the JSON Patch, consumer discovery, the
//!   formats kept in the cluster, the presets table.
//! - `cluster`: the API client (connection, TLS, proxies, errors, RBAC rules); it knows no
//!   domain type.
//! - `model`, `values`, `interrupt`: the shared vocabulary, new secret values and Ctrl-C; they
//!   import nothing from the crate.
//!
//! `main.rs` only parses, runs and maps the result to an exit code (and dispatches to the
//! completion helper on argv[0]).
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod engine;
pub mod interrupt;
pub mod model;
pub mod plan;
pub mod systems;
pub mod ui;
pub mod values;

use anyhow::Result;

use crate::cli::invocation::{self, Invocation};
use crate::model::environment::Environment;
use crate::ui::Printer;

/// An error that ends the process with a specific exit code (verify's "> 1: could not check").
#[derive(Debug)]
pub struct ExitWith {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitWith {}

/// The exit code for an error: its `ExitWith` code, else 1.
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<ExitWith>()
        .map(|e| e.code)
        .unwrap_or(exit::ERROR)
}

/// Exit codes, an interface documented in the README.
pub mod exit {
    /// Everything asked for was done.
    pub const SUCCESS: u8 = 0;
    /// An error: the message on stderr says what failed and what to do.
    pub const ERROR: u8 = 1;
    /// The command line itself was wrong (unknown flag, missing argument); for `verify`, also
    /// "verification could not run" (as `kubectl diff` uses codes above 1).
    pub const USAGE: u8 = 2;
}

/// Runs one parsed command line; returns the exit code for a run that did not fail.
pub async fn run(
    invocation: Invocation,
    presets: &crate::plan::presets::Presets,
    env: &Environment,
    printer: &mut Printer,
) -> Result<u8> {
    match invocation {
        Invocation::Verb(cli) => invocation::run_verb(cli, presets, env, printer).await,
        Invocation::Preset {
            global,
            preset,
            args,
        } => invocation::run_preset(global, *preset, args, presets, env, printer).await,
    }
}

/// The error chain as one message, outermost first, dropping causes that an outer message
/// already quotes (kube's errors embed their source in their own text).
pub fn error_message(err: &anyhow::Error) -> String {
    let err: &dyn std::error::Error = err.as_ref();
    crate::model::errors::error_chain(err)
}

/// The name to show in usage and help: `kubectl rotate` when this binary runs as the kubectl
/// plugin (its file is named `kubectl-rotate`, which is how kubectl finds and runs it),
/// otherwise the file name it was started as.
pub fn display_name(argv0: &std::ffi::OsStr) -> String {
    let file = std::path::Path::new(argv0)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match file.as_str() {
        "kubectl-rotate" | "" => "kubectl rotate".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_do_not_repeat_a_cause_already_quoted() {
        let err = anyhow::anyhow!("No such file (os error 2)")
            .context("failed to read '/x': No such file (os error 2)")
            .context("cannot read the kubeconfig /x");
        assert_eq!(
            error_message(&err),
            "cannot read the kubeconfig /x: failed to read '/x': No such file (os error 2)"
        );
    }

    #[test]
    fn length_without_generate_is_refused() {
        let args = cli::ValueSourceArgs {
            from_stdin: true,
            ..Default::default()
        };
        let err = invocation::value_source(&args, Some(20))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--length applies only to generated values"),
            "{err}"
        );
    }

    #[test]
    fn usage_says_kubectl_rotate_when_run_as_the_plugin() {
        assert_eq!(
            display_name("/usr/local/bin/kubectl-rotate".as_ref()),
            "kubectl rotate"
        );
        assert_eq!(
            display_name("kubectl-rotate.exe".as_ref()),
            "kubectl rotate"
        );
        assert_eq!(display_name("./rotate-dev".as_ref()), "rotate-dev");
    }
}

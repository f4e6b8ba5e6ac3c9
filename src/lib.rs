//! kubectl-rotate: a kubectl plugin that rotates Kubernetes Secrets safely.
//!
//! The flow runs one way: parse flags (`cli`) -> resolve settings (`settings`) -> read the
//! cluster (`cluster`) -> pure planning and reports (`consumers`, `secret_meta`, `report`) ->
//! render (`ui`) -> one entry function per verb (`commands`). `main.rs` only parses, runs and
//! maps the result to an exit code.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod access;
pub mod backup;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod consumers;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod rollout;
pub mod secret_meta;
pub mod settings;
pub mod ui;
pub mod values;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::settings::Environment;
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
pub async fn run(cli: Cli, env: &Environment, printer: &mut Printer) -> Result<u8> {
    let connection = settings::resolve_connection(&cli.global, env)?;
    match cli.command {
        Command::Status(args) => {
            let options = commands::status::StatusOptions {
                secret: args.secret,
                all_namespaces: args.all_namespaces,
                output: args.output,
            };
            commands::status::run(&connection, options, printer).await
        }
        Command::Secret(args) => {
            let options = commands::secret::SecretOptions {
                secret: args.secret,
                key: args.key,
                source: value_source(&args.source, args.rotation.length)?,
                create_key: args.rotation.create_key,
                force: args.rotation.run.force,
                restart: settings::parse_restart(&args.rotation.run.restart)?,
                no_rollback: args.rotation.no_rollback,
                run: run_options(&args.rotation.run)?,
            };
            commands::secret::run(&connection, options, printer).await
        }
        Command::Rollback(args) => {
            let source = match (args.to, args.from_file) {
                (Some(name), _) => commands::rollback::BackupSource::Named(name),
                (None, Some(path)) => commands::rollback::BackupSource::File(path),
                (None, None) => commands::rollback::BackupSource::Newest,
            };
            let options = commands::rollback::RollbackOptions {
                secret: args.secret,
                keys: args.keys,
                source,
                force: args.run.force,
                restart: settings::parse_restart(&args.run.restart)?,
                run: run_options(&args.run)?,
            };
            commands::rollback::run(&connection, options, printer).await
        }
        Command::Verify(args) => {
            let logs = args
                .logs
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| anyhow::anyhow!("invalid --logs pattern: {e}"))?;
            let health = args
                .health
                .as_deref()
                .map(commands::verify::parse_health)
                .transpose()?;
            let options = commands::verify::VerifyOptions {
                secret: args.secret,
                keys: args.keys,
                logs,
                health,
                output: args.output,
                kinds: Vec::new(),
            };
            commands::verify::run(&connection, options, printer)
                .await
                .map_err(|err| {
                    anyhow::Error::new(ExitWith {
                        code: exit::USAGE,
                        message: error_message(&err),
                    })
                })
        }
        Command::Backup(args) => {
            let mode = if args.list {
                commands::backup::Mode::List(args.output)
            } else if let Some(path) = args.to_file {
                commands::backup::Mode::File(path)
            } else {
                commands::backup::Mode::InCluster {
                    keep: args.keep as usize,
                    yes: args.yes,
                }
            };
            let options = commands::backup::BackupOptions {
                secret: args.secret,
                keys: args.keys,
                mode,
            };
            commands::backup::run(&connection, options, printer).await
        }
    }
}

fn value_source(
    args: &cli::ValueSourceArgs,
    length: Option<usize>,
) -> Result<commands::secret::ValueSource> {
    use commands::secret::ValueSource;
    use values::Generator;
    if length.is_some() && args.generate.is_none() {
        anyhow::bail!(
            "--length applies only to generated values; add --generate KIND or drop --length"
        );
    }
    Ok(if let Some(kind) = args.generate {
        let generator = match kind {
            cli::GenerateKind::Password => Generator::Password,
            cli::GenerateKind::Hex => Generator::Hex,
            cli::GenerateKind::Token => Generator::Token,
            cli::GenerateKind::Fernet => Generator::Fernet,
        };
        ValueSource::Generate { generator, length }
    } else if let Some(path) = &args.from_file {
        ValueSource::File(path.clone())
    } else if let Some(var) = &args.from_env {
        ValueSource::Env(var.clone())
    } else if args.prompt {
        ValueSource::Prompt
    } else {
        // clap's group guarantees one source; --from-stdin is the one left.
        ValueSource::Stdin
    })
}

fn run_options(args: &cli::RunArgs) -> Result<pipeline::RunOptions> {
    let timeout = settings::parse_duration(&args.timeout).map_err(|e| {
        anyhow::anyhow!(
            "invalid --timeout {:?}: {e}; use e.g. 5m or 90s",
            args.timeout
        )
    })?;
    Ok(pipeline::RunOptions {
        dry_run: args.dry_run,
        yes: args.yes,
        output: args.output,
        show_secrets: args.show_secrets,
        timeout,
    })
}

/// The error chain as one message, outermost first, dropping causes that an outer message
/// already quotes (kube's errors embed their source in their own text).
pub fn error_message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
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
        let err = value_source(&args, Some(20)).unwrap_err().to_string();
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

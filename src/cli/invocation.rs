//! From argv to a resolved invocation: the clap command (the fixed verbs plus one verb per
//! preset, so presets are data and still get help, usage errors and completion), parsing into
//! either a verb or a preset run, and turning clap's types into each verb's resolved options
//! (commands never see clap types).

use anyhow::Result;
use clap::{ArgMatches, FromArgMatches};

use crate::cli::settings;
use crate::cli::{self, Cli, Command, GlobalArgs, PresetArgs};
use crate::engine::pipeline;
use crate::model::environment::Environment;
use crate::plan::presets::{Preset, Presets};
use crate::ui::Printer;
use crate::{commands, values};

/// A parsed command line.
pub enum Invocation {
    Verb(Cli),
    Preset {
        global: GlobalArgs,
        preset: Box<Preset>,
        args: PresetArgs,
    },
}

/// Turns clap's matches into an invocation.
pub fn parse(matches: &ArgMatches, presets: &[Preset]) -> Result<Invocation, clap::Error> {
    if let Some((name, sub)) = matches.subcommand()
        && let Some(preset) = presets.iter().find(|p| p.name == name)
    {
        let global = GlobalArgs::from_arg_matches(matches)?;
        let args = PresetArgs::from_arg_matches(sub)?;
        return Ok(Invocation::Preset {
            global,
            preset: Box::new(preset.clone()),
            args,
        });
    }
    Ok(Invocation::Verb(Cli::from_arg_matches(matches)?))
}

/// Runs one of the fixed verbs: each verb's options from its flags, then its command.
pub async fn run_verb(
    cli: Cli,
    presets: &Presets,
    env: &Environment,
    printer: &mut Printer,
) -> Result<u8> {
    let connection = settings::resolve_connection(&cli.global, env)?;
    match cli.command {
        Command::Status(args) => {
            commands::status::run(&connection, status_options(args), printer).await
        }
        Command::Secret(args) => {
            let options = secret_options(args, presets)?;
            commands::secret::run(&connection, options, printer).await
        }
        Command::Rollback(args) => {
            let options = rollback_options(args, presets)?;
            commands::rollback::run(&connection, options, printer).await
        }
        Command::Resume(args) => {
            let run = resume_options(&args)?;
            commands::resume::run(&connection, args.secret, run, printer).await
        }
        Command::Verify(args) => {
            let options = verify_options(args, presets)?;
            commands::verify::run(&connection, options, printer)
                .await
                .map_err(|err| {
                    anyhow::Error::new(crate::ExitWith {
                        code: crate::exit::USAGE,
                        message: crate::error_message(&err),
                    })
                })
        }
        Command::Completion(args) => {
            crate::cli::completion::scripts::run(completion_options(args), printer)
        }
        Command::Presets(args) => commands::presets::list(presets, args.output, printer),
        Command::Notice(args) => {
            commands::presets::notice(presets, &args.preset, &args.date, &args.contact, printer)
        }
        Command::Backup(args) => {
            commands::backup::run(&connection, backup_options(args), printer).await
        }
    }
}

/// `status`'s options: its flags as they are.
fn status_options(args: cli::StatusArgs) -> commands::status::StatusOptions {
    commands::status::StatusOptions {
        secret: args.secret,
        all_namespaces: args.all_namespaces,
        output: args.output,
        strict: args.strict,
    }
}

/// `secret`'s options, with the servers whose password a preset says the key is.
fn secret_options(
    args: cli::SecretArgs,
    presets: &Presets,
) -> Result<commands::secret::SecretOptions> {
    let servers = server_keys(presets, &args.secret);
    Ok(commands::secret::SecretOptions {
        secret: args.secret,
        key: args.key,
        source: value_source(&args.source, args.rotation.length)?,
        create_key: args.rotation.create_key,
        force: args.rotation.run.force,
        restart: settings::parse_restart(&args.rotation.run.restart.join(","))?,
        no_rollback: args.rotation.no_rollback,
        run: run_options(&args.rotation.run)?,
        servers,
        encryption_keys: presets.encryption_keys(),
    })
}

/// The keys of `secret` that a PostgreSQL or Redis preset names as its server's password.
fn server_keys(presets: &Presets, secret: &str) -> Vec<commands::secret::ServerKey> {
    presets
        .of_secret(secret)
        .filter_map(|p| {
            let (system, server) = match (&p.postgres, &p.redis) {
                (Some(pg), _) => ("PostgreSQL", pg.server.clone()),
                (_, Some(redis)) => ("Redis", redis.server.clone()),
                _ => return None,
            };
            Some(commands::secret::ServerKey {
                key: p.key.clone(),
                preset: p.name.clone(),
                system,
                server,
            })
        })
        .collect()
}

/// `rollback`'s options: where the values come from, and the servers presets tie to its keys.
fn rollback_options(
    args: cli::RollbackArgs,
    presets: &Presets,
) -> Result<commands::rollback::RollbackOptions> {
    let source = match (args.run_id, args.to, args.from_file) {
        (Some(id), _, _) => commands::rollback::BackupSource::Run(id),
        (None, Some(name), _) => commands::rollback::BackupSource::Named(name),
        (None, None, Some(path)) => commands::rollback::BackupSource::File(path),
        (None, None, None) => commands::rollback::BackupSource::Newest,
    };
    let databases = presets.databases_of(&args.secret);
    let redis = presets.redis_of(&args.secret);
    Ok(commands::rollback::RollbackOptions {
        secret: args.secret,
        keys: args.keys,
        databases,
        redis,
        encryption_keys: presets.encryption_keys(),
        source,
        force: args.run.force,
        restart: settings::parse_restart(&args.run.restart.join(","))?,
        run: run_options(&args.run)?,
    })
}

/// `resume`'s run options: never forced, never strict (the run goes on as its journal says).
fn resume_options(args: &cli::ResumeArgs) -> Result<pipeline::RunOptions> {
    Ok(pipeline::RunOptions {
        dry_run: args.dry_run,
        yes: args.yes,
        output: args.output,
        show_secrets: false,
        timeout: timeout(&args.timeout)?,
        force: false,
        keep: args.keep as usize,
        strict: false,
    })
}

/// `verify`'s options, with what presets know about the Secret's keys.
fn verify_options(
    args: cli::VerifyArgs,
    presets: &Presets,
) -> Result<commands::verify::VerifyOptions> {
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
    // A preset knows what its key holds (an OpenAI key, a Fernet key): use that.
    let kinds = presets
        .of_secret(&args.secret)
        .map(|p| (p.key.clone(), p.kind))
        .collect();
    Ok(commands::verify::VerifyOptions {
        homes: presets.homes_of(&args.secret),
        secret: args.secret,
        keys: args.keys,
        logs,
        health,
        output: args.output,
        kinds,
        strict: args.strict,
    })
}

/// `completion`'s options: its flags as they are.
fn completion_options(
    args: cli::CompletionArgs,
) -> crate::cli::completion::scripts::CompletionOptions {
    crate::cli::completion::scripts::CompletionOptions {
        shell: args.shell,
        install: args.install,
    }
}

/// `backup`'s mode: `--list`, else `--to-file`, else a backup in the cluster.
fn backup_options(args: cli::BackupArgs) -> commands::backup::BackupOptions {
    let mode = if args.list {
        commands::backup::Mode::List(args.output)
    } else if let Some(path) = args.to_file {
        commands::backup::Mode::File(path)
    } else {
        commands::backup::Mode::InCluster {
            keep: args.keep.map(|k| k as usize),
            yes: args.yes,
        }
    };
    commands::backup::BackupOptions {
        secret: args.secret,
        keys: args.keys,
        mode,
    }
}

/// Runs a preset verb.
pub async fn run_preset(
    global: GlobalArgs,
    preset: Preset,
    args: PresetArgs,
    presets: &Presets,
    env: &Environment,
    printer: &mut Printer,
) -> Result<u8> {
    presets.ok()?;
    let strategy_error = args.strategy.and_then(|s| {
        let (fits, kind, choices) = match (&preset.postgres, &preset.redis, &preset.encryption) {
            (Some(_), _, _) => (
                s.for_postgres(),
                "a PostgreSQL password",
                "single-user or alternating-users",
            ),
            (_, Some(_), _) => (s.for_redis(), "a Redis password", "overlap or requirepass"),
            (_, _, Some(_)) => (
                s.for_encryption(),
                "a data encryption key",
                "scale-down or keyring",
            ),
            _ => {
                return Some(format!(
                    "--strategy is for PostgreSQL, Redis and data encryption key presets; preset {:?} has none of \
                     their settings",
                    preset.name
                ));
            }
        };
        (!fits).then(|| {
            format!(
                "--strategy {} does not fit preset {:?}: its key is {kind}; use {choices}",
                s.name(),
                preset.name
            )
        })
    });
    let encryption = &args.encryption;
    let strategy_error = strategy_error.or_else(|| {
        let given = encryption.backup_dir.is_some()
            || encryption.key_backup_file.is_some()
            || encryption.db_backup_file.is_some()
            || encryption.no_db_backup;
        (given && preset.encryption.is_none()).then(|| {
            format!(
                "--backup-dir, --key-backup-file, --db-backup-file and --no-db-backup are for data encryption key \
                 presets; preset {:?} has no encryption settings",
                preset.name
            )
        })
    });
    if let Some(message) = strategy_error {
        // A usage error (exit 2), like clap's.
        return Err(crate::ExitWith {
            code: crate::exit::USAGE,
            message,
        }
        .into());
    }
    let connection = settings::resolve_connection(&global, env)?;
    let any_source = args.source.generate.is_some()
        || args.source.from_stdin
        || args.source.from_file.is_some()
        || args.source.from_env.is_some()
        || args.source.prompt;
    let source = if any_source {
        Some(value_source(&args.source, args.rotation.length)?)
    } else {
        None
    };
    let options = commands::preset::PresetOptions {
        preset,
        source,
        length: args.rotation.length,
        create_key: args.rotation.create_key,
        force: args.rotation.run.force,
        restart: settings::parse_restart(&args.rotation.run.restart.join(","))?,
        no_rollback: args.rotation.no_rollback,
        check_key: args.check_key,
        openai_base_url: args.openai_base_url,
        strategy: args.strategy,
        encryption: crate::systems::encryption::preflight::BackupFiles {
            dir: args.encryption.backup_dir,
            key_file: args.encryption.key_backup_file,
            db_file: args.encryption.db_backup_file,
            no_db_backup: args.encryption.no_db_backup,
        },
        encryption_keys: presets.encryption_keys(),
        run: run_options(&args.rotation.run)?,
    };
    commands::preset::run(&connection, options, printer).await
}

pub fn value_source(
    args: &cli::ValueSourceArgs,
    length: Option<usize>,
) -> Result<commands::secret::ValueSource> {
    use commands::secret::ValueSource;
    use values::Generator;
    if length.is_some() && args.generate.is_none() {
        // A usage error (exit 2), like clap's.
        return Err(crate::ExitWith {
            code: crate::exit::USAGE,
            message: "--length applies only to generated values; add --generate KIND or drop \
                      --length"
                .into(),
        }
        .into());
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
    Ok(pipeline::RunOptions {
        dry_run: args.dry_run,
        yes: args.yes,
        output: args.output,
        show_secrets: args.show_secrets,
        timeout: timeout(&args.timeout)?,
        force: args.force,
        keep: args.keep as usize,
        strict: args.strict,
    })
}

/// `--timeout`'s duration; the message says what a valid one looks like.
fn timeout(text: &str) -> Result<std::time::Duration> {
    settings::parse_duration(text)
        .map_err(|e| anyhow::anyhow!("invalid --timeout {text:?}: {e}; use e.g. 5m or 90s"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn command(args: &[&str]) -> Command {
        let argv = std::iter::once("kubectl-rotate").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn backup_lists_or_writes_a_file_else_backs_up_in_the_cluster() {
        let mode = |args: &[&str]| match command(args) {
            Command::Backup(args) => backup_options(args).mode,
            _ => unreachable!(),
        };
        assert!(matches!(
            mode(&["backup", "s", "--list"]),
            commands::backup::Mode::List(_)
        ));
        assert!(matches!(
            mode(&["backup", "s", "--to-file", "-"]),
            commands::backup::Mode::File(path) if path.as_os_str() == "-"
        ));
        assert!(matches!(
            mode(&["backup", "s", "--keep", "3", "-y"]),
            commands::backup::Mode::InCluster {
                keep: Some(3),
                yes: true
            }
        ));
    }

    #[test]
    fn rollback_undoes_a_run_or_restores_a_named_backup_a_file_or_the_newest() {
        use commands::rollback::BackupSource;
        let presets = Presets {
            presets: crate::plan::presets::built_in(),
            config_error: None,
        };
        let source = |args: &[&str]| match command(args) {
            Command::Rollback(args) => rollback_options(args, &presets).unwrap().source,
            _ => unreachable!(),
        };
        assert!(
            matches!(source(&["rollback", "s", "--run", "r1"]), BackupSource::Run(id) if id == "r1")
        );
        assert!(
            matches!(source(&["rollback", "s", "--to", "b1"]), BackupSource::Named(n) if n == "b1")
        );
        assert!(matches!(
            source(&["rollback", "s", "--from-file", "f.json"]),
            BackupSource::File(_)
        ));
        assert!(matches!(source(&["rollback", "s"]), BackupSource::Newest));
    }

    #[test]
    fn a_secret_key_that_a_preset_names_as_a_server_password_is_flagged() {
        let presets = Presets {
            presets: crate::plan::presets::built_in(),
            config_error: None,
        };
        let keys: Vec<(String, &str)> = server_keys(&presets, "app-secrets")
            .into_iter()
            .map(|k| (k.key, k.system))
            .collect();
        assert_eq!(
            keys,
            [
                ("postgres-password".to_string(), "PostgreSQL"),
                ("redis-password".to_string(), "Redis")
            ]
        );
        assert!(server_keys(&presets, "other").is_empty());
    }

    #[test]
    fn a_bad_timeout_says_what_a_good_one_looks_like() {
        assert_eq!(timeout("90s").unwrap(), std::time::Duration::from_secs(90));
        let err = timeout("soon").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid --timeout \"soon\": "),
            "{err}"
        );
        assert!(err.to_string().ends_with("; use e.g. 5m or 90s"), "{err}");
    }
}

//! From argv to a resolved invocation: the clap command (the fixed verbs plus one verb per
//! preset, so presets are data and still get help, usage errors and completion), parsing into
//! either a verb or a preset run, and turning clap's types into each verb's resolved options
//! (commands never see clap types).

use anyhow::Result;
use clap::{ArgMatches, FromArgMatches};

use crate::cli::settings;
use crate::cli::{self, Cli, Command, GlobalArgs, PresetArgs};
use crate::engine::pipeline;
use crate::engine::pipeline::DryRun;
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

/// Runs one of the fixed verbs.
pub async fn run_verb(
    cli: Cli,
    presets: &Presets,
    env: &Environment,
    printer: &mut Printer,
) -> Result<u8> {
    let connection = settings::resolve_connection(&cli.global, env)?;
    match cli.command {
        Command::Status(args) => {
            let options = commands::status::StatusOptions {
                secret: args.secret,
                all_namespaces: args.all_namespaces,
                output: args.output,
                strict: args.strict,
            };
            commands::status::run(&connection, options, printer).await
        }
        Command::Secret(args) => {
            let servers = presets
                .presets
                .iter()
                .filter(|p| p.secret == args.secret)
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
                .collect();
            let options = commands::secret::SecretOptions {
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
            };
            commands::secret::run(&connection, options, printer).await
        }
        Command::Rollback(args) => {
            let source = match (args.run_id, args.to, args.from_file) {
                (Some(id), _, _) => commands::rollback::BackupSource::Run(id),
                (None, Some(name), _) => commands::rollback::BackupSource::Named(name),
                (None, None, Some(path)) => commands::rollback::BackupSource::File(path),
                (None, None, None) => commands::rollback::BackupSource::Newest,
            };
            let databases = presets.databases_of(&args.secret);
            let redis = presets.redis_of(&args.secret);
            let options = commands::rollback::RollbackOptions {
                secret: args.secret,
                keys: args.keys,
                databases,
                redis,
                encryption_keys: presets.encryption_keys(),
                source,
                force: args.run.force,
                restart: settings::parse_restart(&args.run.restart.join(","))?,
                run: run_options(&args.run)?,
            };
            commands::rollback::run(&connection, options, printer).await
        }
        Command::Resume(args) => {
            let timeout = settings::parse_duration(&args.timeout).map_err(|e| {
                anyhow::anyhow!(
                    "invalid --timeout {:?}: {e}; use e.g. 5m or 90s",
                    args.timeout
                )
            })?;
            let run = pipeline::RunOptions {
                dry_run: DryRun::None,
                yes: args.yes,
                output: args.output,
                show_secrets: false,
                timeout,
                force: false,
                keep: args.keep as usize,
                strict: false,
            };
            commands::resume::run(&connection, args.secret, run, printer).await
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
            // A preset knows what its key holds (an OpenAI key, a Fernet key): use that.
            let kinds = presets
                .presets
                .iter()
                .filter(|p| p.secret == args.secret)
                .map(|p| (p.key.clone(), p.kind))
                .collect();
            let databases = presets.databases_of(&args.secret);
            let redis = presets.redis_of(&args.secret);
            let encryption = presets
                .presets
                .iter()
                .filter(|p| p.secret == args.secret)
                .filter_map(|p| p.encryption.clone().map(|e| (p.key.clone(), e)))
                .collect();
            let options = commands::verify::VerifyOptions {
                secret: args.secret,
                keys: args.keys,
                logs,
                health,
                output: args.output,
                kinds,
                databases,
                redis,
                encryption,
                strict: args.strict,
            };
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
            let options = crate::cli::completion::scripts::CompletionOptions {
                shell: args.shell,
                install: args.install,
            };
            crate::cli::completion::scripts::run(options, printer)
        }
        Command::Presets(args) => commands::presets::list(presets, args.output, printer),
        Command::Notice(args) => {
            commands::presets::notice(presets, &args.preset, &args.date, &args.contact, printer)
        }
        Command::Backup(args) => {
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
            let options = commands::backup::BackupOptions {
                secret: args.secret,
                keys: args.keys,
                mode,
            };
            commands::backup::run(&connection, options, printer).await
        }
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
        force: args.force,
        keep: args.keep as usize,
        strict: args.strict,
    })
}

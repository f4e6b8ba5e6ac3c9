//! From argv to a resolved invocation: the clap command (the fixed verbs plus one verb per
//! preset, so presets are data and still get help, usage errors and completion), parsing into
//! either a verb or a preset run, and turning clap's types into each verb's resolved options
//! (commands never see clap types).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches};

use crate::cli::{self, Cli, Command, GlobalArgs, PresetArgs};
use crate::plan::presets::{self, Preset};
use crate::cli::settings;
use crate::model::environment::Environment;
use crate::ui::Printer;
use crate::engine::pipeline;
use crate::{commands, values};

/// The presets this run knows: built-in and from the config file. A broken config file does
/// not stop the fixed verbs; it is reported when a preset is used or listed.
pub struct Presets {
    pub presets: Vec<Preset>,
    pub config_error: Option<String>,
}

impl Presets {
    pub fn ok(&self) -> Result<&[Preset]> {
        match &self.config_error {
            Some(problem) => Err(anyhow::anyhow!("{problem}")),
            None => Ok(&self.presets),
        }
    }

    /// The keys of `secret` that a PostgreSQL preset describes, with its settings (rolled back
    /// in the database too; verified by logging in).
    pub fn databases_of(&self, secret: &str) -> Vec<(String, crate::plan::presets::PostgresSettings)> {
        self.presets
            .iter()
            .filter(|p| p.secret == secret)
            .filter_map(|p| p.postgres.clone().map(|pg| (p.key.clone(), pg)))
            .collect()
    }

    /// Every data encryption key a preset describes: (Secret, key, preset).
    pub fn encryption_keys(&self) -> Vec<commands::secret::EncryptionKey> {
        self.presets
            .iter()
            .filter(|p| p.encryption.is_some())
            .map(|p| commands::secret::EncryptionKey {
                secret: p.secret.clone(),
                key: p.key.clone(),
                preset: p.name.clone(),
                columns: p
                    .encryption
                    .iter()
                    .flat_map(|e| e.columns.iter().map(|c| c.to_string()))
                    .collect(),
            })
            .collect()
    }

    /// The keys of `secret` that a Redis preset describes, with its settings.
    pub fn redis_of(&self, secret: &str) -> Vec<(String, crate::plan::presets::RedisSettings)> {
        self.presets
            .iter()
            .filter(|p| p.secret == secret)
            .filter_map(|p| p.redis.clone().map(|r| (p.key.clone(), r)))
            .collect()
    }
}

/// Loads the presets, finding the config file from `--config` in `args` (before clap runs,
/// because the presets shape the command line itself), `KUBECTL_ROTATE_CONFIG`, or home.
pub fn load_presets(args: &[OsString], env: &Environment) -> Presets {
    let flag = config_flag(args);
    let mut result = Presets {
        presets: presets::built_in(),
        config_error: None,
    };
    let Some((path, required)) = presets::config_path(
        flag.as_deref(),
        env.rotate_config.as_deref(),
        env.home.as_deref(),
    ) else {
        return result;
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => match presets::merge_config(presets::built_in(), &text, &path) {
            Ok(merged) => result.presets = merged,
            Err(err) => result.config_error = Some(format!("{err:#}")),
        },
        Err(err) if required || err.kind() != std::io::ErrorKind::NotFound => {
            result.config_error = Some(format!(
                "cannot read the presets config {}: {err}",
                path.display()
            ));
        }
        Err(_) => {}
    }
    result
}

fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
        if text == "--" {
            break;
        }
    }
    None
}

/// The full command line definition: the fixed verbs and one verb per preset.
pub fn command(presets: &[Preset]) -> clap::Command {
    let mut command = Cli::command();
    for preset in presets {
        let about = preset.description.clone();
        let long = format!(
            "{}.\n\nRotates key {} of Secret {} with the same pipeline as `secret` (preview, backup, guarded \
patch, restart, watch, automatic rollback).\nDowntime: {}\nImpact: {}\nValue: {}",
            preset.description,
            preset.key,
            preset.secret,
            preset.downtime,
            preset.impact,
            match preset.source {
                presets::DefaultSource::Generate(g) => format!("generated ({}) unless you supply one", presets::generator_str(g)),
                presets::DefaultSource::Supplied => "you supply it: a hidden prompt on a terminal, or --from-stdin/--from-file/--from-env".into(),
            }
        );
        let long = match &preset.postgres {
            Some(pg) => format!(
                "{long}\n\nPostgreSQL: the password of role {user} changes in database {db} at {server} first \
(ALTER ROLE with a SCRAM verifier, {who}), then in the Secret; every step is journaled, \
resumable and undone in both places. {server_note}\n\nStrategies (--strategy, default {default}): \
single-user changes the role's password in place (old pods fail new logins until they are \
replaced); alternating-users switches the Secret ({user_key}) between roles {user} and {clone}, \
giving the unused one a fresh password, and disables the old one's login after the rollout: no \
downtime.",
                user = pg.user,
                db = pg.database,
                server = pg.server,
                who = match &pg.admin {
                    Some(a) => format!(
                        "as {} with the password in Secret {} key {}",
                        a.user, a.secret, a.key
                    ),
                    None => "as the role itself, with its current password".to_string(),
                },
                server_note = "The server's own workload is not restarted.",
                default = pg.strategy.name(),
                user_key = pg.user_key,
                clone = pg.clone_user,
            ),
            None => long,
        };
        let long = match &preset.redis {
            Some(redis) => format!(
                "{long}\n\nRedis: the password of user {user} changes on {server} (and on every replica: \
the ones INFO replication reports that are pods of the namespace{listed}) first, then in the \
Secret; every step is journaled, resumable and undone in both places. Inside commands a \
password is sent as its SHA-256 (ACL SETUSER {user} #<hash>), as text only to log in (AUTH), and \
the change is persisted the way the server is configured (ACL SAVE, or CONFIG REWRITE). The Redis server's own workload is not restarted. \
Sentinel setups are refused.\n\nStrategies (--strategy, default overlap on Redis 6+, requirepass on a server \
without ACLs): overlap adds the new password, lets the pods roll over while both work, checks \
the new pods, then removes the old one: no downtime. requirepass (CONFIG SET requirepass, the \
default user only) replaces the password at once: old pods' new connections fail until they are \
replaced.",
                user = redis.user,
                server = redis.server,
                listed = if redis.replicas.is_empty() {
                    String::new()
                } else {
                    format!(", and {}", redis.replicas.join(", "))
                },
            ),
            None => long,
        };
        let long = match &preset.encryption {
            Some(enc) => format!(
                "{long}\n\nThe runbook's encryption-key procedure, every step journaled, resumable and undoable: \
back up the key (a backup Secret, and a 0600 file for your password manager) and the database (pg_dump in \
the pod of {server}, through the API server, to a 0600 file checked complete), generate a Fernet key, \
scale the consumers to 0 (their replica counts recorded), re-encrypt every token of {columns} in one \
transaction (a row that does not decrypt stops it with nothing changed), patch the Secret, scale back up, \
watch, and check that every row decrypts with the new key and the new pods logged their start. \
--dry-run decrypts every row with the current key and reports the counts, writing nothing. A failure \
after the migration re-encrypts the rows back and restores the key; the dump is the last resort.",
                server = enc.server,
                columns = enc
                    .columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => long,
        };
        let mut sub = PresetArgs::augment_args(clap::Command::new(preset.name.clone()))
            .about(about)
            .long_about(long)
            .mut_group("value-source", |g| g.required(false));
        if preset.encryption.is_none() {
            for flag in cli::ENCRYPTION_FLAGS {
                sub = sub.mut_arg(flag, |a| a.hide(true));
            }
        }
        command = command.subcommand(sub);
    }
    command
}

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
                dry_run: cli::DryRun::None,
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
            let options = commands::completion::CompletionOptions {
                shell: args.shell,
                install: args.install,
            };
            commands::completion::run(options, printer)
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
        encryption: args.encryption,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verb's help lists its own flags first, then kubectl's connection flags together,
    /// then the plugin's global ones (`kubectl rotate openai --help` once had `--length` between
    /// `--as` and `--as-group`).
    #[test]
    fn every_verbs_help_lists_its_own_flags_before_the_connection_flags() {
        const CONNECTION: [&str; 8] = [
            "--namespace",
            "--context",
            "--kubeconfig",
            "--cluster",
            "--user",
            "--as ",
            "--as-group",
            "--request-timeout",
        ];
        let mut root = command(&crate::plan::presets::built_in());
        root.build();
        let mut checked = 0;
        for sub in root.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            let help = sub.render_long_help().to_string();
            let heading = help
                .find("\nConnection flags:\n")
                .unwrap_or_else(|| panic!("{name}: no `Connection flags:` heading:\n{help}"));
            let global = help
                .find("\nGlobal flags:\n")
                .unwrap_or_else(|| panic!("{name}: no `Global flags:` heading:\n{help}"));
            assert!(
                heading < global,
                "{name}: global flags before connection flags"
            );
            let connection = &help[heading..global];
            for flag in CONNECTION {
                assert!(
                    connection.contains(&format!("  {flag}"))
                        || connection.contains(&format!(", {flag}")),
                    "{name}: {flag} is not under `Connection flags:`:\n{help}"
                );
            }
            let own_flags = help[heading..]
                .lines()
                .filter(|line| line.trim_start().starts_with('-'))
                .filter(|line| {
                    !CONNECTION.iter().any(|flag| line.contains(flag))
                        && !line.contains("--config")
                        && !line.contains("--color")
                })
                .collect::<Vec<_>>();
            assert!(
                own_flags.is_empty(),
                "{name}: its own flags come after the connection flags: {own_flags:?}"
            );
            checked += 1;
        }
        assert!(checked >= 12, "only {checked} verbs checked");
    }
}

//! `kubectl rotate secret NAME KEY (--generate KIND | --from-stdin | --from-file PATH |
//! --from-env VAR | --prompt)`: rotate one key. Reads the Secret, refuses early what cannot
//! happen, takes the new value, plans the guarded change and runs the shared pipeline, rolling
//! back automatically when the rollout fails.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::cluster;
use crate::cluster::connect::ConnectionSettings;
use crate::engine::pipeline::{self, Request, RunOptions};
use crate::plan::change::Action;
use crate::plan::patch::{self, KeyChange, RestartMode};
use crate::plan::presets::EncryptionKey;
use crate::ui::Printer;
use crate::values::{self, Generator, SecretValue};

/// Where the new value comes from.
#[derive(Debug, Clone)]
pub enum ValueSource {
    Generate {
        generator: Generator,
        length: Option<usize>,
    },
    Stdin,
    File(PathBuf),
    Env(String),
    Prompt,
}

/// What `secret` was asked to do, resolved from the flags.
#[derive(Debug, Clone)]
pub struct SecretOptions {
    pub secret: String,
    pub key: String,
    pub source: ValueSource,
    pub create_key: bool,
    pub force: bool,
    pub restart: RestartMode,
    pub no_rollback: bool,
    pub run: RunOptions,
    /// Keys of this Secret that a preset describes as a server's password: (key, preset,
    /// system, server). Changing only the Secret would lock the app out.
    pub servers: Vec<ServerKey>,
    /// Data encryption keys that presets describe (refused without a migration).
    pub encryption_keys: Vec<EncryptionKey>,
}

/// Refuses (without `--force`) to change a data encryption key outside its preset; with
/// `--force`, the runbook's warning as a preview line.
pub fn guard_encryption_key(
    keys: &[EncryptionKey],
    (namespace, secret, key): (&str, &str, &str),
    force: bool,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some(guarded) = keys.iter().find(|k| k.secret == secret && k.key == key) else {
        return Ok(());
    };
    if !force {
        bail!(
            "key {key} of Secret {namespace}/{secret} is the data encryption key of preset {} ({}): changing it \
             without re-encrypting those rows makes every one of them unreadable once the pods restart. Rotate it \
             with `kubectl rotate {} -n {namespace}` (backups, migration, scale down and up, verify, rollback), or \
             pass --force to change only the Secret; nothing was changed",
            guarded.preset,
            guarded.columns.join(", "),
            guarded.preset
        );
    }
    notes.push(format!(
        "Warning: --force: the runbook's WARNING: data migration required. Only the Secret changes: the rows of {} \
         stay encrypted with the old key and become unreadable to pods started with the new one (the old key is \
         in the backup Secret; `kubectl rotate {}` does the migration)",
        guarded.columns.join(", "),
        guarded.preset
    ));
    Ok(())
}

/// A key whose value is also a server's password (a PostgreSQL or Redis preset's key).
#[derive(Debug, Clone)]
pub struct ServerKey {
    pub key: String,
    pub preset: String,
    pub system: &'static str,
    pub server: String,
}

pub async fn run(
    connection: &ConnectionSettings,
    options: SecretOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let cluster = cluster::connect::connect(connection).await?;
    let secret = cluster
        .get_secret(&cluster.namespace, &options.secret)
        .await?;
    // Refuse what cannot happen before asking anyone to type a value.
    patch::precheck(&secret, &[&options.key], options.create_key, options.force)?;
    let mut notes = Vec::new();
    guard_encryption_key(
        &options.encryption_keys,
        (&cluster.namespace, &options.secret, &options.key),
        options.force,
        &mut notes,
    )?;
    for guarded in options.servers.iter().filter(|s| s.key == options.key) {
        // A preset for another app's Secret of the same name: its server is not here.
        let Ok(server) = crate::plan::server::parse_server(&guarded.server) else {
            continue;
        };
        match crate::systems::reach::server_exists(&cluster.client, &cluster.namespace, &server)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            // May not read it (the permission check below names what the run needs): say what
            // could not be checked, and go on.
            Err(err) => {
                notes.push(format!(
                    "Warning: could not check whether {} is here ({}): if key {} is its {} password, \
                     changing only the Secret locks the app out; use `kubectl rotate {}`",
                    guarded.server,
                    err.downcast_ref::<kube::Error>()
                        .map(crate::cluster::short_error)
                        .unwrap_or_else(|| format!("{err:#}")),
                    guarded.key,
                    guarded.system,
                    guarded.preset
                ));
                continue;
            }
        }
        if !options.force {
            bail!(
                "key {} of Secret {}/{} is the {} password of preset {} (server {}): `secret` changes only the \
                 Secret, and pods restarted with the new value would be refused by {}, which keeps the old one. \
                 Rotate it with `kubectl rotate {} -n {}` (the server and the Secret as one run), or pass --force \
                 to change only the Secret; nothing was changed",
                guarded.key,
                cluster.namespace,
                options.secret,
                guarded.system,
                guarded.preset,
                guarded.server,
                guarded.system,
                guarded.preset,
                cluster.namespace
            );
        }
        notes.push(format!(
            "Warning: --force: only the Secret changes; {} at {} keeps the old password until you change it there \
             (`kubectl rotate {}` does both)",
            guarded.system, guarded.server, guarded.preset
        ));
    }
    let value = read_value(&options.source, &options.key)?;
    let request = Request {
        action: Action::Rotate,
        secret,
        changes: vec![KeyChange {
            key: options.key.clone(),
            value,
        }],
        create_key: options.create_key,
        force: options.force,
        restart: options.restart.clone(),
        notes,
    };
    let change = pipeline::plan_change(&cluster, request).await?;
    pipeline::execute(&cluster, change, &options.run, options.no_rollback, printer).await
}

/// Takes the new value from its source (the only place a value enters the program).
pub fn read_value(source: &ValueSource, key: &str) -> Result<SecretValue> {
    match source {
        ValueSource::Generate { generator, length } => values::generate(*generator, *length),
        ValueSource::Stdin => values::read_stdin(std::io::stdin().lock()),
        ValueSource::File(path) => values::read_file(path),
        ValueSource::Env(var) => values::read_env(var),
        ValueSource::Prompt => values::prompt(key),
    }
}

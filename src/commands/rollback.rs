//! `kubectl rotate rollback NAME [KEY...] [--to BACKUP | --from-file PATH]`: restore keys from
//! a backup through the same pipeline as a rotation (preview, confirm, back up what it
//! replaces, guarded patch, restart, watch, Event `SecretRolledBack`).
//!
//! `kubectl rotate rollback NAME --run ID`: undo an unfinished run instead, every step that
//! may have been applied, in reverse (`pipeline::continue_run`).

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::cluster;
use crate::cluster::connect::ConnectionSettings;
use crate::engine::pipeline::{self, Request, RunOptions};
use crate::plan::backup;
use crate::plan::change::Action;
use crate::plan::patch::{KeyChange, RestartMode};
use crate::plan::secret_meta;
use crate::plan::steps::{Database, DatabaseChange};
use crate::ui::Printer;
use crate::values::SecretValue;

/// Where the values to restore come from.
#[derive(Debug, Clone)]
pub enum BackupSource {
    Newest,
    /// Undo this unfinished run.
    Run(String),
    Named(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub secret: String,
    pub keys: Vec<String>,
    /// Keys that are PostgreSQL passwords (from a preset): restored in the database too.
    pub databases: Vec<(String, crate::plan::presets::PostgresSettings)>,
    /// Keys a Redis preset describes: restored on the Redis server too.
    pub redis: Vec<(String, crate::plan::presets::RedisSettings)>,
    /// Data encryption keys that presets describe: restoring one alone breaks the rows.
    pub encryption_keys: Vec<crate::plan::presets::EncryptionKey>,
    pub source: BackupSource,
    pub force: bool,
    pub restart: RestartMode,
    pub run: RunOptions,
}

pub async fn run(
    connection: &ConnectionSettings,
    options: RollbackOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let cluster = cluster::connect::connect(connection).await?;
    if let BackupSource::Run(id) = &options.source {
        return pipeline::continue_run(
            &cluster,
            &options.secret,
            pipeline::Continue::Undo { id: id.clone() },
            &options.run,
            printer,
        )
        .await;
    }
    let namespace = cluster.namespace.clone();
    let secret = cluster.get_secret(&namespace, &options.secret).await?;
    let object = format!("Secret {namespace}/{}", options.secret);

    let (origin, saved): (String, Vec<(String, SecretValue)>) = match &options.source {
        BackupSource::File(path) => {
            let text = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read the backup file {}: {e}", path.display())
            })?);
            let (file, values) = backup::from_file(&text, &path.display().to_string())?;
            if file.namespace != namespace {
                bail!(
                    "{} is a backup of Secret {}/{} from namespace {}, not {namespace}; restoring it here could put \
                     another environment's values in {object}; pick the right file, or pass -n {}",
                    path.display(),
                    file.namespace,
                    file.secret,
                    file.namespace,
                    file.namespace
                );
            }
            if file.secret != options.secret {
                bail!(
                    "{} is a backup of Secret {}/{}, not of {object}; name that Secret, or pick the right file",
                    path.display(),
                    file.namespace,
                    file.secret
                );
            }
            (format!("file {}", path.display()), values)
        }
        BackupSource::Named(name) => {
            let stored = cluster.get_secret(&namespace, name).await?;
            let of = stored
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(secret_meta::BACKUP_OF_LABEL));
            if of.map(String::as_str) != Some(backup::backup_label_value(&options.secret).as_str())
            {
                bail!(
                    "Secret {namespace}/{name} is not a kubectl-rotate backup of {object}; list its backups with \
                     `kubectl rotate backup {} --list -n {namespace}`",
                    options.secret
                );
            }
            (format!("backup {name}"), values_of(&stored))
        }
        BackupSource::Run(_) => unreachable!("handled above"),
        BackupSource::Newest => {
            let backups = crate::systems::secret::backups::list_backups(
                &cluster,
                &namespace,
                &options.secret,
            )
            .await?;
            let Some(newest) = backups.first() else {
                bail!(
                    "{object} has no backups to roll back to; `kubectl rotate backup {} -n {namespace}` creates one, \
                     and every rotation does",
                    options.secret
                );
            };
            // The newest backup that holds every key asked for (a rotation backs up only the
            // keys it changes, so the newest backup may hold another key).
            let Some(chosen) = backup::newest_holding(&backups, &options.keys) else {
                bail!(
                    "no backup of {object} holds {} (the newest, {}, holds: {}); list them with \
                     `kubectl rotate backup {} --list -n {namespace}` and name one with --to",
                    options.keys.join(", "),
                    newest.metadata.name.clone().unwrap_or_default(),
                    backup::keys_of(newest).join(", "),
                    options.secret
                );
            };
            (
                format!(
                    "backup {}",
                    chosen.metadata.name.clone().unwrap_or_default()
                ),
                values_of(chosen),
            )
        }
    };

    let wanted: Vec<String> = if options.keys.is_empty() {
        saved.iter().map(|(k, _)| k.clone()).collect()
    } else {
        options.keys.clone()
    };
    let current = secret.data.clone().unwrap_or_default();
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    for key in &wanted {
        let Some((_, value)) = saved.iter().find(|(k, _)| k == key) else {
            bail!(
                "the {origin} does not hold key {key:?} (it holds: {}); name another backup with --to",
                saved
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        if current
            .get(key)
            .is_some_and(|v| v.0.as_slice() == value.expose())
        {
            unchanged.push(key.clone());
        } else {
            changes.push(KeyChange {
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    if changes.is_empty() {
        bail!(
            "nothing to roll back: {object} already holds the values of the {origin} for {}",
            unchanged.join(", ")
        );
    }
    let mut notes = vec![format!("restoring from the {origin}")];
    for change in &changes {
        let Some(guarded) = options
            .encryption_keys
            .iter()
            .find(|k| k.secret == options.secret && k.key == change.key)
        else {
            continue;
        };
        if !options.force {
            bail!(
                "key {} of {object} is the data encryption key of preset {}: the rows of {} are encrypted with the \
                 key it holds now, and putting an older key back alone makes them unreadable. To undo an \
                 encryption-key run, undo the run itself (its migration runs backwards): `kubectl rotate rollback {} \
                 --run RUN_ID -n {namespace}` (the journal Secrets {}-run-* name them), or rotate to the old key with its \
                 migration: `kubectl rotate {} --from-file KEY_BACKUP_FILE -n {namespace}`. Pass --force to restore \
                 only the Secret; nothing was changed",
                change.key,
                guarded.preset,
                guarded.columns.join(", "),
                options.secret,
                options.secret,
                guarded.preset
            );
        }
        notes.push(format!(
            "Warning: --force: only the Secret changes; the rows of {} stay encrypted with the key it holds now",
            guarded.columns.join(", ")
        ));
    }
    if !unchanged.is_empty() {
        notes.push(format!(
            "already as in the backup, left alone: {}",
            unchanged.join(", ")
        ));
    }
    let request = Request {
        action: Action::RollBack,
        secret,
        changes,
        // A key deleted since the backup is put back.
        create_key: true,
        force: options.force,
        restart: options.restart.clone(),
        notes,
    };
    let database = database_rollback(&options, &request, &object)?;
    let mut change = pipeline::plan_change(&cluster, request).await?;
    if let Some((database, current)) = database {
        let server = match &database {
            DatabaseChange::SingleUser { db, .. } | DatabaseChange::AlternatingUsers { db, .. } => {
                crate::plan::server::parse_server(&db.server)?
            }
            DatabaseChange::RedisOverlap { redis, .. }
            | DatabaseChange::RedisRequirepass { redis, .. } => {
                crate::plan::server::parse_server(&redis.server)?
            }
        };
        let redis = matches!(
            database,
            DatabaseChange::RedisOverlap { .. } | DatabaseChange::RedisRequirepass { .. }
        );
        if !crate::systems::reach::server_exists(&cluster.client, &namespace, &server).await? {
            let (system, field) = if redis {
                ("Redis", "redis.server")
            } else {
                ("PostgreSQL", "postgres.server")
            };
            change.notes.push(format!(
                "{system}: {server}, the preset's server, does not exist in namespace {namespace}: \
                 only the Secret is restored (set {field} in the config file if the server is elsewhere)"
            ));
        } else if redis {
            crate::systems::redis::preflight::attach_redis(
                &cluster,
                &mut change,
                database,
                &current,
                false,
            )
            .await?;
        } else {
            crate::systems::postgres::preflight::attach_database(
                &cluster,
                &mut change,
                database,
                &current,
            )
            .await?;
        }
    }
    pipeline::execute(&cluster, change, &options.run, true, printer).await
}

/// A PostgreSQL password restored in the Secret is restored in the database first (the role
/// the Secret names gets the backed-up password), or the app would be locked out. Switching
/// the Secret back to another role is refused: that is an alternating-users rotation.
fn database_rollback(
    options: &RollbackOptions,
    request: &Request,
    object: &str,
) -> Result<Option<(DatabaseChange, SecretValue)>> {
    let current = request.secret.data.clone().unwrap_or_default();
    for (key, settings) in &options.databases {
        if !request.changes.iter().any(|c| &c.key == key) {
            continue;
        }
        let role = current
            .get(&settings.user_key)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_else(|| settings.user.clone());
        if let Some(change) = request.changes.iter().find(|c| c.key == settings.user_key)
            && change.value.expose() != role.as_bytes()
        {
            bail!(
                "the backup names another PostgreSQL role in {} than {object} does now ({role}); switching roles back \
                 is a rotation: `kubectl rotate postgres --strategy alternating-users` (or roll back only {key} \
                 with `kubectl rotate rollback {} {key}`); nothing was changed",
                settings.user_key,
                options.secret
            );
        }
        let Some(password) = current.get(key) else {
            bail!(
                "{object} has no key {key} now: there is no current password to log in to PostgreSQL with; \
                 restore it by hand; nothing was changed"
            );
        };
        let database = DatabaseChange::SingleUser {
            db: Database {
                server: settings.server.clone(),
                database: settings.database.clone(),
                admin: settings.admin.clone(),
                tls: settings.tls.clone(),
            },
            role,
            password_key: key.clone(),
        };
        return Ok(Some((database, SecretValue::new(password.0.clone()))));
    }
    // A Redis password: the restored value is added on the server, the current one removed
    // after the rollout (an overlap rotation back to the backed-up value).
    for (key, settings) in &options.redis {
        if !request.changes.iter().any(|c| &c.key == key) {
            continue;
        }
        let Some(password) = current.get(key) else {
            bail!(
                "{object} has no key {key} now: there is no current password to log in to Redis with; \
                 restore it by hand; nothing was changed"
            );
        };
        let change = crate::plan::database::plan_redis(settings, None, key)?;
        return Ok(Some((change, SecretValue::new(password.0.clone()))));
    }
    Ok(None)
}

fn values_of(backup: &k8s_openapi::api::core::v1::Secret) -> Vec<(String, SecretValue)> {
    backup
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), SecretValue::new(v.0.clone())))
        .collect()
}

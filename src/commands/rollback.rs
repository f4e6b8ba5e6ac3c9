//! `kubectl rotate rollback NAME [KEY...] [--to BACKUP | --from-file PATH]`: restore keys from
//! a backup through the same pipeline as a rotation (preview, confirm, back up what it
//! replaces, guarded patch, restart, watch, Event `SecretRolledBack`).
//!
//! `kubectl rotate rollback NAME --run ID`: undo an unfinished run instead, every step that
//! may have been applied, in reverse (`pipeline::continue_run`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use k8s_openapi::ByteString;

use crate::cluster::connect::ConnectionSettings;
use crate::cluster::{self, Cluster};
use crate::engine::pipeline::{self, Request, RunOptions};
use crate::plan::backup;
use crate::plan::change::{Action, Change};
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

/// Undoes an unfinished run (`--run`), or restores keys from a backup: chooses the values,
/// builds the change, attaches the server whose password it restores, and runs it.
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
    let secret = cluster
        .get_secret(&cluster.namespace, &options.secret)
        .await?;
    let object = format!("Secret {}/{}", cluster.namespace, options.secret);
    let saved = saved_values(&cluster, &options, &object).await?;
    let request = restore_request(&options, secret, &saved, &cluster.namespace, &object)?;
    let database = database_rollback(&options, &request, &object)?;
    let mut change = pipeline::plan_change(&cluster, request).await?;
    if let Some((database, current)) = database {
        attach_server(&cluster, &mut change, database, &current).await?;
    }
    pipeline::execute(&cluster, change, &options.run, true, printer).await
}

/// The values a backup holds, and where they come from (`backup NAME`, `file PATH`).
struct Saved {
    origin: String,
    values: Vec<(String, SecretValue)>,
}

/// The values to restore, from the source chosen: a file, a named backup, or the newest
/// backup that holds the keys asked for.
async fn saved_values(cluster: &Cluster, options: &RollbackOptions, object: &str) -> Result<Saved> {
    match &options.source {
        BackupSource::File(path) => from_file(path, &cluster.namespace, &options.secret, object),
        BackupSource::Named(name) => from_named(cluster, name, &options.secret, object).await,
        BackupSource::Newest => from_newest(cluster, options, object).await,
        BackupSource::Run(_) => unreachable!("handled above"),
    }
}

/// A backup file's values, refused unless it is a backup of this very Secret.
fn from_file(path: &Path, namespace: &str, secret: &str, object: &str) -> Result<Saved> {
    let text = zeroize::Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read the backup file {}: {e}", path.display()))?,
    );
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
    if file.secret != secret {
        bail!(
            "{} is a backup of Secret {}/{}, not of {object}; name that Secret, or pick the right file",
            path.display(),
            file.namespace,
            file.secret
        );
    }
    Ok(Saved {
        origin: format!("file {}", path.display()),
        values,
    })
}

/// The values of the backup named with `--to`, refused unless it is a backup of this Secret.
async fn from_named(cluster: &Cluster, name: &str, secret: &str, object: &str) -> Result<Saved> {
    let namespace = &cluster.namespace;
    let stored = cluster.get_secret(namespace, name).await?;
    let of = stored
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(secret_meta::BACKUP_OF_LABEL));
    if of.map(String::as_str) != Some(backup::backup_label_value(secret).as_str()) {
        bail!(
            "Secret {namespace}/{name} is not a kubectl-rotate backup of {object}; list its backups with \
             `kubectl rotate backup {secret} --list -n {namespace}`"
        );
    }
    Ok(Saved {
        origin: format!("backup {name}"),
        values: values_of(&stored),
    })
}

/// The values of the newest backup that holds every key asked for (a rotation backs up only
/// the keys it changes, so the newest backup may hold another key).
async fn from_newest(cluster: &Cluster, options: &RollbackOptions, object: &str) -> Result<Saved> {
    let namespace = &cluster.namespace;
    let backups =
        crate::systems::secret::backups::list_backups(cluster, namespace, &options.secret).await?;
    let Some(newest) = backups.first() else {
        bail!(
            "{object} has no backups to roll back to; `kubectl rotate backup {} -n {namespace}` creates one, \
             and every rotation does",
            options.secret
        );
    };
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
    Ok(Saved {
        origin: format!(
            "backup {}",
            chosen.metadata.name.clone().unwrap_or_default()
        ),
        values: values_of(chosen),
    })
}

/// The pipeline's request: the keys whose values differ from the saved ones, with the notes
/// of the preview; refuses when nothing would change or a data encryption key is restored alone.
fn restore_request(
    options: &RollbackOptions,
    secret: k8s_openapi::api::core::v1::Secret,
    saved: &Saved,
    namespace: &str,
    object: &str,
) -> Result<Request> {
    let wanted: Vec<String> = if options.keys.is_empty() {
        saved.values.iter().map(|(k, _)| k.clone()).collect()
    } else {
        options.keys.clone()
    };
    let (changes, unchanged) = differing(&wanted, saved, &secret.data.clone().unwrap_or_default())?;
    if changes.is_empty() {
        bail!(
            "nothing to roll back: {object} already holds the values of the {} for {}",
            saved.origin,
            unchanged.join(", ")
        );
    }
    let mut notes = vec![format!("restoring from the {}", saved.origin)];
    for change in &changes {
        guard_encryption_key(options, &change.key, namespace, object, &mut notes)?;
    }
    if !unchanged.is_empty() {
        notes.push(format!(
            "already as in the backup, left alone: {}",
            unchanged.join(", ")
        ));
    }
    Ok(Request {
        action: Action::RollBack,
        secret,
        changes,
        // A key deleted since the backup is put back.
        create_key: true,
        force: options.force,
        restart: options.restart.clone(),
        notes,
    })
}

/// Splits the `wanted` keys into changes (the saved value differs from the `current` one) and
/// keys left alone (already as saved); refuses a key the backup does not hold.
fn differing(
    wanted: &[String],
    saved: &Saved,
    current: &BTreeMap<String, ByteString>,
) -> Result<(Vec<KeyChange>, Vec<String>)> {
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    for key in wanted {
        let Some((_, value)) = saved.values.iter().find(|(k, _)| k == key) else {
            bail!(
                "the {} does not hold key {key:?} (it holds: {}); name another backup with --to",
                saved.origin,
                saved
                    .values
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
    Ok((changes, unchanged))
}

/// Refuses (without `--force`) to restore a preset's data encryption key alone: its rows stay
/// encrypted with the current key. With `--force`, a warning in the preview instead.
fn guard_encryption_key(
    options: &RollbackOptions,
    key: &str,
    namespace: &str,
    object: &str,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some(guarded) = options
        .encryption_keys
        .iter()
        .find(|k| k.secret == options.secret && k.key == key)
    else {
        return Ok(());
    };
    if !options.force {
        bail!(
            "key {key} of {object} is the data encryption key of preset {}: the rows of {} are encrypted with the \
             key it holds now, and putting an older key back alone makes them unreadable. To undo an \
             encryption-key run, undo the run itself (its migration runs backwards): `kubectl rotate rollback {} \
             --run RUN_ID -n {namespace}` (the journal Secrets {}-run-* name them), or rotate to the old key with its \
             migration: `kubectl rotate {} --from-file KEY_BACKUP_FILE -n {namespace}`. Pass --force to restore \
             only the Secret; nothing was changed",
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
    Ok(())
}

/// Attaches the PostgreSQL or Redis server whose password is restored; a server that is not
/// in the namespace leaves only the Secret restored, with a note saying so.
async fn attach_server(
    cluster: &Cluster,
    change: &mut Change,
    database: DatabaseChange,
    current: &SecretValue,
) -> Result<()> {
    let namespace = &cluster.namespace;
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
    if !crate::systems::reach::server_exists(&cluster.client, namespace, &server).await? {
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
        crate::systems::redis::preflight::attach_redis(cluster, change, database, current, false)
            .await?;
    } else {
        crate::systems::postgres::preflight::attach_database(cluster, change, database, current)
            .await?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(values: &[(&str, &str)]) -> Saved {
        Saved {
            origin: "backup app-backup-1".into(),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), SecretValue::new(v.as_bytes().to_vec())))
                .collect(),
        }
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn keys_already_as_saved_are_left_alone_and_the_others_change() {
        let current: BTreeMap<String, ByteString> = [
            ("a".to_string(), ByteString(b"same".to_vec())),
            ("b".to_string(), ByteString(b"new".to_vec())),
        ]
        .into();
        let saved = saved(&[("a", "same"), ("b", "old"), ("c", "gone")]);
        let (changes, unchanged) = differing(&keys(&["a", "b", "c"]), &saved, &current).unwrap();
        let changed: Vec<(&str, &[u8])> = changes
            .iter()
            .map(|c| (c.key.as_str(), c.value.expose()))
            .collect();
        assert_eq!(changed, [("b", &b"old"[..]), ("c", &b"gone"[..])]);
        assert_eq!(unchanged, ["a"]);
    }

    #[test]
    fn a_key_the_backup_does_not_hold_is_refused_naming_the_keys_it_holds() {
        let saved = saved(&[("a", "x"), ("b", "y")]);
        let err = differing(&keys(&["z"]), &saved, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the backup app-backup-1 does not hold key \"z\" (it holds: a, b); name another backup with --to"
        );
    }

    #[test]
    fn restoring_a_data_encryption_key_alone_needs_force_and_then_warns() {
        let mut options = RollbackOptions {
            secret: "app-secrets".into(),
            keys: Vec::new(),
            databases: Vec::new(),
            redis: Vec::new(),
            encryption_keys: vec![crate::plan::presets::EncryptionKey {
                secret: "app-secrets".into(),
                key: "encryption-key".into(),
                preset: "encryption-key".into(),
                columns: vec!["tenant_configs.config".into()],
            }],
            source: BackupSource::Newest,
            force: false,
            restart: RestartMode::Auto,
            run: RunOptions {
                dry_run: pipeline::DryRun::None,
                yes: true,
                output: crate::ui::printer::OutputFormat::Text,
                show_secrets: false,
                timeout: std::time::Duration::from_secs(300),
                force: false,
                keep: 5,
                strict: false,
            },
        };
        let object = "Secret prod/app-secrets";
        let mut notes = Vec::new();
        guard_encryption_key(&options, "other-key", "prod", object, &mut notes).unwrap();
        assert!(notes.is_empty());
        let err = guard_encryption_key(&options, "encryption-key", "prod", object, &mut notes)
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "key encryption-key of Secret prod/app-secrets is the data encryption key of preset encryption-key"
            ),
            "{err}"
        );
        options.force = true;
        guard_encryption_key(&options, "encryption-key", "prod", object, &mut notes).unwrap();
        assert_eq!(
            notes,
            [
                "Warning: --force: only the Secret changes; the rows of tenant_configs.config stay encrypted with the key it holds now"
            ]
        );
    }
}

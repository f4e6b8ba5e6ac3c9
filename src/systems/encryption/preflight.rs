//! Before a data encryption key's migration writes anything: the preflight (every row decrypts
//! with the current key, read-only), where the key and the dump go, and what it adds to the
//! planned change (the consumers to stop, their autoscalers, the row counts, the downtime).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use crate::cluster::Cluster;
use crate::cluster::access;
use crate::model::workload::WorkloadKind;
use crate::plan::change::{Change, leave_server_running, set_note};
use crate::plan::presets::{EncryptionSettings, Strategy};
use crate::plan::steps::{self, Scaled};
use crate::plan::steps::{Column, Database};
use crate::systems::encryption;
use crate::systems::encryption::admin_connection;
use crate::systems::encryption::reencrypt::{self, Counts, Keys, Undecryptable};
use crate::values::SecretValue;

/// Where the encryption-key procedure's copies go (`--backup-dir`, `--key-backup-file`,
/// `--db-backup-file`, `--no-db-backup`).
#[derive(Debug, Clone, Default)]
pub struct BackupFiles {
    pub dir: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    pub db_file: Option<std::path::PathBuf>,
    pub no_db_backup: bool,
}

/// Adds a data encryption key's migration to `change` after its preflight
/// (`systems::encryption::preflight`: every row decrypts with the current key, read-only):
/// the consumers to stop (with their replica counts now, and the HPAs that target them), the
/// files the key and the dump go to, the row counts and the downtime in the preview.
pub async fn attach_encryption(
    cluster: &Cluster,
    change: &mut Change,
    settings: &EncryptionSettings,
    (key, current): (&str, &SecretValue),
    files: &BackupFiles,
    strategy: Strategy,
) -> Result<()> {
    let keyring = strategy == Strategy::Keyring;
    let namespace = change.data.namespace.clone();
    let db = database(settings);
    let new = new_value(change, key)?;
    // The Job first: a namespace that would not run it stops the run before the database is
    // reached.
    let job = admitted_job(cluster, change, settings.job.clone().filter(|_| !keyring)).await?;
    let found = preflight(
        cluster,
        &namespace,
        &db,
        &settings.columns,
        (current, &new),
        !files.no_db_backup,
    )
    .await?;
    leave_server_running(
        change,
        &found.server_workloads,
        "it is the PostgreSQL server holding the encrypted rows: it must run for the migration",
    );
    let scaled = if keyring {
        Vec::new()
    } else {
        consumers_to_stop(cluster, change, key).await?
    };
    let autoscalers =
        crate::systems::workloads::inventory::autoscalers_of(cluster, &namespace, &scaled).await;
    if let Some(why) = crate::plan::autoscaling::refusal(&namespace, &autoscalers) {
        bail!(why);
    }
    change
        .notes
        .extend(autoscalers.iter().map(crate::plan::autoscaling::note));
    let (key_file, dump_file) = backup_targets(
        files,
        (&change.data.secret, &change.record.id),
        key,
        &settings.database,
    );
    let key_file = new_file(&key_file)?;
    let dump_file = dump_file.as_deref().map(new_file).transpose()?;
    let tokens = found.counts.iter().map(|(_, c)| c.old).sum::<u64>();
    strategy_notes(
        &mut change.notes,
        strategy,
        &settings.separator,
        &scaled,
        tokens,
    );
    change.notes.push(rows_note(&found.counts));
    let backup = change.backup_name().unwrap_or_default();
    change.notes.push(backups_note(
        &namespace,
        &backup,
        &key_file,
        dump_file.as_deref(),
    ));
    change.notes.push(rollback_note(keyring).into());
    change.notes.extend(found.notes);
    change.extra_needs = found.needs;
    if job.is_some() {
        change.extra_needs.extend(job_needs(&namespace));
    }
    change.reencryption = Some(steps::Reencryption {
        db,
        columns: settings.columns.clone(),
        key: key.to_string(),
        key_file: Some(key_file),
        dump_file,
        scaled,
        keyring: keyring.then(|| settings.separator.clone()),
        restart: if keyring {
            restarted(change)
        } else {
            Vec::new()
        },
        job,
    });
    Ok(())
}

/// The database holding the tokens, changed as the preset's admin.
fn database(settings: &EncryptionSettings) -> steps::Database {
    steps::Database {
        server: settings.server.clone(),
        database: settings.database.clone(),
        admin: Some(settings.admin.clone()),
        tls: settings.tls.clone(),
    }
}

/// The new value of `key` the change holds (the key the rows move to).
fn new_value(change: &Change, key: &str) -> Result<SecretValue> {
    change
        .data
        .keys
        .iter()
        .find(|k| k.key == key)
        .map(|k| k.after_value.clone())
        .ok_or_else(|| anyhow::anyhow!("the change holds no new value of {key}"))
}

/// The consumers stopped for the migration, with their replica counts now; an error for one
/// that cannot be scaled to 0 (its pods would read the rows with the old key meanwhile).
async fn consumers_to_stop(cluster: &Cluster, change: &Change, key: &str) -> Result<Vec<Scaled>> {
    let namespace = &change.data.namespace;
    let mut scaled = Vec::new();
    for r in &change.restarts.restart {
        let replicas = match r.kind {
            WorkloadKind::Deployment => cluster.deployment_replicas(namespace, &r.name).await?,
            WorkloadKind::StatefulSet => cluster.statefulset_replicas(namespace, &r.name).await?,
            other => anyhow::bail!(
                "{}/{} uses {key} and a {} cannot be scaled to 0: its pods would read the rows with the old key \
                 during the migration; nothing was changed",
                other.short(),
                r.name,
                other.short()
            ),
        };
        scaled.push(Scaled {
            kind: r.kind,
            name: r.name.clone(),
            replicas,
        });
    }
    Ok(scaled)
}

/// The consumers a key-ring run restarts (twice).
fn restarted(change: &Change) -> Vec<steps::WorkloadRef> {
    change
        .restarts
        .restart
        .iter()
        .map(|r| steps::WorkloadRef {
            kind: r.kind,
            name: r.name.clone(),
        })
        .collect()
}

/// Where the key file and (unless `--no-db-backup`) the dump go: the files given, else in
/// the directory given, else in `SECRET-RUNID` (`run`), named after the key and the database.
fn backup_targets(
    files: &BackupFiles,
    (secret, run_id): (&str, &str),
    key: &str,
    database: &str,
) -> (PathBuf, Option<PathBuf>) {
    let run_dir = files
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{secret}-{run_id}")));
    let key_file = files
        .key_file
        .clone()
        .unwrap_or_else(|| run_dir.join(format!("{key}-backup.txt")));
    let dump_file = (!files.no_db_backup).then(|| {
        files
            .db_file
            .clone()
            .unwrap_or_else(|| run_dir.join(format!("{database}.sql")))
    });
    (key_file, dump_file)
}

/// `path` made absolute; refused inside a git work tree, or when it exists already (the run
/// writes new files only).
fn new_file(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path)
        .map_err(|e| anyhow::anyhow!("cannot resolve {}: {e}", path.display()))?;
    encryption::refuse_git_work_tree(&absolute)
        .map_err(|e| anyhow::anyhow!("{e:#}; nothing was changed"))?;
    if absolute.exists() {
        anyhow::bail!(
            "{} exists already; the run writes new files only: choose another path; nothing was changed",
            absolute.display()
        );
    }
    Ok(absolute.display().to_string())
}

/// The preview's strategy and downtime: a key ring's (none, and what the app must accept), or
/// the consumers stopped while `tokens` are re-encrypted and they roll out.
fn strategy_notes(
    notes: &mut Vec<String>,
    strategy: Strategy,
    separator: &str,
    scaled: &[Scaled],
    tokens: u64,
) {
    set_note(notes, "Strategy: ", strategy.name().into());
    if let Some((downtime, impact)) = strategy.downtime_and_impact("", "") {
        set_note(notes, "Downtime: ", downtime);
        set_note(notes, "Impact: ", impact);
        notes.push(format!(
            "Key ring: the app must accept keys separated by {separator:?} (the first encrypts, each decrypts: Python's \
             MultiFernet); a consumer that does not will fail its rollout in the first phase, and the run is undone"
        ));
    } else {
        set_note(notes, "Downtime: ", downtime(scaled, tokens));
    }
}

/// The downtime of a run that stops `scaled` while `tokens` are re-encrypted.
fn downtime(scaled: &[Scaled], tokens: u64) -> String {
    if scaled.is_empty() {
        return "none: no consumer uses the key".into();
    }
    let stopped = crate::plan::steps::workloads::scaled_list(scaled);
    format!(
        "{stopped} are scaled to 0 from before the migration until they are back with the new key: the \
                 re-encryption of {tokens} tokens (one transaction) and the rollout (the runbook plans 30+ minutes)"
    )
}

/// The preview's row counts, column by column (tokens of the new key and NULLs only when there
/// are some).
fn rows_note(counts: &[(steps::Column, Counts)]) -> String {
    let rows: Vec<String> = counts
        .iter()
        .map(|(column, c)| {
            format!(
                "{column}: {} rows, {} tokens of the current key{}{}",
                c.rows,
                c.old,
                if c.new > 0 {
                    format!(", {} already readable with the new one", c.new)
                } else {
                    String::new()
                },
                if c.null > 0 {
                    format!(", {} NULL", c.null)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    format!(
        "Rows (every one decrypts with the current key): {}",
        rows.join("; ")
    )
}

/// The preview's backups: the Secret's, the key file, and the dump or why there is none.
fn backups_note(namespace: &str, backup: &str, key_file: &str, dump_file: Option<&str>) -> String {
    format!(
        "Backups: Secret {namespace}/{backup}; key file {key_file} (0600); {}",
        match dump_file {
            Some(dump) => format!("database dump {dump} (0600, pg_dump in the server's pod)"),
            None => "no database dump (--no-db-backup)".into(),
        }
    )
}

/// The preview's rollback: how a key-ring run, or a scale-down run, is undone.
fn rollback_note(keyring: bool) -> &'static str {
    if keyring {
        "Rollback: the Secret holds old,new and the consumers roll out, the rows move back in short \
         transactions, then the Secret holds the old key and the consumers roll out again; the dump is the last \
         resort"
    } else {
        "Rollback: a failed migration changes nothing (one transaction) and the consumers come back with the old \
         key; a failure after it re-encrypts the rows back with the old key (they are intact, and it keeps any \
         row written since), restores the key and scales back up; the dump is the last resort"
    }
}

/// The app's own migration Job with its name, once its dry-run create says the namespace runs
/// it (`admission`); the API server's other warnings go to the preview.
async fn admitted_job(
    cluster: &Cluster,
    change: &mut Change,
    job: Option<steps::JobSpec>,
) -> Result<Option<(String, steps::JobSpec)>> {
    let Some(spec) = job else {
        return Ok(None);
    };
    let (secret, id) = (&change.data.secret, &change.record.id);
    let name = job_name(secret, id);
    let journal = crate::plan::journal::journal_name(secret, id);
    let namespace = change.data.namespace.clone();
    let warnings =
        encryption::admission::refuse_inadmissible(cluster, &namespace, (&name, &journal), &spec)
            .await?;
    for warning in warnings {
        change
            .notes
            .push(format!("Job {name}: the API server warns: {warning}"));
    }
    Ok(Some((name, spec)))
}

/// The permissions the app's own migration Job needs: the Job, and its temporary keys Secret.
fn job_needs(namespace: &str) -> Vec<access::Need> {
    [
        (
            "create",
            "batch",
            "jobs",
            "to run the preset's migration Job",
        ),
        ("get", "batch", "jobs", "to wait for the migration Job"),
        (
            "create",
            "",
            "secrets",
            "to hand the migration Job both keys (a temporary Secret)",
        ),
        (
            "delete",
            "",
            "secrets",
            "to delete the migration Job's temporary Secret",
        ),
    ]
    .into_iter()
    .map(|(verb, group, resource, why)| {
        access::Need::new(verb, group, resource, None, namespace, why)
    })
    .collect()
}

/// The migration Job's name, `SECRET-migrate-RUNID`: the Secret's name cut to 24 characters, as
/// a Job's name is a label value (63 characters), with "-undo" and "-keys" to come.
fn job_name(secret: &str, run_id: &str) -> String {
    let secret: String = secret.chars().take(24).collect();
    format!("{}-migrate-{run_id}", secret.trim_end_matches('-'))
}

/// What the preflight found: the row counts, the permissions the steps need, and the
/// database server's own workloads (never scaled down).
#[derive(Debug, Default)]
pub struct Preflight {
    pub counts: Vec<(Column, Counts)>,
    pub needs: Vec<crate::cluster::access::Need>,
    pub server_workloads: Vec<(crate::model::workload::WorkloadKind, String)>,
    pub notes: Vec<String>,
}

/// Before anything is written: the server is there and the admin logs in; every row of every
/// column decrypts with the current key (the runbook's "test the migration first", read-only
/// in one snapshot); a row that does not is named and nothing happens.
pub async fn preflight(
    cluster: &crate::cluster::Cluster,
    namespace: &str,
    db: &Database,
    columns: &[Column],
    (current, new): (&SecretValue, &SecretValue),
    dump: bool,
) -> Result<Preflight> {
    let client = &cluster.client;
    let server = crate::plan::server::parse_server(&db.server)?.with_tls(&db.tls);
    if !crate::systems::reach::server_exists(client, namespace, &server).await? {
        bail!(
            "the PostgreSQL server {server} holding the encrypted rows does not exist in namespace {namespace}: \
             point encryption.server of the preset in the config file at your database; nothing was changed"
        );
    }
    let mut found = Preflight {
        needs: reach_needs(client, namespace, &server, dump).await?,
        ..Preflight::default()
    };
    let admin = db
        .admin
        .as_ref()
        .ok_or_else(|| anyhow!("the preset names no admin login (encryption.admin)"))?;
    found.needs.push(crate::systems::reach::admin_secret_need(
        &admin.secret,
        namespace,
    ));
    found.server_workloads =
        crate::systems::postgres::server_workloads(client, namespace, &server).await?;
    let counts = count_before(cluster, namespace, db, columns, (current, new)).await?;
    found.counts = columns.iter().cloned().zip(counts).collect();
    found.notes.push(format!(
        "PostgreSQL: {server} (namespace {namespace}), database {}: rows are rewritten as {} (Secret {namespace}/{} key {})",
        db.database, admin.user, admin.secret, admin.key
    ));
    Ok(found)
}

/// The permissions to reach the server (its Service's endpoints, its pod's port-forward) and,
/// with `dump`, to run pg_dump in its pod; an error when a dump is asked of a server outside
/// the cluster.
async fn reach_needs(
    client: &kube::Client,
    namespace: &str,
    server: &crate::plan::server::Server,
    dump: bool,
) -> Result<Vec<crate::cluster::access::Need>> {
    let mut needs = Vec::new();
    needs.extend(
        crate::systems::reach::service_need(client, server, namespace, "the database's pod")
            .await?,
    );
    match crate::systems::reach::resolve_pod(client, namespace, server).await? {
        Some((pod, _)) => needs.extend(pod_needs(&pod, namespace, dump)),
        None if dump => bail!(
            "PostgreSQL at {server} is outside the cluster: pg_dump cannot run in its pod through the API server; \
             back it up yourself and pass --no-db-backup; nothing was changed"
        ),
        None => {}
    }
    Ok(needs)
}

/// The permissions on the database's pod: its port-forward, and with `dump` its exec (pg_dump)
/// and reading it (to find the container).
fn pod_needs(pod: &str, namespace: &str, dump: bool) -> Vec<crate::cluster::access::Need> {
    use crate::cluster::access::Need;
    let mut needs = Vec::new();
    for verb in ["get", "create"] {
        needs.push(Need::new(
            verb,
            "",
            "pods/portforward",
            Some(pod),
            namespace,
            "to reach PostgreSQL through the API server",
        ));
    }
    if dump {
        // A WebSocket exec is authorized as get, and from Kubernetes 1.35 also as create.
        for verb in ["get", "create"] {
            needs.push(Need::new(
                verb,
                "",
                "pods/exec",
                Some(pod),
                namespace,
                "to run pg_dump in the database's pod (as kubectl exec)",
            ));
        }
        needs.push(Need::new(
            "get",
            "",
            "pods",
            Some(pod),
            namespace,
            "to find the database's container for pg_dump",
        ));
    }
    needs
}

/// Counts the rows of `columns` by the key that decrypts them, as the admin; an error names a
/// row the current key cannot read (the migration would stop there).
async fn count_before(
    cluster: &crate::cluster::Cluster,
    namespace: &str,
    db: &Database,
    columns: &[Column],
    (current, new): (&SecretValue, &SecretValue),
) -> Result<Vec<Counts>> {
    let mut pg = admin_connection(cluster, namespace, db)
        .await
        .map_err(|e| anyhow!("{e:#}; nothing was changed"))?;
    let keys = Keys::new(current, new).map_err(|e| anyhow!("{e:#}; nothing was changed"))?;
    match reencrypt::count_all(&mut pg, columns, &keys).await {
        Ok(counts) => Ok(counts),
        Err(err) if err.downcast_ref::<Undecryptable>().is_some() => bail!(
            "{err:#}: the current key cannot read it, so the migration would stop there. Fix or remove that row \
             first (it is unreadable today); nothing was changed"
        ),
        Err(err) => bail!("counting the encrypted rows: {err:#}; nothing was changed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaled(name: &str, replicas: i32) -> Scaled {
        Scaled {
            kind: WorkloadKind::Deployment,
            name: name.into(),
            replicas,
        }
    }

    #[test]
    fn the_key_and_the_dump_go_to_the_files_given_else_into_the_runs_directory() {
        let run = ("app-secrets", "20240101-abcd");
        let (key, dump) = backup_targets(&BackupFiles::default(), run, "FERNET_KEY", "app");
        assert_eq!(
            key,
            Path::new("app-secrets-20240101-abcd/FERNET_KEY-backup.txt")
        );
        assert_eq!(
            dump.unwrap(),
            Path::new("app-secrets-20240101-abcd/app.sql")
        );
        let files = BackupFiles {
            dir: Some("/backups".into()),
            db_file: Some("/dumps/db.sql".into()),
            ..BackupFiles::default()
        };
        let (key, dump) = backup_targets(&files, run, "FERNET_KEY", "app");
        assert_eq!(key, Path::new("/backups/FERNET_KEY-backup.txt"));
        assert_eq!(dump.unwrap(), Path::new("/dumps/db.sql"));
        let files = BackupFiles {
            key_file: Some("/keys/k.txt".into()),
            no_db_backup: true,
            ..BackupFiles::default()
        };
        assert_eq!(
            backup_targets(&files, run, "FERNET_KEY", "app"),
            (PathBuf::from("/keys/k.txt"), None)
        );
    }

    #[test]
    fn the_downtime_names_the_stopped_consumers_or_says_there_is_none() {
        assert_eq!(downtime(&[], 10), "none: no consumer uses the key");
        let text = downtime(&[scaled("web", 3), scaled("worker", 1)], 42);
        assert!(
            text.starts_with(
                "deployment/web (3 replicas), deployment/worker (1 replicas) are scaled to 0"
            ),
            "{text}"
        );
        assert!(text.contains("the re-encryption of 42 tokens"), "{text}");
    }

    #[test]
    fn the_row_counts_name_new_tokens_and_nulls_only_when_there_are_some() {
        let column = |name: &str| steps::Column {
            table: "users".into(),
            key: "id".into(),
            column: name.into(),
        };
        let counts = [
            (
                column("token"),
                Counts {
                    rows: 5,
                    old: 5,
                    ..Counts::default()
                },
            ),
            (
                column("secret"),
                Counts {
                    rows: 9,
                    old: 4,
                    new: 3,
                    null: 2,
                },
            ),
        ];
        assert_eq!(
            rows_note(&counts),
            "Rows (every one decrypts with the current key): users.token: 5 rows, 5 tokens of the current key; \
             users.secret: 9 rows, 4 tokens of the current key, 3 already readable with the new one, 2 NULL"
        );
    }

    #[test]
    fn the_backups_note_says_when_there_is_no_dump() {
        assert_eq!(
            backups_note("prod", "app-backup", "/k.txt", Some("/db.sql")),
            "Backups: Secret prod/app-backup; key file /k.txt (0600); database dump /db.sql (0600, pg_dump in the \
             server's pod)"
        );
        assert_eq!(
            backups_note("prod", "app-backup", "/k.txt", None),
            "Backups: Secret prod/app-backup; key file /k.txt (0600); no database dump (--no-db-backup)"
        );
    }

    #[test]
    fn the_job_name_keeps_24_characters_of_the_secret_without_a_trailing_dash() {
        assert_eq!(job_name("app", "r1"), "app-migrate-r1");
        assert_eq!(
            job_name("a-very-long-secret-name-x-that-goes-on", "r1"),
            "a-very-long-secret-name-migrate-r1"
        );
        assert_eq!(
            job_name("abcdefghijklmnopqrstuvw-xyz", "r1"),
            "abcdefghijklmnopqrstuvw-migrate-r1"
        );
    }

    #[test]
    fn the_database_pod_is_port_forwarded_and_execed_only_for_a_dump() {
        let resources = |dump| {
            pod_needs("postgres-0", "prod", dump)
                .into_iter()
                .map(|n| format!("{} {}", n.verb, n.resource))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            resources(false),
            ["get pods/portforward", "create pods/portforward"]
        );
        assert_eq!(
            resources(true),
            [
                "get pods/portforward",
                "create pods/portforward",
                "get pods/exec",
                "create pods/exec",
                "get pods"
            ]
        );
    }
}

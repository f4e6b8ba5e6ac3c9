//! Before a data encryption key's migration writes anything: the preflight (every row decrypts
//! with the current key, read-only), where the key and the dump go, and what it adds to the
//! planned change (the consumers to stop, their autoscalers, the row counts, the downtime).

use anyhow::Result;

use crate::cluster::Cluster;
use crate::cluster::access;
use crate::plan::change::{Change, leave_server_running, set_note};
use crate::plan::steps;
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
    settings: &crate::plan::presets::EncryptionSettings,
    (key, current): (&str, &SecretValue),
    files: &BackupFiles,
    strategy: crate::plan::presets::Strategy,
) -> Result<()> {
    let keyring = strategy == crate::plan::presets::Strategy::Keyring;
    use crate::model::workload::WorkloadKind;
    use crate::systems::encryption;
    let namespace = change.data.namespace.clone();
    let db = steps::Database {
        server: settings.server.clone(),
        database: settings.database.clone(),
        admin: Some(settings.admin.clone()),
        tls: settings.tls.clone(),
    };
    let new = change
        .data
        .keys
        .iter()
        .find(|k| k.key == key)
        .map(|k| k.after_value.clone())
        .ok_or_else(|| anyhow::anyhow!("the change holds no new value of {key}"))?;
    let found = encryption::preflight(
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
    let mut scaled = Vec::new();
    for r in change.restarts.restart.iter().filter(|_| !keyring) {
        let replicas = match r.kind {
            WorkloadKind::Deployment => cluster.deployment_replicas(&namespace, &r.name).await?,
            WorkloadKind::StatefulSet => cluster.statefulset_replicas(&namespace, &r.name).await?,
            other => anyhow::bail!(
                "{}/{} uses {key} and a {} cannot be scaled to 0: its pods would read the rows with the old key \
                 during the migration; nothing was changed",
                other.short(),
                r.name,
                other.short()
            ),
        };
        scaled.push(steps::Scaled {
            kind: r.kind,
            name: r.name.clone(),
            replicas,
        });
    }
    for (hpa, target) in
        crate::systems::workloads::inventory::autoscalers_of(cluster, &namespace, &scaled).await
    {
        change.notes.push(format!(
            "HPA {hpa} scales {target}: at 0 replicas it stops acting; it resumes once the recorded count is back"
        ));
    }
    let run_dir = files.dir.clone().unwrap_or_else(|| {
        std::path::PathBuf::from(format!("{}-{}", change.data.secret, change.record.id))
    });
    let key_file = files
        .key_file
        .clone()
        .unwrap_or_else(|| run_dir.join(format!("{key}-backup.txt")));
    let dump_file = (!files.no_db_backup).then(|| {
        files
            .db_file
            .clone()
            .unwrap_or_else(|| run_dir.join(format!("{}.sql", settings.database)))
    });
    let mut paths = Vec::new();
    for path in std::iter::once(&key_file).chain(dump_file.as_ref()) {
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
        paths.push(absolute.display().to_string());
    }
    let rows: Vec<String> = found
        .counts
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
    let stopped = scaled
        .iter()
        .map(|s| format!("{} ({} replicas)", s.workload().reference(), s.replicas))
        .collect::<Vec<_>>()
        .join(", ");
    let restarted = change
        .restarts
        .restart
        .iter()
        .map(|r| steps::WorkloadRef {
            kind: r.kind,
            name: r.name.clone(),
        })
        .collect::<Vec<_>>();
    set_note(&mut change.notes, "Strategy: ", strategy.name().into());
    if let Some((downtime, impact)) = strategy.downtime_and_impact("", "") {
        set_note(&mut change.notes, "Downtime: ", downtime);
        set_note(&mut change.notes, "Impact: ", impact);
        change.notes.push(format!(
            "Key ring: the app must accept keys separated by {:?} (the first encrypts, each decrypts: Python's \
             MultiFernet); a consumer that does not will fail its rollout in the first phase, and the run is undone",
            settings.separator
        ));
    } else {
        set_note(
            &mut change.notes,
            "Downtime: ",
            if scaled.is_empty() {
                "none: no consumer uses the key".into()
            } else {
                format!(
                    "{stopped} are scaled to 0 from before the migration until they are back with the new key: the \
                 re-encryption of {} tokens (one transaction) and the rollout (the runbook plans 30+ minutes)",
                    found.counts.iter().map(|(_, c)| c.old).sum::<u64>()
                )
            },
        );
    }
    change.notes.push(format!(
        "Rows (every one decrypts with the current key): {}",
        rows.join("; ")
    ));
    change.notes.push(format!(
        "Backups: Secret {namespace}/{}; key file {} (0600); {}",
        change.backup_name().unwrap_or_default(),
        paths[0],
        match paths.get(1) {
            Some(dump) => format!("database dump {dump} (0600, pg_dump in the server's pod)"),
            None => "no database dump (--no-db-backup)".into(),
        }
    ));
    change.notes.push(if keyring {
        "Rollback: the Secret holds old,new and the consumers roll out, the rows move back in short \
         transactions, then the Secret holds the old key and the consumers roll out again; the dump is the last \
         resort"
            .into()
    } else {
        "Rollback: a failed migration changes nothing (one transaction) and the consumers come back with the old \
         key; a failure after it re-encrypts the rows back with the old key (they are intact, and it keeps any \
         row written since), restores the key and scales back up; the dump is the last resort"
            .into()
    });
    change.notes.extend(found.notes);
    change.extra_needs = found.needs;
    if settings.job.is_some() && !keyring {
        for (verb, group, resource, why) in [
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
        ] {
            change.extra_needs.push(access::Need::new(
                verb, group, resource, None, &namespace, why,
            ));
        }
    }
    change.reencryption = Some(steps::Reencryption {
        db,
        columns: settings.columns.clone(),
        key: key.to_string(),
        key_file: Some(paths[0].clone()),
        dump_file: paths.get(1).cloned(),
        scaled,
        keyring: keyring.then(|| settings.separator.clone()),
        restart: if keyring { restarted } else { Vec::new() },
        job: settings.job.clone().filter(|_| !keyring).map(|job| {
            // A Job's name is a label value (63 characters), with "-undo" and "-keys" to come.
            let secret: String = change.data.secret.chars().take(24).collect();
            (
                format!(
                    "{}-migrate-{}",
                    secret.trim_end_matches('-'),
                    change.record.id
                ),
                job,
            )
        }),
    });
    Ok(())
}

//! A data encryption key's steps: the runbook's copies of the key and of the database, the
//! migration of the rows (built in, or the app's own Job), and the check that every row
//! decrypts; and how a rotation of such a key is planned (scale-down or key ring) and undone.
//! Applied by `systems::encryption`.

use serde::{Deserialize, Serialize};

use super::postgres::Database;
use super::secret::{Held, SecretStep};
use super::workloads::{Scaled, WorkloadRef, WorkloadStep};
use super::{Step, StepStatus, Undo, UndoContext, Version, later, restart_and_watch};

/// A column holding Fernet tokens encrypted with a data encryption key: `table.column`, its
/// rows named by `key` (the primary key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub table: String,
    pub key: String,
    pub column: String,
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// The app team's own migration, run as a Job: its container (the keys come from a temporary
/// Secret, as `OLD_KEY` and `NEW_KEY`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Kubernetes `EnvVar`s (e.g. the app's database login from its Secret).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<serde_json::Value>,
    /// The container's Kubernetes `SecurityContext`, as the preset gives it (the fields it
    /// leaves unset are filled in as Pod Security's `restricted` level asks:
    /// `plan::pod_security`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<serde_json::Value>,
    /// The pod's Kubernetes `PodSecurityContext`, as the preset gives it (filled in likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<serde_json::Value>,
}

/// A data encryption key's rotation with a migration (the runbook's encryption-key
/// procedure): where the tokens are, the copies taken outside the cluster first, and the
/// consumers stopped while the rows move to the new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reencryption {
    /// The database holding the tokens (changed as its admin).
    pub db: Database,
    pub columns: Vec<Column>,
    /// The Secret key holding the Fernet key.
    pub key: String,
    /// The runbook's "password manager" copy of the current key (a 0600 file).
    pub key_file: Option<String>,
    /// `pg_dump` of the database (a 0600 file).
    pub dump_file: Option<String>,
    /// The consumers, stopped from before the migration until the Secret holds the new key.
    pub scaled: Vec<Scaled>,
    /// Key-ring mode (no downtime): the separator the app splits the key list on; the
    /// consumers are restarted, never stopped, and the rows move in short transactions.
    pub keyring: Option<String>,
    /// With a key ring: the consumers to restart (twice).
    pub restart: Vec<WorkloadRef>,
    /// The app's own migration Job instead of the built-in re-encryption, named after the run.
    pub job: Option<(String, JobSpec)>,
}

/// Where a step of a run stands, as the journal records it.
/// The runbook's encryption-key procedure: back up the key (in the cluster, and to a file),
/// dump the database, stop the consumers, re-encrypt the rows in one transaction, patch the
/// Secret, start the consumers again with their recorded replica counts, watch them, then
/// check every row and the new pods' logs.
pub fn plan_reencryption(
    backup: Option<&str>,
    change: &Reencryption,
    restarted_at: &str,
    logs: Option<&str>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(backup) = backup {
        steps.push(Step::Secret(SecretStep::BackUp {
            backup: backup.to_string(),
        }));
    }
    if let Some(separator) = &change.keyring {
        steps.extend(copies(change));
        return plan_keyring(steps, change, separator, restarted_at, logs);
    }
    if let Some(path) = &change.key_file {
        steps.push(Step::Encryption(EncryptionStep::SaveKey {
            key: change.key.clone(),
            path: path.clone(),
        }));
    }
    if let Some(path) = &change.dump_file {
        steps.push(Step::Encryption(EncryptionStep::DumpDatabase {
            db: change.db.clone(),
            path: path.clone(),
        }));
    }
    if !change.scaled.is_empty() {
        steps.push(Step::Workloads(WorkloadStep::ScaleDown {
            workloads: change.scaled.clone(),
        }));
    }
    steps.push(match &change.job {
        Some((name, job)) => Step::Encryption(EncryptionStep::MigrationJob {
            name: name.clone(),
            job: job.clone(),
            db: change.db.clone(),
            columns: change.columns.clone(),
            key: change.key.clone(),
            to: Version::New,
        }),
        None => Step::Encryption(EncryptionStep::Reencrypt {
            db: change.db.clone(),
            columns: change.columns.clone(),
            key: change.key.clone(),
            to: Version::New,
            online: false,
        }),
    });
    steps.push(Step::Secret(SecretStep::PatchSecret));
    let workloads: Vec<WorkloadRef> = change.scaled.iter().map(Scaled::workload).collect();
    if !change.scaled.is_empty() {
        steps.push(Step::Workloads(WorkloadStep::ScaleUp {
            workloads: change.scaled.clone(),
            restarted_at: restarted_at.to_string(),
        }));
        steps.push(Step::Workloads(WorkloadStep::Watch {
            workloads: workloads.clone(),
            restarted_at: restarted_at.to_string(),
        }));
    }
    steps.push(Step::Encryption(EncryptionStep::CheckRows {
        db: change.db.clone(),
        columns: change.columns.clone(),
        key: change.key.clone(),
    }));
    if let Some(pattern) = logs.filter(|_| !workloads.is_empty()) {
        steps.push(Step::Workloads(WorkloadStep::CheckLogs {
            workloads,
            pattern: pattern.to_string(),
            absent: Some(DECRYPTION_ERRORS.to_string()),
        }));
    }
    steps
}

/// What a decryption error looks like in a log (Python's `cryptography.fernet.InvalidToken`,
/// and the usual wordings): the new pods of a data encryption key's run must log none.
pub const DECRYPTION_ERRORS: &str =
    "(?i)invalid ?token|invalid fernet token|cannot be decrypted|decrypt(ion)? (error|failed)";

/// The key file and the dump, first.
fn copies(change: &Reencryption) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(path) = &change.key_file {
        steps.push(Step::Encryption(EncryptionStep::SaveKey {
            key: change.key.clone(),
            path: path.clone(),
        }));
    }
    if let Some(path) = &change.dump_file {
        steps.push(Step::Encryption(EncryptionStep::DumpDatabase {
            db: change.db.clone(),
            path: path.clone(),
        }));
    }
    steps
}

/// Key-ring mode, without downtime: the Secret holds `new,old` and the consumers roll out
/// (they decrypt both and encrypt with the new key); the rows move to the new key in short
/// transactions while the app runs; the Secret holds `new` and the consumers roll out again.
fn plan_keyring(
    mut steps: Vec<Step>,
    change: &Reencryption,
    separator: &str,
    restarted_at: &str,
    logs: Option<&str>,
) -> Vec<Step> {
    let key = change.key.clone();
    let ring = Held::ring(Version::New, separator);
    steps.push(Step::Secret(SecretStep::WriteKey {
        key: key.clone(),
        from: vec![Held::Old],
        to: ring.clone(),
    }));
    steps.extend(restart_and_watch(&change.restart, restarted_at));
    steps.push(Step::Encryption(EncryptionStep::Reencrypt {
        db: change.db.clone(),
        columns: change.columns.clone(),
        key: key.clone(),
        to: Version::New,
        online: true,
    }));
    steps.push(Step::Secret(SecretStep::WriteKey {
        key: key.clone(),
        from: vec![ring],
        to: Held::New,
    }));
    steps.extend(restart_and_watch(&change.restart, &later(restarted_at, 3)));
    steps.push(Step::Encryption(EncryptionStep::CheckRows {
        db: change.db.clone(),
        columns: change.columns.clone(),
        key,
    }));
    if let Some(pattern) = logs.filter(|_| !change.restart.is_empty()) {
        steps.push(Step::Workloads(WorkloadStep::CheckLogs {
            workloads: change.restart.clone(),
            pattern: pattern.to_string(),
            absent: Some(DECRYPTION_ERRORS.to_string()),
        }));
    }
    steps
}

/// The undo of a key-ring run, in the same spirit as its forward steps: the app never holds
/// a key that cannot read every row. Once pods may have the ring (or rows may have moved), the
/// Secret becomes `old,new` and the consumers roll out (they write with the old key again),
/// the rows move back online, then the Secret holds `old` and the consumers roll out again.
/// `None` when the run is not a key-ring run.
pub fn plan_keyring_undo(
    forward: &[(Step, StepStatus)],
    may_have_applied: impl Fn(&StepStatus) -> bool,
    restarted_at: &str,
) -> Option<Vec<Step>> {
    let (key, separator) = forward.iter().find_map(|(step, _)| match step {
        Step::Secret(SecretStep::WriteKey {
            key,
            to: Held::Ring { separator, .. },
            ..
        }) => Some((key.clone(), separator.clone())),
        _ => None,
    })?;
    let applied = |wanted: &dyn Fn(&Step) -> bool| {
        forward
            .iter()
            .any(|(step, status)| wanted(step) && may_have_applied(status))
    };
    if !applied(&|s| matches!(s, Step::Secret(SecretStep::WriteKey { .. }))) {
        return Some(Vec::new());
    }
    let workloads: Vec<WorkloadRef> = forward
        .iter()
        .find_map(|(step, _)| match step {
            Step::Workloads(WorkloadStep::Restart { workloads, .. }) => Some(workloads.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let reencrypt = forward.iter().find_map(|(step, status)| match step {
        Step::Encryption(EncryptionStep::Reencrypt {
            db, columns, key, ..
        }) if may_have_applied(status) => Some(Step::Encryption(EncryptionStep::Reencrypt {
            db: db.clone(),
            columns: columns.clone(),
            key: key.clone(),
            to: Version::Old,
            online: true,
        })),
        _ => None,
    });
    let new_ring = Held::ring(Version::New, &separator);
    let old_ring = Held::ring(Version::Old, &separator);
    let restarted = applied(&|s| matches!(s, Step::Workloads(WorkloadStep::Restart { .. })));
    let mut steps = Vec::new();
    if restarted || reencrypt.is_some() {
        steps.push(Step::Secret(SecretStep::WriteKey {
            key: key.clone(),
            from: vec![new_ring, Held::New],
            to: old_ring.clone(),
        }));
        steps.extend(restart_and_watch(&workloads, restarted_at));
        steps.extend(reencrypt);
        steps.push(Step::Secret(SecretStep::WriteKey {
            key,
            from: vec![old_ring],
            to: Held::Old,
        }));
        steps.extend(restart_and_watch(&workloads, &later(restarted_at, 2)));
    } else {
        // Only the Secret changed; no pod read it and no row moved.
        steps.push(Step::Secret(SecretStep::WriteKey {
            key,
            from: vec![new_ring],
            to: Held::Old,
        }));
    }
    Some(steps)
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum EncryptionStep {
    /// Write the backed-up value of `key` to `path` (a new 0600 file), the runbook's copy of
    /// the key for a password manager; checked by reading it back.
    #[serde(rename_all = "camelCase")]
    SaveKey { key: String, path: String },
    /// `pg_dump` of the database, run in the server's pod through the API server (as
    /// `kubectl exec`), streamed to `path` (a new 0600 file) and checked complete.
    #[serde(rename_all = "camelCase")]
    DumpDatabase { db: Database, path: String },
    /// Re-encrypt every token of `columns` to the `to` value of `key` (from the other one), in
    /// one transaction; a row neither value decrypts stops it with nothing changed.
    #[serde(rename_all = "camelCase")]
    Reencrypt {
        db: Database,
        columns: Vec<Column>,
        key: String,
        to: Version,
        /// In batches of short transactions while the app runs (key-ring mode); each batch
        /// commits, and running it again goes on where it stopped.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        online: bool,
    },
    /// The app's own migration: a Job `name` running `job` with `OLD_KEY` and `NEW_KEY` (the
    /// other value of `key` and its `to` value) from a temporary Secret `name-keys`, deleted
    /// when the Job ends. Checked by counting which key decrypts the rows of `columns`.
    #[serde(rename_all = "camelCase")]
    MigrationJob {
        name: String,
        job: JobSpec,
        db: Database,
        columns: Vec<Column>,
        key: String,
        to: Version,
    },
    /// Every token of `columns` decrypts with the Secret's value of `key` (reads only).
    #[serde(rename_all = "camelCase")]
    CheckRows {
        db: Database,
        columns: Vec<Column>,
        key: String,
    },
}

impl EncryptionStep {
    /// A short name, for the journal, test hooks and messages.
    pub fn name(&self) -> &'static str {
        match self {
            EncryptionStep::SaveKey { .. } => "save-key",
            EncryptionStep::DumpDatabase { .. } => "dump-database",
            EncryptionStep::Reencrypt { .. } => "reencrypt",
            EncryptionStep::MigrationJob { .. } => "migration-job",
            EncryptionStep::CheckRows { .. } => "check-rows",
        }
    }

    /// What the step does, in words, for the preview and the reports.
    pub fn describe(&self) -> String {
        match self {
            EncryptionStep::SaveKey { key, path } => {
                format!(
                    "write the current {key} to {path} (a new file, mode 0600) and read it back"
                )
            }
            EncryptionStep::DumpDatabase { db, path } => format!(
                "pg_dump of database {} in the pod of {} (through the API server) to {path} (mode 0600), checked complete",
                db.database, db.server
            ),
            EncryptionStep::Reencrypt {
                db,
                columns,
                key,
                to,
                online,
            } => format!(
                "PostgreSQL {}: re-encrypt every token of {} from the {} {key} to the {} one, {}",
                db.server,
                columns
                    .iter()
                    .map(Column::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                to.other().name(),
                to.name(),
                if *online {
                    "in batches of short transactions while the app runs"
                } else {
                    "in one transaction"
                }
            ),
            EncryptionStep::MigrationJob {
                name, job, key, to, ..
            } => format!(
                "run Job {name} (image {}) with the {} {key} as OLD_KEY and the {} one as NEW_KEY (from a temporary \
                 Secret {name}-keys, deleted when it ends), then count which key decrypts the rows",
                job.image,
                to.other().name(),
                to.name()
            ),
            EncryptionStep::CheckRows { db, columns, key } => format!(
                "PostgreSQL {}: check that every token of {} decrypts with the Secret's {key}",
                db.server,
                columns
                    .iter()
                    .map(Column::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Whether applying it writes anything (a check only reads).
    pub fn writes(&self) -> bool {
        !matches!(self, EncryptionStep::CheckRows { .. })
    }
}

impl EncryptionStep {
    /// The rows move back to the other key (the same way: one transaction, batches, or the
    /// app's own Job run backwards). The copies of the key and the database are kept.
    pub fn undo(&self, _cx: &UndoContext) -> Undo {
        match self {
            EncryptionStep::Reencrypt {
                db,
                columns,
                key,
                to,
                online,
            } => Undo::first([EncryptionStep::Reencrypt {
                db: db.clone(),
                columns: columns.clone(),
                key: key.clone(),
                to: to.other(),
                online: *online,
            }
            .into()]),
            // The same Job, the other way round.
            EncryptionStep::MigrationJob {
                name,
                job,
                db,
                columns,
                key,
                to,
            } => Undo::first([EncryptionStep::MigrationJob {
                name: format!("{name}-undo"),
                job: job.clone(),
                db: db.clone(),
                columns: columns.clone(),
                key: key.clone(),
                to: to.other(),
            }
            .into()]),
            EncryptionStep::SaveKey { .. }
            | EncryptionStep::DumpDatabase { .. }
            | EncryptionStep::CheckRows { .. } => Undo::none(),
        }
    }
}

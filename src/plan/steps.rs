//! Pure: a change as an ordered list of steps (plan as data). Each step is plain, serializable
//! data that the journal records and the engine (`engine.rs`) runs; the systems at the edge
//! (`systems/`) know how to apply it, check that it took effect, and undo it.
//!
//! A rotation is "back up", "patch the Secret", "restart the consumers", "watch the rollouts";
//! a database password adds its own steps around the patch (`plan_rotation`). Undoing a run is
//! planned here too, from what its journal says was applied (`plan_undo`): every step that may
//! have been applied is undone in reverse order; the consumers are restarted once the old
//! values are back, and access that only the run's new pods use is removed after they are gone.
//! Nothing here talks to a cluster or a database.

use serde::{Deserialize, Serialize};

use crate::model::workload::WorkloadKind;

/// A workload a step restarts or watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

impl WorkloadRef {
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}

/// A PostgreSQL server and the login that changes roles, as the journal records it (no value:
/// passwords are read from Secrets when a step runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// `pod/NAME:PORT` or `service/NAME:PORT` (through the API server), or `HOST:PORT`.
    pub server: String,
    /// The database to log in to.
    pub database: String,
    /// The login that changes passwords; `None`: the role itself, with its current password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminLogin>,
    /// TLS to a server reached directly (`HOST:PORT`); a tunnel through the API server is
    /// inside the API server's TLS.
    #[serde(default)]
    pub tls: Tls,
}

/// How a connection to a directly reached server is secured (libpq's `sslmode` names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM file of the CA (or the server's own certificate) that `verify-full` trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, not verified; plain otherwise (libpq's default).
    #[default]
    Prefer,
    /// TLS, not verified (encrypts; does not prove who the server is).
    Require,
    /// TLS, the certificate chain checked against `ca_file` and the host name against it.
    VerifyFull,
}

impl TlsMode {
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// Admin credentials: a user, and the Secret key in the run's namespace holding its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminLogin {
    pub user: String,
    pub secret: String,
    pub key: String,
}

impl Database {
    /// Who changes passwords, in words.
    pub fn changer(&self, role: &str) -> String {
        match &self.admin {
            Some(admin) => format!(
                "as {}, password from Secret {} key {}",
                admin.user, admin.secret, admin.key
            ),
            None => format!("as {role} itself, with its current password"),
        }
    }
}

/// A Redis server, the ACL user whose password rotates, and the replicas that must follow, as
/// the journal records them (no value: passwords come from the run's backup and journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redis {
    /// The primary: `pod/NAME:PORT` or `service/NAME:PORT` (through the API server), or
    /// `HOST:PORT`.
    pub server: String,
    /// The ACL user (`default` is the one `AUTH password` and `requirepass` use).
    pub user: String,
    /// Each replica, reached like the primary: it gets the same passwords (`ACL SETUSER` is
    /// not replicated) and its `masterauth` follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
}

impl Redis {
    /// The nodes, in words: "service/redis:6379" or "service/redis:6379 and 1 replica".
    pub fn nodes(&self) -> String {
        match self.replicas.len() {
            0 => self.server.clone(),
            1 => format!("{} and its replica {}", self.server, self.replicas[0]),
            _ => format!(
                "{} and its replicas {}",
                self.server,
                self.replicas.join(", ")
            ),
        }
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A workload scaled down for a migration, with the replica count it had (what scaling up
/// restores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaled {
    pub kind: WorkloadKind,
    pub name: String,
    pub replicas: i32,
}

impl Scaled {
    pub fn workload(&self) -> WorkloadRef {
        WorkloadRef {
            kind: self.kind,
            name: self.name.clone(),
        }
    }
}

fn scaled_list(workloads: &[Scaled]) -> String {
    workloads
        .iter()
        .map(|w| format!("{} ({} replicas)", w.workload().reference(), w.replicas))
        .collect::<Vec<_>>()
        .join(", ")
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

/// What a data encryption key's Secret value is during a key-ring run: one key, or both
/// joined by the separator (the first encrypts, both decrypt: Python's `MultiFernet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Held {
    Old,
    New,
    #[serde(rename_all = "camelCase")]
    Ring {
        first: Version,
        separator: String,
    },
}

impl Held {
    pub fn ring(first: Version, separator: &str) -> Held {
        Held::Ring {
            first,
            separator: separator.to_string(),
        }
    }

    pub fn describe(&self, key: &str) -> String {
        match self {
            Held::Old => format!("the old {key}"),
            Held::New => format!("the new {key}"),
            Held::Ring { first, separator } => format!(
                "the key ring {}{separator}{} (the {} encrypts, both decrypt)",
                first.name(),
                first.other().name(),
                first.name()
            ),
        }
    }
}

/// Which of a run's two values of a key a step uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Version {
    /// The run's new value (from its journal Secret).
    New,
    /// The value before the run (from its backup).
    Old,
}

impl Version {
    pub fn other(self) -> Version {
        match self {
            Version::New => Version::Old,
            Version::Old => Version::New,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Version::New => "new",
            Version::Old => "old",
        }
    }
}

/// What a rotation changes in a database besides the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseChange {
    /// One role: its password changes in place (the runbook's procedure). Old pods lose
    /// their new logins from the `ALTER ROLE` until they are replaced.
    SingleUser {
        db: Database,
        role: String,
        /// The Secret key holding the password.
        password_key: String,
    },
    /// Two roles with the same rights, one in use: the other gets a fresh password and login,
    /// the Secret switches to it, and the old one's login is disabled once no pod uses it.
    AlternatingUsers {
        db: Database,
        /// The role the Secret names now.
        from: String,
        /// The role the run switches to.
        to: String,
        /// Create `to` first, as a member of `from` whose sessions act as `from`.
        create: bool,
        user_key: String,
        password_key: String,
    },
    /// Redis 6+: the user has the old and the new password at once while the pods roll over;
    /// the old one is removed once no pod uses it.
    RedisOverlap { redis: Redis, password_key: String },
    /// A server without ACLs (before Redis 6): `CONFIG SET requirepass` replaces the password
    /// at once; old pods' new connections fail until they are replaced.
    RedisRequirepass { redis: Redis, password_key: String },
}

/// One step of a change. The values it writes are never in here: the old ones are in the
/// backup Secret, the new ones in the run's journal Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Step {
    /// Save the changed keys' current values in `backup` and read it back.
    #[serde(rename_all = "camelCase")]
    BackUp { backup: String },
    /// Write the run's new values, guarded by the old ones (a JSON Patch with `test` ops).
    PatchSecret,
    /// Put back the values saved in `backup` (and the rotation records as they were), only
    /// where the Secret still holds this run's values.
    #[serde(rename_all = "camelCase")]
    RestoreSecret { backup: Option<String> },
    /// `kubectl rollout restart` of each workload, with this run's `restartedAt`.
    #[serde(rename_all = "camelCase")]
    Restart {
        workloads: Vec<WorkloadRef>,
        restarted_at: String,
    },
    /// Wait until each workload has rolled out (kubectl's rules), failing fast on a
    /// crash-looping new pod.
    #[serde(rename_all = "camelCase")]
    Watch {
        workloads: Vec<WorkloadRef>,
        restarted_at: String,
    },
    /// `CREATE ROLE role NOLOGIN IN ROLE member_of` and `ALTER ROLE role SET role = member_of`:
    /// a second role with `member_of`'s rights whose sessions act as `member_of` (so objects
    /// it creates belong to the same owner). Kept by an undo (it has no login).
    #[serde(rename_all = "camelCase")]
    CreateRole {
        db: Database,
        role: String,
        member_of: String,
    },
    /// `ALTER ROLE role [LOGIN] PASSWORD '<SCRAM verifier>'` with the run's new value of `key`;
    /// checked by logging in with it.
    #[serde(rename_all = "camelCase")]
    SetPassword {
        db: Database,
        role: String,
        key: String,
        /// Also allow the role to log in (alternating users).
        login: bool,
    },
    /// The undo of a single-user `SetPassword`: the role's password back to the backed-up
    /// value of `key`.
    #[serde(rename_all = "camelCase")]
    RevertPassword {
        db: Database,
        role: String,
        key: String,
    },
    /// Log in as `role` with the Secret's value of `key` (reads only).
    #[serde(rename_all = "camelCase")]
    CheckLogin {
        db: Database,
        role: String,
        key: String,
    },
    /// Every current pod of each workload logged a line matching `pattern` (reads only): the
    /// runbook's `kubectl logs <pod> | grep "database.*healthy"`.
    /// With `absent`: and none logged a line matching it (a data encryption key's run: no
    /// decryption error).
    #[serde(rename_all = "camelCase")]
    CheckLogs {
        workloads: Vec<WorkloadRef>,
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        absent: Option<String>,
    },
    /// `ALTER ROLE role NOLOGIN`: sessions already open go on; new logins are refused.
    #[serde(rename_all = "camelCase")]
    DisableLogin { db: Database, role: String },
    /// `ALTER ROLE role LOGIN`.
    #[serde(rename_all = "camelCase")]
    EnableLogin { db: Database, role: String },
    /// Redis: `ACL SETUSER user #<sha256>` of the run's `value` of `key` on the primary and
    /// every replica, then each replica's `masterauth` is that value; each node persists its
    /// users the way it is configured (`ACL SAVE` or `CONFIG REWRITE`). Checked by logging in.
    #[serde(rename_all = "camelCase")]
    AddPassword {
        redis: Redis,
        key: String,
        value: Version,
    },
    /// Redis: each replica's `masterauth` becomes the other value first, then
    /// `ACL SETUSER user !<sha256>` of `value` on every node, persisted likewise.
    #[serde(rename_all = "camelCase")]
    RemovePassword {
        redis: Redis,
        key: String,
        value: Version,
    },
    /// Redis without ACLs: each replica's `requirepass` and `masterauth`, then the primary's
    /// `requirepass`, become `value` (`CONFIG SET`, persisted with `CONFIG REWRITE`).
    #[serde(rename_all = "camelCase")]
    SetRequirepass {
        redis: Redis,
        key: String,
        value: Version,
    },
    /// Redis: `AUTH` as the user on every node with the Secret's value of `key` (reads only).
    #[serde(rename_all = "camelCase")]
    CheckAuth { redis: Redis, key: String },
    /// Write the backed-up value of `key` to `path` (a new 0600 file), the runbook's copy of
    /// the key for a password manager; checked by reading it back.
    #[serde(rename_all = "camelCase")]
    SaveKey { key: String, path: String },
    /// `pg_dump` of the database, run in the server's pod through the API server (as
    /// `kubectl exec`), streamed to `path` (a new 0600 file) and checked complete.
    #[serde(rename_all = "camelCase")]
    DumpDatabase { db: Database, path: String },
    /// Scale each workload to 0 and wait until none of its pods is left.
    #[serde(rename_all = "camelCase")]
    ScaleDown { workloads: Vec<Scaled> },
    /// Scale each workload back to its recorded replica count, its pod template marked with
    /// `restarted_at` (so that `Watch` follows these pods).
    #[serde(rename_all = "camelCase")]
    ScaleUp {
        workloads: Vec<Scaled>,
        restarted_at: String,
    },
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
    /// Key-ring mode: the Secret's value of `key` becomes `to`, where it holds one of `from`
    /// (a guarded JSON Patch); `to` the new key also records the rotation, `to` the old one
    /// puts the records back as they were.
    #[serde(rename_all = "camelCase")]
    WriteKey {
        key: String,
        from: Vec<Held>,
        to: Held,
    },
    /// Every token of `columns` decrypts with the Secret's value of `key` (reads only).
    #[serde(rename_all = "camelCase")]
    CheckRows {
        db: Database,
        columns: Vec<Column>,
        key: String,
    },
}

impl Step {
    /// A short name, for the journal, test hooks and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Step::BackUp { .. } => "backup",
            Step::PatchSecret => "patch",
            Step::RestoreSecret { .. } => "restore",
            Step::Restart { .. } => "restart",
            Step::Watch { .. } => "watch",
            Step::CreateRole { .. } => "create-role",
            Step::SetPassword { .. } => "set-password",
            Step::RevertPassword { .. } => "revert-password",
            Step::CheckLogin { .. } => "check-login",
            Step::CheckLogs { .. } => "check-logs",
            Step::DisableLogin { .. } => "disable-login",
            Step::EnableLogin { .. } => "enable-login",
            Step::AddPassword { .. } => "add-password",
            Step::RemovePassword { .. } => "remove-password",
            Step::SetRequirepass { .. } => "set-requirepass",
            Step::CheckAuth { .. } => "check-auth",
            Step::SaveKey { .. } => "save-key",
            Step::DumpDatabase { .. } => "dump-database",
            Step::ScaleDown { .. } => "scale-down",
            Step::ScaleUp { .. } => "scale-up",
            Step::Reencrypt { .. } => "reencrypt",
            Step::CheckRows { .. } => "check-rows",
            Step::WriteKey { .. } => "write-key",
            Step::MigrationJob { .. } => "migration-job",
        }
    }

    /// What the step does, in words, for the preview and the reports.
    pub fn describe(&self, secret: &str, keys: &[String]) -> String {
        let keys = keys.join(", ");
        match self {
            Step::BackUp { backup } => {
                format!("back up {keys} of Secret {secret} to Secret {backup} and read it back")
            }
            Step::PatchSecret => {
                format!("patch Secret {secret}: {keys} (guarded by the old values)")
            }
            Step::RestoreSecret {
                backup: Some(backup),
            } => format!(
                "restore {keys} of Secret {secret} from {backup}, where it still holds this run's values"
            ),
            Step::RestoreSecret { backup: None } => format!(
                "remove the new keys {keys} from Secret {secret}, where it still holds this run's values"
            ),
            Step::Restart { workloads, .. } => format!(
                "restart {}",
                workloads
                    .iter()
                    .map(WorkloadRef::reference)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Watch { workloads, .. } => format!(
                "watch the rollout of {}",
                workloads
                    .iter()
                    .map(WorkloadRef::reference)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::CreateRole {
                db,
                role,
                member_of,
            } => format!(
                "PostgreSQL {}: CREATE ROLE {role} NOLOGIN IN ROLE {member_of}; ALTER ROLE {role} SET role = {member_of} ({})",
                db.server,
                db.changer(member_of)
            ),
            Step::SetPassword {
                db,
                role,
                key,
                login,
            } => format!(
                "PostgreSQL {}: ALTER ROLE {role}{} PASSWORD <SCRAM-SHA-256 verifier of the new {key}> ({}); then log in with it",
                db.server,
                if *login { " LOGIN" } else { "" },
                db.changer(role)
            ),
            Step::RevertPassword { db, role, key } => format!(
                "PostgreSQL {}: ALTER ROLE {role} PASSWORD <verifier of the backed-up {key}>, then log in with it",
                db.server
            ),
            Step::CheckLogin { db, role, key } => format!(
                "PostgreSQL {}: log in as {role} with the Secret's {key}",
                db.server
            ),
            Step::CheckLogs {
                workloads,
                pattern,
                absent,
            } => format!(
                "check that every new pod of {} logged a line matching {pattern:?}{}",
                workloads
                    .iter()
                    .map(WorkloadRef::reference)
                    .collect::<Vec<_>>()
                    .join(", "),
                absent
                    .as_ref()
                    .map(|a| format!(" and none a line matching {a:?}"))
                    .unwrap_or_default()
            ),
            Step::DisableLogin { db, role } => {
                format!("PostgreSQL {}: ALTER ROLE {role} NOLOGIN", db.server)
            }
            Step::EnableLogin { db, role } => {
                format!("PostgreSQL {}: ALTER ROLE {role} LOGIN", db.server)
            }
            Step::AddPassword { redis, key, value } => format!(
                "Redis {}: ACL SETUSER {} #<SHA-256 of the {} {key}>{}, persisted (ACL SAVE or CONFIG REWRITE); then log in with it",
                redis.nodes(),
                redis.user,
                value.name(),
                if redis.replicas.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the replicas' masterauth becomes the {} value",
                        value.name()
                    )
                }
            ),
            Step::RemovePassword { redis, key, value } => format!(
                "Redis {}: {}ACL SETUSER {} !<SHA-256 of the {} {key}>, persisted; then check it no longer logs in",
                redis.nodes(),
                if redis.replicas.is_empty() {
                    String::new()
                } else {
                    format!(
                        "the replicas' masterauth becomes the {} value; ",
                        value.other().name()
                    )
                },
                redis.user,
                value.name(),
            ),
            Step::SetRequirepass { redis, key, value } => format!(
                "Redis {}: CONFIG SET requirepass <the {} {key}>{} (it replaces every password of the default user), CONFIG REWRITE; then log in with it",
                redis.nodes(),
                value.name(),
                if redis.replicas.is_empty() {
                    ""
                } else {
                    " on the replicas (with masterauth) first, then the primary"
                }
            ),
            Step::CheckAuth { redis, key } => format!(
                "Redis {}: log in as {} with the Secret's {key}",
                redis.nodes(),
                redis.user
            ),
            Step::SaveKey { key, path } => {
                format!(
                    "write the current {key} to {path} (a new file, mode 0600) and read it back"
                )
            }
            Step::DumpDatabase { db, path } => format!(
                "pg_dump of database {} in the pod of {} (through the API server) to {path} (mode 0600), checked complete",
                db.database, db.server
            ),
            Step::ScaleDown { workloads } => format!(
                "scale {} to 0 and wait until their pods are gone",
                scaled_list(workloads)
            ),
            Step::ScaleUp { workloads, .. } => {
                format!("scale {} back up", scaled_list(workloads))
            }
            Step::Reencrypt {
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
            Step::MigrationJob {
                name, job, key, to, ..
            } => format!(
                "run Job {name} (image {}) with the {} {key} as OLD_KEY and the {} one as NEW_KEY (from a temporary \
                 Secret {name}-keys, deleted when it ends), then count which key decrypts the rows",
                job.image,
                to.other().name(),
                to.name()
            ),
            Step::WriteKey { key, to, .. } => format!(
                "patch Secret {secret}: {key} becomes {} (guarded by its current value)",
                to.describe(key)
            ),
            Step::CheckRows { db, columns, key } => format!(
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

    /// Whether applying it writes anything (a watch only reads).
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Step::Watch { .. }
                | Step::CheckLogin { .. }
                | Step::CheckLogs { .. }
                | Step::CheckAuth { .. }
                | Step::CheckRows { .. }
        )
    }
}

/// Plans the steps of a change of a Secret's keys: back up (when any key had a value),
/// patch, and restart and watch `workloads` (when there are any).
pub fn plan_change(
    backup: Option<&str>,
    workloads: &[WorkloadRef],
    restarted_at: &str,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(backup) = backup {
        steps.push(Step::BackUp {
            backup: backup.to_string(),
        });
    }
    steps.push(Step::PatchSecret);
    if !workloads.is_empty() {
        steps.push(Step::Restart {
            workloads: workloads.to_vec(),
            restarted_at: restarted_at.to_string(),
        });
        steps.push(Step::Watch {
            workloads: workloads.to_vec(),
            restarted_at: restarted_at.to_string(),
        });
    }
    steps
}

/// Plans a rotation whose value is also a database password: the database is changed first,
/// so that the Secret never names a password the database does not accept.
///
/// - single user: back up, set the role's password (and log in with it), patch, restart,
///   watch, (check the new pods' logs for `logs`,) log in with the Secret's value;
/// - alternating users: (create the second role,) back up, give the unused role the new
///   password and its login, patch user and password, restart, watch, log in with the
///   Secret's values, then disable the old role's login: no new pod uses it any more;
/// - Redis overlap: back up, add the new password (the old one still works), patch, restart,
///   watch, (check the logs,) log in with the Secret's value, then remove the old password;
/// - Redis `requirepass`: back up, replace the password, patch, restart, watch, log in.
pub fn plan_rotation(
    backup: Option<&str>,
    database: Option<&DatabaseChange>,
    workloads: &[WorkloadRef],
    restarted_at: &str,
    logs: Option<&str>,
) -> Vec<Step> {
    let Some(database) = database else {
        return plan_change(backup, workloads, restarted_at);
    };
    let mut before = Vec::new();
    let mut after = Vec::new();
    match database {
        DatabaseChange::SingleUser {
            db,
            role,
            password_key,
        } => {
            before.push(Step::SetPassword {
                db: db.clone(),
                role: role.clone(),
                key: password_key.clone(),
                login: false,
            });
            after.push(Step::CheckLogin {
                db: db.clone(),
                role: role.clone(),
                key: password_key.clone(),
            });
        }
        DatabaseChange::AlternatingUsers {
            db,
            from,
            to,
            create,
            password_key,
            ..
        } => {
            before.push(Step::SetPassword {
                db: db.clone(),
                role: to.clone(),
                key: password_key.clone(),
                login: true,
            });
            after.push(Step::CheckLogin {
                db: db.clone(),
                role: to.clone(),
                key: password_key.clone(),
            });
            after.push(Step::DisableLogin {
                db: db.clone(),
                role: from.clone(),
            });
            if *create {
                before.insert(
                    0,
                    Step::CreateRole {
                        db: db.clone(),
                        role: to.clone(),
                        member_of: from.clone(),
                    },
                );
            }
        }
        DatabaseChange::RedisOverlap {
            redis,
            password_key,
        } => {
            before.push(Step::AddPassword {
                redis: redis.clone(),
                key: password_key.clone(),
                value: Version::New,
            });
            after.push(Step::CheckAuth {
                redis: redis.clone(),
                key: password_key.clone(),
            });
            after.push(Step::RemovePassword {
                redis: redis.clone(),
                key: password_key.clone(),
                value: Version::Old,
            });
        }
        DatabaseChange::RedisRequirepass {
            redis,
            password_key,
        } => {
            before.push(Step::SetRequirepass {
                redis: redis.clone(),
                key: password_key.clone(),
                value: Version::New,
            });
            after.push(Step::CheckAuth {
                redis: redis.clone(),
                key: password_key.clone(),
            });
        }
    }
    // The new pods' logs first: they say why a login failed.
    if let Some(pattern) = logs.filter(|_| !workloads.is_empty()) {
        after.insert(
            0,
            Step::CheckLogs {
                workloads: workloads.to_vec(),
                pattern: pattern.to_string(),
                absent: None,
            },
        );
    }
    let mut steps = plan_change(backup, workloads, restarted_at);
    // After the backup (the old value is safe before anything changes), before the patch.
    let at = usize::from(matches!(steps.first(), Some(Step::BackUp { .. })));
    for (offset, step) in before.into_iter().enumerate() {
        steps.insert(at + offset, step);
    }
    steps.extend(after);
    steps
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
        steps.push(Step::BackUp {
            backup: backup.to_string(),
        });
    }
    if let Some(separator) = &change.keyring {
        steps.extend(copies(change));
        return plan_keyring(steps, change, separator, restarted_at, logs);
    }
    if let Some(path) = &change.key_file {
        steps.push(Step::SaveKey {
            key: change.key.clone(),
            path: path.clone(),
        });
    }
    if let Some(path) = &change.dump_file {
        steps.push(Step::DumpDatabase {
            db: change.db.clone(),
            path: path.clone(),
        });
    }
    if !change.scaled.is_empty() {
        steps.push(Step::ScaleDown {
            workloads: change.scaled.clone(),
        });
    }
    steps.push(match &change.job {
        Some((name, job)) => Step::MigrationJob {
            name: name.clone(),
            job: job.clone(),
            db: change.db.clone(),
            columns: change.columns.clone(),
            key: change.key.clone(),
            to: Version::New,
        },
        None => Step::Reencrypt {
            db: change.db.clone(),
            columns: change.columns.clone(),
            key: change.key.clone(),
            to: Version::New,
            online: false,
        },
    });
    steps.push(Step::PatchSecret);
    let workloads: Vec<WorkloadRef> = change.scaled.iter().map(Scaled::workload).collect();
    if !change.scaled.is_empty() {
        steps.push(Step::ScaleUp {
            workloads: change.scaled.clone(),
            restarted_at: restarted_at.to_string(),
        });
        steps.push(Step::Watch {
            workloads: workloads.clone(),
            restarted_at: restarted_at.to_string(),
        });
    }
    steps.push(Step::CheckRows {
        db: change.db.clone(),
        columns: change.columns.clone(),
        key: change.key.clone(),
    });
    if let Some(pattern) = logs.filter(|_| !workloads.is_empty()) {
        steps.push(Step::CheckLogs {
            workloads,
            pattern: pattern.to_string(),
            absent: Some(DECRYPTION_ERRORS.to_string()),
        });
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
        steps.push(Step::SaveKey {
            key: change.key.clone(),
            path: path.clone(),
        });
    }
    if let Some(path) = &change.dump_file {
        steps.push(Step::DumpDatabase {
            db: change.db.clone(),
            path: path.clone(),
        });
    }
    steps
}

/// A second restart of the same run needs its own `restartedAt` (the watch follows the pods
/// carrying it): the run's, with a suffix that keeps it a valid label value.
pub fn later(restarted_at: &str, phase: u8) -> String {
    format!("{restarted_at}.{phase}")
}

fn restart_and_watch(workloads: &[WorkloadRef], restarted_at: &str) -> Vec<Step> {
    if workloads.is_empty() {
        return Vec::new();
    }
    vec![
        Step::Restart {
            workloads: workloads.to_vec(),
            restarted_at: restarted_at.to_string(),
        },
        Step::Watch {
            workloads: workloads.to_vec(),
            restarted_at: restarted_at.to_string(),
        },
    ]
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
    steps.push(Step::WriteKey {
        key: key.clone(),
        from: vec![Held::Old],
        to: ring.clone(),
    });
    steps.extend(restart_and_watch(&change.restart, restarted_at));
    steps.push(Step::Reencrypt {
        db: change.db.clone(),
        columns: change.columns.clone(),
        key: key.clone(),
        to: Version::New,
        online: true,
    });
    steps.push(Step::WriteKey {
        key: key.clone(),
        from: vec![ring],
        to: Held::New,
    });
    steps.extend(restart_and_watch(&change.restart, &later(restarted_at, 3)));
    steps.push(Step::CheckRows {
        db: change.db.clone(),
        columns: change.columns.clone(),
        key,
    });
    if let Some(pattern) = logs.filter(|_| !change.restart.is_empty()) {
        steps.push(Step::CheckLogs {
            workloads: change.restart.clone(),
            pattern: pattern.to_string(),
            absent: Some(DECRYPTION_ERRORS.to_string()),
        });
    }
    steps
}

/// The undo of a key-ring run, in the same spirit as its forward steps: the app never holds
/// a key that cannot read every row. Once pods may have the ring (or rows may have moved), the
/// Secret becomes `old,new` and the consumers roll out (they write with the old key again),
/// the rows move back online, then the Secret holds `old` and the consumers roll out again.
/// `None` when the run is not a key-ring run.
fn plan_keyring_undo(
    forward: &[(Step, StepStatus)],
    may_have_applied: impl Fn(&StepStatus) -> bool,
    restarted_at: &str,
) -> Option<Vec<Step>> {
    let (key, separator) = forward.iter().find_map(|(step, _)| match step {
        Step::WriteKey {
            key,
            to: Held::Ring { separator, .. },
            ..
        } => Some((key.clone(), separator.clone())),
        _ => None,
    })?;
    let applied = |wanted: &dyn Fn(&Step) -> bool| {
        forward
            .iter()
            .any(|(step, status)| wanted(step) && may_have_applied(status))
    };
    if !applied(&|s| matches!(s, Step::WriteKey { .. })) {
        return Some(Vec::new());
    }
    let workloads: Vec<WorkloadRef> = forward
        .iter()
        .find_map(|(step, _)| match step {
            Step::Restart { workloads, .. } => Some(workloads.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let reencrypt = forward.iter().find_map(|(step, status)| match step {
        Step::Reencrypt {
            db, columns, key, ..
        } if may_have_applied(status) => Some(Step::Reencrypt {
            db: db.clone(),
            columns: columns.clone(),
            key: key.clone(),
            to: Version::Old,
            online: true,
        }),
        _ => None,
    });
    let new_ring = Held::ring(Version::New, &separator);
    let old_ring = Held::ring(Version::Old, &separator);
    let restarted = applied(&|s| matches!(s, Step::Restart { .. }));
    let mut steps = Vec::new();
    if restarted || reencrypt.is_some() {
        steps.push(Step::WriteKey {
            key: key.clone(),
            from: vec![new_ring, Held::New],
            to: old_ring.clone(),
        });
        steps.extend(restart_and_watch(&workloads, restarted_at));
        steps.extend(reencrypt);
        steps.push(Step::WriteKey {
            key,
            from: vec![old_ring],
            to: Held::Old,
        });
        steps.extend(restart_and_watch(&workloads, &later(restarted_at, 2)));
    } else {
        // Only the Secret changed; no pod read it and no row moved.
        steps.push(Step::WriteKey {
            key,
            from: vec![new_ring],
            to: Held::Old,
        });
    }
    Some(steps)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Started: its write may or may not have happened (the run stopped or died meanwhile).
    Started,
    /// Applied and checked.
    Done,
    /// Failed, and its write certainly did not take effect (a step that failed after its
    /// write may have happened stays `Started`, with the failure in its note).
    Failed,
}

/// Plans the undo of a run from its forward steps and their status: every step that may have
/// been applied is undone, in reverse order. Backups are kept (they are how the old values stay
/// recoverable), a created role is kept (without login), reads need no undo.
///
/// The undos that give the old pods back what they use (the Secret's old values, a role's old
/// password, a disabled login) come first; then the workloads the run restarted are restarted
/// again, so their pods read the old values, and watched; last, the undos that take away what
/// only the run's new pods used (the login given to the second role), once those pods are gone.
pub fn plan_undo(
    forward: &[(Step, StepStatus)],
    backup: Option<&str>,
    restarted_at: &str,
) -> Vec<Step> {
    // A failed step is recorded as failed only when its write certainly did not happen;
    // one that may have is left `Started`.
    let may_have_applied =
        |status: &StepStatus| matches!(status, StepStatus::Started | StepStatus::Done);
    if let Some(steps) = plan_keyring_undo(forward, may_have_applied, restarted_at) {
        return steps;
    }
    let mut restore = Vec::new();
    let mut after_restart = Vec::new();
    for (step, _) in forward.iter().rev().filter(|(_, s)| may_have_applied(s)) {
        match step {
            Step::PatchSecret => restore.push(Step::RestoreSecret {
                backup: backup.map(str::to_string),
            }),
            Step::SetPassword {
                db,
                role,
                key,
                login: false,
            } => restore.push(Step::RevertPassword {
                db: db.clone(),
                role: role.clone(),
                key: key.clone(),
            }),
            Step::SetPassword {
                db,
                role,
                login: true,
                ..
            } => after_restart.push(Step::DisableLogin {
                db: db.clone(),
                role: role.clone(),
            }),
            Step::DisableLogin { db, role } => restore.push(Step::EnableLogin {
                db: db.clone(),
                role: role.clone(),
            }),
            // A password added for the new pods goes once they are gone; one removed from the
            // old pods comes back first.
            Step::AddPassword { redis, key, value } => after_restart.push(Step::RemovePassword {
                redis: redis.clone(),
                key: key.clone(),
                value: *value,
            }),
            Step::RemovePassword { redis, key, value } => restore.push(Step::AddPassword {
                redis: redis.clone(),
                key: key.clone(),
                value: *value,
            }),
            Step::SetRequirepass { redis, key, value } => restore.push(Step::SetRequirepass {
                redis: redis.clone(),
                key: key.clone(),
                value: value.other(),
            }),
            // The consumers stopped for the migration: they are started again last, once
            // the key and the rows are back (their recorded replica counts).
            Step::ScaleDown { workloads } => {
                restore.push(Step::ScaleUp {
                    workloads: workloads.clone(),
                    restarted_at: restarted_at.to_string(),
                });
                restore.push(Step::Watch {
                    workloads: workloads.iter().map(Scaled::workload).collect(),
                    restarted_at: restarted_at.to_string(),
                });
            }
            // Pods started with the new key are stopped before the rows move back.
            Step::ScaleUp { workloads, .. } => restore.push(Step::ScaleDown {
                workloads: workloads.clone(),
            }),
            Step::Reencrypt {
                db,
                columns,
                key,
                to,
                online,
            } => restore.push(Step::Reencrypt {
                db: db.clone(),
                columns: columns.clone(),
                key: key.clone(),
                to: to.other(),
                online: *online,
            }),
            // The same Job, the other way round.
            Step::MigrationJob {
                name,
                job,
                db,
                columns,
                key,
                to,
            } => restore.push(Step::MigrationJob {
                name: format!("{name}-undo"),
                job: job.clone(),
                db: db.clone(),
                columns: columns.clone(),
                key: key.clone(),
                to: to.other(),
            }),
            Step::BackUp { .. }
            | Step::WriteKey { .. }
            | Step::SaveKey { .. }
            | Step::DumpDatabase { .. }
            | Step::CheckRows { .. }
            | Step::Restart { .. }
            | Step::Watch { .. }
            | Step::CreateRole { .. }
            | Step::CheckLogin { .. }
            | Step::CheckLogs { .. }
            | Step::RestoreSecret { .. }
            | Step::RevertPassword { .. }
            | Step::EnableLogin { .. }
            | Step::CheckAuth { .. } => {}
        }
    }
    let mut steps = restore;
    let restarted = forward.iter().find_map(|(step, status)| match step {
        Step::Restart { workloads, .. } if may_have_applied(status) => Some(workloads),
        _ => None,
    });
    if let Some(workloads) = restarted {
        steps.push(Step::Restart {
            workloads: workloads.clone(),
            restarted_at: restarted_at.to_string(),
        });
        steps.push(Step::Watch {
            workloads: workloads.clone(),
            restarted_at: restarted_at.to_string(),
        });
    }
    steps.extend(after_restart);
    steps
}

/// Refuses a role name that could not be a PostgreSQL role (empty or with a NUL).
pub fn check_role_name(role: &str) -> anyhow::Result<()> {
    if role.is_empty() || role.contains('\0') {
        anyhow::bail!("{role:?} is not a PostgreSQL role name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Vec<WorkloadRef> {
        vec![
            WorkloadRef {
                kind: WorkloadKind::Deployment,
                name: "api".into(),
            },
            WorkloadRef {
                kind: WorkloadKind::Deployment,
                name: "worker".into(),
            },
        ]
    }

    fn names(steps: &[Step]) -> Vec<&'static str> {
        steps.iter().map(Step::name).collect()
    }

    #[test]
    fn a_rotation_backs_up_patches_restarts_and_watches() {
        let steps = plan_change(Some("s-backup-1"), &api(), "T1");
        assert_eq!(names(&steps), ["backup", "patch", "restart", "watch"]);
        assert_eq!(
            steps[2].describe("prod/s", &["k".into()]),
            "restart deployment/api, deployment/worker"
        );
    }

    #[test]
    fn new_keys_need_no_backup_and_no_consumers_need_no_restart() {
        assert_eq!(names(&plan_change(None, &[], "T1")), ["patch"]);
    }

    #[test]
    fn steps_round_trip_through_the_journal_format() {
        for step in plan_change(Some("b"), &api(), "T1") {
            let json = serde_json::to_string(&step).unwrap();
            assert_eq!(serde_json::from_str::<Step>(&json).unwrap(), step, "{json}");
        }
        let json = serde_json::to_value(Step::BackUp { backup: "b".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"type": "backUp", "backup": "b"}));
    }

    #[test]
    fn undo_restores_then_restarts_and_watches_what_the_run_restarted() {
        let forward: Vec<(Step, StepStatus)> = plan_change(Some("b"), &api(), "T1")
            .into_iter()
            .zip([
                StepStatus::Done,
                StepStatus::Done,
                StepStatus::Done,
                StepStatus::Failed,
            ])
            .collect();
        let undo = plan_undo(&forward, Some("b"), "T2");
        assert_eq!(names(&undo), ["restore", "restart", "watch"]);
        assert_eq!(
            undo[1],
            Step::Restart {
                workloads: api(),
                restarted_at: "T2".into()
            }
        );
    }

    #[test]
    fn undo_of_a_run_that_stopped_before_its_patch_changes_nothing() {
        let forward: Vec<(Step, StepStatus)> = plan_change(Some("b"), &api(), "T1")
            .into_iter()
            .zip([
                StepStatus::Done,
                StepStatus::Pending,
                StepStatus::Pending,
                StepStatus::Pending,
            ])
            .collect();
        assert!(plan_undo(&forward, Some("b"), "T2").is_empty());
    }

    #[test]
    fn a_patch_that_may_have_happened_is_undone_without_a_restart_that_did_not() {
        let forward: Vec<(Step, StepStatus)> = plan_change(Some("b"), &api(), "T1")
            .into_iter()
            .zip([
                StepStatus::Done,
                StepStatus::Started,
                StepStatus::Pending,
                StepStatus::Pending,
            ])
            .collect();
        assert_eq!(names(&plan_undo(&forward, Some("b"), "T2")), ["restore"]);
    }

    fn db() -> Database {
        Database {
            server: "service/postgres:5432".into(),
            database: "ai_agents".into(),
            admin: None,
            tls: Tls::default(),
        }
    }

    fn single() -> DatabaseChange {
        DatabaseChange::SingleUser {
            db: db(),
            role: "ai_agents".into(),
            password_key: "postgres-password".into(),
        }
    }

    fn alternating(create: bool) -> DatabaseChange {
        DatabaseChange::AlternatingUsers {
            db: db(),
            from: "ai_agents".into(),
            to: "ai_agents_clone".into(),
            create,
            user_key: "postgres-user".into(),
            password_key: "postgres-password".into(),
        }
    }

    fn with_status(steps: Vec<Step>, done: usize, then: StepStatus) -> Vec<(Step, StepStatus)> {
        steps
            .into_iter()
            .enumerate()
            .map(|(i, step)| {
                let status = match i.cmp(&done) {
                    std::cmp::Ordering::Less => StepStatus::Done,
                    std::cmp::Ordering::Equal => then,
                    std::cmp::Ordering::Greater => StepStatus::Pending,
                };
                (step, status)
            })
            .collect()
    }

    #[test]
    fn a_database_password_changes_in_the_database_before_the_secret_names_it() {
        let steps = plan_rotation(Some("b"), Some(&single()), &api(), "T1", None);
        assert_eq!(
            names(&steps),
            [
                "backup",
                "set-password",
                "patch",
                "restart",
                "watch",
                "check-login"
            ]
        );
        assert!(
            steps[1]
                .describe("prod/app-secrets", &[])
                .contains("ALTER ROLE ai_agents PASSWORD <SCRAM-SHA-256 verifier of the new postgres-password> (as ai_agents itself, with its current password); then log in")
        );
        assert!(!steps[5].writes());
    }

    #[test]
    fn alternating_users_switch_roles_and_disable_the_old_login_last() {
        let steps = plan_rotation(Some("b"), Some(&alternating(true)), &api(), "T1", None);
        assert_eq!(
            names(&steps),
            [
                "backup",
                "create-role",
                "set-password",
                "patch",
                "restart",
                "watch",
                "check-login",
                "disable-login"
            ]
        );
        assert_eq!(
            steps[7],
            Step::DisableLogin {
                db: db(),
                role: "ai_agents".into()
            }
        );
        let again = plan_rotation(Some("b"), Some(&alternating(false)), &api(), "T1", None);
        assert_eq!(names(&again)[1], "set-password");
    }

    #[test]
    fn undo_of_a_single_user_rotation_restores_the_secret_and_the_password_then_restarts() {
        let forward = plan_rotation(Some("b"), Some(&single()), &api(), "T1", None);
        // The rollout failed.
        let undo = plan_undo(
            &with_status(forward, 4, StepStatus::Started),
            Some("b"),
            "T2",
        );
        assert_eq!(
            names(&undo),
            ["restore", "revert-password", "restart", "watch"]
        );
    }

    #[test]
    fn a_run_killed_between_alter_role_and_the_patch_undoes_only_the_password() {
        let forward = plan_rotation(Some("b"), Some(&single()), &api(), "T1", None);
        let undo = plan_undo(
            &with_status(forward, 2, StepStatus::Pending),
            Some("b"),
            "T2",
        );
        assert_eq!(names(&undo), ["revert-password"]);
    }

    #[test]
    fn undo_of_alternating_users_keeps_the_new_role_until_its_pods_are_gone() {
        let forward = plan_rotation(Some("b"), Some(&alternating(true)), &api(), "T1", None);
        // Stopped in the last step: the old role's login may be disabled.
        let undo = plan_undo(
            &with_status(forward, 7, StepStatus::Started),
            Some("b"),
            "T2",
        );
        assert_eq!(
            names(&undo),
            [
                "enable-login",
                "restore",
                "restart",
                "watch",
                "disable-login"
            ]
        );
        assert_eq!(
            undo[4],
            Step::DisableLogin {
                db: db(),
                role: "ai_agents_clone".into()
            }
        );
    }

    #[test]
    fn database_steps_round_trip_through_the_journal_format() {
        for step in plan_rotation(Some("b"), Some(&alternating(true)), &api(), "T1", None) {
            let json = serde_json::to_string(&step).unwrap();
            assert_eq!(serde_json::from_str::<Step>(&json).unwrap(), step, "{json}");
        }
    }

    #[test]
    fn the_new_pods_logs_are_checked_before_the_login_when_the_preset_has_a_pattern() {
        let steps = plan_rotation(
            Some("b"),
            Some(&single()),
            &api(),
            "T1",
            Some("database.*healthy"),
        );
        assert_eq!(
            names(&steps),
            [
                "backup",
                "set-password",
                "patch",
                "restart",
                "watch",
                "check-logs",
                "check-login"
            ]
        );
        assert!(!steps[5].writes());
        // Nothing restarted, nothing to read.
        let steps = plan_rotation(Some("b"), Some(&single()), &[], "T1", Some("x"));
        assert!(!names(&steps).contains(&"check-logs"));
    }

    fn redis() -> Redis {
        Redis {
            server: "service/redis:6379".into(),
            user: "default".into(),
            replicas: vec!["pod/redis-replica-0:6379".into()],
        }
    }

    fn overlap() -> DatabaseChange {
        DatabaseChange::RedisOverlap {
            redis: redis(),
            password_key: "redis-password".into(),
        }
    }

    #[test]
    fn redis_overlap_adds_the_new_password_before_the_patch_and_removes_the_old_one_last() {
        let steps = plan_rotation(
            Some("b"),
            Some(&overlap()),
            &api(),
            "T1",
            Some("redis.*healthy"),
        );
        assert_eq!(
            names(&steps),
            [
                "backup",
                "add-password",
                "patch",
                "restart",
                "watch",
                "check-logs",
                "check-auth",
                "remove-password"
            ]
        );
        let add = steps[1].describe("prod/app-secrets", &[]);
        assert!(
            add.contains("ACL SETUSER default #<SHA-256 of the new redis-password>"),
            "{add}"
        );
        assert!(add.contains("masterauth becomes the new value"), "{add}");
        let remove = steps[7].describe("prod/app-secrets", &[]);
        assert!(
            remove.contains("masterauth becomes the new value; ACL SETUSER default !<SHA-256 of the old redis-password>"),
            "{remove}"
        );
        assert!(!steps[6].writes());
        for step in &steps {
            let json = serde_json::to_string(step).unwrap();
            assert_eq!(
                &serde_json::from_str::<Step>(&json).unwrap(),
                step,
                "{json}"
            );
        }
    }

    #[test]
    fn undo_of_a_redis_overlap_gives_the_old_password_back_first_and_takes_the_new_one_last() {
        let forward = plan_rotation(Some("b"), Some(&overlap()), &api(), "T1", None);
        // Stopped while removing the old password.
        let undo = plan_undo(
            &with_status(forward.clone(), 6, StepStatus::Started),
            Some("b"),
            "T2",
        );
        assert_eq!(
            names(&undo),
            [
                "add-password",
                "restore",
                "restart",
                "watch",
                "remove-password"
            ]
        );
        assert!(matches!(
            &undo[0],
            Step::AddPassword {
                value: Version::Old,
                ..
            }
        ));
        assert!(matches!(
            &undo[4],
            Step::RemovePassword {
                value: Version::New,
                ..
            }
        ));
        // Killed after the password was added, before the patch: only the new one goes.
        let undo = plan_undo(
            &with_status(forward, 2, StepStatus::Pending),
            Some("b"),
            "T2",
        );
        assert_eq!(names(&undo), ["remove-password"]);
    }

    #[test]
    fn redis_without_acls_replaces_requirepass_and_puts_it_back_first_on_undo() {
        let change = DatabaseChange::RedisRequirepass {
            redis: redis(),
            password_key: "redis-password".into(),
        };
        let forward = plan_rotation(Some("b"), Some(&change), &api(), "T1", None);
        assert_eq!(
            names(&forward),
            [
                "backup",
                "set-requirepass",
                "patch",
                "restart",
                "watch",
                "check-auth"
            ]
        );
        let undo = plan_undo(
            &with_status(forward, 4, StepStatus::Started),
            Some("b"),
            "T2",
        );
        assert_eq!(
            names(&undo),
            ["restore", "set-requirepass", "restart", "watch"]
        );
        assert!(matches!(
            &undo[1],
            Step::SetRequirepass {
                value: Version::Old,
                ..
            }
        ));
    }

    fn reencryption(keyring: bool) -> Reencryption {
        Reencryption {
            db: db(),
            columns: vec![Column {
                table: "tenant_configs".into(),
                key: "tenant_id".into(),
                column: "config".into(),
            }],
            key: "encryption-key".into(),
            key_file: Some("/backups/encryption-key-backup.txt".into()),
            dump_file: Some("/backups/ai_agents.sql".into()),
            scaled: if keyring {
                Vec::new()
            } else {
                api()
                    .into_iter()
                    .map(|w| Scaled {
                        kind: w.kind,
                        name: w.name,
                        replicas: 3,
                    })
                    .collect()
            },
            keyring: keyring.then(|| ",".to_string()),
            restart: if keyring { api() } else { Vec::new() },
            job: None,
        }
    }

    /// `forward` with its first `done` steps done and the rest pending.
    fn progress(forward: &[Step], done: usize) -> Vec<(Step, StepStatus)> {
        forward
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let status = if i < done {
                    StepStatus::Done
                } else {
                    StepStatus::Pending
                };
                (s.clone(), status)
            })
            .collect()
    }

    #[test]
    fn the_scale_down_path_stops_the_consumers_around_the_migration_and_the_patch() {
        let forward = plan_reencryption(Some("b"), &reencryption(false), "T", Some("decrypted"));
        assert_eq!(
            names(&forward),
            [
                "backup",
                "save-key",
                "dump-database",
                "scale-down",
                "reencrypt",
                "patch",
                "scale-up",
                "watch",
                "check-rows",
                "check-logs"
            ]
        );
        // Killed after the migration: the rows move back while the consumers are still down,
        // then they come back with their recorded replicas.
        let undo = plan_undo(&progress(&forward, 5), Some("b"), "U");
        assert_eq!(names(&undo), ["reencrypt", "scale-up", "watch"]);
        assert!(matches!(
            &undo[0],
            Step::Reencrypt {
                to: Version::Old,
                online: false,
                ..
            }
        ));
        assert!(
            matches!(&undo[1], Step::ScaleUp { workloads, .. } if workloads.iter().all(|w| w.replicas == 3))
        );
        // Failed at the last check: stop the new pods first, then undo in reverse.
        let undo = plan_undo(&progress(&forward, 9), Some("b"), "U");
        assert_eq!(
            names(&undo),
            ["scale-down", "restore", "reencrypt", "scale-up", "watch"]
        );
        // Nothing to undo before the scale-down; the copies are kept.
        assert!(plan_undo(&progress(&forward, 3), Some("b"), "U").is_empty());
    }

    #[test]
    fn the_key_ring_path_never_stops_the_consumers_and_its_undo_keeps_every_row_readable() {
        let forward = plan_reencryption(Some("b"), &reencryption(true), "T", Some("decrypted"));
        assert_eq!(
            names(&forward),
            [
                "backup",
                "save-key",
                "dump-database",
                "write-key",
                "restart",
                "watch",
                "reencrypt",
                "write-key",
                "restart",
                "watch",
                "check-rows",
                "check-logs"
            ]
        );
        assert!(matches!(
            &forward[3],
            Step::WriteKey { from, to: Held::Ring { first: Version::New, .. }, .. } if from == &[Held::Old]
        ));
        assert!(matches!(&forward[6], Step::Reencrypt { online: true, .. }));
        // Two restarts, each watched by its own restartedAt.
        let restarts: Vec<&str> = forward
            .iter()
            .filter_map(|s| match s {
                Step::Restart { restarted_at, .. } => Some(restarted_at.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(restarts, ["T", "T.3"]);

        // Only the Secret was written: it goes back at once.
        let undo = plan_undo(&progress(&forward, 4), Some("b"), "U");
        assert_eq!(names(&undo), ["write-key"]);
        assert!(matches!(&undo[0], Step::WriteKey { to: Held::Old, .. }));
        // After the rows moved: old,new first (pods write with the old key again), the rows
        // back, then the old key alone, each followed by a rollout.
        let undo = plan_undo(&progress(&forward, 7), Some("b"), "U");
        assert_eq!(
            names(&undo),
            [
                "write-key",
                "restart",
                "watch",
                "reencrypt",
                "write-key",
                "restart",
                "watch"
            ]
        );
        assert!(matches!(
            &undo[0],
            Step::WriteKey {
                to: Held::Ring {
                    first: Version::Old,
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            &undo[3],
            Step::Reencrypt {
                to: Version::Old,
                online: true,
                ..
            }
        ));
        assert!(matches!(&undo[4], Step::WriteKey { to: Held::Old, .. }));
        assert!(matches!(&undo[5], Step::Restart { restarted_at, .. } if restarted_at == "U.2"));
    }

    #[test]
    fn the_apps_own_migration_job_replaces_the_built_in_one_and_runs_backwards_to_undo() {
        let mut change = reencryption(false);
        change.job = Some((
            "app-secrets-migrate-r1".into(),
            JobSpec {
                image: "registry.example/migrate:1".into(),
                command: vec!["migrate".into()],
                args: Vec::new(),
                env: Vec::new(),
            },
        ));
        let forward = plan_reencryption(Some("b"), &change, "T", None);
        assert!(names(&forward).contains(&"migration-job"));
        assert!(!names(&forward).contains(&"reencrypt"));
        let undo = plan_undo(&progress(&forward, 6), Some("b"), "U");
        assert_eq!(
            names(&undo),
            ["restore", "migration-job", "scale-up", "watch"]
        );
        assert!(matches!(
            &undo[1],
            Step::MigrationJob { name, to: Version::Old, .. } if name == "app-secrets-migrate-r1-undo"
        ));
    }
}

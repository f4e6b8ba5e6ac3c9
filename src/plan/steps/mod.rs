//! Pure: a change as an ordered list of steps (plan as data). Each step is plain, serializable
//! data that the journal records and the engine (`engine::runner`) runs; the systems at the edge
//! (`systems/`) know how to apply it and check that it took effect. Each system's steps, their
//! words and their undo live in its own file here (`secret`, `workloads`, `postgres`, `redis`,
//! `encryption`); this file holds the one list of systems (`Step`), the order of a rotation and
//! the order of an undo.
//!
//! A rotation is "back up", "patch the Secret", "restart the consumers", "watch the rollouts";
//! a database password adds its own steps around the patch (`plan_rotation`). Undoing a run is
//! planned here too, from what its journal says was applied (`plan_undo`): every step that may
//! have been applied is undone in reverse order; the consumers are restarted once the old
//! values are back, and access that only the run's new pods use is removed after they are gone.
//! Nothing here talks to a cluster or a database.

pub mod encryption;
pub mod postgres;
pub mod redis;
pub mod secret;
pub mod workloads;

use serde::{Deserialize, Serialize};

// The steps' vocabulary, named where each system's file defines it.
pub use encryption::{
    Column, DECRYPTION_ERRORS, EncryptionStep, JobSpec, Reencryption, plan_reencryption,
};
pub use postgres::{AdminLogin, Database, PostgresStep, Tls, TlsMode, check_role_name};
pub use redis::{Redis, RedisStep};
pub use secret::{Held, SecretStep};
pub use workloads::{Scaled, WorkloadRef, WorkloadStep};

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
///
/// Each system owns its steps (their data, words and undo) in its own file; this is the one
/// list of systems. In the journal a step is its system's step as it is (`{"type": "backUp",
/// ...}`): the grouping adds no level, so journals of earlier releases load unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Step {
    Secret(SecretStep),
    Workloads(WorkloadStep),
    Postgres(PostgresStep),
    Redis(RedisStep),
    Encryption(EncryptionStep),
}

/// Reads a step by its `type`, asking each system in turn; a type no system knows is named in
/// the error (a journal written by a newer release, or edited by hand).
impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        let parsers: [fn(serde_json::Value) -> serde_json::Result<Step>; 5] = [
            |v| serde_json::from_value(v).map(Step::Secret),
            |v| serde_json::from_value(v).map(Step::Workloads),
            |v| serde_json::from_value(v).map(Step::Postgres),
            |v| serde_json::from_value(v).map(Step::Redis),
            |v| serde_json::from_value(v).map(Step::Encryption),
        ];
        for parse in parsers {
            match parse(value.clone()) {
                Ok(step) => return Ok(step),
                Err(err) if err.to_string().starts_with("unknown variant") => continue,
                Err(err) => return Err(D::Error::custom(err)),
            }
        }
        let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
        Err(D::Error::custom(format!(
            "unknown step type {kind:?} (written by a newer kubectl-rotate?)"
        )))
    }
}

macro_rules! step_from {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for Step {
            fn from(step: $ty) -> Step {
                Step::$variant(step)
            }
        }
    )*};
}
step_from!(
    Secret(SecretStep),
    Workloads(WorkloadStep),
    Postgres(PostgresStep),
    Redis(RedisStep),
    Encryption(EncryptionStep)
);

impl Step {
    /// A short name, for the journal, test hooks and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Secret(s) => s.name(),
            Step::Workloads(s) => s.name(),
            Step::Postgres(s) => s.name(),
            Step::Redis(s) => s.name(),
            Step::Encryption(s) => s.name(),
        }
    }

    /// What the step does, in words, for the preview and the reports.
    pub fn describe(&self, secret: &str, keys: &[String]) -> String {
        match self {
            Step::Secret(s) => s.describe(secret, &keys.join(", ")),
            Step::Workloads(s) => s.describe(),
            Step::Postgres(s) => s.describe(),
            Step::Redis(s) => s.describe(),
            Step::Encryption(s) => s.describe(),
        }
    }

    /// Whether applying it writes anything (a watch only reads).
    pub fn writes(&self) -> bool {
        match self {
            Step::Secret(s) => s.writes(),
            Step::Workloads(s) => s.writes(),
            Step::Postgres(s) => s.writes(),
            Step::Redis(s) => s.writes(),
            Step::Encryption(s) => s.writes(),
        }
    }

    /// How to undo it, if it may have been applied (see [`Undo`]).
    fn undo(&self, cx: &UndoContext) -> Undo {
        match self {
            Step::Secret(s) => s.undo(cx),
            Step::Workloads(s) => s.undo(cx),
            Step::Postgres(s) => s.undo(cx),
            Step::Redis(s) => s.undo(cx),
            Step::Encryption(s) => s.undo(cx),
        }
    }
}

/// What an undo needs besides the step: the run's backup and the undo's `restartedAt`.
pub struct UndoContext<'a> {
    pub backup: Option<&'a str>,
    pub restarted_at: &'a str,
}

/// The undo of one applied step, in two phases around the restart of the consumers: `first`
/// gives the old pods back what they use (the Secret's old values, a role's old password, a
/// disabled login); `last` takes away what only the run's new pods used, once they are gone.
#[derive(Debug, Default)]
pub struct Undo {
    pub first: Vec<Step>,
    pub last: Vec<Step>,
}

impl Undo {
    /// Nothing to undo (a read, a backup that is kept, a created role that is kept).
    pub fn none() -> Undo {
        Undo::default()
    }

    pub fn first(steps: impl IntoIterator<Item = Step>) -> Undo {
        Undo {
            first: steps.into_iter().collect(),
            last: Vec::new(),
        }
    }

    pub fn last(step: impl Into<Step>) -> Undo {
        Undo {
            first: Vec::new(),
            last: vec![step.into()],
        }
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
        steps.push(Step::Secret(SecretStep::BackUp {
            backup: backup.to_string(),
        }));
    }
    steps.push(Step::Secret(SecretStep::PatchSecret));
    if !workloads.is_empty() {
        steps.push(Step::Workloads(WorkloadStep::Restart {
            workloads: workloads.to_vec(),
            restarted_at: restarted_at.to_string(),
        }));
        steps.push(Step::Workloads(WorkloadStep::Watch {
            workloads: workloads.to_vec(),
            restarted_at: restarted_at.to_string(),
        }));
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
    let (before, mut after) = match database {
        DatabaseChange::SingleUser { .. } | DatabaseChange::AlternatingUsers { .. } => {
            postgres::around_patch(database)
        }
        DatabaseChange::RedisOverlap { .. } | DatabaseChange::RedisRequirepass { .. } => {
            redis::around_patch(database)
        }
    };
    // The new pods' logs first: they say why a login failed.
    if let Some(pattern) = logs.filter(|_| !workloads.is_empty()) {
        after.insert(
            0,
            Step::Workloads(WorkloadStep::CheckLogs {
                workloads: workloads.to_vec(),
                pattern: pattern.to_string(),
                absent: None,
            }),
        );
    }
    let mut steps = plan_change(backup, workloads, restarted_at);
    // After the backup (the old value is safe before anything changes), before the patch.
    let at = usize::from(matches!(
        steps.first(),
        Some(Step::Secret(SecretStep::BackUp { .. }))
    ));
    for (offset, step) in before.into_iter().enumerate() {
        steps.insert(at + offset, step);
    }
    steps.extend(after);
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
        Step::Workloads(WorkloadStep::Restart {
            workloads: workloads.to_vec(),
            restarted_at: restarted_at.to_string(),
        }),
        Step::Workloads(WorkloadStep::Watch {
            workloads: workloads.to_vec(),
            restarted_at: restarted_at.to_string(),
        }),
    ]
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
    if let Some(steps) = encryption::plan_keyring_undo(forward, may_have_applied, restarted_at) {
        return steps;
    }
    let cx = UndoContext {
        backup,
        restarted_at,
    };
    let mut first = Vec::new();
    let mut last = Vec::new();
    for (step, _) in forward.iter().rev().filter(|(_, s)| may_have_applied(s)) {
        let undo = step.undo(&cx);
        first.extend(undo.first);
        last.extend(undo.last);
    }
    let mut steps = first;
    let restarted = forward.iter().find_map(|(step, status)| match step {
        Step::Workloads(WorkloadStep::Restart { workloads, .. }) if may_have_applied(status) => {
            Some(workloads)
        }
        _ => None,
    });
    if let Some(workloads) = restarted {
        steps.extend(restart_and_watch(workloads, restarted_at));
    }
    steps.extend(last);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workload::WorkloadKind;

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
        let json =
            serde_json::to_value(Step::Secret(SecretStep::BackUp { backup: "b".into() })).unwrap();
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
            Step::Workloads(WorkloadStep::Restart {
                workloads: api(),
                restarted_at: "T2".into()
            })
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
            Step::Postgres(PostgresStep::DisableLogin {
                db: db(),
                role: "ai_agents".into()
            })
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
            Step::Postgres(PostgresStep::DisableLogin {
                db: db(),
                role: "ai_agents_clone".into()
            })
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
            Step::Redis(RedisStep::AddPassword {
                value: Version::Old,
                ..
            })
        ));
        assert!(matches!(
            &undo[4],
            Step::Redis(RedisStep::RemovePassword {
                value: Version::New,
                ..
            })
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
            Step::Redis(RedisStep::SetRequirepass {
                value: Version::Old,
                ..
            })
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
            Step::Encryption(EncryptionStep::Reencrypt {
                to: Version::Old,
                online: false,
                ..
            })
        ));
        assert!(
            matches!(&undo[1], Step::Workloads(WorkloadStep::ScaleUp { workloads, .. }) if workloads.iter().all(|w| w.replicas == 3))
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
            Step::Secret(SecretStep::WriteKey { from, to: Held::Ring { first: Version::New, .. }, .. }) if from == &[Held::Old]
        ));
        assert!(matches!(
            &forward[6],
            Step::Encryption(EncryptionStep::Reencrypt { online: true, .. })
        ));
        // Two restarts, each watched by its own restartedAt.
        let restarts: Vec<&str> = forward
            .iter()
            .filter_map(|s| match s {
                Step::Workloads(WorkloadStep::Restart { restarted_at, .. }) => {
                    Some(restarted_at.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(restarts, ["T", "T.3"]);

        // Only the Secret was written: it goes back at once.
        let undo = plan_undo(&progress(&forward, 4), Some("b"), "U");
        assert_eq!(names(&undo), ["write-key"]);
        assert!(matches!(
            &undo[0],
            Step::Secret(SecretStep::WriteKey { to: Held::Old, .. })
        ));
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
            Step::Secret(SecretStep::WriteKey {
                to: Held::Ring {
                    first: Version::Old,
                    ..
                },
                ..
            })
        ));
        assert!(matches!(
            &undo[3],
            Step::Encryption(EncryptionStep::Reencrypt {
                to: Version::Old,
                online: true,
                ..
            })
        ));
        assert!(matches!(
            &undo[4],
            Step::Secret(SecretStep::WriteKey { to: Held::Old, .. })
        ));
        assert!(
            matches!(&undo[5], Step::Workloads(WorkloadStep::Restart { restarted_at, .. }) if restarted_at == "U.2")
        );
    }

    #[test]
    fn the_apps_own_migration_job_replaces_the_built_in_one_and_runs_backwards_to_undo() {
        let mut change = reencryption(false);
        change.job = Some((
            "app-secrets-migrate-r1".into(),
            JobSpec {
                image: "registry.example/migrate:1".into(),
                command: vec!["migrate".into()],
                ..JobSpec::default()
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
            Step::Encryption(EncryptionStep::MigrationJob { name, to: Version::Old, .. }) if name == "app-secrets-migrate-r1-undo"
        ));
    }

    #[test]
    fn a_step_no_system_knows_is_named_and_a_known_one_with_a_missing_field_says_which() {
        let unknown = serde_json::from_str::<Step>(r#"{"type": "frobnicate"}"#).unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains(r#"unknown step type "frobnicate""#),
            "{unknown}"
        );
        let missing = serde_json::from_str::<Step>(r#"{"type": "backUp"}"#).unwrap_err();
        assert!(
            missing.to_string().contains("missing field `backup`"),
            "{missing}"
        );
        let redis = serde_json::from_str::<Step>(
            r#"{"type": "checkAuth", "redis": {"server": "service/redis:6379", "user": "default"}, "key": "k"}"#,
        )
        .unwrap();
        assert_eq!(redis.name(), "check-auth");
        assert!(matches!(redis, Step::Redis(RedisStep::CheckAuth { .. })));
    }
}

//! Hand-built values for the pipeline's unit tests (compiled for tests only): one planned
//! rotation of key `openai-api-key` in Secret `prod/app-secrets` that restarts Deployment `api`
//! and leaves CronJob `report` alone, the journal of its run with every step done, rollout
//! results, and the second systems' changes whose wording differs.
//!
//! Not a mock of the cluster: nothing here talks to one, and what needs one is left to the
//! end-to-end tests.

use std::time::Duration;

use super::report::EndedRun;
use super::{DryRun, Planned, RunOptions};
use crate::model::workload::WorkloadKind;
use crate::plan::change::{Action, Change};
use crate::plan::journal::{self, Journal, JournalKey, RunState, StepRecord};
use crate::plan::patch::{DataPlan, NotRestarted, PlannedKey, Restart, RestartPlan, ValueSummary};
use crate::plan::rollout::{Outcome, WorkloadResult};
use crate::plan::secret_meta::RotationRecord;
use crate::plan::steps::{Database, DatabaseChange, Redis, Reencryption, StepStatus};
use crate::ui::printer::OutputFormat;
use crate::values::SecretValue;

/// Text output, asking before a change, no dry run.
pub fn options() -> RunOptions {
    RunOptions {
        dry_run: DryRun::None,
        yes: false,
        output: OutputFormat::Text,
        show_secrets: false,
        timeout: Duration::from_secs(300),
        force: false,
        keep: 5,
        strict: false,
    }
}

/// `options()` with `-o json`.
pub fn json_options() -> RunOptions {
    RunOptions {
        output: OutputFormat::Json,
        ..options()
    }
}

/// The plan of `change`, its restarts stamped at a fixed time.
pub fn planned(change: &Change) -> Planned {
    Planned::new(change, "2026-11-26T04:00:00.000Z")
}

/// The run of `journal` ended with the `forward` rollouts, no undo, and no consumer left alone.
pub fn ended_run<'a>(journal: &'a Journal, forward: &'a [WorkloadResult]) -> EndedRun<'a> {
    EndedRun {
        journal,
        forward_results: forward,
        undo_results: &[],
        not_restarted: &[],
    }
}

fn summary(value: &SecretValue) -> ValueSummary {
    ValueSummary {
        bytes: value.len(),
        fingerprint: value.fingerprint(),
    }
}

/// The rotation of `openai-api-key` in `prod/app-secrets`, restarting `deploy/api`.
pub fn change() -> Change {
    let before = SecretValue::new(b"sk-old-key".to_vec());
    let after = SecretValue::new(b"sk-new-key-0123".to_vec());
    Change {
        action: Action::Rotate,
        data: DataPlan {
            namespace: "prod".into(),
            secret: "app-secrets".into(),
            resource_version: "7".into(),
            keys: vec![PlannedKey {
                key: "openai-api-key".into(),
                before: Some(summary(&before)),
                after: summary(&after),
                before_value: Some(before.clone()),
                after_value: after,
            }],
            annotations: Vec::new(),
            warnings: Vec::new(),
            patch: json_patch::Patch(Vec::new()),
        },
        restarts: RestartPlan {
            restart: vec![Restart {
                kind: WorkloadKind::Deployment,
                name: "api".into(),
                usages: vec!["envFrom in api".into()],
            }],
            not_restarted: vec![not_restarted("report")],
            warnings: Vec::new(),
        },
        record: RotationRecord {
            at: "2026-11-26T04:00:00Z".into(),
            id: "20261126-040000-ab12".into(),
            by: "alice".into(),
        },
        previous_records: None,
        old_values: vec![("openai-api-key".into(), before)],
        unhealthy: Vec::new(),
        notes: Vec::new(),
        database: None,
        extra_needs: Vec::new(),
        log_check: None,
        reencryption: None,
        unlisted: Vec::new(),
    }
}

/// The journal of `change()`'s run with every step done, not yet marked finished.
pub fn journal() -> Journal {
    let change = change();
    let key = &change.data.keys[0];
    Journal {
        api_version: crate::model::names::API_VERSION.to_string(),
        kind: journal::KIND.to_string(),
        id: change.record.id.clone(),
        action: "rotate".into(),
        namespace: "prod".into(),
        secret: "app-secrets".into(),
        by: "alice".into(),
        started_at: change.record.at.clone(),
        updated_at: change.record.at.clone(),
        keys: vec![JournalKey {
            name: key.key.clone(),
            before: key.before.clone(),
            after: key.after.clone(),
        }],
        backup: change.backup_name(),
        previous_records: None,
        auto_undo: true,
        steps: change
            .steps("2026-11-26T04:00:00.000Z")
            .into_iter()
            .map(|step| StepRecord {
                status: StepStatus::Done,
                ..StepRecord::pending(step)
            })
            .collect(),
        record: change.record,
        undo: Vec::new(),
        undoing: false,
        state: RunState::Running,
        message: None,
    }
}

/// A Deployment that rolled out.
pub fn rolled_out(name: &str) -> WorkloadResult {
    WorkloadResult {
        kind: WorkloadKind::Deployment,
        name: name.into(),
        outcome: Outcome::RolledOut {
            message: "rolled out".into(),
        },
        elapsed: Duration::from_secs(3),
    }
}

/// A Deployment whose rollout failed.
pub fn failed(name: &str) -> WorkloadResult {
    WorkloadResult {
        kind: WorkloadKind::Deployment,
        name: name.into(),
        outcome: Outcome::Failed {
            message: "CrashLoopBackOff".into(),
            pod: None,
        },
        elapsed: Duration::from_secs(9),
    }
}

/// A CronJob the run leaves alone.
pub fn not_restarted(name: &str) -> NotRestarted {
    NotRestarted {
        kind: WorkloadKind::CronJob,
        name: name.into(),
        usages: vec!["envFrom in job".into()],
        why: "a CronJob's next Job reads the new value".into(),
    }
}

fn database() -> Database {
    Database {
        server: "service/db:5432".into(),
        database: "app".into(),
        admin: None,
        tls: Default::default(),
    }
}

/// A PostgreSQL role's password changed in place.
pub fn postgres_change() -> DatabaseChange {
    DatabaseChange::SingleUser {
        db: database(),
        role: "app".into(),
        password_key: "openai-api-key".into(),
    }
}

/// A Redis user's old and new passwords at once.
pub fn redis_change() -> DatabaseChange {
    DatabaseChange::RedisOverlap {
        redis: Redis {
            server: "service/redis:6379".into(),
            user: "default".into(),
            replicas: Vec::new(),
        },
        password_key: "openai-api-key".into(),
    }
}

/// A data encryption key's migration, with a key ring (`separator`) or with downtime.
pub fn reencryption(separator: Option<&str>) -> Reencryption {
    Reencryption {
        db: database(),
        columns: Vec::new(),
        key: "openai-api-key".into(),
        key_file: None,
        dump_file: None,
        scaled: Vec::new(),
        keyring: separator.map(str::to_string),
        restart: Vec::new(),
        job: None,
    }
}

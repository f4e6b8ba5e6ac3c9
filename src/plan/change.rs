//! A planned change of a Secret, ready to run: the JSON Patch and restarts (`patch`), the
//! rotation record, the old values to back up, the second system's change and the notes for the
//! preview. Its steps (`steps`) are what the run journals and executes. Pure.

use crate::cluster::access;
use crate::model::workload::WorkloadKind;
use crate::plan::backup;
use crate::plan::patch::{DataPlan, NotRestarted, RestartPlan};
use crate::plan::secret_meta::RotationRecord;
use crate::plan::steps::{self, Step, WorkloadRef};
use crate::values::SecretValue;

/// What kind of change this is, for words in the preview, the Event and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Rotate,
    RollBack,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Rotate => "rotate",
            Action::RollBack => "roll back",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Action::Rotate => "rotation",
            Action::RollBack => "rollback",
        }
    }

    pub fn past(self) -> &'static str {
        match self {
            Action::Rotate => "Rotated",
            Action::RollBack => "Rolled back",
        }
    }
}

/// A planned change, ready to run.
pub struct Change {
    pub action: Action,
    pub data: DataPlan,
    pub restarts: RestartPlan,
    pub record: RotationRecord,
    /// `kubectl-rotate.io/rotations` as it is now, put back if the run is undone.
    pub previous_records: Option<String>,
    /// The current values of the keys that change (the ones that exist), to back up first.
    pub old_values: Vec<(String, SecretValue)>,
    /// Consumers to restart that are not healthy now, with why (refused unless `--force`).
    pub unhealthy: Vec<(String, String)>,
    /// Extra lines for the preview (a preset's downtime and impact).
    pub notes: Vec<String>,
    /// What the run changes in a database besides the Secret (a PostgreSQL preset).
    pub database: Option<steps::DatabaseChange>,
    /// Permissions the database steps need besides the Secret's (reaching the server).
    pub extra_needs: Vec<access::Need>,
    /// With a database change: the pattern every new pod's log must match (the preset's
    /// `verify.logs`).
    pub log_check: Option<String>,
    /// A data encryption key's migration (the encryption-key preset): its own plan.
    pub reencryption: Option<steps::Reencryption>,
    /// Kinds of consumers the API server refused to list (only reported ones): a warning in
    /// the preview, refused with `--strict`.
    pub unlisted: Vec<crate::plan::consumers::Unlisted>,
}

impl Change {
    pub fn backup_name(&self) -> Option<String> {
        (!self.old_values.is_empty())
            .then(|| backup::backup_name(&self.data.secret, &self.record.id))
    }

    /// The run's steps (plan as data).
    pub fn steps(&self, restarted_at: &str) -> Vec<Step> {
        let workloads: Vec<WorkloadRef> = self
            .restarts
            .restart
            .iter()
            .map(|r| WorkloadRef {
                kind: r.kind,
                name: r.name.clone(),
            })
            .collect();
        if let Some(reencryption) = &self.reencryption {
            return steps::plan_reencryption(
                self.backup_name().as_deref(),
                reencryption,
                restarted_at,
                self.log_check.as_deref(),
            );
        }
        steps::plan_rotation(
            self.backup_name().as_deref(),
            self.database.as_ref(),
            &workloads,
            restarted_at,
            self.log_check.as_deref(),
        )
    }
}

/// Replaces the preview line starting with `prefix` (or adds it).
pub fn set_note(notes: &mut Vec<String>, prefix: &str, text: String) {
    let line = format!("{prefix}{text}");
    match notes.iter_mut().find(|n| n.starts_with(prefix)) {
        Some(note) => *note = line,
        None => notes.push(line),
    }
}

/// The database server's own workload reads the password only to initialise an empty data
/// directory (the official image, Bitnami's); restarting it would not apply the new value and
/// would cut every connection. It is left running, and the preview says why.
pub fn leave_server_running(change: &mut Change, servers: &[(WorkloadKind, String)], why: &str) {
    let restarts = &mut change.restarts;
    let (server, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut restarts.restart)
        .into_iter()
        .partition(|r| servers.iter().any(|(k, n)| *k == r.kind && *n == r.name));
    restarts.restart = rest;
    for r in server {
        change.unhealthy.retain(|(w, _)| *w != r.reference());
        restarts.not_restarted.push(NotRestarted {
            why: why.to_string(),
            kind: r.kind,
            name: r.name,
            usages: r.usages,
        });
    }
}

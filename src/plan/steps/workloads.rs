//! The consumers' steps: restart them (kubectl rollout restart), watch their rollouts, check
//! their new pods' logs, and scale them down and back up around a migration. Applied by
//! `systems::workloads`.

use serde::{Deserialize, Serialize};

use super::{Undo, UndoContext};
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

/// `kind/name (N replicas), ...`, for the preview.
pub fn scaled_list(workloads: &[Scaled]) -> String {
    workloads
        .iter()
        .map(|w| format!("{} ({} replicas)", w.workload().reference(), w.replicas))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum WorkloadStep {
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
}

impl WorkloadStep {
    /// A short name, for the journal, test hooks and messages.
    pub fn name(&self) -> &'static str {
        match self {
            WorkloadStep::Restart { .. } => "restart",
            WorkloadStep::Watch { .. } => "watch",
            WorkloadStep::CheckLogs { .. } => "check-logs",
            WorkloadStep::ScaleDown { .. } => "scale-down",
            WorkloadStep::ScaleUp { .. } => "scale-up",
        }
    }

    /// What the step does, in words, for the preview and the reports.
    pub fn describe(&self) -> String {
        match self {
            WorkloadStep::Restart { workloads, .. } => format!(
                "restart {}",
                workloads
                    .iter()
                    .map(WorkloadRef::reference)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            WorkloadStep::Watch { workloads, .. } => format!(
                "watch the rollout of {}",
                workloads
                    .iter()
                    .map(WorkloadRef::reference)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            WorkloadStep::CheckLogs {
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
            WorkloadStep::ScaleDown { workloads } => format!(
                "scale {} to 0 and wait until their pods are gone",
                scaled_list(workloads)
            ),
            WorkloadStep::ScaleUp { workloads, .. } => {
                format!("scale {} back up", scaled_list(workloads))
            }
        }
    }

    /// Whether applying it writes anything (a check only reads).
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            WorkloadStep::Watch { .. } | WorkloadStep::CheckLogs { .. }
        )
    }
}

impl WorkloadStep {
    /// A restart is undone by restarting again once the old values are back (`plan_undo`);
    /// a scale-down around a migration by scaling back up, and the other way round.
    pub fn undo(&self, cx: &UndoContext) -> Undo {
        match self {
            // The consumers stopped for the migration: they are started again last, once
            // the key and the rows are back (their recorded replica counts).
            WorkloadStep::ScaleDown { workloads } => Undo::first([
                WorkloadStep::ScaleUp {
                    workloads: workloads.clone(),
                    restarted_at: cx.restarted_at.to_string(),
                }
                .into(),
                WorkloadStep::Watch {
                    workloads: workloads.iter().map(Scaled::workload).collect(),
                    restarted_at: cx.restarted_at.to_string(),
                }
                .into(),
            ]),
            // Pods started with the new key are stopped before the rows move back.
            WorkloadStep::ScaleUp { workloads, .. } => Undo::first([WorkloadStep::ScaleDown {
                workloads: workloads.clone(),
            }
            .into()]),
            WorkloadStep::Restart { .. }
            | WorkloadStep::Watch { .. }
            | WorkloadStep::CheckLogs { .. } => Undo::none(),
        }
    }
}

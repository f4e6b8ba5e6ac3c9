//! Pure: a change as an ordered list of steps (plan as data). Each step is plain, serializable
//! data that the journal records and the engine (`engine.rs`) runs; the systems at the edge
//! (`systems/`) know how to apply it, check that it took effect, and undo it.
//!
//! A rotation is "back up", "patch the Secret", "restart the consumers", "watch the rollouts".
//! Undoing a run is planned here too, from what its journal says was applied: put the old
//! values back (only where the Secret still holds this run's), then restart and watch the
//! same workloads again. Nothing here talks to a cluster.

use serde::{Deserialize, Serialize};

use crate::consumers::WorkloadKind;

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
        }
    }

    /// Whether applying it writes anything (a watch only reads).
    pub fn writes(&self) -> bool {
        !matches!(self, Step::Watch { .. })
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

/// Where a step of a run stands, as the journal records it.
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

/// Plans the undo of a run from its forward steps and their status: every step that started
/// is undone, in reverse. Undoing a patch is a guarded restore; undoing a restart is another
/// restart of the same workloads once the old values are back (so their pods read them), then
/// a watch. Backups are kept (they are how the old values stay recoverable); a watch only read.
pub fn plan_undo(
    forward: &[(Step, StepStatus)],
    backup: Option<&str>,
    restarted_at: &str,
) -> Vec<Step> {
    // A failed step is recorded as failed only when its write certainly did not happen;
    // one that may have is left `Started`.
    let may_have_applied =
        |status: &StepStatus| matches!(status, StepStatus::Started | StepStatus::Done);
    let touched = |wanted: fn(&Step) -> bool| {
        forward
            .iter()
            .any(|(step, status)| wanted(step) && may_have_applied(status))
    };
    let mut steps = Vec::new();
    if touched(|s| matches!(s, Step::PatchSecret)) {
        steps.push(Step::RestoreSecret {
            backup: backup.map(str::to_string),
        });
    }
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
    steps
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
}

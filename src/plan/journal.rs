//! Pure: the journal of a run, the record that makes a change resumable and undoable after a
//! crash, Ctrl-C or an API fault. The engine writes it in the cluster before each step starts
//! and after it ends; `status` shows unfinished runs; `resume` and `rollback --run` read it.
//!
//! Format (an interface, documented in the README): a Secret named `<secret>-run-<run id>` in
//! the Secret's namespace, `type: kubectl-rotate.io/run`, labels `kubectl-rotate.io/run-of:
//! <secret>`, `kubectl-rotate.io/run-finished: "true"|"false"` and
//! `app.kubernetes.io/managed-by: kubectl-rotate`. Its `data` holds `journal.json` (the run:
//! who, when, the keys with their fingerprints, the backup, the steps and which are done; never
//! a value) and, while the run is unfinished, `new.<key>` for each new value: a value that
//! exists nowhere else yet is saved in a Secret before any step makes it needed. Finishing a
//! run removes the values and keeps the record.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::plan::patch::ValueSummary;
use crate::plan::secret_meta::JOURNAL_TYPE;
use crate::plan::secret_meta::RotationRecord;
use crate::plan::steps::{Step, StepStatus};
use crate::values::SecretValue;

pub const RUN_OF_LABEL: &str = "kubectl-rotate.io/run-of";
pub const FINISHED_LABEL: &str = "kubectl-rotate.io/run-finished";
pub const JOURNAL_KEY: &str = "journal.json";
pub const NEW_VALUE_PREFIX: &str = "new.";
pub const KIND: &str = "RotationRun";

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunState {
    /// A process is working on it, or died while it was.
    Running,
    /// Stopped at a step boundary on Ctrl-C or SIGTERM.
    Interrupted,
    /// Stopped on a failure that left something to finish or undo.
    Failed,
    /// Every step done.
    Succeeded,
    /// Every applied step undone.
    RolledBack,
    /// Failed before it changed anything; nothing to undo.
    Abandoned,
}

impl RunState {
    pub fn finished(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::RolledBack | RunState::Abandoned
        )
    }

    pub fn word(self) -> &'static str {
        match self {
            RunState::Running => "running (or its process died)",
            RunState::Interrupted => "interrupted",
            RunState::Failed => "failed",
            RunState::Succeeded => "succeeded",
            RunState::RolledBack => "rolled back",
            RunState::Abandoned => "abandoned (nothing was changed)",
        }
    }
}

/// A key the run changes: fingerprints only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalKey {
    pub name: String,
    /// `None` when the run adds the key.
    pub before: Option<ValueSummary>,
    pub after: ValueSummary,
}

/// One step and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub step: Step,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// What it did, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl StepRecord {
    pub fn pending(step: Step) -> Self {
        StepRecord {
            step,
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            note: None,
        }
    }
}

/// The run as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub api_version: String,
    pub kind: String,
    pub id: String,
    /// `rotate` or `roll back`.
    pub action: String,
    pub namespace: String,
    pub secret: String,
    pub by: String,
    pub started_at: String,
    pub updated_at: String,
    pub keys: Vec<JournalKey>,
    pub backup: Option<String>,
    /// The rotation record the patch writes for each key.
    pub record: RotationRecord,
    /// `kubectl-rotate.io/rotations` as it was before the run, put back by an undo.
    pub previous_records: Option<String>,
    /// Whether a failed forward step undoes the run at once (a rotation without
    /// `--no-rollback`).
    pub auto_undo: bool,
    pub steps: Vec<StepRecord>,
    /// The undo's steps, once an undo began.
    #[serde(default)]
    pub undo: Vec<StepRecord>,
    #[serde(default)]
    pub undoing: bool,
    pub state: RunState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Which list of steps a position is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Forward,
    Undo,
}

impl Journal {
    pub fn key_names(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.name.clone()).collect()
    }

    pub fn object(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.secret)
    }

    /// The steps of the phase the run is in.
    pub fn phase(&self) -> Phase {
        if self.undoing {
            Phase::Undo
        } else {
            Phase::Forward
        }
    }

    pub fn steps_of(&self, phase: Phase) -> &[StepRecord] {
        match phase {
            Phase::Forward => &self.steps,
            Phase::Undo => &self.undo,
        }
    }

    pub fn steps_of_mut(&mut self, phase: Phase) -> &mut Vec<StepRecord> {
        match phase {
            Phase::Forward => &mut self.steps,
            Phase::Undo => &mut self.undo,
        }
    }

    /// The first step of the current phase that is not done.
    pub fn next_step(&self) -> Option<usize> {
        self.steps_of(self.phase())
            .iter()
            .position(|s| s.status != StepStatus::Done)
    }

    /// Whether anything outside the journal and the backup may have been changed.
    pub fn changed_anything(&self) -> bool {
        self.steps.iter().any(|s| {
            s.step.writes()
                && !matches!(
                    s.step,
                    Step::Secret(crate::plan::steps::SecretStep::BackUp { .. })
                )
                && matches!(s.status, StepStatus::Started | StepStatus::Done)
        })
    }

    /// One line for `status` and messages: where the run stopped.
    pub fn where_stopped(&self) -> String {
        let phase = self.phase();
        let steps = self.steps_of(phase);
        let keys = self.key_names();
        let undo = if phase == Phase::Undo { "undo " } else { "" };
        match self.next_step() {
            Some(i) => format!(
                "{undo}step {} of {} ({}: {}) {}",
                i + 1,
                steps.len(),
                steps[i].step.name(),
                steps[i].step.describe(&self.secret, &keys),
                match steps[i].status {
                    StepStatus::Started
                        if steps[i]
                            .note
                            .as_deref()
                            .is_some_and(|n| n.starts_with("failed")) =>
                    {
                        "failed (it may have been applied)"
                    }
                    StepStatus::Pending => "not started",
                    StepStatus::Started => "started, not known to be done",
                    StepStatus::Done => "done",
                    StepStatus::Failed => "failed",
                }
            ),
            None => format!("every {undo}step done"),
        }
    }

    /// The applied and not applied steps, one line each, for the stop message.
    pub fn step_lines(&self) -> Vec<String> {
        let keys = self.key_names();
        let mut lines = Vec::new();
        for (phase, title) in [(Phase::Forward, ""), (Phase::Undo, "undo: ")] {
            for (i, record) in self.steps_of(phase).iter().enumerate() {
                let mark = match record.status {
                    StepStatus::Done => "done   ",
                    StepStatus::Started => "started",
                    StepStatus::Failed => "failed ",
                    StepStatus::Pending => "pending",
                };
                lines.push(format!(
                    "  {mark} {title}{}. {}{}",
                    i + 1,
                    record.step.describe(&self.secret, &keys),
                    record
                        .note
                        .as_deref()
                        .map(|n| format!(" — {n}"))
                        .unwrap_or_default()
                ));
            }
        }
        lines
    }
}

/// The command that finishes an unfinished run.
pub fn resume_command(namespace: &str, secret: &str) -> String {
    format!("kubectl rotate resume {secret} -n {namespace}")
}

/// The command that undoes every applied step of a run, in reverse.
pub fn rollback_command(namespace: &str, secret: &str, id: &str) -> String {
    format!("kubectl rotate rollback {secret} --run {id} -n {namespace}")
}

/// The journal Secret's name: `<secret>-run-<run id>`, shortened to fit 253 characters.
pub fn journal_name(secret: &str, run_id: &str) -> String {
    let suffix = format!("-run-{run_id}");
    let room = 253usize.saturating_sub(suffix.len());
    let base: String = secret.chars().take(room).collect();
    format!("{}{suffix}", base.trim_end_matches(['-', '.']))
}

/// The data key holding the new value of `key`.
pub fn value_key(key: &str) -> String {
    format!("{NEW_VALUE_PREFIX}{key}")
}

/// The journal Secret for `journal`, holding `values` (the new values) unless it is finished.
pub fn to_secret(journal: &Journal, values: &[(String, SecretValue)]) -> Result<Secret> {
    let finished = journal.state.finished();
    let mut data = BTreeMap::new();
    data.insert(
        JOURNAL_KEY.to_string(),
        ByteString(serde_json::to_vec_pretty(journal)?),
    );
    if !finished {
        for (key, value) in values {
            data.insert(value_key(key), ByteString(value.expose().to_vec()));
        }
    }
    let labels = BTreeMap::from([
        (
            RUN_OF_LABEL.to_string(),
            crate::plan::backup::backup_label_value(&journal.secret),
        ),
        (FINISHED_LABEL.to_string(), finished.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "kubectl-rotate".to_string(),
        ),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(journal_name(&journal.secret, &journal.id)),
            namespace: Some(journal.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        type_: Some(JOURNAL_TYPE.to_string()),
        data: Some(data),
        ..Secret::default()
    })
}

/// Reads a journal Secret: the run and the new values it still holds.
pub fn from_secret(secret: &Secret) -> Result<(Journal, Vec<(String, SecretValue)>)> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    if secret.type_.as_deref() != Some(JOURNAL_TYPE) {
        bail!("Secret {name} is not a kubectl-rotate run journal");
    }
    let data = secret.data.clone().unwrap_or_default();
    let raw = data
        .get(JOURNAL_KEY)
        .ok_or_else(|| anyhow!("the run journal {name} has no {JOURNAL_KEY}"))?;
    let journal: Journal = serde_json::from_slice(&raw.0)
        .map_err(|e| anyhow!("the run journal {name} cannot be read: {e}"))?;
    let values = data
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(NEW_VALUE_PREFIX)
                .map(|key| (key.to_string(), SecretValue::new(v.0.clone())))
        })
        .collect();
    Ok((journal, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::steps::{WorkloadRef, plan_change};

    pub fn journal() -> Journal {
        let steps = plan_change(
            Some("app-secrets-backup-r1"),
            &[WorkloadRef {
                kind: crate::model::workload::WorkloadKind::Deployment,
                name: "api".into(),
            }],
            "T1",
        );
        Journal {
            api_version: crate::model::names::API_VERSION.into(),
            kind: KIND.into(),
            id: "r1".into(),
            action: "rotate".into(),
            namespace: "prod".into(),
            secret: "app-secrets".into(),
            by: "alice".into(),
            started_at: "2026-12-02T06:00:00Z".into(),
            updated_at: "2026-12-02T06:00:00Z".into(),
            keys: vec![JournalKey {
                name: "openai-api-key".into(),
                before: Some(ValueSummary {
                    bytes: 6,
                    fingerprint: "aaaaaaaa".into(),
                }),
                after: ValueSummary {
                    bytes: 6,
                    fingerprint: "bbbbbbbb".into(),
                },
            }],
            backup: Some("app-secrets-backup-r1".into()),
            record: RotationRecord {
                at: "2026-12-02T06:00:00Z".into(),
                id: "r1".into(),
                by: "alice".into(),
            },
            previous_records: None,
            auto_undo: true,
            steps: steps.into_iter().map(StepRecord::pending).collect(),
            undo: Vec::new(),
            undoing: false,
            state: RunState::Running,
            message: None,
        }
    }

    #[test]
    fn the_journal_secret_holds_new_values_only_while_the_run_is_unfinished() {
        let mut j = journal();
        let values = vec![(
            "openai-api-key".to_string(),
            SecretValue::new(b"sk-new-value".to_vec()),
        )];
        let secret = to_secret(&j, &values).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("app-secrets-run-r1"));
        assert_eq!(
            secret.metadata.labels.as_ref().unwrap()[FINISHED_LABEL],
            "false"
        );
        let (read, read_values) = from_secret(&secret).unwrap();
        assert_eq!(read, j);
        assert_eq!(read_values[0].1.expose(), b"sk-new-value");
        let record =
            String::from_utf8(secret.data.as_ref().unwrap()[JOURNAL_KEY].0.clone()).unwrap();
        assert!(!record.contains("sk-new-value"), "no value in the record");

        j.state = RunState::Succeeded;
        let secret = to_secret(&j, &values).unwrap();
        assert_eq!(
            secret.metadata.labels.as_ref().unwrap()[FINISHED_LABEL],
            "true"
        );
        assert!(from_secret(&secret).unwrap().1.is_empty());
    }

    #[test]
    fn where_a_run_stopped_reads_as_a_sentence() {
        let mut j = journal();
        j.steps[0].status = StepStatus::Done;
        j.steps[1].status = StepStatus::Started;
        assert_eq!(
            j.where_stopped(),
            "step 2 of 4 (patch: patch Secret app-secrets: openai-api-key (guarded by the old values)) started, not known to be done"
        );
        assert!(j.changed_anything());
        j.steps[1].status = StepStatus::Pending;
        assert!(!j.changed_anything(), "a backup alone changes nothing");
    }

    #[test]
    fn commands_name_the_secret_and_run() {
        assert_eq!(
            resume_command("prod", "app-secrets"),
            "kubectl rotate resume app-secrets -n prod"
        );
        assert_eq!(
            rollback_command("prod", "app-secrets", "r1"),
            "kubectl rotate rollback app-secrets --run r1 -n prod"
        );
    }

    /// Journals of unfinished runs live in clusters across upgrades: one written by the
    /// v1alpha1 format (every kind of step, an undo begun, a value still held) must still load,
    /// and writing it again must give the same bytes (the format is pinned, not only readable).
    #[test]
    fn a_journal_written_by_the_v1alpha1_format_still_loads_and_writes_back_the_same() {
        let text = include_str!("../../tests/fixtures/journal-v1alpha1.json");
        let secret: Secret = serde_json::from_str(text).unwrap();
        let (journal, values) = from_secret(&secret).unwrap();
        assert_eq!(journal.id, "20261208-010000-ab12");
        assert_eq!(journal.namespace, "prod");
        assert_eq!(journal.state, RunState::Interrupted);
        assert!(journal.undoing);
        let names: std::collections::BTreeSet<&str> =
            journal.steps.iter().map(|r| r.step.name()).collect();
        assert_eq!(names.len(), 24, "one record per kind of step: {names:?}");
        assert_eq!(journal.steps[21].status, StepStatus::Started);
        assert_eq!(journal.steps[22].status, StepStatus::Failed);
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].0, "postgres-password");
        let again = to_secret(&journal, &values).unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&again).unwrap() + "\n",
            text,
            "the journal format changed: old runs would be rewritten differently"
        );
    }
}

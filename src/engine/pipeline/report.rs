//! The `-o json` result of a change (`ChangeReport`, a documented interface: README) and how it
//! is built: from the plan for a dry run, from the journal and the rollouts once a run ended,
//! with the automatic rollback's own report inside. Also its printing, the last thing a
//! successful command does.
//!
//! Not here: the text a person reads when a run ends (`conclude`), the preview (`preview`).

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::{DryRun, Planned, RunOptions};
use crate::engine::runner::Ending;
use crate::plan::change::{Action, Change};
use crate::plan::journal::{Journal, StepRecord};
use crate::plan::patch::{NotRestarted, ValueSummary};
use crate::plan::rollout::{Outcome, WorkloadResult};
use crate::plan::steps::{Step, StepStatus};
use crate::ui::Printer;
use crate::ui::printer::OutputFormat;

/// The `-o json` result of a change: a stable, documented object (README).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub action: &'static str,
    pub namespace: String,
    pub secret: String,
    pub keys: Vec<KeyReport>,
    pub rotation_id: String,
    pub dry_run: &'static str,
    /// The backup Secret: made by the run; for a dry run, the one a run would make; `null`
    /// when there is none (only new keys, or the run failed before it).
    pub backup: Option<String>,
    pub workloads: Vec<WorkloadReport>,
    /// The run's steps and how far each got.
    pub steps: Vec<StepReport>,
    /// `succeeded`, `rolledBack`, `interrupted`, `failed` (unfinished), `abandoned` (failed,
    /// nothing changed), or `dryRun`.
    pub state: &'static str,
    pub succeeded: bool,
    pub duration_seconds: f64,
    /// The automatic rollback that followed a failed rollout, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Box<ChangeReport>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    pub name: String,
    pub before: Option<ValueSummary>,
    pub after: ValueSummary,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    pub kind: crate::model::workload::WorkloadKind,
    pub name: String,
    /// `rolledOut`, `failed`, or `notRestarted`.
    pub outcome: &'static str,
    pub message: String,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub name: &'static str,
    pub description: String,
    /// `pending`, `started`, `done` or `failed`.
    pub status: &'static str,
    pub note: Option<String>,
}

/// A run that has ended, as its report and its ending's messages see it: the journal, the
/// rollouts of the forward steps and of the undo, and the consumers the run left alone.
pub(super) struct EndedRun<'a> {
    pub journal: &'a Journal,
    pub forward_results: &'a [WorkloadResult],
    pub undo_results: &'a [WorkloadResult],
    pub not_restarted: &'a [NotRestarted],
}

impl EndedRun<'_> {
    /// What the run did, from the journal's `action` (`rotate` or `roll back`).
    pub fn action(&self) -> Action {
        if self.journal.action == "rotate" {
            Action::Rotate
        } else {
            Action::RollBack
        }
    }
}

impl ChangeReport {
    /// A report of `action` on `namespace/secret` with nothing in it yet.
    fn empty(action: Action, namespace: &str, secret: &str, rotation_id: &str) -> Self {
        ChangeReport {
            api_version: crate::model::names::API_VERSION,
            kind: "ChangeReport",
            action: action.verb(),
            namespace: namespace.to_string(),
            secret: secret.to_string(),
            keys: Vec::new(),
            rotation_id: rotation_id.to_string(),
            dry_run: DryRun::None.word(),
            backup: None,
            workloads: Vec::new(),
            steps: Vec::new(),
            state: "",
            succeeded: false,
            duration_seconds: 0.0,
            rollback: None,
        }
    }
}

/// The report of a dry run: the plan, as the text preview shows it: the backup a run would
/// make, the workloads it would restart (and those it leaves, with why), and its steps, all
/// pending. `succeeded` is for the caller to set once the dry run passed.
pub(super) fn planned(change: &Change, planned: &Planned, mode: DryRun) -> ChangeReport {
    let mut report = ChangeReport::empty(
        change.action,
        &planned.namespace,
        &planned.secret,
        &change.record.id,
    );
    report.keys = change
        .data
        .keys
        .iter()
        .map(|k| KeyReport {
            name: k.key.clone(),
            before: k.before.clone(),
            after: k.after.clone(),
        })
        .collect();
    report.dry_run = mode.word();
    report.state = "dryRun";
    report.backup = planned.backup.clone();
    report.workloads = change
        .restarts
        .restart
        .iter()
        .map(|r| WorkloadReport {
            kind: r.kind,
            name: r.name.clone(),
            outcome: "toRestart",
            message: r.usages.join(", "),
            seconds: 0.0,
        })
        .chain(not_restarted_reports(&change.restarts.not_restarted))
        .collect();
    report.steps = planned
        .steps
        .iter()
        .zip(&planned.step_lines)
        .map(|(step, line)| StepReport {
            name: step.name(),
            description: line.clone(),
            status: "pending",
            note: None,
        })
        .collect();
    report
}

/// The report of a run that ended with `ending`, from its journal: the backup if the run made
/// it, each step and rollout, and the automatic rollback's report once an undo began.
pub(super) fn ended(run: &EndedRun<'_>, ending: &Ending) -> ChangeReport {
    let journal = run.journal;
    let mut report = ChangeReport::empty(
        run.action(),
        &journal.namespace,
        &journal.secret,
        &journal.id,
    );
    report.keys = journal
        .keys
        .iter()
        .map(|k| KeyReport {
            name: k.name.clone(),
            before: k.before.clone(),
            after: k.after.clone(),
        })
        .collect();
    report.backup = journal
        .steps
        .iter()
        .any(|s| {
            matches!(
                s.step,
                Step::Secret(crate::plan::steps::SecretStep::BackUp { .. })
            ) && s.status == StepStatus::Done
        })
        .then(|| journal.backup.clone())
        .flatten();
    report.steps = step_reports(journal, &journal.steps);
    report.workloads = workload_reports(run.forward_results);
    report
        .workloads
        .extend(not_restarted_reports(run.not_restarted));
    report.state = state(ending);
    report.succeeded = *ending == Ending::Succeeded;
    if journal.undoing {
        report.rollback = Some(Box::new(undo(run, ending)));
    }
    report
}

/// The report of the undo of a run: its own steps and rollouts.
fn undo(run: &EndedRun<'_>, ending: &Ending) -> ChangeReport {
    let journal = run.journal;
    let undo_ok = matches!(ending, Ending::RolledBack { .. });
    let mut report = ChangeReport::empty(
        Action::RollBack,
        &journal.namespace,
        &journal.secret,
        &journal.id,
    );
    report.backup = journal.backup.clone();
    report.workloads = workload_reports(run.undo_results);
    report.steps = step_reports(journal, &journal.undo);
    report.state = if undo_ok { "succeeded" } else { "failed" };
    report.succeeded = undo_ok && run.undo_results.iter().all(WorkloadResult::succeeded);
    report
}

/// The report's `state` for an ending.
fn state(ending: &Ending) -> &'static str {
    match ending {
        Ending::Succeeded => "succeeded",
        Ending::RolledBack { .. } => "rolledBack",
        Ending::Interrupted { .. } => "interrupted",
        Ending::Failed { .. } => "failed",
        Ending::Abandoned { .. } => "abandoned",
    }
}

fn step_reports(journal: &Journal, records: &[StepRecord]) -> Vec<StepReport> {
    let keys = journal.key_names();
    records
        .iter()
        .map(|r| StepReport {
            name: r.step.name(),
            description: r.step.describe(&journal.secret, &keys),
            status: match r.status {
                StepStatus::Pending => "pending",
                StepStatus::Started => "started",
                StepStatus::Done => "done",
                StepStatus::Failed => "failed",
            },
            note: r.note.clone(),
        })
        .collect()
}

fn workload_reports(results: &[WorkloadResult]) -> Vec<WorkloadReport> {
    results
        .iter()
        .map(|r| WorkloadReport {
            kind: r.kind,
            name: r.name.clone(),
            outcome: if r.succeeded() { "rolledOut" } else { "failed" },
            message: match &r.outcome {
                Outcome::RolledOut { message } | Outcome::Failed { message, .. } => message.clone(),
            },
            seconds: r.elapsed.as_secs_f64(),
        })
        .collect()
}

/// The consumers a run leaves alone, with why.
fn not_restarted_reports(not_restarted: &[NotRestarted]) -> impl Iterator<Item = WorkloadReport> {
    not_restarted.iter().map(|n| WorkloadReport {
        kind: n.kind,
        name: n.name.clone(),
        outcome: "notRestarted",
        message: n.why.clone(),
        seconds: 0.0,
    })
}

/// Stamps the report with the time since `started` (in ms) and prints it with `-o json`; the
/// exit code of a command whose change did what it was asked.
pub(super) fn finish(
    printer: &mut Printer,
    options: &RunOptions,
    mut report: ChangeReport,
    started: Instant,
) -> Result<u8> {
    report.duration_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    emit(printer, options, &report)?;
    Ok(crate::exit::SUCCESS)
}

/// Prints the report as the stable JSON object when `-o json` was asked for.
pub fn emit(printer: &mut Printer, options: &RunOptions, report: &ChangeReport) -> Result<()> {
    if options.output == OutputFormat::Json {
        printer.json(report)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::fixtures;
    use crate::ui::printer::ColorChoice;

    #[test]
    fn each_ending_has_its_documented_state() {
        let endings = [
            (Ending::Succeeded, "succeeded"),
            (
                Ending::RolledBack {
                    failure: "x".into(),
                },
                "rolledBack",
            ),
            (
                Ending::Interrupted {
                    signal: "SIGINT".into(),
                },
                "interrupted",
            ),
            (
                Ending::Failed {
                    failure: "x".into(),
                    undo_failure: None,
                },
                "failed",
            ),
            (
                Ending::Abandoned {
                    failure: "x".into(),
                },
                "abandoned",
            ),
        ];
        let journal = fixtures::journal();
        for (ending, word) in endings {
            let report = ended(&fixtures::ended_run(&journal, &[]), &ending);
            assert_eq!(report.state, word);
            assert_eq!(report.succeeded, ending == Ending::Succeeded, "{word}");
        }
    }

    #[test]
    fn the_backup_is_reported_only_once_the_run_made_it() {
        let mut journal = fixtures::journal();
        let report = ended(&fixtures::ended_run(&journal, &[]), &Ending::Succeeded);
        assert_eq!(report.backup, journal.backup);
        journal.steps[0].status = StepStatus::Failed;
        let report = ended(&fixtures::ended_run(&journal, &[]), &Ending::Succeeded);
        assert_eq!(report.backup, None);
    }

    #[test]
    fn rollouts_and_the_consumers_left_alone_are_both_reported() {
        let journal = fixtures::journal();
        let forward = [fixtures::rolled_out("api"), fixtures::failed("worker")];
        let left = [fixtures::not_restarted("report")];
        let report = ended(
            &EndedRun {
                not_restarted: &left,
                ..fixtures::ended_run(&journal, &forward)
            },
            &Ending::Succeeded,
        );
        let outcomes: Vec<_> = report
            .workloads
            .iter()
            .map(|w| (w.name.as_str(), w.outcome, w.message.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("api", "rolledOut", "rolled out"),
                ("worker", "failed", "CrashLoopBackOff"),
                (
                    "report",
                    "notRestarted",
                    "a CronJob's next Job reads the new value"
                ),
            ]
        );
    }

    #[test]
    fn a_run_that_began_to_undo_carries_the_undos_report() {
        let mut journal = fixtures::journal();
        assert!(
            ended(&fixtures::ended_run(&journal, &[]), &Ending::Succeeded)
                .rollback
                .is_none()
        );
        journal.undoing = true;
        let undo_results = [fixtures::rolled_out("api")];
        let rolled_back = Ending::RolledBack {
            failure: "watch failed".into(),
        };
        let report = ended(
            &EndedRun {
                undo_results: &undo_results,
                ..fixtures::ended_run(&journal, &[])
            },
            &rolled_back,
        );
        let undo = report.rollback.expect("an undo report");
        assert_eq!(
            (undo.action, undo.state, undo.succeeded),
            ("roll back", "succeeded", true)
        );
        assert_eq!(undo.workloads.len(), 1);

        let failed_rollout = [fixtures::failed("api")];
        let report = ended(
            &EndedRun {
                undo_results: &failed_rollout,
                ..fixtures::ended_run(&journal, &[])
            },
            &rolled_back,
        );
        let undo = report.rollback.expect("an undo report");
        assert_eq!((undo.state, undo.succeeded), ("succeeded", false));

        let failed = Ending::Failed {
            failure: "watch failed".into(),
            undo_failure: Some("restore failed".into()),
        };
        let undo = ended(&fixtures::ended_run(&journal, &[]), &failed)
            .rollback
            .unwrap();
        assert_eq!((undo.state, undo.succeeded), ("failed", false));
    }

    #[test]
    fn a_dry_runs_report_lists_the_plan_all_pending() {
        let change = fixtures::change();
        let planned = fixtures::planned(&change);
        let report = super::planned(&change, &planned, DryRun::Server);
        assert_eq!((report.dry_run, report.state), ("server", "dryRun"));
        assert_eq!(report.backup, planned.backup);
        assert_eq!(report.steps.len(), planned.steps.len());
        assert!(report.steps.iter().all(|s| s.status == "pending"));
        assert_eq!(report.steps[0].description, planned.step_lines[0]);
        let outcomes: Vec<_> = report
            .workloads
            .iter()
            .map(|w| (w.name.as_str(), w.outcome))
            .collect();
        assert_eq!(outcomes, [("api", "toRestart"), ("report", "notRestarted")]);
    }

    #[test]
    fn the_json_report_keeps_its_documented_fields() {
        let journal = fixtures::journal();
        let report = ended(&fixtures::ended_run(&journal, &[]), &Ending::Succeeded);
        let value = serde_json::to_value(&report).unwrap();
        let fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "apiVersion",
            "kind",
            "action",
            "namespace",
            "secret",
            "keys",
            "rotationId",
            "dryRun",
            "backup",
            "workloads",
            "steps",
            "state",
            "succeeded",
            "durationSeconds",
        ];
        expected.sort_unstable();
        let mut fields = fields;
        fields.sort_unstable();
        assert_eq!(fields, expected);
        assert_eq!(value["kind"], "ChangeReport");
        assert_eq!(value["action"], "rotate");
        assert_eq!(value["dryRun"], "none");
        assert_eq!(value["keys"][0]["name"], "openai-api-key");
    }

    #[test]
    fn the_report_is_printed_only_with_json_output() {
        let journal = fixtures::journal();
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        let code = finish(
            &mut printer,
            &fixtures::options(),
            ended(&fixtures::ended_run(&journal, &[]), &Ending::Succeeded),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(
            (code, captured.stdout()),
            (crate::exit::SUCCESS, String::new())
        );

        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        let json = fixtures::json_options();
        finish(
            &mut printer,
            &json,
            ended(&fixtures::ended_run(&journal, &[]), &Ending::Succeeded),
            Instant::now(),
        )
        .unwrap();
        let printed: serde_json::Value = serde_json::from_str(&captured.stdout()).unwrap();
        assert_eq!(printed["state"], "succeeded");
        assert_eq!(printed["succeeded"], true);
    }
}

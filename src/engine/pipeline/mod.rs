//! The change pipeline every writing verb shares (rotation, rollback, presets): refuse what
//! must not run (unhealthy consumers, missing permissions) -> preview the steps -> confirm ->
//! take the Secret's lock -> run the steps with a journal (`engine::runner`) -> report. Planning
//! happens before (pure, in `plan::patch` and `plan::steps`); the steps' I/O is in `systems/`.
//!
//! What a run leaves behind when it cannot finish (a failure with `--no-rollback`, a failed
//! undo, Ctrl-C, a crash) is an unfinished run: `status` shows it, `resume` finishes it and
//! `rollback --run` undoes it (`commands/resume.rs`, `commands/rollback.rs`).
//!
//! This file holds the entry point `execute`, the options of a run and the plan derived once
//! for every stage; each stage is its own file: `guards` (refusals before anything is written),
//! `preview`, `dry_run`, `run` (lock, journal, engine), `conclude` (one function per ending),
//! `resume` (finishing or undoing an unfinished run), `report` (the `-o json` result),
//! `prompt` (notes and yes/no questions) and `request` (planning a verb's request).

mod conclude;
mod dry_run;
mod guards;
mod preview;
mod prompt;
mod report;
mod request;
mod resume;
mod run;

#[cfg(test)]
mod fixtures;

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cluster::Cluster;
use crate::model::clock::now_rfc3339_millis;
use crate::plan::change::Change;
use crate::plan::steps::Step;
use crate::ui::Printer;
use crate::ui::printer::OutputFormat;

pub use conclude::conclude;
pub use report::{ChangeReport, KeyReport, StepReport, WorkloadReport, emit};
pub use request::{Request, plan_change};
pub use resume::{Continue, continue_run};

/// How to run it.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dry_run: DryRun,
    pub yes: bool,
    pub output: OutputFormat,
    pub show_secrets: bool,
    pub timeout: Duration,
    /// Go on although consumers are unhealthy before the change.
    pub force: bool,
    /// How many backups of the Secret a successful run keeps (older ones are deleted).
    pub keep: usize,
    /// Refuse when some consumers could not be checked (a kind you may not list), instead of
    /// going on with a warning.
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

impl DryRun {
    /// The report's `dryRun` field.
    fn word(self) -> &'static str {
        match self {
            DryRun::None => "none",
            DryRun::Client => "client",
            DryRun::Server => "server",
        }
    }

    /// Whether the run may read the cluster before it writes (unfinished runs, permissions):
    /// a client dry run sends nothing to the API server.
    fn reads_cluster(self) -> bool {
        self != DryRun::Client
    }
}

/// What `execute` derives from the change once, before its first stage, for every stage after
/// it: the names, the backup a run makes and the run's steps with their lines in words.
struct Planned {
    namespace: String,
    secret: String,
    /// `Secret NAMESPACE/NAME`, for messages.
    object: String,
    backup: Option<String>,
    steps: Vec<Step>,
    /// Each step in words, as the preview and a dry run's report show it.
    step_lines: Vec<String>,
}

impl Planned {
    /// The plan of `change`, its restarts stamped with `restarted_at`.
    fn new(change: &Change, restarted_at: &str) -> Self {
        let namespace = change.data.namespace.clone();
        let secret = change.data.secret.clone();
        let steps = change.steps(restarted_at);
        let keys: Vec<String> = change.data.keys.iter().map(|k| k.key.clone()).collect();
        let step_lines = steps
            .iter()
            .map(|s| s.describe(&format!("{namespace}/{secret}"), &keys))
            .collect();
        Planned {
            object: format!("Secret {namespace}/{secret}"),
            backup: change.backup_name(),
            namespace,
            secret,
            steps,
            step_lines,
        }
    }
}

/// Runs `change` on the cluster: refusals, preview, confirmation, then the journaled steps
/// under the Secret's lock. Returns the exit code; a run that did not succeed is an error
/// saying what happened, what is applied, and what to do next.
pub async fn execute(
    cluster: &Cluster,
    change: Change,
    options: &RunOptions,
    no_rollback: bool,
    printer: &mut Printer,
) -> Result<u8> {
    let mut started = Instant::now();
    let planned = Planned::new(&change, &now_rfc3339_millis());
    guards::refuse_before_writing(cluster, &change, &planned, options, printer).await?;
    preview::show(&change, &planned, options, printer);
    if options.dry_run != DryRun::None {
        return dry_run::finish(cluster, &change, &planned, options, started, printer).await;
    }
    if !options.yes {
        let asked = Instant::now();
        prompt::confirm_change(printer, &change, &planned.object)?;
        // The reported duration is the change's own, not the time the question waited.
        started += asked.elapsed();
    }
    run::run(
        cluster,
        change,
        planned,
        options,
        no_rollback,
        started,
        printer,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_client_dry_run_keeps_off_the_cluster_before_writing() {
        assert!(DryRun::None.reads_cluster());
        assert!(DryRun::Server.reads_cluster());
        assert!(!DryRun::Client.reads_cluster());
    }

    #[test]
    fn the_report_names_each_dry_run_mode_as_the_flag_does() {
        assert_eq!(DryRun::None.word(), "none");
        assert_eq!(DryRun::Client.word(), "client");
        assert_eq!(DryRun::Server.word(), "server");
    }

    #[test]
    fn the_plan_names_the_secret_its_backup_and_describes_each_step() {
        let change = fixtures::change();
        let planned = fixtures::planned(&change);
        assert_eq!(planned.object, "Secret prod/app-secrets");
        assert_eq!(
            planned.backup.as_deref(),
            Some(crate::plan::backup::backup_name("app-secrets", &change.record.id).as_str())
        );
        assert!(matches!(
            planned.steps.first(),
            Some(Step::Secret(crate::plan::steps::SecretStep::BackUp { .. }))
        ));
        assert_eq!(planned.step_lines.len(), planned.steps.len());
        assert!(
            planned
                .step_lines
                .iter()
                .any(|l| l.contains("prod/app-secrets")),
            "{:?}",
            planned.step_lines
        );
    }

    #[test]
    fn a_change_that_only_adds_keys_plans_no_backup() {
        let mut change = fixtures::change();
        change.old_values.clear();
        let planned = fixtures::planned(&change);
        assert_eq!(planned.backup, None);
        assert!(!planned.steps.iter().any(|s| matches!(
            s,
            Step::Secret(crate::plan::steps::SecretStep::BackUp { .. })
        )));
    }
}

//! The change pipeline every writing verb shares (rotation, rollback, presets): refuse what
//! must not run (unhealthy consumers, missing permissions) -> preview the steps -> confirm ->
//! take the Secret's lock -> run the steps with a journal (`engine.rs`) -> report. Planning
//! happens before (pure, in `plan.rs` and `steps.rs`); the steps' I/O is in `systems/`.
//!
//! What a run leaves behind when it cannot finish (a failure with `--no-rollback`, a failed
//! undo, Ctrl-C, a crash) is an unfinished run: `status` shows it, `resume` finishes it and
//! `rollback --run` undoes it (`commands/resume.rs`, `commands/rollback.rs`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde::Serialize;

use crate::cluster::access;
use crate::cluster::{Cluster, short_error};
use crate::engine::lock::{self, Holder};
use crate::engine::runner::{self, Ending, Engine};
use crate::interrupt::{self, Interrupt};
use crate::model::clock::{new_rotation_id, now_rfc3339, now_rfc3339_millis};
use crate::model::names::FIELD_MANAGER;
use crate::plan::backup::{self, BackupRequest};
use crate::plan::change::{Action, Change};
use crate::plan::journal::{self, Journal, JournalKey, RunState, StepRecord};
use crate::plan::patch::ValueSummary;
use crate::plan::rollout::{Outcome, WorkloadResult};
use crate::plan::secret_meta::{ROTATIONS_ANNOTATION, RotationRecord};
use crate::plan::steps::{self, Step, StepStatus};
use crate::ui::preview::{self, PreviewContext};
use crate::ui::printer::OutputFormat;
use crate::ui::{Printer, Style};
use crate::values::SecretValue;

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

/// Refuses consumers that are failing or mid-rollout before the change: a rotation would be
/// blamed for their failure, and its automatic rollback could not make them healthy.
fn refuse_unhealthy(
    change: &Change,
    object: &str,
    force: bool,
    printer: &mut Printer,
) -> Result<()> {
    if change.unhealthy.is_empty() {
        return Ok(());
    }
    let list = change
        .unhealthy
        .iter()
        .map(|(w, why)| format!("  {w}: {why}"))
        .collect::<Vec<_>>()
        .join("\n");
    if force {
        printer.warn(&format!(
            "consumers of {object} are not healthy before the change (--force):\n{list}"
        ));
        return Ok(());
    }
    bail!(
        "refusing to {} {object}: consumers are not healthy before the change, so their rollout could not \
         tell whether the new value works:\n{list}\nfix them first (`kubectl rollout status` and `kubectl get pods -n {}` \
         show why), or pass --force to change the Secret anyway; nothing was changed",
        change.action.verb(),
        change.data.namespace
    )
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
    let namespace = change.data.namespace.clone();
    let secret_name = change.data.secret.clone();
    let object = format!("Secret {namespace}/{secret_name}");
    let backup_name = change.backup_name();
    let restarted_at = now_rfc3339_millis();
    let planned_steps = change.steps(&restarted_at);

    // An unfinished run comes first: until it is finished or undone, its journal is the truth
    // about this Secret (checked again under the lock, below).
    if options.dry_run != DryRun::Client {
        crate::engine::runs::refuse_unfinished(cluster, &namespace, &secret_name).await?;
    }
    refuse_unhealthy(&change, &object, options.force, printer)?;
    if options.strict {
        crate::plan::consumers::refuse_unlisted(
            &change.unlisted,
            &format!("{} {object}", change.action.verb()),
            true,
        )?;
    }

    if options.dry_run != DryRun::Client {
        let restarts: Vec<_> = change
            .restarts
            .restart
            .iter()
            .map(|r| (r.kind, r.name.clone()))
            .collect();
        let needs = access::needs_for_change(
            &namespace,
            &secret_name,
            backup_name.as_deref(),
            &journal::journal_name(&secret_name, &change.record.id),
            &lock::lease_name(&secret_name),
            &restarts,
        );
        let mut needs = needs;
        needs.extend(change.extra_needs.iter().cloned());
        if change.log_check.is_some() {
            needs.push(access::Need::new(
                "get",
                "",
                "pods/log",
                None,
                &namespace,
                "to check that every new pod logged the preset's line",
            ));
        }
        let lacking = access::missing(&cluster.client, &namespace, &needs).await?;
        if !lacking.is_empty() {
            return Err(access::refusal(&object, &lacking));
        }
    }

    let keys: Vec<String> = change.data.keys.iter().map(|k| k.key.clone()).collect();
    let step_lines: Vec<String> = planned_steps
        .iter()
        .map(|s| s.describe(&format!("{namespace}/{secret_name}"), &keys))
        .collect();
    let context = PreviewContext {
        action: change.action.verb(),
        rotation_id: &change.record.id,
        backup: backup_name.as_deref().unwrap_or(""),
        show_secrets: options.show_secrets,
        notes: &change.notes,
        steps: &step_lines,
        restart_heading: change.reencryption.as_ref().map(|r| {
            if r.keyring.is_some() {
                "Restart ({}) after each of the two Secret changes, in parallel, then watch the rollouts:"
            } else {
                "Stop ({}): scaled to 0 before the migration, back to their replicas after the patch, then watched:"
            }
        }),
    };
    for (style, line) in preview::render(&change.data, &change.restarts, &context) {
        match options.output {
            OutputFormat::Text => printer.styled_line(&line, style),
            OutputFormat::Json => printer.styled_note(&line, style),
        }
    }

    let mut report = ChangeReport {
        api_version: crate::model::names::API_VERSION,
        kind: "ChangeReport",
        action: change.action.verb(),
        namespace: namespace.clone(),
        secret: secret_name.clone(),
        keys: change
            .data
            .keys
            .iter()
            .map(|k| KeyReport {
                name: k.key.clone(),
                before: k.before.clone(),
                after: k.after.clone(),
            })
            .collect(),
        rotation_id: change.record.id.clone(),
        dry_run: match options.dry_run {
            DryRun::None => "none",
            DryRun::Client => "client",
            DryRun::Server => "server",
        },
        backup: None,
        workloads: Vec::new(),
        steps: Vec::new(),
        state: "dryRun",
        succeeded: false,
        duration_seconds: 0.0,
        rollback: None,
    };

    if options.dry_run != DryRun::None {
        // The plan, as the text preview shows it: the backup a run would make, the workloads
        // it would restart (and those it leaves, with why), and its steps, all pending.
        report.backup = backup_name.clone();
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
            .chain(
                change
                    .restarts
                    .not_restarted
                    .iter()
                    .map(|n| WorkloadReport {
                        kind: n.kind,
                        name: n.name.clone(),
                        outcome: "notRestarted",
                        message: n.why.clone(),
                        seconds: 0.0,
                    }),
            )
            .collect();
        report.steps = planned_steps
            .iter()
            .zip(&step_lines)
            .map(|(step, line)| StepReport {
                name: step.name(),
                description: line.clone(),
                status: "pending",
                note: None,
            })
            .collect();
    }
    match options.dry_run {
        DryRun::Client => {
            note(
                printer,
                options,
                if matches!(
                    change.database,
                    Some(
                        steps::DatabaseChange::RedisOverlap { .. }
                            | steps::DatabaseChange::RedisRequirepass { .. }
                    )
                ) {
                    "\nDry run (client): nothing was written (the preflight only logged in to Redis and read its settings)."
                } else if change.reencryption.is_some() {
                    "\nDry run (client): nothing was written (the preflight counted the rows read-only, through the API server)."
                } else if change.database.is_some() {
                    "\nDry run (client): nothing was written (the preflight only logged in to the database, through the API server)."
                } else {
                    "\nDry run (client): nothing was sent to the API server."
                },
            );
            report.succeeded = true;
            return finish(printer, options, report, started);
        }
        DryRun::Server => {
            dry_run_server(cluster, &change).await?;
            note(
                printer,
                options,
                "\nDry run (server): the API server accepted the backup and the patch; nothing was stored.",
            );
            report.succeeded = true;
            return finish(printer, options, report, started);
        }
        DryRun::None => {}
    }
    if !options.yes {
        let asked = Instant::now();
        confirm(printer, &change, &object)?;
        // The reported duration is the change's own, not the time the question waited.
        started += asked.elapsed();
    }

    let holder = Holder::this_process(&change.record.id, &change.record.by);
    let lock = lock::acquire(
        cluster,
        &namespace,
        &secret_name,
        &holder,
        lock::Wait::No,
        |_| {},
    )
    .await?;
    if let Err(err) =
        crate::engine::runs::refuse_unfinished(cluster, &namespace, &secret_name).await
    {
        lock.release().await;
        return Err(err);
    }

    let journal = Journal {
        api_version: crate::model::names::API_VERSION.to_string(),
        kind: journal::KIND.to_string(),
        id: change.record.id.clone(),
        action: change.action.verb().to_string(),
        namespace: namespace.clone(),
        secret: secret_name.clone(),
        by: change.record.by.clone(),
        started_at: change.record.at.clone(),
        updated_at: change.record.at.clone(),
        keys: change
            .data
            .keys
            .iter()
            .map(|k| JournalKey {
                name: k.key.clone(),
                before: k.before.clone(),
                after: k.after.clone(),
            })
            .collect(),
        backup: backup_name.clone(),
        record: change.record.clone(),
        previous_records: change.previous_records.clone(),
        auto_undo: change.action == Action::Rotate && !no_rollback,
        steps: planned_steps.into_iter().map(StepRecord::pending).collect(),
        undo: Vec::new(),
        undoing: false,
        state: RunState::Running,
        message: None,
    };
    let values: Vec<(String, SecretValue)> = change
        .data
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.after_value.clone()))
        .collect();
    let interrupt = Interrupt::install();
    note(
        printer,
        options,
        &format!(
            "\nRun {} (journal Secret {namespace}/{}):",
            change.record.id,
            journal::journal_name(&secret_name, &change.record.id)
        ),
    );
    let engine = Engine::start(
        cluster,
        journal,
        values,
        lock,
        interrupt,
        options.timeout,
        options.output,
    )
    .await?;
    let (ending, engine) = engine.run(printer).await;
    conclude(
        cluster,
        options,
        ending,
        &engine,
        &change.restarts.not_restarted,
        started,
        printer,
    )
    .await
}

/// The report of a run, from its journal.
fn base_report(journal: &Journal) -> ChangeReport {
    ChangeReport {
        api_version: crate::model::names::API_VERSION,
        kind: "ChangeReport",
        action: if journal.action == "rotate" {
            "rotate"
        } else {
            "roll back"
        },
        namespace: journal.namespace.clone(),
        secret: journal.secret.clone(),
        keys: journal
            .keys
            .iter()
            .map(|k| KeyReport {
                name: k.name.clone(),
                before: k.before.clone(),
                after: k.after.clone(),
            })
            .collect(),
        rotation_id: journal.id.clone(),
        dry_run: "none",
        backup: None,
        workloads: Vec::new(),
        steps: Vec::new(),
        state: "",
        succeeded: false,
        duration_seconds: 0.0,
        rollback: None,
    }
}

/// Reports how a run ended, prunes old backups after a success, and turns anything but a
/// success into the error (and exit code) the user sees.
pub async fn conclude(
    cluster: &Cluster,
    options: &RunOptions,
    ending: Ending,
    engine: &Engine<'_>,
    not_restarted: &[crate::plan::patch::NotRestarted],
    started: Instant,
    printer: &mut Printer,
) -> Result<u8> {
    let mut report = base_report(&engine.journal);
    let action = if engine.journal.action == "rotate" {
        Action::Rotate
    } else {
        Action::RollBack
    };
    let journal = &engine.journal;
    let namespace = &journal.namespace;
    let name = &journal.secret;
    let object = journal.object();
    report.backup = journal
        .steps
        .iter()
        .any(|s| matches!(s.step, Step::BackUp { .. }) && s.status == StepStatus::Done)
        .then(|| journal.backup.clone())
        .flatten();
    report.steps = step_reports(journal, &journal.steps);
    report.workloads = workload_reports(&engine.forward_results);
    report
        .workloads
        .extend(not_restarted.iter().map(|n| WorkloadReport {
            kind: n.kind,
            name: n.name.clone(),
            outcome: "notRestarted",
            message: n.why.clone(),
            seconds: 0.0,
        }));
    report.state = match &ending {
        Ending::Succeeded => "succeeded",
        Ending::RolledBack { .. } => "rolledBack",
        Ending::Interrupted { .. } => "interrupted",
        Ending::Failed { .. } => "failed",
        Ending::Abandoned { .. } => "abandoned",
    };
    report.succeeded = ending == Ending::Succeeded;
    if journal.undoing {
        let undo_ok = matches!(ending, Ending::RolledBack { .. });
        report.rollback = Some(Box::new(ChangeReport {
            api_version: crate::model::names::API_VERSION,
            kind: "ChangeReport",
            action: "roll back",
            namespace: namespace.clone(),
            secret: name.clone(),
            keys: Vec::new(),
            rotation_id: journal.id.clone(),
            dry_run: "none",
            backup: journal.backup.clone(),
            workloads: workload_reports(&engine.undo_results),
            steps: step_reports(journal, &journal.undo),
            state: if undo_ok { "succeeded" } else { "failed" },
            succeeded: undo_ok && engine.undo_results.iter().all(WorkloadResult::succeeded),
            duration_seconds: 0.0,
            rollback: None,
        }));
    }
    let keys = journal.key_names().join(", ");
    match ending {
        Ending::Succeeded if journal.undoing => {
            if options.output == OutputFormat::Text {
                printer.line("");
                printer.styled_line(
                    &format!(
                        "Undid run {}: {object} holds the old value of {keys} again{}.",
                        journal.id,
                        if engine.undo_results.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; rolled out: {}",
                                engine
                                    .undo_results
                                    .iter()
                                    .map(WorkloadResult::reference)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    ),
                    Style::Good,
                );
            }
            finish(printer, options, report, started)
        }
        Ending::Succeeded => {
            crate::engine::runs::prune(
                cluster,
                namespace,
                name,
                options.keep,
                &journal.id,
                printer,
            )
            .await;
            if options.output == OutputFormat::Text {
                let summary = journal
                    .keys
                    .iter()
                    .map(|k| match &k.before {
                        Some(before) => format!(
                            "{} (sha256:{} -> sha256:{})",
                            k.name, before.fingerprint, k.after.fingerprint
                        ),
                        None => format!("{} (new, sha256:{})", k.name, k.after.fingerprint),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                printer.line("");
                printer.styled_line(
                    &format!(
                        "{} {summary} in {object} in {:.1}s.",
                        action.past(),
                        started.elapsed().as_secs_f64()
                    ),
                    Style::Good,
                );
                if engine.forward_results.is_empty() {
                    if !not_restarted.is_empty() {
                        printer.line(
                            "No workload was restarted: pods keep the old value until they restart.",
                        );
                    }
                } else {
                    // A key-ring run rolls each consumer out twice: name it once.
                    let mut rolled: Vec<String> = Vec::new();
                    for reference in engine.forward_results.iter().map(WorkloadResult::reference) {
                        if !rolled.contains(&reference) {
                            rolled.push(reference);
                        }
                    }
                    printer.line(&format!("Rolled out: {}.", rolled.join(", ")));
                }
            }
            finish(printer, options, report, started)
        }
        Ending::RolledBack { failure } => {
            finish(printer, options, report, started)?;
            let restored = journal.backup.as_deref().unwrap_or("the run's record");
            let still_failing: Vec<String> = engine
                .undo_results
                .iter()
                .filter_map(|r| match &r.outcome {
                    Outcome::Failed { message, .. } => {
                        Some(format!("  {}: {message}", r.reference()))
                    }
                    Outcome::RolledOut { .. } => None,
                })
                .collect();
            let consumers = if engine.undo_results.is_empty() {
                "no consumer had been restarted".to_string()
            } else if still_failing.is_empty() {
                "every restarted consumer is rolled out and ready".to_string()
            } else {
                format!(
                    "but consumers are still failing after the restore:\n{}\ninspect them with `kubectl get pods -n {namespace}`",
                    still_failing.join("\n")
                )
            };
            bail!(
                "the {} of {keys} in {object} failed:\n{}\nrolled back: {object} holds the old value again \
                 (from {restored}) and {consumers}",
                action.noun(),
                indent(&failure)
            )
        }
        Ending::Abandoned { failure } => {
            finish(printer, options, report, started)?;
            bail!("{failure}")
        }
        Ending::Interrupted { signal } => {
            finish(printer, options, report, started)?;
            runner::print_unfinished(journal, true, printer);
            Err(anyhow::Error::new(crate::ExitWith {
                code: interrupt::EXIT_INTERRUPTED,
                message: format!(
                    "interrupted by {signal}: run {} of {object} stopped at a step boundary, unfinished; \
                     finish it with `{}` or undo it with `{}`",
                    journal.id,
                    journal::resume_command(namespace, name),
                    journal::rollback_command(namespace, name, &journal.id)
                ),
            }))
        }
        Ending::Failed {
            failure,
            undo_failure,
        } => {
            finish(printer, options, report, started)?;
            runner::print_unfinished(journal, true, printer);
            let resume = journal::resume_command(namespace, name);
            let rollback = journal::rollback_command(namespace, name, &journal.id);
            match undo_failure {
                Some(undo) => {
                    printer.styled_note("!!! THE AUTOMATIC ROLLBACK FAILED !!!", Style::Bad);
                    bail!(
                        "the {} of {keys} in {object} failed:\n{}\nand the automatic rollback failed too:\n{}\n\
                         run {} is unfinished; once the cause is fixed, undo it with:\n  {rollback}\nor finish it with:\n  {resume}",
                        action.noun(),
                        indent(&failure),
                        indent(&undo),
                        journal.id
                    )
                }
                None => bail!(
                    "the {} of {keys} in {object} failed:\n{}\n{object} keeps the new value{}; run {} is unfinished. \
                     To restore the old value and restart the consumers run:\n  {rollback}\nor, once the cause is fixed, finish it with:\n  {resume}",
                    action.noun(),
                    indent(&failure),
                    if journal.auto_undo || action != Action::Rotate {
                        ""
                    } else {
                        " (--no-rollback)"
                    },
                    journal.id
                ),
            }
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `--dry-run=server`: the backup and the patch, sent with `dryRun=All`; nothing is stored.
async fn dry_run_server(cluster: &Cluster, change: &Change) -> Result<()> {
    let namespace = &change.data.namespace;
    let object = format!("Secret {namespace}/{}", change.data.secret);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    if let Some(name) = change.backup_name() {
        let request = BackupRequest {
            namespace: namespace.clone(),
            secret: change.data.secret.clone(),
            source_resource_version: change.data.resource_version.clone(),
            keys: change.old_values.clone(),
            at: change.record.at.clone(),
            by: change.record.by.clone(),
            rotation_id: change.record.id.clone(),
            reason: "dry run".to_string(),
        };
        secrets
            .create(
                &PostParams {
                    dry_run: true,
                    field_manager: Some(FIELD_MANAGER.to_string()),
                },
                &backup::build_backup(&request),
            )
            .await
            .map_err(|e| {
                anyhow!(
                    "the API server refused the backup Secret {namespace}/{name}: {}",
                    short_error(&e)
                )
            })?;
    }
    let params = PatchParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    secrets
        .patch(&change.data.secret, &params, &Patch::<()>::Json(change.data.patch.clone()))
        .await
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 409 || (s.code == 422 && !s.message.contains(" is invalid")) => anyhow!(
                "the {object} changed since it was read; nothing was overwritten; run again to re-plan"
            ),
            _ => anyhow!("the API server refused the patch of {object}: {}", short_error(&e)),
        })?;
    Ok(())
}

fn note(printer: &mut Printer, options: &RunOptions, text: &str) {
    match options.output {
        OutputFormat::Text => printer.line(text),
        OutputFormat::Json => printer.note(text),
    }
}

fn finish(
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

/// Asks on the terminal; without one, fails at once with the way forward instead of hanging.
fn confirm(printer: &mut Printer, change: &Change, object: &str) -> Result<()> {
    if !(std::io::stdin().is_terminal() && printer.interactive()) {
        bail!(
            "refusing to {} {object} without confirmation: there is no terminal to ask on; review the preview above \
             (or run with --dry-run=client), then pass -y/--yes",
            change.action.verb()
        );
    }
    let restarts = change.restarts.restart.len();
    let prompt = format!(
        "{} {} in {object} and restart {restarts} workload(s)?",
        crate::ui::preview::capitalize(change.action.verb()),
        change
            .data
            .keys
            .iter()
            .map(|k| k.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    printer.flush();
    let yes = dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact_on(&dialoguer::console::Term::stderr())
        .context("cannot read the answer from the terminal")?;
    if !yes {
        bail!("cancelled; nothing was changed");
    }
    Ok(())
}

/// What a writing verb wants changed, before planning.
pub struct Request {
    pub action: Action,
    /// The Secret as just read.
    pub secret: Secret,
    pub changes: Vec<crate::plan::patch::KeyChange>,
    pub create_key: bool,
    pub force: bool,
    pub restart: crate::plan::patch::RestartMode,
    pub notes: Vec<String>,
}

/// Reads the namespace's workloads and the caller's identity, and plans `request` (pure
/// planning in `plan.rs`): the guarded patch and the restarts.
pub async fn plan_change(cluster: &Cluster, request: Request) -> Result<Change> {
    let namespace = request
        .secret
        .metadata
        .namespace
        .clone()
        .unwrap_or_default();
    let name = request.secret.metadata.name.clone().unwrap_or_default();
    let crate::plan::consumers::Inventory {
        workloads,
        unlisted,
    } = crate::systems::workloads::inventory::list_workloads(
        &cluster,
        &crate::cluster::Scope::Namespace(namespace.clone()),
    )
    .await?;
    let consumers = crate::plan::consumers::find_consumers(&namespace, &name, &workloads);
    let record = RotationRecord {
        at: now_rfc3339(),
        id: new_rotation_id(),
        by: cluster.identity().await,
    };
    let keys: Vec<String> = request.changes.iter().map(|c| c.key.clone()).collect();
    let data = crate::plan::patch::plan_data_change(
        &request.secret,
        &crate::plan::patch::ChangeRequest {
            changes: request.changes,
            create_key: request.create_key,
            force: request.force,
            record: record.clone(),
        },
    )?;
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut restarts =
        crate::plan::patch::plan_restarts(&consumers, &key_refs, &request.restart, &workloads)?;
    restarts.warnings.extend(
        unlisted
            .iter()
            .map(crate::plan::consumers::Unlisted::warning),
    );
    let unhealthy = crate::plan::patch::unhealthy_targets(&restarts, &workloads);
    let previous_records = request
        .secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATIONS_ANNOTATION))
        .cloned();
    let old_values = data
        .keys
        .iter()
        .filter_map(|k| k.before_value.clone().map(|v| (k.key.clone(), v)))
        .collect();
    Ok(Change {
        action: request.action,
        data,
        restarts,
        record,
        previous_records,
        old_values,
        unhealthy,
        notes: request.notes,
        database: None,
        extra_needs: Vec::new(),
        log_check: None,
        reencryption: None,
        unlisted,
    })
}

/// What to do with an unfinished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continue {
    /// Finish it: check the step it stopped in, then apply the rest (`resume`).
    Finish,
    /// Undo every step that may have been applied, in reverse (`rollback --run ID`).
    Undo { id: String },
}

/// Finishes or undoes the unfinished run of `secret`, taking its lock over once the process
/// that held it is gone. Safe to run twice: a run that is already finished is said to be so.
pub async fn continue_run(
    cluster: &Cluster,
    secret: &str,
    how: Continue,
    options: &RunOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let started = Instant::now();
    let namespace = cluster.namespace.clone();
    let object = format!("Secret {namespace}/{secret}");
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), &namespace);
    let stored = match &how {
        Continue::Finish => {
            let mut runs =
                crate::engine::runs::unfinished_journal_secrets(cluster, &namespace, Some(secret))
                    .await?;
            if runs.is_empty() {
                printer.note(&format!(
                    "{object} has no unfinished run; nothing to resume."
                ));
                return Ok(crate::exit::SUCCESS);
            }
            runs.remove(0)
        }
        Continue::Undo { id } => {
            let name = journal::journal_name(secret, id);
            let Some(stored) = api.get_opt(&name).await.map_err(|e| {
                cluster.explain(
                    e,
                    &format!("read the journal of run {id} (Secret {namespace}/{name})"),
                )
            })?
            else {
                bail!(
                    "{object} has no run {id}; `kubectl rotate status {secret} -n {namespace}` shows unfinished runs"
                );
            };
            stored
        }
    };
    let (journal, _) = journal::from_secret(&stored)?;
    if journal.secret != secret {
        bail!(
            "run {} belongs to Secret {}, not {object}",
            journal.id,
            journal.secret
        );
    }
    if journal.state.finished() {
        printer.note(&format!(
            "Run {} of {object} is already finished ({}); nothing to do.",
            journal.id,
            journal.state.word()
        ));
        return Ok(crate::exit::SUCCESS);
    }
    let verb = match &how {
        Continue::Finish => "finish",
        Continue::Undo { .. } => "undo",
    };
    runner::print_unfinished(&journal, false, printer);
    if !options.yes {
        if !(std::io::stdin().is_terminal() && printer.interactive()) {
            bail!(
                "refusing to {verb} run {} of {object} without confirmation: there is no terminal to ask on; \
                 review the steps above, then pass -y/--yes",
                journal.id
            );
        }
        printer.flush();
        let yes = dialoguer::Confirm::new()
            .with_prompt(format!(
                "{} run {} of {object}?",
                crate::ui::preview::capitalize(verb),
                journal.id
            ))
            .default(false)
            .interact_on(&dialoguer::console::Term::stderr())
            .context("cannot read the answer from the terminal")?;
        if !yes {
            bail!("cancelled; nothing was changed");
        }
    }
    let holder = Holder::this_process(&journal.id, &cluster.identity().await);
    let lock = lock::acquire(
        cluster,
        &namespace,
        secret,
        &holder,
        lock::Wait::UntilExpired,
        |m| printer.note(m),
    )
    .await?;
    if let Some((previous, why)) = &lock.took_over {
        printer.note(&format!(
            "Took over the lock left by run {} ({why}).",
            previous.run_id
        ));
    }
    // Read it again under the lock: the run may have moved on meanwhile.
    let name = journal::journal_name(secret, &journal.id);
    let stored = match api.get(&name).await {
        Ok(stored) => stored,
        Err(err) => {
            lock.release().await;
            return Err(
                cluster.explain(err, &format!("read the journal Secret {namespace}/{name}"))
            );
        }
    };
    if journal::from_secret(&stored).is_ok_and(|(j, _)| j.state.finished()) {
        lock.release().await;
        printer.note(&format!(
            "Run {} finished meanwhile; nothing to do.",
            journal.id
        ));
        return Ok(crate::exit::SUCCESS);
    }
    let mut engine = Engine::load(
        cluster,
        &stored,
        lock,
        Interrupt::install(),
        options.timeout,
        options.output,
    )?;
    if matches!(how, Continue::Undo { .. }) {
        engine.begin_undo();
    }
    note(
        printer,
        options,
        &format!(
            "\n{} run {}:",
            crate::ui::preview::capitalize(if engine.journal.undoing {
                "undoing"
            } else {
                "resuming"
            }),
            engine.journal.id
        ),
    );
    let (ending, engine) = engine.run(printer).await;
    // Undoing is what was asked for here: a finished undo is a success, whatever failure the
    // run undid.
    let ending = match ending {
        Ending::RolledBack { .. } => Ending::Succeeded,
        other => other,
    };
    conclude(cluster, options, ending, &engine, &[], started, printer).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

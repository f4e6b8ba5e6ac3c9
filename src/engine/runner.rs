//! The runner: executes a run's steps in order, recording each in the run's journal before it
//! starts and after it ends, so that whatever stops the run (a failure, Ctrl-C, a crash, a
//! lost answer from the API server) leaves a journal saying exactly how far it got.
//!
//! - A step recorded as started but not done (the run died in it) is first checked: if it took
//!   effect it is marked done, otherwise it is applied again; a conflict stops the run.
//! - Ctrl-C/SIGTERM is looked at between steps, never between a write and its journal entry.
//! - A failed forward step of a run with `auto_undo` undoes the run at once (the undo's steps,
//!   planned by `steps::plan_undo`, run the same way); one that failed before anything changed
//!   ends the run as abandoned.
//!
//! The engine knows nothing about Secrets, databases or rollouts: `systems::apply` and
//! `systems::check` do.

use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;

use crate::cluster::{Cluster, short_error};
use crate::engine::lock::LockGuard;
use crate::interrupt::Interrupt;
use crate::plan::journal::{self, Journal, Phase, RunState, StepRecord};
use crate::plan::rollout::WorkloadResult;
use crate::plan::steps::{self, StepStatus};
use crate::systems;
use crate::systems::context::{Applied, Checked, Ctx, StepOutcome};
use crate::ui::printer::OutputFormat;
use crate::ui::{Printer, Style};
use crate::values::SecretValue;

/// How a run ended this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    /// The forward steps failed and the run was undone.
    RolledBack {
        failure: String,
    },
    /// Stopped by a signal at a step boundary; unfinished.
    Interrupted {
        signal: String,
    },
    /// Stopped on a failure; unfinished (resume or roll back).
    Failed {
        failure: String,
        undo_failure: Option<String>,
    },
    /// Failed before it changed anything; finished.
    Abandoned {
        failure: String,
    },
}

pub struct Engine<'a> {
    cluster: &'a Cluster,
    pub journal: Journal,
    /// The journal Secret's resourceVersion after our last write; `None` before it exists.
    journal_version: Option<String>,
    values: Vec<(String, SecretValue)>,
    interrupt: Interrupt,
    lock: Option<LockGuard>,
    timeout: Duration,
    output: OutputFormat,
    /// Rollout results of the forward watch and of the undo's watch.
    pub forward_results: Vec<WorkloadResult>,
    pub undo_results: Vec<WorkloadResult>,
}

impl<'a> Engine<'a> {
    fn new(
        cluster: &'a Cluster,
        (journal, values): (Journal, Vec<(String, SecretValue)>),
        journal_version: Option<String>,
        lock: LockGuard,
        interrupt: Interrupt,
        (timeout, output): (Duration, OutputFormat),
    ) -> Self {
        Engine {
            cluster,
            journal,
            journal_version,
            values,
            interrupt,
            lock: Some(lock),
            timeout,
            output,
            forward_results: Vec::new(),
            undo_results: Vec::new(),
        }
    }

    /// A new run: saves its journal (with the new values) before any step.
    pub async fn start(
        cluster: &'a Cluster,
        journal: Journal,
        values: Vec<(String, SecretValue)>,
        lock: LockGuard,
        interrupt: Interrupt,
        timeout: Duration,
        output: OutputFormat,
    ) -> Result<Engine<'a>> {
        let mut engine = Engine::new(
            cluster,
            (journal, values),
            None,
            lock,
            interrupt,
            (timeout, output),
        );
        if let Err(err) = engine.write_journal().await {
            engine.release().await;
            return Err(err.context("nothing was changed"));
        }
        Ok(engine)
    }

    /// An unfinished run read from its journal Secret, to resume or undo.
    pub fn load(
        cluster: &'a Cluster,
        stored: &Secret,
        lock: LockGuard,
        interrupt: Interrupt,
        timeout: Duration,
        output: OutputFormat,
    ) -> Result<Engine<'a>> {
        Ok(Engine::new(
            cluster,
            journal::from_secret(stored)?,
            stored.metadata.resource_version.clone(),
            lock,
            interrupt,
            (timeout, output),
        ))
    }

    fn journal_name(&self) -> String {
        journal::journal_name(&self.journal.secret, &self.journal.id)
    }

    /// Writes the journal; the resourceVersion guard makes a second process that took the run
    /// over (after this one's lock expired) stop this one instead of both writing.
    async fn write_journal(&mut self) -> Result<()> {
        self.journal.updated_at = crate::model::clock::now_rfc3339();
        let mut object = journal::to_secret(&self.journal, &self.values)?;
        let api: Api<Secret> =
            Api::namespaced(self.cluster.client.clone(), &self.journal.namespace);
        let params = PostParams {
            dry_run: false,
            field_manager: Some(crate::model::names::FIELD_MANAGER.to_string()),
        };
        let name = self.journal_name();
        let stored = match &self.journal_version {
            None => api.create(&params, &object).await,
            Some(version) => {
                object.metadata.resource_version = Some(version.clone());
                api.replace(&name, &params, &object).await
            }
        };
        match stored {
            Ok(stored) => {
                self.journal_version = stored.metadata.resource_version;
                Ok(())
            }
            Err(kube::Error::Api(status))
                if status.code == 409 && self.journal_version.is_some() =>
            {
                Err(anyhow!(
                    "the journal {}/{name} of run {} was changed by another process (it took the run over); this one stops here",
                    self.journal.namespace,
                    self.journal.id
                ))
            }
            Err(err) => Err(anyhow!(
                "cannot write the run's journal (Secret {}/{name}): {}",
                self.journal.namespace,
                short_error(&err)
            )),
        }
    }

    /// Switches the run to undoing every step that may have been applied, in reverse.
    pub fn begin_undo(&mut self) {
        if self.journal.undoing {
            return;
        }
        let forward: Vec<_> = self
            .journal
            .steps
            .iter()
            .map(|s| (s.step.clone(), s.status))
            .collect();
        let restarted_at = crate::model::clock::now_rfc3339_millis();
        self.journal.undo =
            steps::plan_undo(&forward, self.journal.backup.as_deref(), &restarted_at)
                .into_iter()
                .map(StepRecord::pending)
                .collect();
        self.journal.undoing = true;
    }

    /// Runs the steps of the current phase (and an automatic undo after a failure) until the
    /// run ends or stops; then records the ending in the journal, as an Event, and releases the
    /// lock.
    pub async fn run(mut self, printer: &mut Printer) -> (Ending, Engine<'a>) {
        let ending = self.steps(printer).await;
        let state = match &ending {
            Ending::Succeeded => {
                if self.journal.undoing {
                    RunState::RolledBack
                } else {
                    RunState::Succeeded
                }
            }
            Ending::RolledBack { .. } => RunState::RolledBack,
            Ending::Interrupted { .. } => RunState::Interrupted,
            Ending::Failed { .. } => RunState::Failed,
            Ending::Abandoned { .. } => RunState::Abandoned,
        };
        self.journal.state = state;
        if let Err(err) = self.write_journal().await {
            printer.warn(&format!("{err:#}"));
        }
        self.record_event(&ending, printer).await;
        self.release().await;
        (ending, self)
    }

    async fn release(&mut self) {
        if let Some(lock) = self.lock.take() {
            lock.release().await;
        }
    }

    async fn steps(&mut self, printer: &mut Printer) -> Ending {
        // A forward failure that started the automatic undo, for the ending's message.
        let mut failure: Option<String> = self
            .journal
            .message
            .clone()
            .filter(|_| self.journal.undoing);
        loop {
            let phase = self.journal.phase();
            let Some(index) = self.journal.next_step() else {
                return match (phase, failure) {
                    (Phase::Undo, Some(failure)) => Ending::RolledBack { failure },
                    _ => Ending::Succeeded,
                };
            };
            if let Some(signal) = self.interrupt.requested() {
                return Ending::Interrupted {
                    signal: signal.to_string(),
                };
            }
            if self.lock.as_ref().is_some_and(LockGuard::lost) {
                return Ending::Failed {
                    failure: "another process took this Secret's lock over; this run stopped at a step boundary".into(),
                    undo_failure: None,
                };
            }
            test_hook::pause("before", self.journal.steps_of(phase)[index].step.name()).await;
            match self.step(phase, index, printer).await {
                StepOutcome::Done { .. } => {}
                StepOutcome::Interrupted => {
                    return Ending::Interrupted {
                        signal: self.interrupt.requested().unwrap_or("a signal").to_string(),
                    };
                }
                StepOutcome::Failed {
                    message, applied, ..
                } => match phase {
                    Phase::Forward => {
                        let changed = self.journal.changed_anything() || applied != Applied::No;
                        if !changed {
                            return Ending::Abandoned { failure: message };
                        }
                        if !self.journal.auto_undo {
                            return Ending::Failed {
                                failure: message,
                                undo_failure: None,
                            };
                        }
                        printer.warn(&format!(
                            "step {} failed; undoing run {} (every step it applied, in reverse): {}",
                            self.journal.steps[index].step.name(),
                            self.journal.id,
                            first_line(&message)
                        ));
                        self.journal.message = Some(message.clone());
                        failure = Some(message);
                        self.begin_undo();
                    }
                    Phase::Undo => {
                        return Ending::Failed {
                            failure: failure.unwrap_or_else(|| "the undo was asked for".into()),
                            undo_failure: Some(message),
                        };
                    }
                },
            }
        }
    }

    /// Runs one step: check it if a previous run started it, journal it as started, apply it,
    /// journal how it ended.
    async fn step(&mut self, phase: Phase, index: usize, printer: &mut Printer) -> StepOutcome {
        let record = self.journal.steps_of(phase)[index].clone();
        if record.status == StepStatus::Started {
            let checked = {
                let ctx = self.ctx();
                systems::check(&record.step, &ctx).await
            };
            match checked {
                Ok(Checked::Applied(seen)) => {
                    let outcome = StepOutcome::Done {
                        note: format!("found done ({seen})"),
                        results: Vec::new(),
                    };
                    return self.finish_step(phase, index, outcome, printer).await;
                }
                Ok(Checked::NotApplied) => {}
                Ok(Checked::Conflict(message)) => {
                    return StepOutcome::Failed {
                        message,
                        applied: Applied::Unknown,
                        results: Vec::new(),
                    };
                }
                Err(err) => {
                    return StepOutcome::Failed {
                        message: format!("cannot check whether it was done: {err:#}"),
                        applied: Applied::Unknown,
                        results: Vec::new(),
                    };
                }
            }
        }
        {
            let record = &mut self.journal.steps_of_mut(phase)[index];
            record.status = StepStatus::Started;
            record.started_at = Some(crate::model::clock::now_rfc3339());
            record.finished_at = None;
            record.note = None;
        }
        if let Err(err) = self.write_journal().await {
            // Not started after all: the journal on the cluster still says what it said.
            self.journal.steps_of_mut(phase)[index] = record;
            return StepOutcome::Failed {
                message: format!("{err:#}; stopped before the step"),
                applied: Applied::No,
                results: Vec::new(),
            };
        }
        let outcome = {
            let ctx = self.ctx();
            systems::apply(&record.step, &ctx, printer).await
        };
        test_hook::pause("after", record.step.name()).await;
        self.finish_step(phase, index, outcome, printer).await
    }

    /// Records how a step ended (and its rollout results).
    async fn finish_step(
        &mut self,
        phase: Phase,
        index: usize,
        outcome: StepOutcome,
        printer: &mut Printer,
    ) -> StepOutcome {
        let (status, note) = match &outcome {
            StepOutcome::Done { note, .. } => (StepStatus::Done, Some(note.clone())),
            StepOutcome::Failed {
                message, applied, ..
            } => (
                if *applied == Applied::No {
                    StepStatus::Failed
                } else {
                    StepStatus::Started
                },
                Some(format!("failed: {}", first_line(message))),
            ),
            StepOutcome::Interrupted => (StepStatus::Started, Some("interrupted".to_string())),
        };
        match &outcome {
            StepOutcome::Done { results, .. } | StepOutcome::Failed { results, .. } => {
                match phase {
                    Phase::Forward => self.forward_results.extend(results.iter().cloned()),
                    Phase::Undo => self.undo_results.extend(results.iter().cloned()),
                }
            }
            StepOutcome::Interrupted => {}
        }
        if let (StepOutcome::Done { note, .. }, OutputFormat::Text) = (&outcome, self.output) {
            let name = self.journal.steps_of(phase)[index].step.name();
            let undo = if phase == Phase::Undo { "undo " } else { "" };
            printer.note(&format!("  {undo}{name}: {note}"));
        }
        {
            let record = &mut self.journal.steps_of_mut(phase)[index];
            record.status = status;
            record.note = note;
            if status != StepStatus::Started {
                record.finished_at = Some(crate::model::clock::now_rfc3339());
            }
        }
        if let Err(err) = self.write_journal().await {
            let message = match &outcome {
                StepOutcome::Failed { message, .. } => format!("{message}\nand {err:#}"),
                _ => format!("the step ended, but {err:#}"),
            };
            return StepOutcome::Failed {
                message,
                applied: Applied::Unknown,
                results: Vec::new(),
            };
        }
        outcome
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            cluster: self.cluster,
            journal: &self.journal,
            new_values: &self.values,
            timeout: self.timeout,
            interrupt: &self.interrupt,
            output: self.output,
        }
    }

    /// A Kubernetes Event on the Secret, like controllers record: reason, message, no value.
    async fn record_event(&self, ending: &Ending, printer: &mut Printer) {
        let rotate = self.journal.action == "rotate";
        let (reason, ok) = match (ending, rotate) {
            (Ending::Succeeded, _) if self.journal.undoing => ("SecretRunRolledBack", true),
            (Ending::Succeeded, true) => ("SecretRotated", true),
            (Ending::Succeeded, false) => ("SecretRolledBack", true),
            (Ending::RolledBack { .. }, true) => ("SecretRotationFailed", false),
            (Ending::RolledBack { .. }, false) => ("SecretRollbackFailed", false),
            (Ending::Interrupted { .. }, _) => ("SecretRotationInterrupted", false),
            (Ending::Failed { .. }, true) | (Ending::Abandoned { .. }, true) => {
                ("SecretRotationFailed", false)
            }
            (Ending::Failed { .. }, false) | (Ending::Abandoned { .. }, false) => {
                ("SecretRollbackFailed", false)
            }
        };
        let steps: Vec<String> = self
            .journal
            .steps
            .iter()
            .chain(&self.journal.undo)
            .filter(|s| s.status != StepStatus::Pending)
            .map(|s| {
                format!(
                    "{} {}",
                    s.step.name(),
                    match s.status {
                        StepStatus::Done => "done",
                        StepStatus::Started
                            if s.note.as_deref().is_some_and(|n| n.starts_with("failed")) =>
                        {
                            "failed"
                        }
                        StepStatus::Started => "not finished",
                        StepStatus::Failed => "failed",
                        StepStatus::Pending => "pending",
                    }
                )
            })
            .collect();
        let message = format!(
            "kubectl-rotate: {} {} (run {}, by {}): {}; steps: {}; backup {}",
            self.journal.action,
            self.journal.key_names().join(", "),
            self.journal.id,
            self.journal.by,
            match ending {
                Ending::Succeeded if self.journal.undoing => "undone".to_string(),
                Ending::Succeeded => "succeeded".to_string(),
                Ending::RolledBack { .. } => "failed and rolled back".to_string(),
                Ending::Interrupted { signal } => format!("interrupted by {signal}, unfinished"),
                Ending::Failed { .. } => "failed, unfinished".to_string(),
                Ending::Abandoned { .. } => "failed, nothing changed".to_string(),
            },
            if steps.is_empty() {
                "none".to_string()
            } else {
                steps.join(", ")
            },
            self.journal.backup.as_deref().unwrap_or("none"),
        );
        if let Err(err) = record_event(
            self.cluster,
            &self.journal.namespace,
            &self.journal.secret,
            reason,
            ok,
            &message,
        )
        .await
        {
            printer.warn(&format!(
                "could not record an Event on {}: {err:#}",
                self.journal.object()
            ));
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// A Kubernetes Event on the Secret.
pub async fn record_event(
    cluster: &Cluster,
    namespace: &str,
    secret: &str,
    reason: &str,
    ok: bool,
    message: &str,
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    let current = secrets
        .get_opt(secret)
        .await
        .map_err(|e| anyhow!(short_error(&e)))?;
    let now = Time(jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{secret}.")),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            name: Some(secret.to_string()),
            namespace: Some(namespace.to_string()),
            uid: current.as_ref().and_then(|c| c.metadata.uid.clone()),
            resource_version: current
                .as_ref()
                .and_then(|c| c.metadata.resource_version.clone()),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(if ok { "Normal" } else { "Warning" }.to_string()),
        source: Some(EventSource {
            component: Some("kubectl-rotate".into()),
            host: None,
        }),
        reporting_component: Some("kubectl-rotate".into()),
        reporting_instance: Some("kubectl-rotate".into()),
        action: Some(
            if reason.contains("RolledBack") || reason.contains("Rollback") {
                "Rollback"
            } else {
                "Rotate"
            }
            .into(),
        ),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    };
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), namespace);
    events
        .create(&PostParams::default(), &event)
        .await
        .map_err(|e| anyhow!(short_error(&e)))?;
    Ok(())
}

/// Prints where a stopped run stands: each step applied or not, and the two commands that end
/// it.
pub fn print_unfinished(journal: &Journal, with_commands: bool, printer: &mut Printer) {
    printer.styled_note(
        &format!(
            "unfinished run {} of {} ({}):",
            journal.id,
            journal.object(),
            journal.state.word()
        ),
        Style::Bold,
    );
    for line in journal.step_lines() {
        printer.note(&line);
    }
    if !with_commands {
        return;
    }
    printer.note(&format!(
        "to finish it:  {}",
        journal::resume_command(&journal.namespace, &journal.secret)
    ));
    printer.note(&format!(
        "to undo it:    {}",
        journal::rollback_command(&journal.namespace, &journal.secret, &journal.id)
    ));
}

/// Test-only pauses at step boundaries, for the end-to-end tests that kill or interrupt a run
/// at a chosen point. Compiled into debug builds only: a release binary has no such hook.
///
/// `KUBECTL_ROTATE_TEST_PAUSE_AT=WHEN:STEP` (WHEN is `before` or `after`, STEP a step name such
/// as `patch`) and `KUBECTL_ROTATE_TEST_PAUSE_DIR=DIR`: at that point the run creates
/// `DIR/paused` and waits (at most 60 s) for `DIR/resume`. It only ever delays a run.
pub mod test_hook {
    #[cfg(debug_assertions)]
    pub async fn pause(when: &str, step: &str) {
        use std::time::{Duration, Instant};
        let (Some(at), Some(dir)) = (
            std::env::var_os("KUBECTL_ROTATE_TEST_PAUSE_AT"),
            std::env::var_os("KUBECTL_ROTATE_TEST_PAUSE_DIR"),
        ) else {
            return;
        };
        if at.to_string_lossy() != format!("{when}:{step}") {
            return;
        }
        let dir = std::path::PathBuf::from(dir);
        if std::fs::write(dir.join("paused"), b"").is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dir.join("resume").exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    #[cfg(not(debug_assertions))]
    pub async fn pause(_when: &str, _step: &str) {}
}

//! The writing part of a change, once it is refused by nothing and confirmed: the Secret's
//! lock (and, under it, the check for an unfinished run again), the run's journal as it starts,
//! and the engine that runs the steps; the ending goes to `conclude`.
//!
//! Not here: the steps' own I/O and the journal's writes (`engine::runner`), the refusals made
//! before asking (`guards`), finishing or undoing an unfinished run (`resume`).

use std::time::Instant;

use anyhow::Result;

use super::conclude::conclude;
use super::prompt::note;
use super::{Planned, RunOptions};
use crate::cluster::Cluster;
use crate::engine::lock::{self, Holder, LockGuard};
use crate::engine::runner::Engine;
use crate::interrupt::Interrupt;
use crate::plan::change::{Action, Change};
use crate::plan::journal::{self, Journal, JournalKey, RunState, StepRecord};
use crate::ui::Printer;
use crate::values::SecretValue;

/// Runs `change` under the Secret's lock with a journal, and concludes it.
pub(super) async fn run(
    cluster: &Cluster,
    change: Change,
    planned: Planned,
    options: &RunOptions,
    no_rollback: bool,
    started: Instant,
    printer: &mut Printer,
) -> Result<u8> {
    let lock = lock_secret(cluster, &change, &planned).await?;
    let journal = new_journal(&change, planned, no_rollback);
    let values: Vec<(String, SecretValue)> = change
        .data
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.after_value.clone()))
        .collect();
    let interrupt = Interrupt::install();
    note(printer, options, &heading(&journal));
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

/// Takes the Secret's lock at once (a new change never waits for another), then refuses an
/// unfinished run again: one may have begun since the first check.
async fn lock_secret(cluster: &Cluster, change: &Change, planned: &Planned) -> Result<LockGuard> {
    let holder = Holder::this_process(&change.record.id, &change.record.by);
    let lock = lock::acquire(
        cluster,
        &planned.namespace,
        &planned.secret,
        &holder,
        lock::Wait::No,
        |_| {},
    )
    .await?;
    if let Err(err) =
        crate::engine::runs::refuse_unfinished(cluster, &planned.namespace, &planned.secret).await
    {
        lock.release().await;
        return Err(err);
    }
    Ok(lock)
}

/// The journal of `change` as its run starts: every step pending. Only a rotation without
/// `--no-rollback` undoes itself on a failure; a rollback is never undone automatically.
fn new_journal(change: &Change, planned: Planned, no_rollback: bool) -> Journal {
    Journal {
        api_version: crate::model::names::API_VERSION.to_string(),
        kind: journal::KIND.to_string(),
        id: change.record.id.clone(),
        action: change.action.verb().to_string(),
        namespace: planned.namespace,
        secret: planned.secret,
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
        backup: planned.backup,
        record: change.record.clone(),
        previous_records: change.previous_records.clone(),
        auto_undo: change.action == Action::Rotate && !no_rollback,
        steps: planned.steps.into_iter().map(StepRecord::pending).collect(),
        undo: Vec::new(),
        undoing: false,
        state: RunState::Running,
        message: None,
    }
}

/// The line that starts a run's progress: its id and where its journal is.
fn heading(journal: &Journal) -> String {
    format!(
        "\nRun {} (journal Secret {}/{}):",
        journal.id,
        journal.namespace,
        journal::journal_name(&journal.secret, &journal.id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::fixtures;
    use crate::plan::steps::StepStatus;

    fn journal_of(change: &Change, no_rollback: bool) -> Journal {
        new_journal(change, fixtures::planned(change), no_rollback)
    }

    #[test]
    fn a_rotation_undoes_itself_on_a_failure_unless_no_rollback() {
        let change = fixtures::change();
        assert!(journal_of(&change, false).auto_undo);
        assert!(!journal_of(&change, true).auto_undo);
    }

    #[test]
    fn a_rollback_never_undoes_itself() {
        let mut change = fixtures::change();
        change.action = Action::RollBack;
        let journal = journal_of(&change, false);
        assert!(!journal.auto_undo);
        assert_eq!(journal.action, "roll back");
    }

    #[test]
    fn a_new_journal_has_every_planned_step_pending_and_no_value() {
        let change = fixtures::change();
        let planned = fixtures::planned(&change);
        let steps = planned.steps.clone();
        let backup = planned.backup.clone();
        let journal = new_journal(&change, planned, false);
        assert_eq!(journal.state, RunState::Running);
        assert!(!journal.undoing && journal.undo.is_empty());
        assert_eq!(
            journal
                .steps
                .iter()
                .map(|s| s.step.clone())
                .collect::<Vec<_>>(),
            steps
        );
        assert!(
            journal
                .steps
                .iter()
                .all(|s| s.status == StepStatus::Pending)
        );
        assert_eq!(journal.backup, backup);
        assert_eq!(journal.key_names(), ["openai-api-key"]);
        assert_eq!(journal.keys[0].after, change.data.keys[0].after);
        assert_eq!(
            (journal.namespace.as_str(), journal.secret.as_str()),
            ("prod", "app-secrets")
        );
        let text = serde_json::to_string(&journal).unwrap();
        assert!(!text.contains("sk-new-key"), "{text}");
    }

    #[test]
    fn the_run_heading_names_its_journal_secret() {
        let journal = journal_of(&fixtures::change(), false);
        assert_eq!(
            heading(&journal),
            format!(
                "\nRun {} (journal Secret prod/{}):",
                journal.id,
                journal::journal_name("app-secrets", &journal.id)
            )
        );
    }
}

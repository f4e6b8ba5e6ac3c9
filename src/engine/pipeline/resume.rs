//! Finishing or undoing an unfinished run (`resume`, `rollback --run ID`): find its journal,
//! say so when there is nothing to do, show where it stopped, confirm, take the Secret's lock
//! over once the process that held it is gone, read the journal again under the lock, and run
//! the rest with the engine; the ending goes to `conclude`, an undo that finished being the
//! success asked for.
//!
//! Not here: starting a new run (`run`), listing unfinished runs (`engine::runs`).

use std::time::Instant;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use super::conclude::conclude;
use super::prompt::{ask, note};
use super::{DryRun, RunOptions};
use crate::cluster::Cluster;
use crate::engine::lock::{self, Holder};
use crate::engine::runner::{self, Ending, Engine};
use crate::interrupt::Interrupt;
use crate::plan::journal::{self, Journal};
use crate::plan::steps::{self, Step, StepStatus};
use crate::ui::Printer;

/// What to do with an unfinished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continue {
    /// Finish it: check the step it stopped in, then apply the rest (`resume`).
    Finish,
    /// Undo every step that may have been applied, in reverse (`rollback --run ID`).
    Undo { id: String },
}

impl Continue {
    /// The verb for questions and refusals.
    fn verb(&self) -> &'static str {
        match self {
            Continue::Finish => "finish",
            Continue::Undo { .. } => "undo",
        }
    }
}

/// The Secret whose run is continued, and its Secrets API.
struct Target<'a> {
    namespace: String,
    secret: &'a str,
    /// `Secret NAMESPACE/NAME`, for messages.
    object: String,
    api: Api<Secret>,
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
    let target = Target {
        object: format!("Secret {namespace}/{secret}"),
        api: Api::namespaced(cluster.client.clone(), &namespace),
        namespace,
        secret,
    };
    let Some(stored) = find_run(cluster, &target, &how, printer).await? else {
        return Ok(crate::exit::SUCCESS);
    };
    let (journal, _) = journal::from_secret(&stored)?;
    if let Some(done) = nothing_to_do(&journal, secret, &target.object)? {
        printer.note(&done);
        return Ok(crate::exit::SUCCESS);
    }
    runner::print_unfinished(&journal, false, printer);
    if options.dry_run != DryRun::None {
        return dry_run(&target, &stored, &journal, &how, options, printer).await;
    }
    if !options.yes {
        confirm(printer, &how, &journal, &target.object)?;
    }
    let Some(mut engine) = take_over(cluster, &target, &journal, options, printer).await? else {
        return Ok(crate::exit::SUCCESS);
    };
    if matches!(how, Continue::Undo { .. }) {
        engine.begin_undo();
    }
    note(printer, options, &heading(&engine.journal));
    let (ending, engine) = engine.run(printer).await;
    conclude(
        cluster,
        options,
        as_asked(ending),
        &engine,
        &[],
        started,
        printer,
    )
    .await
}

/// The journal Secret of the run to continue: for `resume`, the Secret's unfinished run (none:
/// said so, and `None`); for `rollback --run ID`, run ID's, finished or not.
async fn find_run(
    cluster: &Cluster,
    target: &Target<'_>,
    how: &Continue,
    printer: &mut Printer,
) -> Result<Option<Secret>> {
    let (namespace, secret, object) = (&target.namespace, target.secret, &target.object);
    match how {
        Continue::Finish => {
            let mut runs =
                crate::engine::runs::unfinished_journal_secrets(cluster, namespace, Some(secret))
                    .await?;
            if runs.is_empty() {
                printer.note(&format!(
                    "{object} has no unfinished run; nothing to resume."
                ));
                return Ok(None);
            }
            Ok(Some(runs.remove(0)))
        }
        Continue::Undo { id } => {
            let name = journal::journal_name(secret, id);
            let Some(stored) = target.api.get_opt(&name).await.map_err(|e| {
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
            Ok(Some(stored))
        }
    }
}

/// Whether the run in `journal` leaves nothing to continue: an error when it belongs to
/// another Secret than `secret`, the note to print when it is already finished.
fn nothing_to_do(journal: &Journal, secret: &str, object: &str) -> Result<Option<String>> {
    if journal.secret != secret {
        bail!(
            "run {} belongs to Secret {}, not {object}",
            journal.id,
            journal.secret
        );
    }
    Ok(journal.state.finished().then(|| {
        format!(
            "Run {} of {object} is already finished ({}); nothing to do.",
            journal.id,
            journal.state.word()
        )
    }))
}

/// Asks whether to finish or undo the run in `journal`; without a terminal, fails at once
/// with the way forward instead of hanging.
fn confirm(printer: &mut Printer, how: &Continue, journal: &Journal, object: &str) -> Result<()> {
    let verb = how.verb();
    ask(
        printer,
        &format!(
            "{} run {} of {object}?",
            crate::ui::preview::capitalize(verb),
            journal.id
        ),
        &format!(
            "refusing to {verb} run {} of {object} without confirmation: there is no terminal to ask on; \
             review the steps above, then pass -y/--yes",
            journal.id
        ),
    )
}

/// Takes the Secret's lock, waiting for a lock whose holder is gone to expire, and loads the
/// run from its journal read again under the lock; `None` (said so) when the run finished
/// meanwhile.
async fn take_over<'a>(
    cluster: &'a Cluster,
    target: &Target<'_>,
    journal: &Journal,
    options: &RunOptions,
    printer: &mut Printer,
) -> Result<Option<Engine<'a>>> {
    let namespace = &target.namespace;
    let holder = Holder::this_process(&journal.id, &cluster.identity().await);
    let lock = lock::acquire(
        cluster,
        namespace,
        target.secret,
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
    let name = journal::journal_name(target.secret, &journal.id);
    let stored = match target.api.get(&name).await {
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
        return Ok(None);
    }
    Ok(Some(Engine::load(
        cluster,
        &stored,
        lock,
        Interrupt::install(),
        options.timeout,
        options.output,
    )?))
}

/// A dry run of continuing the run in `journal` (read from `stored`): the steps it would run,
/// then, for `server`, the journal's update sent with `dryRun=All`; no lock is taken, nothing
/// is stored, no database or Redis server is reached.
async fn dry_run(
    target: &Target<'_>,
    stored: &Secret,
    journal: &Journal,
    how: &Continue,
    options: &RunOptions,
    printer: &mut Printer,
) -> Result<u8> {
    for line in would_do(journal, how) {
        note(printer, options, &line);
    }
    if options.dry_run == DryRun::Server {
        let name = journal::journal_name(target.secret, &journal.id);
        let params = PostParams {
            dry_run: true,
            field_manager: Some(crate::model::names::FIELD_MANAGER.to_string()),
        };
        target
            .api
            .replace(&name, &params, stored)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "the API server refused an update of the journal Secret {}/{name} (sent with dryRun=All): {}; \
                     a real {} of the run would fail the same way",
                    target.namespace,
                    crate::cluster::short_error(&e),
                    how.verb()
                )
            })?;
    }
    note(printer, options, closing_line(options.dry_run));
    Ok(crate::exit::SUCCESS)
}

/// What continuing the run in `journal` would run, in words: for an undo not begun yet, the
/// undo of every step that may have been applied, in reverse; otherwise the steps of the
/// current phase that are not done (the one it stopped in is checked first).
fn would_do(journal: &Journal, how: &Continue) -> Vec<String> {
    let keys = journal.key_names();
    let (title, planned): (String, Vec<Step>) = match how {
        Continue::Undo { .. } if !journal.undoing => {
            let forward: Vec<_> = journal
                .steps
                .iter()
                .map(|s| (s.step.clone(), s.status))
                .collect();
            let now = crate::model::clock::now_rfc3339_millis();
            (
                format!(
                    "\nWould undo run {} (every step that may have been applied, in reverse):",
                    journal.id
                ),
                steps::plan_undo(&forward, journal.backup.as_deref(), &now),
            )
        }
        _ => (
            format!(
                "\nWould {} run {} from {}:",
                if journal.undoing {
                    "go on undoing"
                } else {
                    "finish"
                },
                journal.id,
                journal.where_stopped()
            ),
            journal
                .steps_of(journal.phase())
                .iter()
                .filter(|s| s.status != StepStatus::Done)
                .map(|s| s.step.clone())
                .collect(),
        ),
    };
    let mut lines = vec![title];
    lines.extend(
        planned
            .iter()
            .enumerate()
            .map(|(i, step)| format!("  {}. {}", i + 1, step.describe(&journal.secret, &keys))),
    );
    lines
}

/// The last line of a dry run of a continued run: what it touched.
fn closing_line(mode: DryRun) -> &'static str {
    match mode {
        DryRun::Server => {
            "\nDry run (server): the API server accepted an update of the run's journal; nothing was stored, no lock taken."
        }
        _ => {
            "\nDry run (client): nothing was written; the API server was only read (the run's journal)."
        }
    }
}

/// The line that starts the continued run's progress.
fn heading(journal: &Journal) -> String {
    format!(
        "\n{} run {}:",
        crate::ui::preview::capitalize(if journal.undoing {
            "undoing"
        } else {
            "resuming"
        }),
        journal.id
    )
}

/// Undoing is what was asked for here: a finished undo is a success, whatever failure the run
/// undid.
fn as_asked(ending: Ending) -> Ending {
    match ending {
        Ending::RolledBack { .. } => Ending::Succeeded,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::fixtures;
    use crate::plan::journal::RunState;

    #[test]
    fn an_unfinished_run_of_the_secret_is_continued() {
        let mut journal = fixtures::journal();
        for state in [RunState::Running, RunState::Interrupted, RunState::Failed] {
            journal.state = state;
            assert_eq!(
                nothing_to_do(&journal, "app-secrets", "Secret prod/app-secrets").unwrap(),
                None
            );
        }
    }

    #[test]
    fn a_finished_run_is_said_to_be_finished_and_left_alone() {
        let mut journal = fixtures::journal();
        journal.state = RunState::RolledBack;
        assert_eq!(
            nothing_to_do(&journal, "app-secrets", "Secret prod/app-secrets")
                .unwrap()
                .as_deref(),
            Some(
                "Run 20261126-040000-ab12 of Secret prod/app-secrets is already finished (rolled back); nothing to do."
            )
        );
    }

    #[test]
    fn a_run_of_another_secret_is_refused() {
        let journal = fixtures::journal();
        let err = nothing_to_do(&journal, "other", "Secret prod/other")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "run 20261126-040000-ab12 belongs to Secret app-secrets, not Secret prod/other"
        );
    }

    #[test]
    fn a_finished_undo_is_the_success_asked_for() {
        let rolled_back = Ending::RolledBack {
            failure: "watch failed".into(),
        };
        assert_eq!(as_asked(rolled_back), Ending::Succeeded);
        let failed = Ending::Failed {
            failure: "restore failed".into(),
            undo_failure: None,
        };
        assert_eq!(as_asked(failed.clone()), failed);
        let interrupted = Ending::Interrupted {
            signal: "SIGTERM".into(),
        };
        assert_eq!(as_asked(interrupted.clone()), interrupted);
    }

    #[test]
    fn the_heading_says_whether_the_run_is_resumed_or_undone() {
        let mut journal = fixtures::journal();
        assert_eq!(heading(&journal), "\nResuming run 20261126-040000-ab12:");
        journal.undoing = true;
        assert_eq!(heading(&journal), "\nUndoing run 20261126-040000-ab12:");
    }

    #[test]
    fn without_a_terminal_finishing_or_undoing_a_run_is_refused_with_the_way_forward() {
        let journal = fixtures::journal();
        let (mut printer, _) = Printer::capture(crate::ui::printer::ColorChoice::default());
        let undo = Continue::Undo {
            id: journal.id.clone(),
        };
        let err = confirm(&mut printer, &undo, &journal, "Secret prod/app-secrets")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "refusing to undo run 20261126-040000-ab12 of Secret prod/app-secrets without confirmation: \
             there is no terminal to ask on; review the steps above, then pass -y/--yes"
        );
    }

    /// The fixture's run stopped in its second step: the first done, the second started.
    fn stopped_in_the_second_step() -> Journal {
        let mut journal = fixtures::journal();
        journal.state = RunState::Interrupted;
        for (i, record) in journal.steps.iter_mut().enumerate() {
            record.status = match i {
                0 => StepStatus::Done,
                1 => StepStatus::Started,
                _ => StepStatus::Pending,
            };
        }
        journal
    }

    #[test]
    fn a_dry_run_of_resume_lists_the_steps_not_done_from_where_it_stopped() {
        let journal = stopped_in_the_second_step();
        let keys = journal.key_names();
        let lines = would_do(&journal, &Continue::Finish);
        assert_eq!(
            lines[0],
            format!(
                "\nWould finish run {} from {}:",
                journal.id,
                journal.where_stopped()
            )
        );
        let expected: Vec<String> = journal.steps[1..]
            .iter()
            .enumerate()
            .map(|(i, r)| format!("  {}. {}", i + 1, r.step.describe("app-secrets", &keys)))
            .collect();
        assert!(expected.len() >= 2, "{expected:?}");
        assert_eq!(lines[1..], expected[..]);
    }

    #[test]
    fn a_dry_run_of_an_undo_lists_the_undo_of_the_steps_that_may_have_been_applied() {
        let journal = stopped_in_the_second_step();
        let keys = journal.key_names();
        let lines = would_do(&journal, &Continue::Undo { id: "x".into() });
        assert_eq!(
            lines[0],
            format!(
                "\nWould undo run {} (every step that may have been applied, in reverse):",
                journal.id
            )
        );
        let forward: Vec<_> = journal
            .steps
            .iter()
            .map(|s| (s.step.clone(), s.status))
            .collect();
        let undo = steps::plan_undo(&forward, journal.backup.as_deref(), "T");
        assert!(!undo.is_empty());
        assert_eq!(lines.len(), 1 + undo.len());
        for (line, step) in lines[1..].iter().zip(&undo) {
            assert!(
                line.ends_with(&step.describe("app-secrets", &keys)),
                "{line}"
            );
        }
        // An undo already begun goes on with its own steps not done.
        let mut begun = journal.clone();
        begun.undoing = true;
        begun.undo = undo.into_iter().map(journal::StepRecord::pending).collect();
        begun.undo[0].status = StepStatus::Done;
        let lines = would_do(&begun, &Continue::Undo { id: "x".into() });
        assert!(
            lines[0].starts_with("\nWould go on undoing run "),
            "{}",
            lines[0]
        );
        assert_eq!(lines.len(), begun.undo.len());
    }

    #[test]
    fn a_dry_run_says_what_it_touched() {
        assert!(closing_line(DryRun::Client).contains("nothing was written"));
        assert!(
            closing_line(DryRun::Server).contains("dryRun")
                || closing_line(DryRun::Server).contains("nothing was stored")
        );
        assert_ne!(closing_line(DryRun::Client), closing_line(DryRun::Server));
    }

    #[test]
    fn the_verb_names_what_is_asked() {
        assert_eq!(Continue::Finish.verb(), "finish");
        assert_eq!(Continue::Undo { id: "x".into() }.verb(), "undo");
    }
}

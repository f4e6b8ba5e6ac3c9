//! How a run's ending reaches the user: old backups pruned after a success, the report, the
//! closing lines of a success, and for every other ending the error (and exit code) saying
//! what happened, what is applied now and the command that goes on from there. One function
//! per ending: a success, a finished undo, a failure rolled back, a failure before anything
//! changed, an interruption, and a failure left for `resume` or `rollback --run`.
//!
//! Not here: deciding the ending (the runner does, step by step) and the report's fields
//! (`report`).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use super::RunOptions;
use super::report::{self, EndedRun};
use crate::cluster::Cluster;
use crate::engine::runner::{self, Ending, Engine};
use crate::interrupt;
use crate::plan::change::Action;
use crate::plan::journal::{self, Journal};
use crate::plan::patch::NotRestarted;
use crate::plan::rollout::{Outcome, WorkloadResult};
use crate::ui::printer::OutputFormat;
use crate::ui::{Printer, Style};

/// Reports how a run ended, prunes old backups after a success, and turns anything but a
/// success into the error (and exit code) the user sees.
pub async fn conclude(
    cluster: &Cluster,
    options: &RunOptions,
    ending: Ending,
    engine: &Engine<'_>,
    not_restarted: &[NotRestarted],
    started: Instant,
    printer: &mut Printer,
) -> Result<u8> {
    let run = EndedRun {
        journal: &engine.journal,
        forward_results: &engine.forward_results,
        undo_results: &engine.undo_results,
        not_restarted,
    };
    if prunes_backups(&ending, run.journal) {
        let journal = run.journal;
        crate::engine::runs::prune(
            cluster,
            &journal.namespace,
            &journal.secret,
            options.keep,
            &journal.id,
            printer,
        )
        .await;
    }
    end(&run, ending, options, started, printer)
}

/// Whether the ending keeps only the newest `--keep` backups: a change that succeeded, not an
/// undo (which restored from a backup) nor a run that may still need its backup.
fn prunes_backups(ending: &Ending, journal: &Journal) -> bool {
    *ending == Ending::Succeeded && !journal.undoing
}

/// Everything `conclude` does after pruning: prints the report and the ending's lines, and
/// returns the exit code of a success or the error of any other ending. The report comes
/// first, so that `-o json` prints it whatever the ending.
fn end(
    run: &EndedRun<'_>,
    ending: Ending,
    options: &RunOptions,
    started: Instant,
    printer: &mut Printer,
) -> Result<u8> {
    let report = report::ended(run, &ending);
    match ending {
        Ending::Succeeded => {
            if options.output == OutputFormat::Text {
                if run.journal.undoing {
                    undone(run, printer);
                } else {
                    succeeded(run, started.elapsed(), printer);
                }
            }
            report::finish(printer, options, report, started)
        }
        Ending::RolledBack { failure } => {
            report::finish(printer, options, report, started)?;
            Err(rolled_back(run, &failure))
        }
        Ending::Abandoned { failure } => {
            report::finish(printer, options, report, started)?;
            Err(anyhow!("{failure}"))
        }
        Ending::Interrupted { signal } => {
            report::finish(printer, options, report, started)?;
            runner::print_unfinished(run.journal, true, printer);
            Err(interrupted(run.journal, &signal))
        }
        Ending::Failed {
            failure,
            undo_failure,
        } => {
            report::finish(printer, options, report, started)?;
            runner::print_unfinished(run.journal, true, printer);
            if undo_failure.is_some() {
                printer.styled_note("!!! THE AUTOMATIC ROLLBACK FAILED !!!", Style::Bad);
            }
            Err(failed(run, &failure, undo_failure.as_deref()))
        }
    }
}

/// A finished undo: the Secret holds the old values again, and which consumers rolled out.
fn undone(run: &EndedRun<'_>, printer: &mut Printer) {
    let journal = run.journal;
    printer.line("");
    printer.styled_line(
        &format!(
            "Undid run {}: {} holds the old value of {} again{}.",
            journal.id,
            journal.object(),
            journal.key_names().join(", "),
            if run.undo_results.is_empty() {
                String::new()
            } else {
                format!(
                    "; rolled out: {}",
                    run.undo_results
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

/// A successful change: each key's fingerprints, the time it took, and the consumers rolled
/// out (or that none was restarted, so pods keep the old value until they restart).
fn succeeded(run: &EndedRun<'_>, elapsed: Duration, printer: &mut Printer) {
    let journal = run.journal;
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
            "{} {summary} in {} in {:.1}s.",
            run.action().past(),
            journal.object(),
            elapsed.as_secs_f64()
        ),
        Style::Good,
    );
    if run.forward_results.is_empty() {
        if !run.not_restarted.is_empty() {
            printer.line("No workload was restarted: pods keep the old value until they restart.");
        }
    } else {
        // A key-ring run rolls each consumer out twice: name it once.
        let mut rolled: Vec<String> = Vec::new();
        for reference in run.forward_results.iter().map(WorkloadResult::reference) {
            if !rolled.contains(&reference) {
                rolled.push(reference);
            }
        }
        printer.line(&format!("Rolled out: {}.", rolled.join(", ")));
    }
}

/// A failure undone at once: what failed, where the old value came from, and whether the
/// consumers are healthy again.
fn rolled_back(run: &EndedRun<'_>, failure: &str) -> anyhow::Error {
    let journal = run.journal;
    let object = journal.object();
    let restored = journal.backup.as_deref().unwrap_or("the run's record");
    let still_failing: Vec<String> = run
        .undo_results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed { message, .. } => Some(format!("  {}: {message}", r.reference())),
            Outcome::RolledOut { .. } => None,
        })
        .collect();
    let consumers = if run.undo_results.is_empty() {
        "no consumer had been restarted".to_string()
    } else if still_failing.is_empty() {
        "every restarted consumer is rolled out and ready".to_string()
    } else {
        format!(
            "but consumers are still failing after the restore:\n{}\ninspect them with `kubectl get pods -n {}`",
            still_failing.join("\n"),
            journal.namespace
        )
    };
    anyhow!(
        "the {} of {} in {object} failed:\n{}\nrolled back: {object} holds the old value again \
         (from {restored}) and {consumers}",
        run.action().noun(),
        journal.key_names().join(", "),
        indent(failure)
    )
}

/// Ctrl-C or SIGTERM at a step boundary: exit code 130, and the two ways to end the run.
fn interrupted(journal: &Journal, signal: &str) -> anyhow::Error {
    let (namespace, name) = (&journal.namespace, &journal.secret);
    anyhow::Error::new(crate::ExitWith {
        code: interrupt::EXIT_INTERRUPTED,
        message: format!(
            "interrupted by {signal}: run {} of {} stopped at a step boundary, unfinished; \
             finish it with `{}` or undo it with `{}`",
            journal.id,
            journal.object(),
            journal::resume_command(namespace, name),
            journal::rollback_command(namespace, name, &journal.id)
        ),
    })
}

/// A failure left unfinished (`--no-rollback`, a rollback's own failure, or an undo that
/// failed): what failed, what the Secret holds, and the commands to undo or finish the run.
fn failed(run: &EndedRun<'_>, failure: &str, undo_failure: Option<&str>) -> anyhow::Error {
    let journal = run.journal;
    let action = run.action();
    let (namespace, name) = (&journal.namespace, &journal.secret);
    let object = journal.object();
    let keys = journal.key_names().join(", ");
    let resume = journal::resume_command(namespace, name);
    let rollback = journal::rollback_command(namespace, name, &journal.id);
    match undo_failure {
        Some(undo) => anyhow!(
            "the {} of {keys} in {object} failed:\n{}\nand the automatic rollback failed too:\n{}\n\
             run {} is unfinished; once the cause is fixed, undo it with:\n  {rollback}\nor finish it with:\n  {resume}",
            action.noun(),
            indent(failure),
            indent(undo),
            journal.id
        ),
        None => anyhow!(
            "the {} of {keys} in {object} failed:\n{}\n{object} keeps the new value{}; run {} is unfinished. \
             To restore the old value and restart the consumers run:\n  {rollback}\nor, once the cause is fixed, finish it with:\n  {resume}",
            action.noun(),
            indent(failure),
            if journal.auto_undo || action != Action::Rotate {
                ""
            } else {
                " (--no-rollback)"
            },
            journal.id
        ),
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::fixtures;
    use crate::ui::printer::ColorChoice;

    /// What `end` returns and prints for `ending`: the exit code or the error's, the error's
    /// message, stdout and stderr.
    fn ended(run: &EndedRun<'_>, ending: Ending) -> (u8, String, String, String) {
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        let result = end(
            run,
            ending,
            &fixtures::options(),
            Instant::now(),
            &mut printer,
        );
        let (code, message) = match result {
            Ok(code) => (code, String::new()),
            Err(err) => (crate::exit_code_of(&err), err.to_string()),
        };
        (code, message, captured.stdout(), captured.stderr())
    }

    #[test]
    fn each_ending_maps_to_its_exit_code() {
        let journal = fixtures::journal();
        let run = fixtures::ended_run(&journal, &[]);
        let codes = [
            (Ending::Succeeded, crate::exit::SUCCESS),
            (
                Ending::RolledBack {
                    failure: "x".into(),
                },
                crate::exit::ERROR,
            ),
            (
                Ending::Abandoned {
                    failure: "x".into(),
                },
                crate::exit::ERROR,
            ),
            (
                Ending::Failed {
                    failure: "x".into(),
                    undo_failure: Some("y".into()),
                },
                crate::exit::ERROR,
            ),
            (
                Ending::Interrupted {
                    signal: "SIGINT".into(),
                },
                interrupt::EXIT_INTERRUPTED,
            ),
        ];
        for (ending, code) in codes {
            assert_eq!(ended(&run, ending.clone()).0, code, "{ending:?}");
        }
    }

    #[test]
    fn only_a_successful_change_prunes_old_backups() {
        let mut journal = fixtures::journal();
        assert!(prunes_backups(&Ending::Succeeded, &journal));
        let abandoned = Ending::Abandoned {
            failure: "x".into(),
        };
        assert!(!prunes_backups(&abandoned, &journal));
        journal.undoing = true;
        assert!(!prunes_backups(&Ending::Succeeded, &journal));
    }

    #[test]
    fn a_success_names_each_key_with_its_fingerprints_and_the_rollouts() {
        let journal = fixtures::journal();
        let forward = [fixtures::rolled_out("api")];
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        succeeded(
            &fixtures::ended_run(&journal, &forward),
            Duration::from_millis(2340),
            &mut printer,
        );
        let key = &journal.keys[0];
        assert_eq!(
            captured.stdout(),
            format!(
                "\nRotated openai-api-key (sha256:{} -> sha256:{}) in Secret prod/app-secrets in 2.3s.\n\
                 Rolled out: deployment/api.\n",
                key.before.as_ref().unwrap().fingerprint,
                key.after.fingerprint
            )
        );
    }

    #[test]
    fn a_key_ring_run_names_each_consumer_it_rolled_out_twice_once() {
        let journal = fixtures::journal();
        let forward = [
            fixtures::rolled_out("api"),
            fixtures::rolled_out("worker"),
            fixtures::rolled_out("api"),
        ];
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        succeeded(
            &fixtures::ended_run(&journal, &forward),
            Duration::ZERO,
            &mut printer,
        );
        assert!(
            captured
                .stdout()
                .ends_with("\nRolled out: deployment/api, deployment/worker.\n"),
            "{}",
            captured.stdout()
        );
    }

    #[test]
    fn a_success_without_restarts_says_pods_keep_the_old_value() {
        let mut journal = fixtures::journal();
        journal.keys[0].before = None;
        journal.action = "roll back".into();
        let left = [fixtures::not_restarted("report")];
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        let run = EndedRun {
            not_restarted: &left,
            ..fixtures::ended_run(&journal, &[])
        };
        succeeded(&run, Duration::ZERO, &mut printer);
        assert_eq!(
            captured.stdout(),
            format!(
                "\nRolled back openai-api-key (new, sha256:{}) in Secret prod/app-secrets in 0.0s.\n\
                 No workload was restarted: pods keep the old value until they restart.\n",
                journal.keys[0].after.fingerprint
            )
        );
    }

    #[test]
    fn a_success_that_restarted_nothing_and_left_nothing_says_no_more() {
        let journal = fixtures::journal();
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        succeeded(
            &fixtures::ended_run(&journal, &[]),
            Duration::ZERO,
            &mut printer,
        );
        assert_eq!(
            captured.stdout().lines().count(),
            2,
            "{}",
            captured.stdout()
        );
    }

    #[test]
    fn a_finished_undo_says_the_secret_holds_the_old_value_again() {
        let mut journal = fixtures::journal();
        journal.undoing = true;
        let undo = [fixtures::rolled_out("api")];
        let run = EndedRun {
            undo_results: &undo,
            ..fixtures::ended_run(&journal, &[])
        };
        let (code, _, stdout, _) = ended(&run, Ending::Succeeded);
        assert_eq!(code, crate::exit::SUCCESS);
        assert_eq!(
            stdout,
            "\nUndid run 20261126-040000-ab12: Secret prod/app-secrets holds the old value of \
             openai-api-key again; rolled out: deployment/api.\n"
        );
    }

    #[test]
    fn with_json_output_a_success_prints_the_report_alone() {
        let journal = fixtures::journal();
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        let options = fixtures::json_options();
        end(
            &fixtures::ended_run(&journal, &[]),
            Ending::Succeeded,
            &options,
            Instant::now(),
            &mut printer,
        )
        .unwrap();
        let report: serde_json::Value = serde_json::from_str(&captured.stdout()).unwrap();
        assert_eq!(report["state"], "succeeded");
        assert_eq!(captured.stderr(), "");
    }

    #[test]
    fn a_rolled_back_failure_says_where_the_old_value_came_from() {
        let journal = fixtures::journal();
        let (_, message, stdout, _) = ended(
            &fixtures::ended_run(&journal, &[]),
            Ending::RolledBack {
                failure: "deployment/api: CrashLoopBackOff\nlast log: bad key".into(),
            },
        );
        assert_eq!(
            message,
            format!(
                "the rotation of openai-api-key in Secret prod/app-secrets failed:\n  deployment/api: \
                 CrashLoopBackOff\n  last log: bad key\nrolled back: Secret prod/app-secrets holds the old \
                 value again (from {}) and no consumer had been restarted",
                journal.backup.as_deref().unwrap()
            )
        );
        assert_eq!(stdout, "");
    }

    #[test]
    fn a_rolled_back_failure_says_whether_the_consumers_recovered() {
        let mut journal = fixtures::journal();
        journal.backup = None;
        let healthy = [fixtures::rolled_out("api")];
        let (_, message, _, _) = ended(
            &EndedRun {
                undo_results: &healthy,
                ..fixtures::ended_run(&journal, &[])
            },
            Ending::RolledBack {
                failure: "x".into(),
            },
        );
        assert!(
            message.ends_with(
                "(from the run's record) and every restarted consumer is rolled out and ready"
            ),
            "{message}"
        );

        let failing = [fixtures::rolled_out("api"), fixtures::failed("worker")];
        let (_, message, _, _) = ended(
            &EndedRun {
                undo_results: &failing,
                ..fixtures::ended_run(&journal, &[])
            },
            Ending::RolledBack {
                failure: "x".into(),
            },
        );
        assert!(
            message.ends_with(
                "but consumers are still failing after the restore:\n  deployment/worker: CrashLoopBackOff\n\
                 inspect them with `kubectl get pods -n prod`"
            ),
            "{message}"
        );
    }

    #[test]
    fn an_abandoned_run_is_its_failure_alone() {
        let journal = fixtures::journal();
        let (code, message, _, stderr) = ended(
            &fixtures::ended_run(&journal, &[]),
            Ending::Abandoned {
                failure: "cannot back up Secret prod/app-secrets: forbidden".into(),
            },
        );
        assert_eq!(code, crate::exit::ERROR);
        assert_eq!(message, "cannot back up Secret prod/app-secrets: forbidden");
        assert_eq!(stderr, "");
    }

    #[test]
    fn an_interrupted_run_shows_where_it_stopped_and_how_to_end_it() {
        let journal = fixtures::journal();
        let (code, message, _, stderr) = ended(
            &fixtures::ended_run(&journal, &[]),
            Ending::Interrupted {
                signal: "SIGINT".into(),
            },
        );
        assert_eq!(code, interrupt::EXIT_INTERRUPTED);
        let resume = journal::resume_command("prod", "app-secrets");
        let rollback = journal::rollback_command("prod", "app-secrets", &journal.id);
        assert_eq!(
            message,
            format!(
                "interrupted by SIGINT: run 20261126-040000-ab12 of Secret prod/app-secrets stopped at a \
                 step boundary, unfinished; finish it with `{resume}` or undo it with `{rollback}`"
            )
        );
        assert!(
            stderr.starts_with("unfinished run 20261126-040000-ab12 of Secret prod/app-secrets"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("to undo it:    {rollback}\n")),
            "{stderr}"
        );
    }

    #[test]
    fn a_failure_left_unfinished_by_no_rollback_says_so_and_how_to_go_on() {
        let mut journal = fixtures::journal();
        journal.auto_undo = false;
        let (code, message, _, stderr) = ended(
            &fixtures::ended_run(&journal, &[]),
            Ending::Failed {
                failure: "watch: deployment/api timed out".into(),
                undo_failure: None,
            },
        );
        assert_eq!(code, crate::exit::ERROR);
        let resume = journal::resume_command("prod", "app-secrets");
        let rollback = journal::rollback_command("prod", "app-secrets", &journal.id);
        assert_eq!(
            message,
            format!(
                "the rotation of openai-api-key in Secret prod/app-secrets failed:\n  watch: deployment/api timed out\n\
                 Secret prod/app-secrets keeps the new value (--no-rollback); run 20261126-040000-ab12 is \
                 unfinished. To restore the old value and restart the consumers run:\n  {rollback}\n\
                 or, once the cause is fixed, finish it with:\n  {resume}"
            )
        );
        assert!(!stderr.contains("AUTOMATIC ROLLBACK FAILED"), "{stderr}");
    }

    #[test]
    fn a_failure_of_a_rollback_never_blames_no_rollback() {
        let mut journal = fixtures::journal();
        journal.auto_undo = false;
        journal.action = "roll back".into();
        let (_, message, _, _) = ended(
            &fixtures::ended_run(&journal, &[]),
            Ending::Failed {
                failure: "x".into(),
                undo_failure: None,
            },
        );
        assert!(
            message
                .starts_with("the rollback of openai-api-key in Secret prod/app-secrets failed:"),
            "{message}"
        );
        assert!(message.contains("keeps the new value; run"), "{message}");
    }

    #[test]
    fn a_failed_automatic_rollback_is_shouted_and_both_failures_are_named() {
        let journal = fixtures::journal();
        let (code, message, _, stderr) = ended(
            &fixtures::ended_run(&journal, &[]),
            Ending::Failed {
                failure: "watch failed".into(),
                undo_failure: Some("restore failed".into()),
            },
        );
        assert_eq!(code, crate::exit::ERROR);
        assert!(
            stderr.ends_with("!!! THE AUTOMATIC ROLLBACK FAILED !!!\n"),
            "{stderr}"
        );
        assert!(
            message.starts_with(
                "the rotation of openai-api-key in Secret prod/app-secrets failed:\n  watch failed\n\
                 and the automatic rollback failed too:\n  restore failed\nrun 20261126-040000-ab12 is \
                 unfinished; once the cause is fixed, undo it with:\n"
            ),
            "{message}"
        );
    }

    #[test]
    fn with_json_output_a_failure_prints_its_report_before_the_error() {
        let journal = fixtures::journal();
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        let options = fixtures::json_options();
        let err = end(
            &fixtures::ended_run(&journal, &[]),
            Ending::Abandoned {
                failure: "x".into(),
            },
            &options,
            Instant::now(),
            &mut printer,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "x");
        let report: serde_json::Value = serde_json::from_str(&captured.stdout()).unwrap();
        assert_eq!(
            (report["state"].as_str(), report["succeeded"].as_bool()),
            (Some("abandoned"), Some(false))
        );
    }
}

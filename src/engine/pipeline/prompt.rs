//! How the pipeline speaks outside its report: progress notes (on stdout for people, on stderr
//! when stdout carries the `-o json` report) and the yes/no question before a change or before
//! finishing or undoing a run, which without a terminal is a refusal saying how to go on.
//!
//! Not here: the report itself and its printing (`report`), the preview (`preview`).

use std::io::IsTerminal;

use anyhow::{Context as _, Result, bail};

use super::RunOptions;
use crate::plan::change::Change;
use crate::ui::Printer;
use crate::ui::printer::OutputFormat;

/// A line of progress: with `-o json`, on stderr, so that stdout holds only the report.
pub(super) fn note(printer: &mut Printer, options: &RunOptions, text: &str) {
    match options.output {
        OutputFormat::Text => printer.line(text),
        OutputFormat::Json => printer.note(text),
    }
}

/// Asks whether to run `change` on `object`; without a terminal, fails at once with the way
/// forward instead of hanging.
pub(super) fn confirm_change(printer: &mut Printer, change: &Change, object: &str) -> Result<()> {
    ask(
        printer,
        &change_question(change, object),
        &format!(
            "refusing to {} {object} without confirmation: there is no terminal to ask on; review the preview above \
             (or run with --dry-run=client), then pass -y/--yes",
            change.action.verb()
        ),
    )
}

/// The question before a change: what it changes and how many workloads it restarts.
fn change_question(change: &Change, object: &str) -> String {
    let restarts = change.restarts.restart.len();
    format!(
        "{} {} in {object} and restart {restarts} workload(s)?",
        crate::ui::preview::capitalize(change.action.verb()),
        change
            .data
            .keys
            .iter()
            .map(|k| k.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Asks `question` on the terminal, `no` by default; fails with `no_terminal` when there is no
/// terminal to ask on, and says nothing was changed when the answer is no.
pub(super) fn ask(printer: &mut Printer, question: &str, no_terminal: &str) -> Result<()> {
    if !(std::io::stdin().is_terminal() && printer.interactive()) {
        bail!("{no_terminal}");
    }
    printer.flush();
    let yes = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact_on(&dialoguer::console::Term::stderr())
        .context("cannot read the answer from the terminal")?;
    if !yes {
        bail!("cancelled; nothing was changed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::fixtures;
    use crate::ui::printer::ColorChoice;

    #[test]
    fn a_note_goes_to_stdout_in_text_and_to_stderr_beside_json() {
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        note(&mut printer, &fixtures::options(), "\nRun 1:");
        assert_eq!(
            (captured.stdout(), captured.stderr()),
            ("\nRun 1:\n".into(), "".into())
        );

        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        let json = fixtures::json_options();
        note(&mut printer, &json, "\nRun 1:");
        assert_eq!(
            (captured.stdout(), captured.stderr()),
            ("".into(), "\nRun 1:\n".into())
        );
    }

    #[test]
    fn the_question_names_the_keys_and_how_many_workloads_restart() {
        let change = fixtures::change();
        assert_eq!(
            change_question(&change, "Secret prod/app-secrets"),
            "Rotate openai-api-key in Secret prod/app-secrets and restart 1 workload(s)?"
        );
    }

    #[test]
    fn without_a_terminal_the_change_is_refused_with_the_way_forward() {
        let (mut printer, _) = Printer::capture(ColorChoice::default());
        let err = confirm_change(&mut printer, &fixtures::change(), "Secret prod/app-secrets")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "refusing to rotate Secret prod/app-secrets without confirmation: there is no terminal to ask on; \
             review the preview above (or run with --dry-run=client), then pass -y/--yes"
        );
    }
}

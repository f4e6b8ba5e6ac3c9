//! The preview of a change before it runs (or instead, for a dry run): what the pipeline hands
//! to `ui::preview::render` (the run's id, backup, notes, steps in words, how the consumers
//! are restarted) and where the lines go: stdout for people, stderr beside a JSON report.
//!
//! Not here: the preview's layout and wording (`ui::preview`), the confirmation (`prompt`).

use super::{Planned, RunOptions};
use crate::plan::change::Change;
use crate::ui::Printer;
use crate::ui::preview::{self, PreviewContext};
use crate::ui::printer::OutputFormat;

/// Prints the preview of `change`.
pub(super) fn show(
    change: &Change,
    planned: &Planned,
    options: &RunOptions,
    printer: &mut Printer,
) {
    let context = PreviewContext {
        action: change.action.verb(),
        rotation_id: &change.record.id,
        backup: planned.backup.as_deref().unwrap_or(""),
        show_secrets: options.show_secrets,
        notes: &change.notes,
        steps: &planned.step_lines,
        restart_heading: restart_heading(change),
    };
    for (style, line) in preview::render(&change.data, &change.restarts, &context) {
        match options.output {
            OutputFormat::Text => printer.styled_line(&line, style),
            OutputFormat::Json => printer.styled_note(&line, style),
        }
    }
}

/// How a data encryption key's run treats the consumers, for the heading of their list:
/// restarted twice with a key ring, stopped around the migration without; `None` (one
/// rolling restart) for any other change.
fn restart_heading(change: &Change) -> Option<&'static str> {
    change.reencryption.as_ref().map(|r| {
        if r.keyring.is_some() {
            "Restart ({}) after each of the two Secret changes, in parallel, then watch the rollouts:"
        } else {
            "Stop ({}): scaled to 0 before the migration, back to their replicas after the patch, then watched:"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::fixtures;
    use crate::ui::printer::ColorChoice;

    #[test]
    fn a_plain_change_restarts_its_consumers_under_the_usual_heading() {
        assert_eq!(restart_heading(&fixtures::change()), None);
    }

    #[test]
    fn a_key_ring_reencryption_restarts_the_consumers_twice() {
        let mut change = fixtures::change();
        change.reencryption = Some(fixtures::reencryption(Some(",")));
        assert_eq!(
            restart_heading(&change),
            Some(
                "Restart ({}) after each of the two Secret changes, in parallel, then watch the rollouts:"
            )
        );
    }

    #[test]
    fn a_reencryption_without_key_ring_stops_the_consumers() {
        let mut change = fixtures::change();
        change.reencryption = Some(fixtures::reencryption(None));
        assert!(
            restart_heading(&change)
                .is_some_and(|h| h.starts_with("Stop ({}): scaled to 0 before the migration"))
        );
    }

    #[test]
    fn the_preview_goes_to_stdout_in_text_and_to_stderr_beside_json() {
        let change = fixtures::change();
        let planned = fixtures::planned(&change);
        let (mut printer, text) = Printer::capture(ColorChoice::default());
        show(&change, &planned, &fixtures::options(), &mut printer);
        assert!(
            text.stdout().contains(&change.record.id),
            "{}",
            text.stdout()
        );
        assert!(
            text.stdout().contains(&planned.step_lines[0]),
            "{}",
            text.stdout()
        );
        assert_eq!(text.stderr(), "");

        let (mut printer, json) = Printer::capture(ColorChoice::default());
        let options = fixtures::json_options();
        show(&change, &planned, &options, &mut printer);
        assert_eq!(json.stdout(), "");
        assert_eq!(json.stderr(), text.stdout());
    }
}

//! The live rollout display on stderr: one line per workload with its updated and ready
//! counts (indicatif), when stderr is a terminal; otherwise one plain line per workload as it
//! finishes, so logs of a CI job still say what happened.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::plan::rollout::{Counts, Outcome, ProgressSink, WorkloadResult};
use crate::ui::{Printer, Style};

pub struct RolloutDisplay<'p> {
    printer: &'p mut Printer,
    live: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
}

impl<'p> RolloutDisplay<'p> {
    pub fn new(printer: &'p mut Printer) -> Self {
        let live = printer.interactive().then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                HashMap::new(),
            )
        });
        RolloutDisplay { printer, live }
    }
}

fn counts_text(counts: Counts) -> String {
    format!(
        "{}/{} updated, {}/{} ready",
        counts.updated, counts.desired, counts.ready, counts.desired
    )
}

impl ProgressSink for RolloutDisplay<'_> {
    fn started(&mut self, reference: &str) {
        if let Some((multi, bars)) = &mut self.live {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:30} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(reference.to_string());
            bar.set_message("restarting");
            bar.enable_steady_tick(Duration::from_millis(120));
            bars.insert(reference.to_string(), bar);
        }
    }

    fn progress(&mut self, reference: &str, counts: Counts, message: &str) {
        if let Some((_, bars)) = &self.live
            && let Some(bar) = bars.get(reference)
        {
            bar.set_message(format!("{}  {message}", counts_text(counts)));
        }
    }

    fn finished(&mut self, result: &WorkloadResult) {
        let reference = result.reference();
        let seconds = result.elapsed.as_secs_f64();
        let (style, line) = match &result.outcome {
            Outcome::RolledOut { .. } => (Style::Good, format!("rolled out in {seconds:.1}s")),
            Outcome::Failed { message, .. } => {
                (Style::Bad, format!("FAILED after {seconds:.1}s: {message}"))
            }
        };
        match &self.live {
            Some((_, bars)) if bars.contains_key(&reference) => {
                let painted = self.printer.paint_err(&line, style);
                if let Some(bar) = bars.get(&reference) {
                    bar.finish_with_message(painted);
                }
            }
            _ => {
                let painted = self.printer.paint_err(&line, style);
                self.printer.note(&format!("  {reference}: {painted}"));
            }
        }
    }
}

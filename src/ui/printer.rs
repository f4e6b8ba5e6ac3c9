//! The one printer: results go to stdout, progress, warnings, prompts and errors to stderr, so
//! that `-o json` stays clean for pipes. Colour is decided once (`settings::resolve_color`) and
//! passed in, never read from a global. Tests capture both streams with `Printer::capture`.
//!
//! A write error (a closed pipe, as with `| head`) is ignored: there is nobody left to tell.

use std::io::Write;
use std::sync::{Arc, Mutex};

use owo_colors::OwoColorize;
use serde::Serialize;

/// What a piece of text means, so the printer can colour it when colour is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Bold,
    Good,
    Warning,
    Bad,
    Dim,
}

pub struct Printer {
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    color: ColorChoice,
    /// Whether stderr is a terminal a person watches (live progress, prompts).
    interactive: bool,
}

/// The two streams of a capturing printer, for tests.
#[derive(Clone, Default)]
pub struct Captured {
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().expect("capture lock poisoned")).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().expect("capture lock poisoned")).into_owned()
    }
}

struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("capture lock poisoned")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Printer {
    pub fn stdio(color: ColorChoice, interactive: bool) -> Self {
        Printer {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            color,
            interactive,
        }
    }

    pub fn capture(color: ColorChoice) -> (Self, Captured) {
        let captured = Captured::default();
        let printer = Printer {
            out: Box::new(SharedBuffer(captured.out.clone())),
            err: Box::new(SharedBuffer(captured.err.clone())),
            color,
            interactive: false,
        };
        (printer, captured)
    }

    /// Whether stderr is a terminal: live progress and prompts only make sense there.
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// Whether stderr is coloured (for progress displays that draw their own).
    pub fn stderr_color(&self) -> bool {
        self.color.stderr
    }

    /// Text styled for stdout.
    pub fn paint_out(&self, text: &str, style: Style) -> String {
        paint(text, style, self.color.stdout)
    }

    /// Text styled for stderr.
    pub fn paint_err(&self, text: &str, style: Style) -> String {
        paint(text, style, self.color.stderr)
    }

    /// One line of results on stdout.
    pub fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
    }

    /// Text on stdout exactly as given (a generated script, which ends with its own newline).
    pub fn text(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }

    /// A JSON document on stdout, pretty-printed like `kubectl -o json`.
    pub fn json<T: Serialize>(&mut self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        let _ = writeln!(self.out, "{text}");
        Ok(())
    }

    /// A styled line on stdout.
    pub fn styled_line(&mut self, text: &str, style: Style) {
        let painted = self.paint_out(text, style);
        let _ = writeln!(self.out, "{painted}");
    }

    /// A styled line on stderr.
    pub fn styled_note(&mut self, text: &str, style: Style) {
        let painted = self.paint_err(text, style);
        let _ = writeln!(self.err, "{painted}");
    }

    /// Bytes on stdout as they are (a backup file piped to a password manager: the only place
    /// a value is ever printed, because the user asked for it with `--to-file -`).
    pub fn raw(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes);
    }

    /// A line of information on stderr.
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.err, "{text}");
    }

    /// `warning: ...` on stderr, the way kubectl prints warnings.
    pub fn warn(&mut self, text: &str) {
        let label = self.paint_err("warning:", Style::Warning);
        let _ = writeln!(self.err, "{label} {text}");
    }

    /// `error: ...` on stderr, the way kubectl prints errors. Only `main` calls this.
    pub fn error(&mut self, text: &str) {
        let label = self.paint_err("error:", Style::Bad);
        let _ = writeln!(self.err, "{label} {text}");
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
        let _ = self.err.flush();
    }
}

fn paint(text: &str, style: Style, enabled: bool) -> String {
    if !enabled {
        return text.to_string();
    }
    match style {
        Style::Plain => text.to_string(),
        Style::Bold => text.bold().to_string(),
        Style::Good => text.green().to_string(),
        Style::Warning => text.yellow().to_string(),
        Style::Bad => text.red().to_string(),
        Style::Dim => text.dimmed().to_string(),
    }
}

/// Whether each stream gets ANSI colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ColorChoice {
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    /// A table for people.
    #[default]
    Text,
    /// A stable JSON object for scripts (documented in the README).
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_go_to_stdout_and_diagnostics_to_stderr() {
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        printer.line("result");
        printer.warn("careful");
        printer.error("broken");
        assert_eq!(captured.stdout(), "result\n");
        assert_eq!(captured.stderr(), "warning: careful\nerror: broken\n");
    }

    #[test]
    fn colour_is_added_only_when_enabled_for_that_stream() {
        let (printer, _) = Printer::capture(ColorChoice {
            stdout: false,
            stderr: true,
        });
        assert_eq!(printer.paint_out("x", Style::Bad), "x");
        assert!(printer.paint_err("x", Style::Bad).contains("\u{1b}["));
    }
}

//! The process environment that settings depend on, read once so that resolving them is pure.

use std::ffi::OsString;
use std::path::PathBuf;

/// The parts of the process environment settings depend on, gathered once so resolution is pure.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub kubeconfig: Option<OsString>,
    /// `KUBECTL_ROTATE_CONFIG`: the presets config file.
    pub rotate_config: Option<OsString>,
    pub home: Option<PathBuf>,
    pub no_color: bool,
    pub force_color: bool,
    pub term_dumb: bool,
    pub stdout_is_terminal: bool,
    pub stderr_is_terminal: bool,
}

impl Environment {
    /// Reads the real environment of this process.
    pub fn from_process() -> Self {
        use std::io::IsTerminal;
        Environment {
            kubeconfig: std::env::var_os("KUBECONFIG"),
            rotate_config: std::env::var_os("KUBECTL_ROTATE_CONFIG"),
            home: std::env::home_dir(),
            // NO_COLOR disables colour whatever its value, even empty (no-color.org).
            no_color: std::env::var_os("NO_COLOR").is_some(),
            force_color: std::env::var_os("FORCE_COLOR").is_some_and(|v| !v.is_empty() && v != "0"),
            term_dumb: std::env::var_os("TERM").is_some_and(|t| t == "dumb"),
            stdout_is_terminal: std::io::stdout().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }
}

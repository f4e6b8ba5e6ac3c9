//! One file and one entry function per verb. Each takes resolved settings (never clap types),
//! a printer, and returns the process exit code on success.

pub mod completion;
pub mod status;

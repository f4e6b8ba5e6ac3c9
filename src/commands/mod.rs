//! One file and one entry function per verb. Each takes resolved settings (never clap types),
//! a printer, and returns the process exit code on success.

pub mod backup;
pub mod preset;
pub mod presets;
pub mod resume;
pub mod rollback;
pub mod secret;
pub mod status;
pub mod verify;

//! One file and one entry function per verb. Each takes resolved options (never clap types)
//! and a printer, connects, builds the request, hands it to the engine (`engine::pipeline`) or
//! the systems, prints what comes back, and returns the process exit code on success. The
//! `completion` verb lives with the command line it completes (`cli::completion::scripts`).

pub mod backup;
pub mod preset;
pub mod presets;
pub mod resume;
pub mod rollback;
pub mod secret;
pub mod status;
pub mod verify;

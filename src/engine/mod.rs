//! The engine: the pipeline every writing verb shares (guards, preview, confirm, the journaled
//! run, its ending and report), the runner that executes a run's steps (`runner`), and the
//! per-Secret lock (`lock`). It calls down into `plan` (what to do) and `systems` (doing it);
//! it never parses flags and never names a verb.

pub mod lock;
pub mod pipeline;
pub mod runner;
pub mod runs;

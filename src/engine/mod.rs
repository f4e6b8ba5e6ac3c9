//! The engine: the pipeline every writing verb shares (guards, preview, confirm, the journaled
//! run, its ending and report), the runner that executes a run's steps in order and journals
//! each (`runner`), the runs kept in the cluster and their retention (`runs`), and the
//! per-Secret lock (`lock`). It calls down into `plan` (what to do) and `systems` (doing it,
//! through `systems::apply` and `systems::check` only); it never parses flags, never names a
//! verb, and never speaks SQL or RESP.

pub mod lock;
pub mod pipeline;
pub mod runner;
pub mod runs;

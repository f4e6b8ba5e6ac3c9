//! Pure planning: everything decided from objects already read, with no I/O. A change as data
//! (`change`: the planned change; `steps`: the ordered steps a run journals and the engine runs,
//! one file per system with its steps' words and undo), the JSON Patch and the restarts
//! (`patch`), consumer discovery (`consumers`), kubectl's rollout rules (`rollout`), where a
//! server is (`server`), the formats kept in the cluster (`backup`, `journal`, `secret_meta`),
//! the status report (`report`), the autoscalers of a scale-down (`autoscaling`), `verify`'s checks (`checks`), what a database rotation changes
//! (`database`), the security context of the pods it creates (`pod_security`) and the presets
//! table (`presets`).
//!
//! Imports point down only: to `cluster` (RBAC rules), `model` and `values`; never to the
//! systems, the engine, the commands or the command line. Most tests of the crate live here and
//! need no server.

pub mod autoscaling;
pub mod backup;
pub mod change;
pub mod checks;
pub mod consumers;
pub mod database;
pub mod journal;
pub mod patch;
pub mod pod_security;
pub mod presets;
pub mod report;
pub mod rollout;
pub mod secret_meta;
pub mod server;
pub mod steps;

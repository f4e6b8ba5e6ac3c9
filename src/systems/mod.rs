//! The edge where steps meet the systems they change: one folder per system (`secret` for the
//! Secret and its backups, `workloads` for restarts, rollouts and scaling, `postgres` for a
//! role's password and login, `redis` for a user's passwords, `encryption` for the rows a key
//! encrypts), each with its steps' `apply` and `check`, its `preflight` (checks before the first
//! write, and what they add to the planned change) and its `verify` checks. `reach.rs` reaches a
//! server through the API server's port-forward; `openai.rs` checks a new OpenAI key.
//!
//! A system's steps (their data, words and undo) are pure and live in `plan::steps::<system>`.
//! The runner calls only `apply` and `check` below, and `verify` only `verify::check_keys`:
//! adding a system is a folder here, a file in `plan/steps/`, a preset entry, and one line in
//! each of those lists, with no change to the runner or `verify`.
//!
//! Every write here is sent once. When its answer is an error or is lost, the module reads back
//! what the system holds and says whether the write happened, did not, or cannot be told.

pub mod context;
pub mod encryption;
pub mod openai;
pub mod postgres;
pub mod reach;
pub mod redis;
pub mod secret;
pub mod verify;
pub mod workloads;

use self::context::{Checked, Ctx, StepOutcome};
use crate::plan::steps::Step;
use crate::ui::Printer;

/// Applies `step`, in the system it belongs to.
pub async fn apply(step: &Step, ctx: &Ctx<'_>, printer: &mut Printer) -> StepOutcome {
    match step {
        Step::Secret(step) => secret::apply(step, ctx).await,
        Step::Workloads(step) => workloads::apply(step, ctx, printer).await,
        Step::Postgres(step) => postgres::apply(step, ctx).await,
        Step::Redis(step) => redis::apply(step, ctx).await,
        Step::Encryption(step) => encryption::apply(step, ctx).await,
    }
}

/// Reads back whether `step` (recorded as started by a run that stopped) took effect.
pub async fn check(step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Checked> {
    match step {
        Step::Secret(step) => secret::check(step, ctx).await,
        Step::Workloads(step) => workloads::check(step, ctx).await,
        Step::Postgres(step) => postgres::check(step, ctx).await,
        Step::Redis(step) => redis::check(step, ctx).await,
        Step::Encryption(step) => encryption::check(step, ctx).await,
    }
}

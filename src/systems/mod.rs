//! The edge where steps meet the systems they change. Each system has one module that knows
//! how to apply its steps, check whether they took effect, and (through the undo steps that
//! `steps::plan_undo` plans) undo them: `secret` for the Secret and its backup, `workloads`
//! for restarts and rollouts, `postgres` for a role's password and login, `redis` for a user's passwords.
//! The engine only calls `apply` and `check`; adding a system adds
//! steps and a module here, not code in the engine.
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

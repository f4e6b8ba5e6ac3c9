//! The edge where steps meet the systems they change. Each system has one module that knows
//! how to apply its steps, check whether they took effect, and (through the undo steps that
//! `steps::plan_undo` plans) undo them: `secret` for the Secret and its backup, `workloads`
//! for restarts and rollouts, `postgres` for a role's password and login, `redis` for a user's passwords.
//! The engine only calls `apply` and `check`; adding a system adds
//! steps and a module here, not code in the engine.
//!
//! Every write here is sent once. When its answer is an error or is lost, the module reads back
//! what the system holds and says whether the write happened, did not, or cannot be told.

pub mod encryption;
pub mod openai;
pub mod postgres;
pub mod reach;
pub mod redis;
pub mod secret;
pub mod workloads;

use std::time::Duration;

use crate::cluster::Cluster;
use crate::interrupt::Interrupt;
use crate::plan::journal::Journal;
use crate::plan::rollout::WorkloadResult;
use crate::plan::steps::Step;
use crate::ui::Printer;
use crate::ui::printer::OutputFormat;
use crate::values::SecretValue;

/// What a step needs from the run.
pub struct Ctx<'a> {
    pub cluster: &'a Cluster,
    pub journal: &'a Journal,
    /// The run's new values (from its journal Secret).
    pub new_values: &'a [(String, SecretValue)],
    pub timeout: Duration,
    pub interrupt: &'a Interrupt,
    pub output: OutputFormat,
}

impl Ctx<'_> {
    pub fn namespace(&self) -> &str {
        &self.journal.namespace
    }

    pub fn object(&self) -> String {
        self.journal.object()
    }
}

/// Whether a failed step's write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Certainly not: nothing was changed by it.
    No,
    /// It may have: the answer was lost and reading back did not tell.
    Unknown,
    /// It did, but what it started failed (a rollout).
    Yes,
}

/// How applying a step ended.
#[derive(Debug)]
pub enum StepOutcome {
    Done {
        note: String,
        results: Vec<WorkloadResult>,
    },
    Failed {
        message: String,
        applied: Applied,
        results: Vec<WorkloadResult>,
    },
    /// Stopped by Ctrl-C/SIGTERM before it finished (only steps that merely read stop so).
    Interrupted,
}

impl StepOutcome {
    fn done(note: impl Into<String>) -> Self {
        StepOutcome::Done {
            note: note.into(),
            results: Vec::new(),
        }
    }

    fn failed(message: impl Into<String>, applied: Applied) -> Self {
        StepOutcome::Failed {
            message: message.into(),
            applied,
            results: Vec::new(),
        }
    }
}

/// What reading back a started step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// It took effect (with what was seen).
    Applied(String),
    /// It did not; applying it is safe.
    NotApplied,
    /// The system holds something this run did not write: stop and let a person decide.
    Conflict(String),
}

/// Applies `step`.
pub async fn apply(step: &Step, ctx: &Ctx<'_>, printer: &mut Printer) -> StepOutcome {
    match step {
        Step::BackUp { backup } => secret::back_up(ctx, backup).await,
        Step::PatchSecret => secret::patch(ctx).await,
        Step::RestoreSecret { backup } => secret::restore(ctx, backup.as_deref()).await,
        Step::Restart {
            workloads,
            restarted_at,
        } => workloads::restart(ctx, workloads, restarted_at).await,
        Step::Watch {
            workloads,
            restarted_at,
        } => workloads::watch(ctx, workloads, restarted_at, printer).await,
        Step::CreateRole {
            db,
            role,
            member_of,
        } => postgres::apply_create_role(ctx, db, role, member_of).await,
        Step::SetPassword {
            db,
            role,
            key,
            login,
        } => postgres::apply_set_password(ctx, db, role, key, *login).await,
        Step::RevertPassword { db, role, key } => {
            postgres::apply_revert_password(ctx, db, role, key).await
        }
        Step::CheckLogin { db, role, key } => postgres::apply_check_login(ctx, db, role, key).await,
        Step::CheckLogs {
            workloads,
            pattern,
            absent,
        } => workloads::check_logs(ctx, workloads, pattern, absent.as_deref()).await,
        Step::DisableLogin { db, role } => postgres::apply_set_login(ctx, db, role, false).await,
        Step::EnableLogin { db, role } => postgres::apply_set_login(ctx, db, role, true).await,
        Step::AddPassword { redis, key, value } => {
            redis::apply_add_password(ctx, redis, key, *value).await
        }
        Step::RemovePassword { redis, key, value } => {
            redis::apply_remove_password(ctx, redis, key, *value).await
        }
        Step::SetRequirepass { redis, key, value } => {
            redis::apply_set_requirepass(ctx, redis, key, *value).await
        }
        Step::CheckAuth { redis, key } => redis::apply_check_auth(ctx, redis, key).await,
        Step::SaveKey { key, path } => encryption::save_key(ctx, key, path).await,
        Step::DumpDatabase { db, path } => encryption::dump(ctx, db, path).await,
        Step::ScaleDown { workloads } => workloads::scale_down(ctx, workloads).await,
        Step::ScaleUp {
            workloads,
            restarted_at,
        } => workloads::scale_up(ctx, workloads, restarted_at).await,
        Step::Reencrypt {
            db,
            columns,
            key,
            to,
            online,
        } => encryption::reencrypt(ctx, db, columns, (key, *to), *online).await,
        Step::WriteKey { key, from, to } => secret::write_key(ctx, key, from, to).await,
        Step::MigrationJob {
            name,
            job,
            db,
            columns,
            key,
            to,
        } => encryption::run_job(ctx, (name, job), (db, columns), (key, *to)).await,
        Step::CheckRows { db, columns, key } => encryption::check_rows(ctx, db, columns, key).await,
    }
}

/// Reads back whether `step` (recorded as started by a run that stopped) took effect.
pub async fn check(step: &Step, ctx: &Ctx<'_>) -> anyhow::Result<Checked> {
    match step {
        Step::BackUp { backup } => secret::check_backup(ctx, backup).await,
        Step::PatchSecret => secret::check_patch(ctx).await,
        Step::RestoreSecret { backup } => secret::check_restore(ctx, backup.as_deref()).await,
        Step::Restart {
            workloads,
            restarted_at,
        } => workloads::check_restart(ctx, workloads, restarted_at).await,
        // A watch only reads: watching again is the check.
        Step::Watch { .. }
        | Step::CheckLogin { .. }
        | Step::CheckLogs { .. }
        | Step::CheckAuth { .. }
        | Step::CheckRows { .. } => Ok(Checked::NotApplied),
        Step::SaveKey { key, path } => encryption::check_save_key(ctx, key, path).await,
        Step::DumpDatabase { path, .. } => Ok(encryption::check_dump(path)),
        Step::ScaleDown { workloads } => workloads::check_scale_down(ctx, workloads).await,
        Step::ScaleUp {
            workloads,
            restarted_at,
        } => workloads::check_scale_up(ctx, workloads, restarted_at).await,
        Step::Reencrypt {
            db,
            columns,
            key,
            to,
            ..
        } => encryption::check_reencrypt(ctx, db, columns, key, *to).await,
        Step::WriteKey { key, from, to } => secret::check_write_key(ctx, key, from, to).await,
        Step::MigrationJob {
            db,
            columns,
            key,
            to,
            ..
        } => encryption::check_reencrypt(ctx, db, columns, key, *to).await,
        Step::CreateRole { db, role, .. } => postgres::check_create_role(ctx, db, role).await,
        Step::SetPassword {
            db,
            role,
            key,
            login,
        } => postgres::check_set_password(ctx, db, role, key, *login).await,
        Step::RevertPassword { db, role, key } => {
            postgres::check_revert_password(ctx, db, role, key).await
        }
        Step::DisableLogin { db, role } => postgres::check_set_login(ctx, db, role, false).await,
        Step::EnableLogin { db, role } => postgres::check_set_login(ctx, db, role, true).await,
        Step::AddPassword { redis, key, value } => {
            redis::check_add_password(ctx, redis, key, *value).await
        }
        Step::RemovePassword { redis, key, value } => {
            redis::check_remove_password(ctx, redis, key, *value).await
        }
        Step::SetRequirepass { redis, key, value } => {
            redis::check_set_requirepass(ctx, redis, key, *value).await
        }
    }
}

//! The encryption-key preset's steps outside the Secret: the runbook's copies of the key and
//! of the database taken before anything changes, the migration of the rows from one key to
//! the other (`reencrypt`, one transaction), and the check that every row decrypts with the
//! key the Secret holds.
//!
//! - **The key file** is written once (`create_new`, mode 0600) with the key's bytes exactly
//!   as the runbook's `base64 -d > encryption-key-backup.txt` writes them.
//! - **The dump** is `pg_dump` run in the database's pod through the API server (`dump`): the
//!   file appears only when pg_dump exited 0 and its last line says the dump is complete.
//! - **A migration whose answer is lost** is read back by counting which key decrypts each
//!   row: it ran in one transaction, so either every row moved or none did.
//!
//! This file holds the step functions the runner calls (and their checks); the work behind
//! them is in `files` (the copies kept private and out of git), `dump`, `job` (the app's own
//! migration Job, and `admission`: its dry run before anything is written), `reencrypt` (the
//! rows), and `preflight` (before anything is written).

pub mod admission;
mod dump;
mod files;
mod job;
pub mod preflight;
pub mod reencrypt;
pub mod verify;

use std::io::Write;
use std::path::Path;

use anyhow::{Result, anyhow, bail};

pub use self::dump::DUMP_COMPLETE;
use self::dump::{dump_is_complete, run_dump};
use self::files::create_private;
pub use self::files::refuse_git_work_tree;
use self::reencrypt::{Counts, Keys, Undecryptable};
use super::context::{Applied, Checked, Ctx, StepOutcome};
use crate::plan::steps::{Column, Database, Version};
use crate::values::SecretValue;

pub async fn save_key(ctx: &Ctx<'_>, key: &str, path: &str) -> StepOutcome {
    let old = match super::secret::old_value(ctx, key).await {
        Ok(old) => old,
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was written"), Applied::No);
        }
    };
    let file = Path::new(path);
    if let Err(err) = refuse_git_work_tree(file) {
        return StepOutcome::failed(format!("{err:#}; nothing was written"), Applied::No);
    }
    match std::fs::read(file) {
        Ok(held) if held == old.expose() => {
            return StepOutcome::done(format!("{path} already holds the key"));
        }
        Ok(_) => {
            return StepOutcome::failed(
                format!(
                    "{path} exists and holds something else; nothing was overwritten: choose another --key-backup-file"
                ),
                Applied::No,
            );
        }
        Err(_) => {}
    }
    let written = create_private(file).and_then(|mut f| {
        f.write_all(old.expose())?;
        f.sync_all()
    });
    match written {
        Ok(()) => match std::fs::read(file) {
            Ok(held) if held == old.expose() => StepOutcome::done(format!(
                "wrote the current {key} to {path} (0600) and read it back"
            )),
            _ => StepOutcome::failed(
                format!("wrote {path}, but reading it back does not give the key"),
                Applied::Yes,
            ),
        },
        Err(err) => {
            let _ = std::fs::remove_file(file);
            StepOutcome::failed(format!("cannot write {path}: {err}"), Applied::No)
        }
    }
}

pub async fn check_save_key(ctx: &Ctx<'_>, key: &str, path: &str) -> Result<Checked> {
    let old = super::secret::old_value(ctx, key).await?;
    Ok(match std::fs::read(path) {
        Ok(held) if held == old.expose() => Checked::Applied(format!("{path} holds the key")),
        Ok(_) => Checked::Conflict(format!(
            "{path} exists and does not hold the backed-up {key}: not touching it"
        )),
        Err(_) => Checked::NotApplied,
    })
}

pub async fn dump(ctx: &Ctx<'_>, db: &Database, path: &str) -> StepOutcome {
    let target = Path::new(path);
    if dump_is_complete(target) {
        return StepOutcome::done(format!("{path} already holds a complete dump"));
    }
    if target.exists() {
        return StepOutcome::failed(
            format!(
                "{path} exists and is not a complete dump; nothing was overwritten: move it away or choose another --db-backup-file"
            ),
            Applied::No,
        );
    }
    match run_dump(ctx, db, target).await {
        Ok(bytes) => StepOutcome::done(format!(
            "pg_dump of {}: {bytes} bytes to {path} (0600), complete",
            db.database
        )),
        Err(err) => StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No),
    }
}

pub fn check_dump(path: &str) -> Checked {
    if dump_is_complete(Path::new(path)) {
        Checked::Applied(format!("{path} holds a complete dump"))
    } else {
        Checked::NotApplied
    }
}

/// The keys a `reencrypt` step moves from and to.
async fn keys(ctx: &Ctx<'_>, key: &str, to: Version) -> Result<Keys> {
    let new = super::secret::new_value(ctx, key)?.clone();
    let old = super::secret::old_value(ctx, key).await?;
    match to {
        Version::New => Keys::new(&old, &new),
        Version::Old => Keys::new(&new, &old),
    }
}

fn total(counts: &[Counts]) -> Counts {
    counts.iter().fold(Counts::default(), |sum, c| Counts {
        rows: sum.rows + c.rows,
        old: sum.old + c.old,
        new: sum.new + c.new,
        null: sum.null + c.null,
    })
}

pub async fn reencrypt(
    ctx: &Ctx<'_>,
    db: &Database,
    columns: &[Column],
    (key, to): (&str, Version),
    online: bool,
) -> StepOutcome {
    let keys = match keys(ctx, key, to).await {
        Ok(keys) => keys,
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No);
        }
    };
    let mut pg = match super::postgres::admin_client(ctx, db).await {
        Ok(pg) => pg,
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No);
        }
    };
    if online {
        return match reencrypt::migrate_online(&mut pg, columns, &keys).await {
            Ok(counts) => {
                let sum = total(&counts);
                StepOutcome::done(format!(
                    "{} rows: {} re-encrypted to the {} key in batches of {} (one short transaction each), \
                     {} already on it, {} NULL",
                    sum.rows,
                    sum.old,
                    to.name(),
                    reencrypt::BATCH,
                    sum.new,
                    sum.null
                ))
            }
            Err(partial) => {
                let applied = if partial.moved > 0 {
                    Applied::Yes
                } else if partial.error.downcast_ref::<Undecryptable>().is_some() {
                    Applied::No
                } else {
                    Applied::Unknown
                };
                StepOutcome::failed(partial.to_string(), applied)
            }
        };
    }
    match reencrypt::migrate_all(&mut pg, columns, &keys).await {
        Ok(counts) => {
            let sum = total(&counts);
            StepOutcome::done(format!(
                "{} rows: {} re-encrypted to the {} key, {} already on it, {} NULL; committed",
                sum.rows,
                sum.old,
                to.name(),
                sum.new,
                sum.null
            ))
        }
        Err(err) if err.downcast_ref::<Undecryptable>().is_some() => StepOutcome::failed(
            format!("{err:#}; the transaction was rolled back: nothing was changed"),
            Applied::No,
        ),
        Err(err) => {
            // The transaction either committed or did not: count to tell.
            let why = format!("{err:#}");
            let read = async {
                let mut pg = super::postgres::admin_client(ctx, db).await?;
                reencrypt::count_all(&mut pg, columns, &keys).await
            };
            match read.await {
                Ok(counts) if total(&counts).old == 0 => StepOutcome::done(format!(
                    "the answer was an error ({why}), but every row decrypts with the {} key",
                    to.name()
                )),
                Ok(_) => StepOutcome::failed(
                    format!(
                        "re-encrypting failed ({why}); read back: the transaction was rolled back, nothing was changed"
                    ),
                    Applied::No,
                ),
                Err(read) => StepOutcome::failed(
                    format!(
                        "cannot tell whether the re-encryption committed: {why}; counting failed: {read:#}"
                    ),
                    Applied::Unknown,
                ),
            }
        }
    }
}

pub async fn check_reencrypt(
    ctx: &Ctx<'_>,
    db: &Database,
    columns: &[Column],
    key: &str,
    to: Version,
) -> Result<Checked> {
    let keys = keys(ctx, key, to).await?;
    let mut pg = super::postgres::admin_client(ctx, db).await?;
    match reencrypt::count_all(&mut pg, columns, &keys).await {
        Ok(counts) if total(&counts).old == 0 => Ok(Checked::Applied(format!(
            "every row decrypts with the {} key",
            to.name()
        ))),
        // One transaction: nothing moved. Running it again is safe either way (a token the
        // target key decrypts is left alone).
        Ok(_) => Ok(Checked::NotApplied),
        Err(err) if err.downcast_ref::<Undecryptable>().is_some() => {
            Ok(Checked::Conflict(format!("{err:#}")))
        }
        Err(err) => Err(err),
    }
}

/// Every row decrypts with the Secret's value of `key`.
pub async fn check_rows(
    ctx: &Ctx<'_>,
    db: &Database,
    columns: &[Column],
    key: &str,
) -> StepOutcome {
    let result = async {
        let live = super::secret::read_live(ctx).await?;
        let value = super::secret::value_of(&live, key)
            .map(|v| SecretValue::new(v.to_vec()))
            .ok_or_else(|| anyhow!("{} has no key {key}", ctx.object()))?;
        let keys = Keys::only(&value)?;
        let mut pg = super::postgres::admin_client(ctx, db).await?;
        reencrypt::count_all(&mut pg, columns, &keys).await
    };
    match result.await {
        Ok(counts) => {
            let sum = total(&counts);
            StepOutcome::done(format!(
                "{} rows: every token decrypts with the Secret's {key} ({} NULL)",
                sum.rows, sum.null
            ))
        }
        Err(err) => StepOutcome::failed(format!("{err:#}"), Applied::No),
    }
}

/// `verify`: every row of `columns` decrypts with `value` (the Secret's key), read as the
/// admin in one snapshot. `Ok` names the count; `Err` says which row does not, or why it could
/// not be checked.
pub async fn rows_readable(
    cluster: &crate::cluster::Cluster,
    namespace: &str,
    db: &Database,
    columns: &[Column],
    (key, value): (&str, &SecretValue),
) -> std::result::Result<String, String> {
    let check = async {
        let mut pg = admin_connection(cluster, namespace, db).await?;
        let keys = Keys::only(value)?;
        reencrypt::count_all(&mut pg, columns, &keys).await
    };
    match check.await {
        Ok(counts) => {
            let sum = total(&counts);
            Ok(format!(
                "every token of {} ({} rows, {} NULL) decrypts with {key}",
                columns
                    .iter()
                    .map(Column::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                sum.rows,
                sum.null
            ))
        }
        Err(err) if err.downcast_ref::<Undecryptable>().is_some() => {
            Err(format!("{err:#} (with {key}, the key the Secret holds)"))
        }
        Err(err) => Err(format!("could not read the rows to check {key}: {err:#}")),
    }
}

/// The app's own migration as a Job: the keys in a temporary Secret (`OLD_KEY`, `NEW_KEY`,
/// given to the container with `envFrom`), the Job run to its end (no retries: a migration is
/// not blindly run twice), the temporary Secret deleted whatever happened, then the rows
/// counted to tell what the Job did.
pub async fn run_job(
    ctx: &Ctx<'_>,
    (name, job): (&str, &crate::plan::steps::JobSpec),
    (db, columns): (&Database, &[Column]),
    (key, to): (&str, Version),
) -> StepOutcome {
    let keys_secret = job::keys_secret_name(name);
    let outcome = job::job_until_done(ctx, name, job, &keys_secret, (key, to)).await;
    // The undo's Job also removes what a killed forward Job left behind (its keys Secret).
    let deleted = job::delete_keys_secrets(ctx, name).await;
    let deleted_note = match &deleted {
        Ok(()) => format!("; the temporary Secret {keys_secret} is deleted"),
        Err(why) => format!(
            "; WARNING: the temporary Secret {keys_secret} holding both keys could not be deleted ({why}): \
             delete it with `kubectl delete secret {keys_secret} -n {}`",
            ctx.namespace()
        ),
    };
    // What the rows say, whatever the Job said.
    let counted = async {
        let keys = keys(ctx, key, to).await?;
        let mut pg = super::postgres::admin_client(ctx, db).await?;
        reencrypt::count_all(&mut pg, columns, &keys).await
    }
    .await;
    let rows = |counts: &[Counts]| {
        let sum = total(counts);
        format!(
            "{} rows: {} on the {} key, {} still on the {} one",
            sum.rows,
            sum.new,
            to.name(),
            sum.old,
            to.other().name()
        )
    };
    match (outcome, counted) {
        (Ok(()), Ok(counts)) if total(&counts).old == 0 => StepOutcome::done(format!(
            "Job {name} completed; {}{deleted_note}",
            rows(&counts)
        )),
        (Ok(()), Ok(counts)) => StepOutcome::failed(
            format!(
                "Job {name} completed, but not every row moved: {}{deleted_note}",
                rows(&counts)
            ),
            Applied::Unknown,
        ),
        (Err(why), Ok(counts)) if total(&counts).new == 0 => StepOutcome::failed(
            format!(
                "{why}; read back: no row moved ({}){deleted_note}",
                rows(&counts)
            ),
            Applied::No,
        ),
        (Err(why), Ok(counts)) => StepOutcome::failed(
            format!(
                "{why}; read back: {} (`kubectl logs job/{name} -n {}` says why){deleted_note}",
                rows(&counts),
                ctx.namespace()
            ),
            Applied::Unknown,
        ),
        (outcome, Err(err)) => StepOutcome::failed(
            format!(
                "{}; counting the rows failed: {err:#}{deleted_note}",
                match outcome {
                    Ok(()) => format!("Job {name} completed"),
                    Err(why) => why,
                }
            ),
            Applied::Unknown,
        ),
    }
}

/// The admin's connection to `db`, its password read from the Secret the preset names.
pub(super) async fn admin_connection(
    cluster: &crate::cluster::Cluster,
    namespace: &str,
    db: &Database,
) -> Result<tokio_postgres::Client> {
    let admin = db
        .admin
        .as_ref()
        .ok_or_else(|| anyhow!("the preset names no admin login (encryption.admin)"))?;
    let server = crate::plan::server::parse_server(&db.server)?.with_tls(&db.tls);
    let secret = cluster.get_secret(namespace, &admin.secret).await.map_err(|e| {
        anyhow!(
            "{e:#}\nthe preset names Secret {namespace}/{} key {} as the PostgreSQL admin's password (encryption.admin in the config file)",
            admin.secret,
            admin.key
        )
    })?;
    let password = super::secret::value_of(&secret, &admin.key)
        .map(|v| SecretValue::new(v.to_vec()))
        .ok_or_else(|| {
            anyhow!(
                "Secret {namespace}/{} has no key {} (the PostgreSQL admin's password, encryption.admin in the config file)",
                admin.secret,
                admin.key
            )
        })?;
    let login = super::postgres::Credentials {
        user: &admin.user,
        database: &db.database,
        password: &password,
    };
    match super::postgres::connect(&cluster.client, namespace, &server, &login).await? {
        Ok(pg) => Ok(pg),
        Err(why) => bail!(
            "PostgreSQL at {server} refuses the admin login {} with the password in Secret {namespace}/{} key {} ({why}); \
             fix the admin Secret or encryption.admin in the config file",
            admin.user,
            admin.secret,
            admin.key
        ),
    }
}

/// Applies one of this system's steps (the runner calls it through `systems::apply`).
pub async fn apply(step: &crate::plan::steps::EncryptionStep, ctx: &Ctx<'_>) -> StepOutcome {
    match step {
        crate::plan::steps::EncryptionStep::SaveKey { key, path } => save_key(ctx, key, path).await,
        crate::plan::steps::EncryptionStep::DumpDatabase { db, path } => dump(ctx, db, path).await,
        crate::plan::steps::EncryptionStep::Reencrypt {
            db,
            columns,
            key,
            to,
            online,
        } => reencrypt(ctx, db, columns, (key, *to), *online).await,
        crate::plan::steps::EncryptionStep::MigrationJob {
            name,
            job,
            db,
            columns,
            key,
            to,
        } => run_job(ctx, (name, job), (db, columns), (key, *to)).await,
        crate::plan::steps::EncryptionStep::CheckRows { db, columns, key } => {
            check_rows(ctx, db, columns, key).await
        }
    }
}

/// Reads back whether one of this system's steps, recorded as started by a run that stopped,
/// took effect.
pub async fn check(
    step: &crate::plan::steps::EncryptionStep,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Checked> {
    match step {
        // The rows check only reads: checking again is the check.
        crate::plan::steps::EncryptionStep::CheckRows { .. } => Ok(Checked::NotApplied),
        crate::plan::steps::EncryptionStep::SaveKey { key, path } => {
            check_save_key(ctx, key, path).await
        }
        crate::plan::steps::EncryptionStep::DumpDatabase { path, .. } => Ok(check_dump(path)),
        crate::plan::steps::EncryptionStep::Reencrypt {
            db,
            columns,
            key,
            to,
            ..
        } => check_reencrypt(ctx, db, columns, key, *to).await,
        crate::plan::steps::EncryptionStep::MigrationJob {
            db,
            columns,
            key,
            to,
            ..
        } => check_reencrypt(ctx, db, columns, key, *to).await,
    }
}

//! The encryption-key preset's steps outside the Secret: the runbook's copies of the key and
//! of the database taken before anything changes, the migration of the rows from one key to
//! the other (`reencrypt`, one transaction), and the check that every row decrypts with the
//! key the Secret holds.
//!
//! - **The key file** is written once (`create_new`, mode 0600) with the key's bytes exactly
//!   as the runbook's `base64 -d > encryption-key-backup.txt` writes them.
//! - **The dump** is `pg_dump` run in the database's pod through the API server (what the
//!   runbook's `kubectl exec <postgres-pod> -- pg_dump` does), streamed to `PATH.partial`
//!   (0600) and renamed to `PATH` only when pg_dump exited 0 and its last line says the dump is
//!   complete. Its connection is the pod's own (the server's socket, as `kubectl exec` gets it):
//!   no password crosses the API server.
//! - **A migration whose answer is lost** is read back by counting which key decrypts each
//!   row: it ran in one transaction, so either every row moved or none did.

pub mod preflight;
pub mod reencrypt;
pub mod verify;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::AsyncReadExt;

use self::reencrypt::{Counts, Keys, Undecryptable};
use super::context::{Applied, Checked, Ctx, StepOutcome};
use crate::plan::steps::{Column, Database, Version};
use crate::values::SecretValue;

/// The last line of a complete plain-format `pg_dump`.
pub const DUMP_COMPLETE: &str = "-- PostgreSQL database dump complete";

/// Refuses a path inside a git work tree (a key or a dump must never be committed).
pub fn refuse_git_work_tree(path: &Path) -> Result<()> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    for dir in absolute.ancestors().skip(1) {
        if dir.join(".git").exists() {
            bail!(
                "{} is inside the git work tree {}: a key or a database dump must never be committed; \
                 choose a directory outside it (--backup-dir, --key-backup-file, --db-backup-file)",
                absolute.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Creates `path` (and its missing parent directories, mode 0700) as a new file of mode 0600.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

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

/// The pod (and its PostgreSQL container) behind `db.server`.
async fn database_pod(ctx: &Ctx<'_>, db: &Database) -> Result<(String, Option<String>)> {
    let server = crate::plan::server::parse_server(&db.server)?;
    let Some((pod, _)) =
        super::reach::resolve_pod(&ctx.cluster.client, ctx.namespace(), &server).await?
    else {
        bail!(
            "PostgreSQL at {} is outside the cluster: pg_dump cannot run in its pod; dump it yourself and \
             pass --no-db-backup",
            db.server
        );
    };
    let pods: Api<Pod> = Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
    let found = pods
        .get(&pod)
        .await
        .map_err(|e| anyhow!("cannot read pod {pod}: {}", crate::cluster::short_error(&e)))?;
    let container = found.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .find(|c| c.image.as_deref().unwrap_or("").contains("postgres"))
            .or(s.containers.first())
            .map(|c| c.name.clone())
    });
    Ok((pod, container))
}

/// Whether the file at `path` is a complete plain-format dump.
fn dump_is_complete(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let tail = len.min(512);
    if file.seek(SeekFrom::Start(len - tail)).is_err() {
        return false;
    }
    let mut end = String::new();
    file.read_to_string(&mut end).is_ok() && end.contains(DUMP_COMPLETE)
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

async fn run_dump(ctx: &Ctx<'_>, db: &Database, target: &Path) -> Result<u64> {
    refuse_git_work_tree(target)?;
    let (pod, container) = database_pod(ctx, db).await?;
    let partial = target.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut file =
        create_private(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let user = db
        .admin
        .as_ref()
        .map(|a| a.user.clone())
        .unwrap_or_else(|| "postgres".into());
    let command = vec![
        "pg_dump".to_string(),
        "--no-password".into(),
        "--username".into(),
        user,
        "--dbname".into(),
        db.database.clone(),
    ];
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(container) = &container {
        params = params.container(container.clone());
    }
    let pods: Api<Pod> = Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
    let result = async {
        let mut process = pods.exec(&pod, command, &params).await.map_err(|e| {
            if crate::cluster::access::upgrade_forbidden(&e) {
                anyhow!(
                    "cannot run pg_dump in pod {pod} (as kubectl exec): {}",
                    crate::cluster::access::upgrade_refusal("pods/exec", ctx.namespace(), &pod)
                )
            } else {
                anyhow!(
                    "cannot run pg_dump in pod {pod} (as kubectl exec): {}",
                    crate::cluster::short_error(&e)
                )
            }
        })?;
        let mut stdout = process
            .stdout()
            .ok_or_else(|| anyhow!("no stdout from pod {pod}"))?;
        let mut stderr = process
            .stderr()
            .ok_or_else(|| anyhow!("no stderr from pod {pod}"))?;
        let status = process.take_status();
        let errors = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = (&mut stderr).take(4096).read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).trim().to_string()
        });
        let mut bytes = 0u64;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = stdout
                .read(&mut buffer)
                .await
                .context("reading pg_dump's output")?;
            if n == 0 {
                break;
            }
            file.write_all(&buffer[..n])
                .with_context(|| format!("writing {}", partial.display()))?;
            bytes += n as u64;
        }
        file.sync_all()?;
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let errors = errors.await.unwrap_or_default();
        process.join().await.ok();
        let ok = status
            .as_ref()
            .is_some_and(|s| s.status.as_deref() == Some("Success"));
        if !ok {
            bail!(
                "pg_dump in pod {pod} failed: {}{}",
                status
                    .and_then(|s| s.message)
                    .unwrap_or_else(|| "no exit status".into()),
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({errors})")
                }
            );
        }
        if !dump_is_complete(&partial) {
            bail!(
                "pg_dump in pod {pod} exited 0 but its output does not end with {DUMP_COMPLETE:?}"
            );
        }
        anyhow::Ok(bytes)
    }
    .await;
    match result {
        Ok(bytes) => {
            std::fs::rename(&partial, target).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    partial.display(),
                    target.display()
                )
            })?;
            Ok(bytes)
        }
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            Err(err)
        }
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

/// What the preflight found: the row counts, the permissions the steps need, and the
/// database server's own workloads (never scaled down).
#[derive(Debug, Default)]
pub struct Preflight {
    pub counts: Vec<(Column, Counts)>,
    pub needs: Vec<crate::cluster::access::Need>,
    pub server_workloads: Vec<(crate::model::workload::WorkloadKind, String)>,
    pub notes: Vec<String>,
}

/// Before anything is written: the server is there and the admin logs in; every row of every
/// column decrypts with the current key (the runbook's "test the migration first", read-only
/// in one snapshot); a row that does not is named and nothing happens.
pub async fn preflight(
    cluster: &crate::cluster::Cluster,
    namespace: &str,
    db: &Database,
    columns: &[Column],
    (current, new): (&SecretValue, &SecretValue),
    dump: bool,
) -> Result<Preflight> {
    use super::reach::{resolve_pod, server_exists};
    use crate::cluster::access::Need;
    use crate::plan::server::{Server, parse_server};
    let client = &cluster.client;
    let server = parse_server(&db.server)?.with_tls(&db.tls);
    if !server_exists(client, namespace, &server).await? {
        bail!(
            "the PostgreSQL server {server} holding the encrypted rows does not exist in namespace {namespace}: \
             point encryption.server of the preset in the config file at your database; nothing was changed"
        );
    }
    let mut found = Preflight::default();
    if let Server::Service { name, .. } = &server {
        found.needs.push(Need::new(
            "get",
            "",
            "endpoints",
            Some(name),
            namespace,
            "to find the database's pod behind its Service",
        ));
    }
    let pod = resolve_pod(client, namespace, &server).await?;
    if let Some((pod, _)) = &pod {
        for verb in ["get", "create"] {
            found.needs.push(Need::new(
                verb,
                "",
                "pods/portforward",
                Some(pod),
                namespace,
                "to reach PostgreSQL through the API server",
            ));
        }
        if dump {
            // A WebSocket exec is authorized as get, and from Kubernetes 1.35 also as create.
            for verb in ["get", "create"] {
                found.needs.push(Need::new(
                    verb,
                    "",
                    "pods/exec",
                    Some(pod),
                    namespace,
                    "to run pg_dump in the database's pod (as kubectl exec)",
                ));
            }
            found.needs.push(Need::new(
                "get",
                "",
                "pods",
                Some(pod),
                namespace,
                "to find the database's container for pg_dump",
            ));
        }
    } else if dump {
        bail!(
            "PostgreSQL at {server} is outside the cluster: pg_dump cannot run in its pod through the API server; \
             back it up yourself and pass --no-db-backup; nothing was changed"
        );
    }
    let admin = db
        .admin
        .as_ref()
        .ok_or_else(|| anyhow!("the preset names no admin login (encryption.admin)"))?;
    found.needs.push(Need::new(
        "get",
        "",
        "secrets",
        Some(&admin.secret),
        namespace,
        "to read the PostgreSQL admin's password",
    ));
    found.server_workloads = super::postgres::server_workloads(client, namespace, &server).await?;
    let mut pg = admin_connection(cluster, namespace, db)
        .await
        .map_err(|e| anyhow!("{e:#}; nothing was changed"))?;
    let keys = Keys::new(current, new).map_err(|e| anyhow!("{e:#}; nothing was changed"))?;
    let counts = match reencrypt::count_all(&mut pg, columns, &keys).await {
        Ok(counts) => counts,
        Err(err) if err.downcast_ref::<Undecryptable>().is_some() => bail!(
            "{err:#}: the current key cannot read it, so the migration would stop there. Fix or remove that row \
             first (it is unreadable today); nothing was changed"
        ),
        Err(err) => bail!("counting the encrypted rows: {err:#}; nothing was changed"),
    };
    found.counts = columns.iter().cloned().zip(counts).collect();
    found.notes.push(format!(
        "PostgreSQL: {server} (namespace {namespace}), database {}: rows are rewritten as {} (Secret {namespace}/{} key {})",
        db.database, admin.user, admin.secret, admin.key
    ));
    Ok(found)
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
    let keys_secret = format!("{name}-keys");
    let outcome = job_until_done(ctx, name, job, &keys_secret, (key, to)).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
    // The undo's Job also removes what a killed forward Job left behind (its keys Secret).
    let mut leftovers = vec![keys_secret.clone()];
    if let Some(forward) = name.strip_suffix("-undo") {
        leftovers.push(format!("{forward}-keys"));
    }
    let mut deleted = Ok(());
    for secret in &leftovers {
        match secrets
            .delete(secret, &kube::api::DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => deleted = Err(crate::cluster::short_error(&err)),
        }
    }
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

/// Creates the temporary Secret and the Job (or finds them from an earlier attempt) and
/// waits until the Job completed or failed, at most the run's timeout.
async fn job_until_done(
    ctx: &Ctx<'_>,
    name: &str,
    job: &crate::plan::steps::JobSpec,
    keys_secret: &str,
    (key, to): (&str, Version),
) -> std::result::Result<(), String> {
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::PostParams;
    let params = PostParams {
        dry_run: false,
        field_manager: Some(crate::model::names::FIELD_MANAGER.to_string()),
    };
    let namespace = ctx.namespace().to_string();
    let labels = serde_json::json!({
        "app.kubernetes.io/managed-by": "kubectl-rotate",
        crate::plan::journal::RUN_OF_LABEL: ctx.journal.secret,
    });
    let jobs: Api<Job> = Api::namespaced(ctx.cluster.client.clone(), &namespace);
    let existing = jobs.get_opt(name).await.map_err(|e| {
        format!(
            "cannot read Job {name}: {}",
            crate::cluster::short_error(&e)
        )
    })?;
    if existing.is_none() {
        let new = super::secret::new_value(ctx, key)
            .map_err(|e| format!("{e:#}"))?
            .clone();
        let old = super::secret::old_value(ctx, key)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let (from, into) = match to {
            Version::New => (old, new),
            Version::Old => (new, old),
        };
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": keys_secret, "labels": labels},
            "type": "Opaque",
            "data": {"OLD_KEY": from.to_base64().as_str(), "NEW_KEY": into.to_base64().as_str()},
        }))
        .map_err(|e| e.to_string())?;
        let secrets: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), &namespace);
        match secrets.create(&params, &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                secrets
                    .replace(keys_secret, &params, &secret)
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot write the temporary Secret {keys_secret}: {}",
                            crate::cluster::short_error(&e)
                        )
                    })?;
            }
            Err(err) => {
                return Err(format!(
                    "cannot create the temporary Secret {keys_secret}: {}",
                    crate::cluster::short_error(&err)
                ));
            }
        }
        let mut container = serde_json::json!({
            "name": "migrate",
            "image": job.image,
            "envFrom": [{"secretRef": {"name": keys_secret}}],
        });
        if !job.command.is_empty() {
            container["command"] = serde_json::json!(job.command);
        }
        if !job.args.is_empty() {
            container["args"] = serde_json::json!(job.args);
        }
        if !job.env.is_empty() {
            container["env"] = serde_json::json!(job.env);
        }
        let manifest: Job = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": false,
                        "containers": [container],
                    },
                },
            },
        }))
        .map_err(|e| format!("the preset's encryption.job is not a valid container: {e}"))?;
        jobs.create(&params, &manifest).await.map_err(|e| {
            format!(
                "cannot create Job {name}: {}",
                crate::cluster::short_error(&e)
            )
        })?;
    }
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    loop {
        let found = jobs.get(name).await.map_err(|e| {
            format!(
                "cannot read Job {name}: {}",
                crate::cluster::short_error(&e)
            )
        })?;
        let conditions = found
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let holds = |kind: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == kind && c.status == "True")
                .map(|c| c.message.clone().unwrap_or_default())
        };
        if holds("Complete").is_some() {
            return Ok(());
        }
        if let Some(message) = holds("Failed") {
            return Err(format!(
                "Job {name} failed ({message}); `kubectl logs job/{name} -n {namespace}` says why"
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "Job {name} did not finish within {:?} (it goes on; `kubectl get job {name} -n {namespace}`)",
                ctx.timeout
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The admin's connection to `db`, its password read from the Secret the preset names.
async fn admin_connection(
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

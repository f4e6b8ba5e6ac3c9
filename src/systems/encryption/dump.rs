//! `pg_dump` run in the database's pod through the API server (what the runbook's
//! `kubectl exec <postgres-pod> -- pg_dump` does), streamed to `PATH.partial` (0600) and
//! renamed to `PATH` only when pg_dump exited 0 and its last line says the dump is complete.
//! Its connection is the pod's own (the server's socket, as `kubectl exec` gets it): no
//! password crosses the API server. The `dump-database` step itself (what an existing file
//! means, the step's answer) is not here but in `mod.rs`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::files::{create_private, refuse_git_work_tree};
use crate::plan::steps::Database;
use crate::systems::Ctx;

/// The last line of a complete plain-format `pg_dump`.
pub const DUMP_COMPLETE: &str = "-- PostgreSQL database dump complete";

/// The pod (and its PostgreSQL container) behind `db.server`.
async fn database_pod(ctx: &Ctx<'_>, db: &Database) -> Result<(String, Option<String>)> {
    let server = crate::plan::server::parse_server(&db.server)?;
    let Some((pod, _)) =
        crate::systems::reach::resolve_pod(&ctx.cluster.client, ctx.namespace(), &server).await?
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
pub(super) fn dump_is_complete(path: &Path) -> bool {
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

/// Dumps `db` to `target` through `target.partial`; the bytes written. `target` exists only
/// when the dump is complete; the partial file is removed whatever went wrong.
pub(super) async fn run_dump(ctx: &Ctx<'_>, db: &Database, target: &Path) -> Result<u64> {
    refuse_git_work_tree(target)?;
    let (pod, container) = database_pod(ctx, db).await?;
    let partial = target.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut file =
        create_private(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let result = dump_into(ctx, db, (&pod, container), (&mut file, &partial)).await;
    keep_if_complete(result, &partial, target)
}

/// Runs pg_dump in `pod` and streams its output into `file` (at `partial`); an error when it
/// did not exit 0 or its output is not a complete dump.
async fn dump_into(
    ctx: &Ctx<'_>,
    db: &Database,
    (pod, container): (&str, Option<String>),
    (file, partial): (&mut std::fs::File, &Path),
) -> Result<u64> {
    let pods: Api<Pod> = Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
    let mut process = pods
        .exec(pod, pg_dump_command(db), &exec_params(container))
        .await
        .map_err(|e| exec_refused(&e, ctx.namespace(), pod))?;
    let mut stdout = process
        .stdout()
        .ok_or_else(|| anyhow!("no stdout from pod {pod}"))?;
    let stderr = process
        .stderr()
        .ok_or_else(|| anyhow!("no stderr from pod {pod}"))?;
    let status = process.take_status();
    let errors = tokio::spawn(first_errors(stderr));
    let bytes = copy_output(&mut stdout, file, partial).await?;
    file.sync_all()?;
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    let errors = errors.await.unwrap_or_default();
    process.join().await.ok();
    if let Some(why) = exit_failure(status, &errors) {
        bail!("pg_dump in pod {pod} failed: {why}");
    }
    if !dump_is_complete(partial) {
        bail!("pg_dump in pod {pod} exited 0 but its output does not end with {DUMP_COMPLETE:?}");
    }
    Ok(bytes)
}

/// pg_dump's command line: as the preset's admin user (else `postgres`), over the pod's own
/// socket, so no password is needed.
fn pg_dump_command(db: &Database) -> Vec<String> {
    let user = db
        .admin
        .as_ref()
        .map(|a| a.user.clone())
        .unwrap_or_else(|| "postgres".into());
    vec![
        "pg_dump".to_string(),
        "--no-password".into(),
        "--username".into(),
        user,
        "--dbname".into(),
        db.database.clone(),
    ]
}

/// The exec's streams (stdout and stderr, no stdin), in `container` when the pod has one.
fn exec_params(container: Option<String>) -> AttachParams {
    let params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    match container {
        Some(container) => params.container(container),
        None => params,
    }
}

/// Why the API server did not start pg_dump in `pod` (a refused upgrade names the missing
/// permission).
fn exec_refused(err: &kube::Error, namespace: &str, pod: &str) -> anyhow::Error {
    let why = if crate::cluster::access::upgrade_forbidden(err) {
        crate::cluster::access::upgrade_refusal("pods/exec", namespace, pod)
    } else {
        crate::cluster::short_error(err)
    };
    anyhow!("cannot run pg_dump in pod {pod} (as kubectl exec): {why}")
}

/// The first 4 KiB of pg_dump's stderr, trimmed (named when it fails).
async fn first_errors(mut stderr: impl AsyncRead + Unpin) -> String {
    let mut text = Vec::new();
    let _ = (&mut stderr).take(4096).read_to_end(&mut text).await;
    String::from_utf8_lossy(&text).trim().to_string()
}

/// Copies pg_dump's output into `file` (at `partial`) until it ends; the bytes copied.
async fn copy_output(
    stdout: &mut (impl AsyncRead + Unpin),
    file: &mut std::fs::File,
    partial: &Path,
) -> Result<u64> {
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
    Ok(bytes)
}

/// Why pg_dump failed, from its exit status and the start of its stderr; `None` when it
/// exited 0.
fn exit_failure(status: Option<Status>, errors: &str) -> Option<String> {
    if status
        .as_ref()
        .is_some_and(|s| s.status.as_deref() == Some("Success"))
    {
        return None;
    }
    Some(format!(
        "{}{}",
        status
            .and_then(|s| s.message)
            .unwrap_or_else(|| "no exit status".into()),
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({errors})")
        }
    ))
}

/// Renames the partial file to `target` when the dump succeeded; removes it when it did not.
fn keep_if_complete(result: Result<u64>, partial: &Path, target: &Path) -> Result<u64> {
    match result {
        Ok(bytes) => {
            std::fs::rename(partial, target).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    partial.display(),
                    target.display()
                )
            })?;
            Ok(bytes)
        }
        Err(err) => {
            let _ = std::fs::remove_file(partial);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::steps::AdminLogin;

    fn db(admin: Option<&str>) -> Database {
        Database {
            server: "service/postgres:5432".into(),
            database: "app".into(),
            admin: admin.map(|user| AdminLogin {
                user: user.into(),
                secret: "postgres-admin".into(),
                key: "password".into(),
            }),
            tls: Default::default(),
        }
    }

    #[test]
    fn pg_dump_runs_as_the_admin_user_or_else_as_postgres() {
        assert_eq!(
            pg_dump_command(&db(Some("admin"))),
            [
                "pg_dump",
                "--no-password",
                "--username",
                "admin",
                "--dbname",
                "app"
            ]
        );
        assert_eq!(
            pg_dump_command(&db(None)),
            [
                "pg_dump",
                "--no-password",
                "--username",
                "postgres",
                "--dbname",
                "app"
            ]
        );
    }

    #[test]
    fn only_a_success_status_is_no_failure_and_a_failure_names_stderr() {
        let status = |status: &str, message: Option<&str>| Status {
            status: Some(status.into()),
            message: message.map(str::to_string),
            ..Status::default()
        };
        assert_eq!(exit_failure(Some(status("Success", None)), "noise"), None);
        assert_eq!(
            exit_failure(
                Some(status(
                    "Failure",
                    Some("command terminated with exit code 1")
                )),
                ""
            ),
            Some("command terminated with exit code 1".into())
        );
        assert_eq!(
            exit_failure(None, "pg_dump: error: connection failed"),
            Some("no exit status (pg_dump: error: connection failed)".into())
        );
    }

    #[test]
    fn a_file_is_a_complete_dump_only_when_it_ends_with_pg_dumps_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sql");
        assert!(!dump_is_complete(&path));
        std::fs::write(&path, "CREATE TABLE t ();\n").unwrap();
        assert!(!dump_is_complete(&path));
        std::fs::write(&path, format!("CREATE TABLE t ();\n{DUMP_COMPLETE}\n\n")).unwrap();
        assert!(dump_is_complete(&path));
    }
}

//! `kubectl rotate backup NAME [KEY...]`: save keys in an in-cluster backup (the format
//! rotations write; the newest `--keep` are kept), write them to a local file (`--to-file`,
//! mode 0600, never overwriting, refused inside a git work tree; `-` for stdout), or list the
//! backups (`--list`; never values).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use crate::cluster::connect::ConnectionSettings;
use crate::cluster::{self, Cluster, short_error};
use crate::plan::backup::{self, BackupRequest};
use crate::ui::printer::OutputFormat;
use crate::ui::{Printer, table};
use crate::values::SecretValue;

#[derive(Debug, Clone)]
pub enum Mode {
    List(OutputFormat),
    File(PathBuf),
    /// `keep`: prune to the newest N afterwards (the rotations' policy); `None`: delete nothing.
    InCluster {
        keep: Option<usize>,
        yes: bool,
    },
}

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub secret: String,
    pub keys: Vec<String>,
    pub mode: Mode,
}

/// Lists the backups, or reads the keys and writes them to a file or to a backup Secret.
pub async fn run(
    connection: &ConnectionSettings,
    options: BackupOptions,
    printer: &mut Printer,
) -> Result<u8> {
    // Refuse a file inside git before talking to anyone.
    if let Mode::File(path) = &options.mode {
        refuse_file(path)?;
    }
    let cluster = cluster::connect::connect(connection).await?;
    match &options.mode {
        Mode::List(output) => list(&cluster, &options.secret, *output, printer).await,
        Mode::File(path) => {
            let backup = read(&cluster, &options).await?;
            to_file(&backup, path, printer)
        }
        Mode::InCluster { keep, yes } => {
            let backup = read(&cluster, &options).await?;
            in_cluster(&cluster, &backup, *keep, *yes, printer).await
        }
    }
}

/// Refuses a path inside a git work tree, or one that exists (`-`, stdout, is always fine).
fn refuse_file(path: &Path) -> Result<()> {
    if path.as_os_str() == "-" {
        return Ok(());
    }
    if let Some(top) = backup::git_work_tree_of(path) {
        bail!(
            "refusing to write a backup into the git work tree {}: secrets belong in a password manager, not git; \
             choose a path outside it, or use --to-file - to pipe it into your password manager",
            top.display()
        );
    }
    if path.exists() {
        bail!(
            "{} already exists; backups never overwrite a file, choose a new path",
            path.display()
        );
    }
    Ok(())
}

/// `--list`: the Secret's backups as a table or JSON, never their values.
async fn list(
    cluster: &Cluster,
    secret: &str,
    output: OutputFormat,
    printer: &mut Printer,
) -> Result<u8> {
    let namespace = &cluster.namespace;
    // The Secret itself may be gone: its backups are what is left of it.
    let backups = crate::systems::secret::backups::list_backups(cluster, namespace, secret).await?;
    let infos: Vec<backup::BackupInfo> = backups.iter().map(backup::info).collect();
    match output {
        OutputFormat::Json => printer.json(&serde_json::json!({
            "apiVersion": crate::model::names::API_VERSION,
            "kind": "BackupList",
            "namespace": namespace,
            "secret": secret,
            "backups": infos,
        }))?,
        OutputFormat::Text if infos.is_empty() => {
            printer.note(&format!("No backups of Secret {namespace}/{secret}."))
        }
        OutputFormat::Text => {
            let rows: Vec<Vec<String>> = infos.iter().map(row).collect();
            for line in table::render(&["BACKUP", "CREATED", "BY", "KEYS", "REASON"], &rows) {
                printer.line(&line);
            }
        }
    }
    Ok(crate::exit::SUCCESS)
}

/// One backup's row of the `--list` table: its keys with their fingerprints, never values.
fn row(info: &backup::BackupInfo) -> Vec<String> {
    vec![
        info.name.clone(),
        info.created_at.clone(),
        info.created_by.clone(),
        info.keys
            .iter()
            .map(|(k, f)| format!("{k} (sha256:{f})"))
            .collect::<Vec<_>>()
            .join(", "),
        info.reason.clone(),
    ]
}

/// The keys read from the Secret, as the backup to write (to a file or a backup Secret).
struct Backup {
    /// `Secret NS/NAME`, for messages.
    object: String,
    /// The keys backed up, joined for messages.
    keys: String,
    request: BackupRequest,
}

/// Reads the Secret and takes the keys asked for (every key by default).
async fn read(cluster: &Cluster, options: &BackupOptions) -> Result<Backup> {
    let namespace = cluster.namespace.clone();
    let object = format!("Secret {namespace}/{}", options.secret);
    let secret = cluster.get_secret(&namespace, &options.secret).await?;
    let values = chosen_values(
        &secret.data.clone().unwrap_or_default(),
        &options.keys,
        &object,
    )?;
    let keys = values
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let request = BackupRequest {
        namespace,
        secret: options.secret.clone(),
        source_resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
        keys: values,
        at: crate::model::clock::now_rfc3339_millis(),
        by: cluster.identity().await,
        rotation_id: crate::model::clock::new_rotation_id(),
        reason: "kubectl rotate backup".to_string(),
    };
    Ok(Backup {
        object,
        keys,
        request,
    })
}

/// The values of the keys `asked` for (every key when none), refusing a key the Secret lacks.
fn chosen_values(
    data: &BTreeMap<String, ByteString>,
    asked: &[String],
    object: &str,
) -> Result<Vec<(String, SecretValue)>> {
    let keys: Vec<String> = if asked.is_empty() {
        data.keys().cloned().collect()
    } else {
        asked.to_vec()
    };
    if keys.is_empty() {
        bail!("{object} has no keys to back up");
    }
    let mut values = Vec::new();
    for key in &keys {
        let Some(value) = data.get(key) else {
            bail!(
                "key {key:?} not found in {object} (keys: {})",
                data.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        values.push((key.clone(), SecretValue::new(value.0.clone())));
    }
    Ok(values)
}

/// `--to-file`: the backup file, to stdout (`-`) or a new private file.
fn to_file(backup: &Backup, path: &Path, printer: &mut Printer) -> Result<u8> {
    let text = backup::to_file(&backup.request);
    if path.as_os_str() == "-" {
        printer.raw(text.as_bytes());
        return Ok(crate::exit::SUCCESS);
    }
    write_new_private_file(path, text.as_bytes())?;
    printer.line(&format!(
        "Wrote {} of {} to {} (mode 0600).",
        backup.keys,
        backup.object,
        path.display()
    ));
    Ok(crate::exit::SUCCESS)
}

/// In the cluster: says what it will do, asks, writes and reads back the backup Secret, then
/// (with `--keep`) prunes the older backups.
async fn in_cluster(
    cluster: &Cluster,
    backup: &Backup,
    keep: Option<usize>,
    yes: bool,
    printer: &mut Printer,
) -> Result<u8> {
    let request = &backup.request;
    let namespace = &request.namespace;
    let name = backup::backup_name(&request.secret, &request.rotation_id);
    let prune = match keep {
        None => Vec::new(),
        Some(keep) => pruned(cluster, request, keep).await?,
    };
    printer.line(&format!(
        "Back up {} of {} to Secret {namespace}/{name}.",
        backup.keys, backup.object
    ));
    if let Some(keep) = keep
        && !prune.is_empty()
    {
        printer.line(&format!(
            "--keep {keep}: then deletes the older backups {}.",
            prune.join(", ")
        ));
    }
    if !yes {
        confirm(printer)?;
    }
    create_and_read_back(cluster, request, &name).await?;
    printer.line(&format!(
        "Backed up {} of {} to {name} (read back, verified).",
        backup.keys, backup.object
    ));
    if let Some(keep) = keep {
        crate::engine::runs::prune(
            cluster,
            namespace,
            &request.secret,
            keep,
            &request.rotation_id,
            printer,
        )
        .await;
    }
    Ok(crate::exit::SUCCESS)
}

/// What `--keep` would delete once the new backup exists: the rotations' policy
/// (`runs::prune`), which spares backups that unfinished runs need.
async fn pruned(cluster: &Cluster, request: &BackupRequest, keep: usize) -> Result<Vec<String>> {
    let (namespace, secret) = (&request.namespace, &request.secret);
    let needed: Vec<String> = crate::engine::runs::unfinished_runs(cluster, namespace, secret)
        .await?
        .into_iter()
        .filter_map(|j| j.backup)
        .collect();
    let existing =
        crate::systems::secret::backups::list_backups(cluster, namespace, secret).await?;
    Ok(older_backups(&existing, keep, &needed))
}

/// The existing backups (newest first) beyond the newest `keep` once one more is added,
/// except those in `needed`.
fn older_backups(existing: &[Secret], keep: usize, needed: &[String]) -> Vec<String> {
    existing
        .iter()
        .skip(keep.saturating_sub(1))
        .filter_map(|b| b.metadata.name.clone())
        .filter(|n| !needed.contains(n))
        .collect()
}

/// Asks on the terminal before writing; without one, refuses instead of hanging.
fn confirm(printer: &mut Printer) -> Result<()> {
    if !(std::io::stdin().is_terminal() && printer.interactive()) {
        bail!(
            "refusing to back up without confirmation: there is no terminal to ask on; pass -y/--yes"
        );
    }
    printer.flush();
    let go = dialoguer::Confirm::new()
        .with_prompt("Go ahead?")
        .default(true)
        .interact_on(&dialoguer::console::Term::stderr())
        .context("cannot read the answer from the terminal")?;
    if !go {
        bail!("cancelled; nothing was changed");
    }
    Ok(())
}

/// Creates the backup Secret, reads it back and refuses one that does not hold the values.
async fn create_and_read_back(
    cluster: &Cluster,
    request: &BackupRequest,
    name: &str,
) -> Result<()> {
    let namespace = &request.namespace;
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    api.create(
        &PostParams {
            dry_run: false,
            field_manager: Some(crate::model::names::FIELD_MANAGER.into()),
        },
        &backup::build_backup(request),
    )
    .await
    .map_err(|e| {
        anyhow!(
            "cannot create the backup Secret {namespace}/{name}: {}",
            short_error(&e)
        )
    })?;
    let stored = api.get(name).await.map_err(|e| {
        anyhow!(
            "cannot read back the backup {namespace}/{name}: {}",
            short_error(&e)
        )
    })?;
    if !backup::holds(&stored, request) {
        bail!(
            "the backup Secret {namespace}/{name} does not hold the values as written; do not rely on it"
        );
    }
    Ok(())
}

/// Creates `path` with mode 0600 (owner only), failing if it exists, and writes `bytes`.
fn write_new_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    let mut file = open.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!(
            "{} already exists; backups never overwrite a file, choose a new path",
            path.display()
        ),
        _ => anyhow!("cannot create {}: {e}", path.display()),
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn data(keys: &[&str]) -> BTreeMap<String, ByteString> {
        keys.iter()
            .map(|k| (k.to_string(), ByteString(k.as_bytes().to_vec())))
            .collect()
    }

    fn names(values: &[(String, SecretValue)]) -> Vec<&str> {
        values.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn every_key_is_backed_up_when_none_is_named() {
        let values = chosen_values(&data(&["b", "a"]), &[], "Secret prod/s").unwrap();
        assert_eq!(names(&values), ["a", "b"]);
        let values = chosen_values(&data(&["b", "a"]), &["b".into()], "Secret prod/s").unwrap();
        assert_eq!(names(&values), ["b"]);
        assert_eq!(values[0].1.expose(), b"b");
    }

    #[test]
    fn a_key_the_secret_lacks_is_refused_listing_the_keys_it_has() {
        let err = chosen_values(&data(&["a", "b"]), &["c".into()], "Secret prod/s").unwrap_err();
        assert_eq!(
            err.to_string(),
            "key \"c\" not found in Secret prod/s (keys: a, b)"
        );
    }

    #[test]
    fn a_secret_without_keys_has_nothing_to_back_up() {
        let err = chosen_values(&data(&[]), &[], "Secret prod/s").unwrap_err();
        assert_eq!(err.to_string(), "Secret prod/s has no keys to back up");
    }

    #[test]
    fn keep_counts_the_new_backup_and_spares_the_backups_unfinished_runs_need() {
        let existing: Vec<Secret> = ["b4", "b3", "b2", "b1"]
            .iter()
            .map(|n| Secret {
                metadata: ObjectMeta {
                    name: Some(n.to_string()),
                    ..ObjectMeta::default()
                },
                ..Secret::default()
            })
            .collect();
        assert_eq!(older_backups(&existing, 2, &[]), ["b3", "b2", "b1"]);
        assert_eq!(older_backups(&existing, 2, &["b2".into()]), ["b3", "b1"]);
        assert!(older_backups(&existing, 5, &[]).is_empty());
    }

    #[test]
    fn stdout_is_always_a_target_and_an_existing_file_never_is() {
        assert!(refuse_file(Path::new("-")).is_ok());
        let file = tempfile::NamedTempFile::new().unwrap();
        if backup::git_work_tree_of(file.path()).is_none() {
            let err = refuse_file(file.path()).unwrap_err();
            assert!(
                err.to_string()
                    .ends_with("already exists; backups never overwrite a file, choose a new path")
            );
        }
    }
}

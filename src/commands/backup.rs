//! `kubectl rotate backup NAME [KEY...]`: save keys in an in-cluster backup (the format
//! rotations write; the newest `--keep` are kept), write them to a local file (`--to-file`,
//! mode 0600, never overwriting, refused inside a git work tree; `-` for stdout), or list the
//! backups (`--list`; never values).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use crate::cluster::connect::ConnectionSettings;
use crate::cluster::{self, short_error};
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

pub async fn run(
    connection: &ConnectionSettings,
    options: BackupOptions,
    printer: &mut Printer,
) -> Result<u8> {
    // Refuse a file inside git before talking to anyone.
    if let Mode::File(path) = &options.mode
        && path.as_os_str() != "-"
    {
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
    }
    let cluster = cluster::connect::connect(connection).await?;
    let namespace = cluster.namespace.clone();
    let object = format!("Secret {namespace}/{}", options.secret);

    if let Mode::List(output) = options.mode {
        // The Secret itself may be gone: its backups are what is left of it.
        let backups =
            crate::systems::secret::backups::list_backups(&cluster, &namespace, &options.secret)
                .await?;
        let infos: Vec<backup::BackupInfo> = backups.iter().map(backup::info).collect();
        match output {
            OutputFormat::Json => printer.json(&serde_json::json!({
                "apiVersion": crate::model::names::API_VERSION,
                "kind": "BackupList",
                "namespace": namespace,
                "secret": options.secret,
                "backups": infos,
            }))?,
            OutputFormat::Text if infos.is_empty() => {
                printer.note(&format!("No backups of {object}."))
            }
            OutputFormat::Text => {
                let rows: Vec<Vec<String>> = infos
                    .iter()
                    .map(|i| {
                        vec![
                            i.name.clone(),
                            i.created_at.clone(),
                            i.created_by.clone(),
                            i.keys
                                .iter()
                                .map(|(k, f)| format!("{k} (sha256:{f})"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            i.reason.clone(),
                        ]
                    })
                    .collect();
                for line in table::render(&["BACKUP", "CREATED", "BY", "KEYS", "REASON"], &rows) {
                    printer.line(&line);
                }
            }
        }
        return Ok(crate::exit::SUCCESS);
    }

    let secret = cluster.get_secret(&namespace, &options.secret).await?;
    let data = secret.data.clone().unwrap_or_default();
    let keys: Vec<String> = if options.keys.is_empty() {
        data.keys().cloned().collect()
    } else {
        options.keys.clone()
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
    let request = BackupRequest {
        namespace: namespace.clone(),
        secret: options.secret.clone(),
        source_resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
        keys: values,
        at: crate::model::clock::now_rfc3339_millis(),
        by: cluster.identity().await,
        rotation_id: crate::model::clock::new_rotation_id(),
        reason: "kubectl rotate backup".to_string(),
    };

    match options.mode {
        Mode::File(path) => {
            let text = backup::to_file(&request);
            if path.as_os_str() == "-" {
                printer.raw(text.as_bytes());
                return Ok(crate::exit::SUCCESS);
            }
            write_new_private_file(&path, text.as_bytes())?;
            printer.line(&format!(
                "Wrote {} of {object} to {} (mode 0600).",
                keys.join(", "),
                path.display()
            ));
            Ok(crate::exit::SUCCESS)
        }
        Mode::InCluster { keep, yes } => {
            let name = backup::backup_name(&options.secret, &request.rotation_id);
            // What `--keep` would delete once the new backup exists: the rotations' policy
            // (`pipeline::prune`), which spares backups that unfinished runs need.
            let prune: Vec<String> = match keep {
                None => Vec::new(),
                Some(keep) => {
                    let needed: Vec<String> =
                        crate::engine::runs::unfinished_runs(&cluster, &namespace, &options.secret)
                            .await?
                            .into_iter()
                            .filter_map(|j| j.backup)
                            .collect();
                    let existing = crate::systems::secret::backups::list_backups(
                        &cluster,
                        &namespace,
                        &options.secret,
                    )
                    .await?;
                    existing
                        .iter()
                        .skip(keep.saturating_sub(1))
                        .filter_map(|b| b.metadata.name.clone())
                        .filter(|n| !needed.contains(n))
                        .collect()
                }
            };
            printer.line(&format!(
                "Back up {} of {object} to Secret {namespace}/{name}.",
                keys.join(", ")
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
            }
            let api: Api<Secret> = Api::namespaced(cluster.client.clone(), &namespace);
            api.create(
                &PostParams {
                    dry_run: false,
                    field_manager: Some(crate::model::names::FIELD_MANAGER.into()),
                },
                &backup::build_backup(&request),
            )
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot create the backup Secret {namespace}/{name}: {}",
                    short_error(&e)
                )
            })?;
            let stored = api.get(&name).await.map_err(|e| {
                anyhow!(
                    "cannot read back the backup {namespace}/{name}: {}",
                    short_error(&e)
                )
            })?;
            if !backup::holds(&stored, &request) {
                bail!(
                    "the backup Secret {namespace}/{name} does not hold the values as written; do not rely on it"
                );
            }
            printer.line(&format!(
                "Backed up {} of {object} to {name} (read back, verified).",
                keys.join(", ")
            ));
            if let Some(keep) = keep {
                crate::engine::runs::prune(
                    &cluster,
                    &namespace,
                    &options.secret,
                    keep,
                    &request.rotation_id,
                    printer,
                )
                .await;
            }
            Ok(crate::exit::SUCCESS)
        }
        Mode::List(_) => unreachable!("handled above"),
    }
}

/// Creates `path` with mode 0600 (owner only), failing if it exists, and writes `bytes`.
fn write_new_private_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
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

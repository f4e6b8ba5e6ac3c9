//! The runs of a Secret as their journals record them in the cluster: listing them, the
//! unfinished ones a new change must not start over, and the retention of finished journals
//! and backups.

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::cluster::{Cluster, Scope, short_error};
use crate::engine::lock;
use crate::plan::backup;
use crate::plan::journal::{self, Journal};
use crate::ui::Printer;

/// The journals of runs (`plan::journal`), finished or not (the finished ones are kept,
/// without values, up to each Secret's backup retention).
pub async fn list_runs(
    cluster: &Cluster,
    scope: &Scope,
) -> Result<Vec<crate::plan::journal::Journal>> {
    let api: Api<Secret> = cluster.api(scope);
    let list = api
        .list(&ListParams::default().labels(crate::plan::journal::RUN_OF_LABEL))
        .await
        .map_err(|err| cluster.explain(err, &format!("list the runs {}", scope.describe())))?;
    Ok(list
        .items
        .iter()
        .filter_map(|s| crate::plan::journal::from_secret(s).ok().map(|(j, _)| j))
        .collect())
}

/// Refuses a change while another run of the Secret is unfinished: its journal holds what must
/// be finished or undone first.
pub async fn refuse_unfinished(cluster: &Cluster, namespace: &str, secret: &str) -> Result<()> {
    let unfinished = unfinished_runs(cluster, namespace, secret).await?;
    if let Some(run) = unfinished.first() {
        // A run in progress holds the lock: say who and since when.
        if let Some(held) = lock::held_by_another(cluster, namespace, secret).await? {
            bail!(held);
        }
        bail!(
            "Secret {namespace}/{secret} has an unfinished run {} ({}, {}): finish it with `{}` or undo it with `{}` first; nothing was changed",
            run.id,
            run.state.word(),
            run.where_stopped(),
            journal::resume_command(namespace, secret),
            journal::rollback_command(namespace, secret, &run.id)
        );
    }
    Ok(())
}

/// The unfinished runs of `secret`, oldest first.
pub async fn unfinished_runs(
    cluster: &Cluster,
    namespace: &str,
    secret: &str,
) -> Result<Vec<Journal>> {
    Ok(unfinished_journal_secrets(cluster, namespace, Some(secret))
        .await?
        .iter()
        .filter_map(|s| journal::from_secret(s).ok().map(|(j, _)| j))
        .collect())
}

/// The journal Secrets of unfinished runs in `namespace` (of `secret`, if given), oldest first.
pub async fn unfinished_journal_secrets(
    cluster: &Cluster,
    namespace: &str,
    secret: Option<&str>,
) -> Result<Vec<Secret>> {
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    let mut selector = format!("{}=false", journal::FINISHED_LABEL);
    if let Some(secret) = secret {
        selector.push_str(&format!(
            ",{}={}",
            journal::RUN_OF_LABEL,
            backup::backup_label_value(secret)
        ));
    }
    let mut items = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            cluster.explain(
                e,
                &format!("list the unfinished runs in namespace {namespace}"),
            )
        })?
        .items;
    items.retain(|s| {
        journal::from_secret(s).is_ok_and(|(j, _)| secret.is_none_or(|name| j.secret == name))
    });
    items.sort_by_key(|s| s.metadata.name.clone());
    Ok(items)
}

/// Keeps the newest `keep` backups and finished run journals of `secret`; never one an
/// unfinished run needs. A failure here is a warning: the run itself succeeded.
pub async fn prune(
    cluster: &Cluster,
    namespace: &str,
    secret: &str,
    keep: usize,
    this_run: &str,
    printer: &mut Printer,
) {
    let result: Result<Vec<String>> = async {
        let needed: Vec<String> = unfinished_runs(cluster, namespace, secret)
            .await?
            .into_iter()
            .filter_map(|j| j.backup)
            .collect();
        let api: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
        let backups =
            crate::systems::secret::backups::list_backups(cluster, namespace, secret).await?;
        let mut deleted = Vec::new();
        for old in backups.iter().skip(keep) {
            let Some(name) = old.metadata.name.clone() else {
                continue;
            };
            if needed.contains(&name) || name == backup::backup_name(secret, this_run) {
                continue;
            }
            api.delete(&name, &DeleteParams::default())
                .await
                .map_err(|e| {
                    anyhow!(
                        "cannot delete the old backup {namespace}/{name}: {}",
                        short_error(&e)
                    )
                })?;
            deleted.push(name);
        }
        let selector = format!(
            "{}=true,{}={}",
            journal::FINISHED_LABEL,
            journal::RUN_OF_LABEL,
            backup::backup_label_value(secret)
        );
        let mut finished = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| anyhow!("cannot list the finished runs: {}", short_error(&e)))?
            .items;
        // Run ids start with the time: newest first by name.
        finished.sort_by_key(|s| std::cmp::Reverse(s.metadata.name.clone()));
        for old in finished.iter().skip(keep) {
            if let Some(name) = old.metadata.name.clone() {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
        }
        Ok(deleted)
    }
    .await;
    match result {
        Ok(deleted) if !deleted.is_empty() => printer.note(&format!(
            "Kept the newest {keep} backups of Secret {namespace}/{secret}; deleted {}.",
            deleted.join(", ")
        )),
        Ok(_) => {}
        Err(err) => printer.warn(&format!("could not prune old backups: {err:#}")),
    }
}

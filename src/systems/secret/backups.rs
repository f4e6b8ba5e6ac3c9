//! Reading a Secret's backups from the cluster (the format is `plan::backup`).

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ListParams;

use crate::cluster::Cluster;

/// The backups of Secret `secret`, newest first.
pub async fn list_backups(cluster: &Cluster, namespace: &str, secret: &str) -> Result<Vec<Secret>> {
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    let selector = format!(
        "{}={}",
        crate::plan::secret_meta::BACKUP_OF_LABEL,
        crate::plan::backup::backup_label_value(secret)
    );
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|err| {
            cluster.explain(
                err,
                &format!("list the backups of Secret {namespace}/{secret}"),
            )
        })?;
    Ok(crate::plan::backup::newest_first(list.items))
}

//! A writing verb's request (the Secret as just read, the keys' new values, how to restart)
//! turned into a planned `Change`: the namespace's workloads and the caller's identity are
//! read here, the planning itself is pure (`plan::patch`, `plan::consumers`).
//!
//! Not here: a preset's or a rollback's additions to the change (their commands and
//! `systems/`), running it (`execute`).

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;

use crate::cluster::Cluster;
use crate::model::clock::{new_rotation_id, now_rfc3339};
use crate::plan::change::{Action, Change};
use crate::plan::secret_meta::{ROTATIONS_ANNOTATION, RotationRecord};

/// What a writing verb wants changed, before planning.
pub struct Request {
    pub action: Action,
    /// The Secret as just read.
    pub secret: Secret,
    pub changes: Vec<crate::plan::patch::KeyChange>,
    pub create_key: bool,
    pub force: bool,
    pub restart: crate::plan::patch::RestartMode,
    pub notes: Vec<String>,
}

/// Reads the namespace's workloads and the caller's identity, and plans `request` (pure
/// planning in `plan::patch`): the guarded patch and the restarts.
pub async fn plan_change(cluster: &Cluster, request: Request) -> Result<Change> {
    let namespace = request
        .secret
        .metadata
        .namespace
        .clone()
        .unwrap_or_default();
    let name = request.secret.metadata.name.clone().unwrap_or_default();
    let crate::plan::consumers::Inventory {
        workloads,
        unlisted,
    } = crate::systems::workloads::inventory::list_workloads(
        cluster,
        &crate::cluster::Scope::Namespace(namespace.clone()),
    )
    .await?;
    let consumers = crate::plan::consumers::find_consumers(&namespace, &name, &workloads);
    let record = RotationRecord {
        at: now_rfc3339(),
        id: new_rotation_id(),
        by: cluster.identity().await,
    };
    let keys: Vec<String> = request.changes.iter().map(|c| c.key.clone()).collect();
    let data = crate::plan::patch::plan_data_change(
        &request.secret,
        &crate::plan::patch::ChangeRequest {
            changes: request.changes,
            create_key: request.create_key,
            force: request.force,
            record: record.clone(),
        },
    )?;
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut restarts =
        crate::plan::patch::plan_restarts(&consumers, &key_refs, &request.restart, &workloads)?;
    restarts.warnings.extend(
        unlisted
            .iter()
            .map(crate::plan::consumers::Unlisted::warning),
    );
    let unhealthy = crate::plan::patch::unhealthy_targets(&restarts, &workloads);
    let previous_records = request
        .secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATIONS_ANNOTATION))
        .cloned();
    let old_values = data
        .keys
        .iter()
        .filter_map(|k| k.before_value.clone().map(|v| (k.key.clone(), v)))
        .collect();
    Ok(Change {
        action: request.action,
        data,
        restarts,
        record,
        previous_records,
        old_values,
        unhealthy,
        notes: request.notes,
        database: None,
        extra_needs: Vec::new(),
        log_check: None,
        reencryption: None,
        unlisted,
    })
}

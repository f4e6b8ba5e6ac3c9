//! Pure planning: from the Secret as read and the wanted change to a plan holding the JSON Patch
//! (RFC 6902) that makes it, the summary a person previews, and the workloads to restart.
//!
//! The patch is guarded: it starts with `test` operations pinning `metadata.resourceVersion`
//! and each changed key's current value, so if anything changed since the Secret was read the
//! API server refuses the whole patch (422 or 409) instead of overwriting someone else's edit.
//! It also records the rotation in `kubectl-rotate.io/rotations` and drops
//! `kubectl.kubernetes.io/last-applied-configuration` when that annotation holds a changed
//! key's old value in plain JSON.
//!
//! Refusals (immutable Secret, missing key, controller-managed Secret, unchanged value) are
//! errors that name the object and the way forward. Nothing here talks to a cluster.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::model::workload::WorkloadKind;
use crate::plan::consumers::{Consumer, Workload};
use crate::plan::secret_meta::{self, ROTATIONS_ANNOTATION, RotationRecord};
use crate::values::{SecretValue, fingerprint};

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One key's new value.
#[derive(Debug, Clone)]
pub struct KeyChange {
    pub key: String,
    pub value: SecretValue,
}

/// What the caller wants changed, and how careful to be.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    pub changes: Vec<KeyChange>,
    /// Add a key that does not exist yet instead of refusing.
    pub create_key: bool,
    /// Go on although a controller manages the Secret (it will likely revert the change).
    pub force: bool,
    /// The record written for every changed key.
    pub record: RotationRecord,
}

/// Length and fingerprint of a value: what a preview may show of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValueSummary {
    pub bytes: usize,
    pub fingerprint: String,
}

impl ValueSummary {
    fn of(bytes: &[u8]) -> Self {
        ValueSummary {
            bytes: bytes.len(),
            fingerprint: fingerprint(bytes),
        }
    }
}

/// One key's change as the preview shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedKey {
    pub key: String,
    /// `None` when the key is being created.
    pub before: Option<ValueSummary>,
    pub after: ValueSummary,
    /// The values themselves, for `--show-secrets` only.
    pub before_value: Option<SecretValue>,
    pub after_value: SecretValue,
}

/// An annotation the patch sets or removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationChange {
    Set { name: String, value: String },
    Remove { name: String, why: String },
}

#[derive(Debug, Clone)]
pub struct DataPlan {
    pub namespace: String,
    pub secret: String,
    pub resource_version: String,
    pub keys: Vec<PlannedKey>,
    pub annotations: Vec<AnnotationChange>,
    pub warnings: Vec<String>,
    /// The guarded JSON Patch. It holds values: never print it.
    pub patch: json_patch::Patch,
}

/// Plans the change of `request.changes` on `secret`.
pub fn plan_data_change(secret: &Secret, request: &ChangeRequest) -> Result<DataPlan> {
    let namespace = secret.metadata.namespace.clone().unwrap_or_default();
    let name = secret.metadata.name.clone().unwrap_or_default();
    let object = format!("Secret {namespace}/{name}");
    let Some(resource_version) = secret.metadata.resource_version.clone() else {
        bail!("{object} has no resourceVersion; it was not read from the API server");
    };
    let changed: Vec<&str> = request.changes.iter().map(|c| c.key.as_str()).collect();
    let mut edits = Edits {
        warnings: precheck(secret, &changed, request.create_key, request.force)?,
        ..Edits::default()
    };
    let keys = planned_keys(secret, request, &object, &mut edits.warnings)?;
    edits.ops = data_ops(secret, &resource_version, &keys);
    record_rotations(secret, &keys, &request.record, &mut edits)?;
    drop_last_applied(secret, &keys, &mut edits);

    let patch: json_patch::Patch = serde_json::from_value(Value::Array(edits.ops))?;
    Ok(DataPlan {
        namespace,
        secret: name,
        resource_version,
        keys,
        annotations: edits.annotations,
        warnings: edits.warnings,
        patch,
    })
}

/// What a data plan gathers besides its keys, each in the order it is made: the patch's
/// operations, the annotation changes for the preview, and the warnings.
#[derive(Default)]
struct Edits {
    ops: Vec<Value>,
    annotations: Vec<AnnotationChange>,
    warnings: Vec<String>,
}

/// Each change as the preview shows it. Refuses a key the Secret lacks (unless
/// `--create-key`) and an unchanged value; warns about a new value ending with a newline.
fn planned_keys(
    secret: &Secret,
    request: &ChangeRequest,
    object: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<PlannedKey>> {
    let data = secret.data.clone().unwrap_or_default();
    let mut keys = Vec::new();
    for change in &request.changes {
        let current = data.get(&change.key).map(|v| SecretValue::new(v.0.clone()));
        match &current {
            None if !request.create_key => return Err(missing_key(&change.key, object, &data)),
            Some(old) if old == &change.value => bail!(
                "the new value of key {:?} in {object} is the same as the current one; nothing to rotate",
                change.key
            ),
            _ => {}
        }
        if change.value.ends_with_newline() {
            warnings.push(format!(
                "the new value of {:?} ends with a newline; most apps do not expect one (the runbook's `echo` pitfall)",
                change.key
            ));
        }
        keys.push(PlannedKey {
            key: change.key.clone(),
            before: current.as_ref().map(|v| ValueSummary::of(v.expose())),
            after: ValueSummary::of(change.value.expose()),
            before_value: current,
            after_value: change.value.clone(),
        });
    }
    Ok(keys)
}

/// The refusal of `key`, which `object` (holding `data`) does not have: names the keys it has.
fn missing_key(key: &str, object: &str, data: &BTreeMap<String, ByteString>) -> anyhow::Error {
    anyhow!(
        "key {key:?} not found in {object} (keys: {}); check the name, or pass --create-key to add it",
        if data.is_empty() {
            "none".to_string()
        } else {
            data.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    )
}

/// The patch's operations on `data`: the guard on `resource_version`, then each key's
/// replacement guarded by its old value, or its addition.
fn data_ops(secret: &Secret, resource_version: &str, keys: &[PlannedKey]) -> Vec<Value> {
    let mut ops =
        vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})];
    if secret.data.is_none() {
        ops.push(json!({"op": "add", "path": "/data", "value": {}}));
    }
    for key in keys {
        let path = format!("/data/{}", escape(&key.key));
        let new = key.after_value.to_base64();
        match &key.before_value {
            Some(old) => {
                ops.push(json!({"op": "test", "path": path, "value": old.to_base64().as_str()}));
                ops.push(json!({"op": "replace", "path": path, "value": new.as_str()}));
            }
            None => ops.push(json!({"op": "add", "path": path, "value": new.as_str()})),
        }
    }
    ops
}

/// Records `record` for each of `keys` in the rotations annotation, keeping the other keys'
/// records; an annotation that cannot be read is rewritten, with a warning.
fn record_rotations(
    secret: &Secret,
    keys: &[PlannedKey],
    record: &RotationRecord,
    edits: &mut Edits,
) -> Result<()> {
    let mut records = secret_meta::rotation_records(secret).unwrap_or_else(|problem| {
        edits
            .warnings
            .push(format!("{problem}; it will be rewritten"));
        BTreeMap::new()
    });
    for key in keys {
        records.insert(key.key.clone(), record.clone());
    }
    let records_json = serde_json::to_string(&records)?;
    edits.annotations.push(AnnotationChange::Set {
        name: ROTATIONS_ANNOTATION.to_string(),
        value: records_json.clone(),
    });
    if secret.metadata.annotations.is_none() {
        edits
            .ops
            .push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    edits.ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", escape(ROTATIONS_ANNOTATION)), "value": records_json}));
    Ok(())
}

/// Removes `last-applied-configuration` when it holds one of `keys` in plain JSON: rewriting
/// it would put the new value in plain JSON too, so removing it is the only safe edit.
fn drop_last_applied(secret: &Secret, keys: &[PlannedKey], edits: &mut Edits) {
    let Some(raw) = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAST_APPLIED))
    else {
        return;
    };
    if !last_applied_holds_any(raw, keys.iter().map(|k| k.key.as_str())) {
        return;
    }
    edits.ops.push(json!({"op": "test", "path": format!("/metadata/annotations/{}", escape(LAST_APPLIED)), "value": raw}));
    edits.ops.push(
        json!({"op": "remove", "path": format!("/metadata/annotations/{}", escape(LAST_APPLIED))}),
    );
    edits.annotations.push(AnnotationChange::Remove {
        name: LAST_APPLIED.to_string(),
        why: "removed: it held the old value in plain JSON".to_string(),
    });
    edits.warnings.push(format!(
        "{LAST_APPLIED} is removed because it held the old value in plain JSON; a later client-side \
         `kubectl apply` of this Secret will treat it as newly applied"
    ));
}

/// The refusals that do not depend on the new value, so a person is not asked to type a
/// value for a rotation that cannot happen. Returns warnings for what `force` overrides.
pub fn precheck(
    secret: &Secret,
    keys: &[&str],
    create_key: bool,
    force: bool,
) -> Result<Vec<String>> {
    let namespace = secret.metadata.namespace.clone().unwrap_or_default();
    let name = secret.metadata.name.clone().unwrap_or_default();
    let object = format!("Secret {namespace}/{name}");
    let mut warnings = Vec::new();
    if secret.immutable == Some(true) {
        bail!(
            "{object} is immutable (immutable: true), so it cannot be patched; create a new Secret \
             with the new value and point the workloads at it"
        );
    }
    if let Some(manager) = secret_meta::manager(secret) {
        let (who, source) = (&manager.name, &manager.source);
        if !force {
            bail!(
                "{object} is managed by {who}, which would write the old value back; change the \
                 value in {source} instead, or pass --force to change it here anyway"
            );
        }
        warnings.push(format!(
            "{object} is managed by {who}; it will likely revert this change (--force): the \
             value must also change in {source}"
        ));
    }

    let data = secret.data.clone().unwrap_or_default();
    for key in keys {
        if !valid_key(key) {
            bail!(
                "{key:?} is not a valid Secret key: use letters, digits, '-', '_' and '.' (at most 253 characters)"
            );
        }
        if !data.contains_key(*key) && !create_key {
            return Err(missing_key(key, &object, &data));
        }
    }
    Ok(warnings)
}

/// Kubernetes' rule for Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// RFC 6901: `~` becomes `~0` and `/` becomes `~1` in a JSON Pointer segment.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn last_applied_holds_any<'a>(raw: &str, mut keys: impl Iterator<Item = &'a str>) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(raw) else {
        return false;
    };
    keys.any(|key| {
        ["data", "stringData"]
            .iter()
            .any(|field| doc.get(field).and_then(|d| d.get(key)).is_some())
    })
}

/// Which workloads a run restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartMode {
    /// Every restartable consumer of the changed keys.
    Auto,
    /// Nothing: pods keep the old value until they restart.
    None,
    /// Exactly these `(kind, name)`.
    List(Vec<(WorkloadKind, String)>),
}

/// A workload the run restarts, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    pub kind: WorkloadKind,
    pub name: String,
    /// How it uses the changed keys (empty when the user named it though it does not).
    pub usages: Vec<String>,
}

impl Restart {
    /// `workload`, restarted; `usages`: how it uses the changed keys.
    fn of(workload: &Workload, usages: Vec<String>) -> Self {
        Restart {
            kind: workload.kind,
            name: workload.name.clone(),
            usages,
        }
    }

    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}

/// A consumer the run leaves alone, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct NotRestarted {
    pub kind: WorkloadKind,
    pub name: String,
    pub usages: Vec<String>,
    pub why: String,
}

impl NotRestarted {
    /// `workload`, left alone for `why`; `usages`: how it uses the changed keys.
    fn of(workload: &Workload, usages: Vec<String>, why: String) -> Self {
        NotRestarted {
            kind: workload.kind,
            name: workload.name.clone(),
            usages,
            why,
        }
    }

    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestartPlan {
    pub restart: Vec<Restart>,
    pub not_restarted: Vec<NotRestarted>,
    pub warnings: Vec<String>,
}

/// Chooses the workloads to restart among `consumers` (of the Secret) for the changed `keys`.
/// `workloads` is every workload of the namespace, to resolve an explicit `--restart` list.
pub fn plan_restarts(
    consumers: &[Consumer<'_>],
    keys: &[&str],
    mode: &RestartMode,
    workloads: &[Workload],
) -> Result<RestartPlan> {
    let affected = Affected::new(consumers, keys);
    let mut plan = RestartPlan {
        warnings: affected.reloader_warnings(),
        ..RestartPlan::default()
    };
    match mode {
        RestartMode::None => affected.plan_none(&mut plan),
        RestartMode::Auto => affected.plan_auto(&mut plan),
        RestartMode::List(wanted) => affected.plan_list(wanted, workloads, &mut plan)?,
    }
    let partitioned: Vec<String> = plan
        .restart
        .iter()
        .filter_map(|r| find_workload(workloads, r.kind, &r.name))
        .filter_map(partition_warning)
        .collect();
    plan.warnings.extend(partitioned);
    Ok(plan)
}

/// The consumers of the changed keys, with those keys: what a restart plan chooses among.
struct Affected<'a> {
    keys: &'a [&'a str],
    consumers: Vec<&'a Consumer<'a>>,
}

impl<'a> Affected<'a> {
    /// The consumers in `consumers` that use any of `keys`, in their order.
    fn new(consumers: &'a [Consumer<'a>], keys: &'a [&'a str]) -> Self {
        let consumers = consumers
            .iter()
            .filter(|c| keys.iter().any(|k| c.uses_key(k)))
            .collect();
        Affected { keys, consumers }
    }

    /// How `workload` uses the changed keys; empty when it is not one of the consumers.
    fn usages_of_workload(&self, workload: &Workload) -> Vec<String> {
        self.consumers
            .iter()
            .find(|c| std::ptr::eq(c.workload, workload))
            .map(|c| usage_texts(c, self.keys))
            .unwrap_or_default()
    }

    /// `consumer` left alone, for `why`.
    fn not_restarted(&self, consumer: &Consumer<'_>, why: String) -> NotRestarted {
        NotRestarted::of(consumer.workload, usage_texts(consumer, self.keys), why)
    }

    /// A warning for each consumer that Reloader restarts too when the Secret changes.
    fn reloader_warnings(&self) -> Vec<String> {
        self.consumers
            .iter()
            .filter_map(|c| {
                let annotation = reloader_annotation(c.workload)?;
                Some(format!(
                    "{} has the Reloader annotation {annotation}: Reloader will restart it too when the Secret changes",
                    c.workload.reference()
                ))
            })
            .collect()
    }

    /// `--restart none`: every consumer is left alone.
    fn plan_none(&self, plan: &mut RestartPlan) {
        for consumer in &self.consumers {
            plan.not_restarted.push(self.not_restarted(
                consumer,
                "--restart none: its pods still hold the old value until they restart".to_string(),
            ));
        }
    }

    /// `--restart auto`: every consumer that can be restarted is; the others are explained.
    fn plan_auto(&self, plan: &mut RestartPlan) {
        for consumer in &self.consumers {
            let workload = consumer.workload;
            if let Some(why) = on_delete(workload) {
                plan.not_restarted.push(self.not_restarted(consumer, why));
            } else if let Some(why) = not_restartable(workload) {
                if workload.paused {
                    plan.warnings.push(format!(
                        "{} is paused and is not restarted; {why}",
                        workload.reference()
                    ));
                }
                plan.not_restarted.push(self.not_restarted(consumer, why));
            } else {
                plan.restart
                    .push(Restart::of(workload, usage_texts(consumer, self.keys)));
            }
        }
    }

    /// `--restart KIND/NAME,...`: exactly the listed workloads (each must exist and be
    /// restartable); the consumers not listed are explained.
    fn plan_list(
        &self,
        wanted: &[(WorkloadKind, String)],
        workloads: &[Workload],
        plan: &mut RestartPlan,
    ) -> Result<()> {
        for (kind, name) in wanted {
            let workload = listed_workload(workloads, *kind, name)?;
            let usages = self.usages_of_workload(workload);
            if let Some(why) = on_delete(workload) {
                plan.not_restarted
                    .push(NotRestarted::of(workload, usages, why));
                continue;
            }
            if usages.is_empty() {
                plan.warnings.push(format!("{} does not use the changed key as far as its pod template shows; restarting it as asked", workload.reference()));
            }
            plan.restart.push(Restart::of(workload, usages));
        }
        for consumer in &self.consumers {
            let listed = wanted
                .iter()
                .any(|(k, n)| *k == consumer.workload.kind && *n == consumer.workload.name);
            if !listed {
                plan.not_restarted.push(
                    self.not_restarted(
                        consumer,
                        "not in --restart: its pods still hold the old value until they restart"
                            .to_string(),
                    ),
                );
            }
        }
        Ok(())
    }
}

/// How `consumer` uses any of `keys`, in words, each way once.
fn usage_texts(consumer: &Consumer<'_>, keys: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        for usage in consumer.usages_of(key) {
            let text = usage.describe();
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
    out
}

/// The workload of `workloads` with this kind and name.
fn find_workload<'w>(
    workloads: &'w [Workload],
    kind: WorkloadKind,
    name: &str,
) -> Option<&'w Workload> {
    workloads.iter().find(|w| w.kind == kind && w.name == name)
}

/// The workload `--restart` names, refused when it does not exist or cannot be restarted.
fn listed_workload<'w>(
    workloads: &'w [Workload],
    kind: WorkloadKind,
    name: &str,
) -> Result<&'w Workload> {
    let reference = format!("{}/{name}", kind.short());
    let Some(workload) = find_workload(workloads, kind, name) else {
        bail!("--restart names {reference}, which does not exist in this namespace");
    };
    if let Some(why) = not_restartable(workload) {
        bail!("--restart names {reference}, which cannot be restarted: {why}");
    }
    Ok(workload)
}

/// The warning for a StatefulSet whose `rollingUpdate.partition` keeps some pods on the old
/// value, naming them; `None` when it keeps none.
fn partition_warning(workload: &Workload) -> Option<String> {
    let (Some(partition), WorkloadKind::StatefulSet) = (workload.rollout.partition, workload.kind)
    else {
        return None;
    };
    let kept = (0..partition.min(workload.rollout.replicas.unwrap_or(1)))
        .map(|i| format!("{}-{i}", workload.name))
        .collect::<Vec<_>>();
    if kept.is_empty() {
        return None;
    }
    Some(format!(
        "{} has rollingUpdate.partition {partition}: pods {} are not restarted and keep the old value",
        workload.reference(),
        kept.join(", ")
    ))
}

/// The workloads `plan` restarts that are not healthy before the change (mid-rollout,
/// unavailable, stuck), with why: a rotation would be blamed for their failure.
pub fn unhealthy_targets(plan: &RestartPlan, workloads: &[Workload]) -> Vec<(String, String)> {
    plan.restart
        .iter()
        .filter_map(|r| {
            let workload = find_workload(workloads, r.kind, &r.name)?;
            let why = workload.rollout.unhealthy.clone()?;
            Some((workload.reference(), why))
        })
        .collect()
}

/// An OnDelete workload replaces no pod when its template changes: the rotation leaves it to
/// its owner, with the commands that replace its pods one at a time.
fn on_delete(workload: &Workload) -> Option<String> {
    if !workload.rollout.on_delete {
        return None;
    }
    let ns = &workload.namespace;
    let how = match (workload.kind, &workload.rollout.selector) {
        (WorkloadKind::StatefulSet, _) => {
            let last = workload.rollout.replicas.unwrap_or(1).max(1) - 1;
            format!(
                "`kubectl delete pod {name}-{last} -n {ns}`, wait until its replacement is Ready, then the next lower ordinal down to {name}-0",
                name = workload.name
            )
        }
        (_, Some(selector)) => format!(
            "list them with `kubectl get pods -n {ns} -l {selector} -o name` and `kubectl delete -n {ns} POD` each after the previous replacement is Ready"
        ),
        _ => format!("`kubectl delete -n {ns} POD` each after the previous replacement is Ready"),
    };
    Some(format!(
        "updateStrategy OnDelete: its pods keep the old value until they are deleted; replace them one at a time: {how}"
    ))
}

fn not_restartable(workload: &Workload) -> Option<String> {
    match workload.kind {
        WorkloadKind::CronJob => {
            return Some("a CronJob's next Job reads the new value".to_string());
        }
        WorkloadKind::Job if workload.created_by.is_some() => {
            return Some(format!(
                "a Job of {}: its running pods keep the old value until they end (restarting a Job would run it \
                 again); the CronJob's next Job reads the new value",
                workload.created_by.as_deref().unwrap_or_default()
            ));
        }
        WorkloadKind::Job => {
            return Some(format!(
                "a Job: its running pods keep the old value until they end (restarting a Job would run it again); \
                 if it must use the new value, let it finish and run it again (`kubectl get job {} -n {}`)",
                workload.name, workload.namespace
            ));
        }
        WorkloadKind::Pod => {
            return Some(format!(
                "a pod without a controller: nothing re-creates it, so it keeps the old value until you delete \
                 and re-create it (`kubectl get pod {} -n {} -o yaml`, then `kubectl replace --force -f` that manifest)",
                workload.name, workload.namespace
            ));
        }
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => {}
    }
    if workload.paused {
        return Some(
            "a paused Deployment does not roll out; `kubectl rollout resume` it, then restart it"
                .to_string(),
        );
    }
    None
}

fn reloader_annotation(workload: &Workload) -> Option<String> {
    [
        "reloader.stakater.com/auto",
        "secret.reloader.stakater.com/reload",
        "reloader.stakater.com/search",
    ]
    .into_iter()
    .find(|a| {
        workload
            .annotations
            .get(*a)
            .is_some_and(|v| !v.is_empty() && v != "false")
    })
    .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("app-secrets".into()),
                namespace: Some("prod".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    fn request(key: &str, value: &str) -> ChangeRequest {
        ChangeRequest {
            changes: vec![KeyChange {
                key: key.into(),
                value: SecretValue::new(value.as_bytes().to_vec()),
            }],
            create_key: false,
            force: false,
            record: RotationRecord {
                at: "2026-11-26T04:00:00Z".into(),
                id: "r-1".into(),
                by: "alice".into(),
            },
        }
    }

    fn apply(secret: &Secret, plan: &DataPlan) -> Result<Value, json_patch::PatchError> {
        let mut doc = serde_json::to_value(secret).unwrap();
        json_patch::patch(&mut doc, &plan.patch)?;
        Ok(doc)
    }

    #[test]
    fn the_patch_changes_only_the_key_and_records_the_rotation() {
        let s = secret(&[("openai-api-key", "sk-old"), ("redis-password", "r")]);
        let plan = plan_data_change(&s, &request("openai-api-key", "sk-new")).unwrap();
        let doc = apply(&s, &plan).unwrap();
        assert_eq!(doc["data"]["openai-api-key"], "c2stbmV3"); // base64("sk-new")
        assert_eq!(doc["data"]["redis-password"], "cg==");
        let records: Value = serde_json::from_str(
            doc["metadata"]["annotations"][ROTATIONS_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(records["openai-api-key"]["by"], "alice");
        assert_eq!(plan.keys[0].before.as_ref().unwrap().bytes, 6);
        assert_eq!(plan.keys[0].after.fingerprint, fingerprint(b"sk-new"));
    }

    #[test]
    fn the_patch_pins_the_resource_version_and_the_old_value() {
        let s = secret(&[("k", "old")]);
        let plan = plan_data_change(&s, &request("k", "new")).unwrap();
        let ops = serde_json::to_value(&plan.patch).unwrap();
        assert_eq!(
            ops[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"})
        );
        assert_eq!(
            ops[1],
            json!({"op": "test", "path": "/data/k", "value": "b2xk"})
        );
        // Applied to a Secret that changed meanwhile, the patch fails as a whole.
        let mut changed = s.clone();
        changed.metadata.resource_version = Some("43".into());
        assert!(apply(&changed, &plan).is_err());
        let mut other_value = s.clone();
        other_value
            .data
            .as_mut()
            .unwrap()
            .insert("k".into(), ByteString(b"someone-else".to_vec()));
        assert!(apply(&other_value, &plan).is_err());
    }

    #[test]
    fn pointer_segments_are_escaped_and_invalid_keys_refused() {
        assert_eq!(escape("a/b~c"), "a~1b~0c");
        let s = secret(&[("tls.crt", "old")]);
        let doc = apply(
            &s,
            &plan_data_change(&s, &request("tls.crt", "new")).unwrap(),
        )
        .unwrap();
        assert_eq!(doc["data"]["tls.crt"], "bmV3");
        let mut req = request("a/b", "new");
        req.create_key = true;
        let err = plan_data_change(&s, &req).unwrap_err().to_string();
        assert!(err.contains("not a valid Secret key"), "{err}");
    }

    #[test]
    fn a_missing_key_is_refused_unless_create_key() {
        let s = secret(&[("a", "1")]);
        let err = plan_data_change(&s, &request("b", "2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"key "b" not found in Secret prod/app-secrets (keys: a)"#),
            "{err}"
        );
        assert!(err.contains("--create-key"), "{err}");
        let mut req = request("b", "2");
        req.create_key = true;
        let plan = plan_data_change(&s, &req).unwrap();
        assert!(plan.keys[0].before.is_none());
        assert_eq!(apply(&s, &plan).unwrap()["data"]["b"], "Mg==");
        let empty = Secret {
            data: None,
            ..secret(&[])
        };
        assert_eq!(
            apply(&empty, &plan_data_change(&empty, &req).unwrap()).unwrap()["data"]["b"],
            "Mg=="
        );
    }

    #[test]
    fn an_immutable_secret_is_refused() {
        let mut s = secret(&[("a", "1")]);
        s.immutable = Some(true);
        let err = plan_data_change(&s, &request("a", "2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Secret prod/app-secrets is immutable"),
            "{err}"
        );
    }

    #[test]
    fn a_controller_managed_secret_is_refused_unless_forced_with_a_warning() {
        let mut s = secret(&[("a", "1")]);
        s.metadata.labels = Some(
            [(
                "app.kubernetes.io/managed-by".to_string(),
                "Helm".to_string(),
            )]
            .into(),
        );
        let err = plan_data_change(&s, &request("a", "2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("managed by Helm") && err.contains("--force"),
            "{err}"
        );
        let mut req = request("a", "2");
        req.force = true;
        let plan = plan_data_change(&s, &req).unwrap();
        assert!(plan.warnings.iter().any(|w| w.contains("managed by Helm")));
    }

    #[test]
    fn the_same_value_is_refused() {
        let s = secret(&[("a", "same")]);
        let err = plan_data_change(&s, &request("a", "same"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("same as the current one"), "{err}");
    }

    #[test]
    fn last_applied_configuration_holding_the_old_value_is_removed() {
        let mut s = secret(&[("a", "old")]);
        s.metadata.annotations = Some(
            [(
                LAST_APPLIED.to_string(),
                r#"{"apiVersion":"v1","kind":"Secret","data":{"a":"b2xk"}}"#.to_string(),
            )]
            .into(),
        );
        let plan = plan_data_change(&s, &request("a", "new")).unwrap();
        assert!(
            plan.annotations.iter().any(
                |c| matches!(c, AnnotationChange::Remove { name, .. } if name == LAST_APPLIED)
            )
        );
        let doc = apply(&s, &plan).unwrap();
        assert!(doc["metadata"]["annotations"].get(LAST_APPLIED).is_none());
        // Not touched when it does not hold the key.
        s.metadata.annotations = Some(
            [(
                LAST_APPLIED.to_string(),
                r#"{"kind":"Secret","data":{"other":"eA=="}}"#.to_string(),
            )]
            .into(),
        );
        let plan = plan_data_change(&s, &request("a", "new")).unwrap();
        assert_eq!(plan.annotations.len(), 1);
    }

    #[test]
    fn a_trailing_newline_in_the_new_value_is_warned_about() {
        let s = secret(&[("a", "old")]);
        let plan = plan_data_change(&s, &request("a", "new\n")).unwrap();
        assert!(plan.warnings.iter().any(|w| w.contains("newline")));
    }

    #[test]
    fn a_missing_key_in_a_secret_without_data_is_refused_listing_no_keys() {
        let err = missing_key("b", "Secret prod/s", &BTreeMap::new()).to_string();
        assert_eq!(
            err,
            r#"key "b" not found in Secret prod/s (keys: none); check the name, or pass --create-key to add it"#
        );
    }

    #[test]
    fn a_created_key_is_added_without_a_guard_on_an_old_value() {
        let empty = Secret {
            data: None,
            ..secret(&[])
        };
        let mut req = request("b", "2");
        req.create_key = true;
        let mut warnings = Vec::new();
        let keys = planned_keys(&empty, &req, "Secret prod/app-secrets", &mut warnings).unwrap();
        assert_eq!(
            data_ops(&empty, "42", &keys),
            [
                json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"}),
                json!({"op": "add", "path": "/data", "value": {}}),
                json!({"op": "add", "path": "/data/b", "value": "Mg=="}),
            ]
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn an_unreadable_rotations_annotation_is_rewritten_with_a_warning() {
        let mut s = secret(&[("a", "old")]);
        s.metadata.annotations =
            Some([(ROTATIONS_ANNOTATION.to_string(), "not json".to_string())].into());
        let keys = planned_keys(
            &s,
            &request("a", "new"),
            "Secret prod/app-secrets",
            &mut Vec::new(),
        )
        .unwrap();
        let mut edits = Edits::default();
        record_rotations(&s, &keys, &request("a", "new").record, &mut edits).unwrap();
        assert!(
            edits.warnings[0].ends_with("; it will be rewritten"),
            "{:?}",
            edits.warnings
        );
        let AnnotationChange::Set { value, .. } = &edits.annotations[0] else {
            panic!("{:?}", edits.annotations);
        };
        let records: Value = serde_json::from_str(value).unwrap();
        assert_eq!(records["a"]["id"], "r-1");
        // The Secret has annotations already: only the rotations one is added.
        assert_eq!(edits.ops.len(), 1);
    }

    #[test]
    fn last_applied_configuration_that_is_not_json_is_left_alone() {
        let mut s = secret(&[("a", "old")]);
        s.metadata.annotations = Some([(LAST_APPLIED.to_string(), "{not json".to_string())].into());
        let keys = planned_keys(
            &s,
            &request("a", "new"),
            "Secret prod/app-secrets",
            &mut Vec::new(),
        )
        .unwrap();
        let mut edits = Edits::default();
        drop_last_applied(&s, &keys, &mut edits);
        assert!(edits.ops.is_empty() && edits.annotations.is_empty() && edits.warnings.is_empty());
    }

    mod restarts {
        use super::*;
        use crate::plan::consumers::find_consumers;
        use k8s_openapi::api::core::v1::{Container, EnvFromSource, PodSpec, SecretEnvSource};

        fn workload(kind: WorkloadKind, name: &str, uses: bool) -> Workload {
            let env_from = uses.then(|| {
                vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "app-secrets".into(),
                        optional: None,
                    }),
                    ..EnvFromSource::default()
                }]
            });
            Workload {
                kind,
                namespace: "prod".into(),
                name: name.into(),
                annotations: BTreeMap::new(),
                pod_spec: PodSpec {
                    containers: vec![Container {
                        name: "c".into(),
                        env_from,
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                },
                paused: false,
                rollout: crate::plan::consumers::RolloutFacts::default(),
                created_by: None,
            }
        }

        #[test]
        fn auto_restarts_every_restartable_consumer_and_explains_the_others() {
            let mut paused = workload(WorkloadKind::Deployment, "paused", true);
            paused.paused = true;
            let workloads = vec![
                workload(WorkloadKind::Deployment, "api", true),
                workload(WorkloadKind::StatefulSet, "db", true),
                workload(WorkloadKind::CronJob, "report", true),
                workload(WorkloadKind::Deployment, "frontend", false),
                paused,
            ];
            let consumers = find_consumers("prod", "app-secrets", &workloads);
            let plan = plan_restarts(&consumers, &["k"], &RestartMode::Auto, &workloads).unwrap();
            let restarted: Vec<String> = plan.restart.iter().map(Restart::reference).collect();
            assert_eq!(restarted, ["deployment/api", "statefulset/db"]);
            let skipped: Vec<String> = plan.not_restarted.iter().map(|n| n.reference()).collect();
            assert_eq!(skipped, ["cronjob/report", "deployment/paused"]);
            assert!(
                plan.warnings
                    .iter()
                    .any(|w| w.contains("deployment/paused is paused"))
            );
        }

        #[test]
        fn a_job_and_a_bare_pod_are_listed_as_not_restarted_with_what_to_do() {
            let workloads = vec![
                workload(WorkloadKind::Deployment, "api", true),
                workload(WorkloadKind::Job, "migrate", true),
                workload(WorkloadKind::Pod, "debug", true),
            ];
            let consumers = find_consumers("prod", "app-secrets", &workloads);
            let plan = plan_restarts(&consumers, &["k"], &RestartMode::Auto, &workloads).unwrap();
            let restarted: Vec<String> = plan.restart.iter().map(Restart::reference).collect();
            assert_eq!(restarted, ["deployment/api"]);
            let job = &plan.not_restarted[0];
            assert_eq!(job.reference(), "job/migrate");
            assert!(
                job.why.contains("keep the old value until they end"),
                "{}",
                job.why
            );
            let pod = &plan.not_restarted[1];
            assert_eq!(pod.reference(), "pod/debug");
            assert!(pod.why.contains("replace --force"), "{}", pod.why);
        }

        #[test]
        fn none_restarts_nothing_and_says_the_pods_keep_the_old_value() {
            let workloads = vec![workload(WorkloadKind::Deployment, "api", true)];
            let consumers = find_consumers("prod", "app-secrets", &workloads);
            let plan = plan_restarts(&consumers, &["k"], &RestartMode::None, &workloads).unwrap();
            assert!(plan.restart.is_empty());
            assert!(plan.not_restarted[0].why.contains("old value"));
        }

        #[test]
        fn an_explicit_list_is_honoured_and_checked() {
            let workloads = vec![
                workload(WorkloadKind::Deployment, "api", true),
                workload(WorkloadKind::Deployment, "frontend", false),
            ];
            let consumers = find_consumers("prod", "app-secrets", &workloads);
            let list = RestartMode::List(vec![(WorkloadKind::Deployment, "frontend".into())]);
            let plan = plan_restarts(&consumers, &["k"], &list, &workloads).unwrap();
            assert_eq!(plan.restart[0].reference(), "deployment/frontend");
            assert_eq!(plan.not_restarted[0].reference(), "deployment/api");
            assert!(
                plan.warnings
                    .iter()
                    .any(|w| w.contains("does not use the changed key"))
            );
            let missing = RestartMode::List(vec![(WorkloadKind::Deployment, "nope".into())]);
            assert!(plan_restarts(&consumers, &["k"], &missing, &workloads).is_err());
        }

        #[test]
        fn on_delete_workloads_are_left_to_their_owner_with_the_commands() {
            let mut db = workload(WorkloadKind::StatefulSet, "db", true);
            db.rollout.on_delete = true;
            db.rollout.replicas = Some(3);
            let workloads = vec![workload(WorkloadKind::Deployment, "api", true), db];
            let consumers = find_consumers("prod", "app-secrets", &workloads);
            for mode in [
                RestartMode::Auto,
                RestartMode::List(vec![(WorkloadKind::StatefulSet, "db".into())]),
            ] {
                let plan = plan_restarts(&consumers, &["k"], &mode, &workloads).unwrap();
                assert!(plan.restart.iter().all(|r| r.name != "db"), "{mode:?}");
                let db = plan.not_restarted.iter().find(|n| n.name == "db").unwrap();
                assert!(
                    db.why.contains("updateStrategy OnDelete")
                        && db.why.contains("kubectl delete pod db-2 -n prod"),
                    "{}",
                    db.why
                );
            }
        }

        #[test]
        fn a_partitioned_statefulset_names_the_pods_that_keep_the_old_value() {
            let mut db = workload(WorkloadKind::StatefulSet, "db", true);
            db.rollout.partition = Some(2);
            db.rollout.replicas = Some(3);
            let workloads = vec![db];
            let consumers = find_consumers("prod", "app-secrets", &workloads);
            let plan = plan_restarts(&consumers, &["k"], &RestartMode::Auto, &workloads).unwrap();
            assert_eq!(plan.restart[0].reference(), "statefulset/db");
            assert!(
                plan.warnings
                    .iter()
                    .any(|w| w.contains("partition 2") && w.contains("db-0, db-1")),
                "{:?}",
                plan.warnings
            );
        }

        #[test]
        fn unhealthy_targets_are_the_restarted_consumers_that_are_not_rolled_out() {
            let mut api = workload(WorkloadKind::Deployment, "api", true);
            api.rollout.unhealthy = Some("1 of 2 updated replicas are available".into());
            let mut frontend = workload(WorkloadKind::Deployment, "frontend", false);
            frontend.rollout.unhealthy = Some("stuck".into());
            let workloads = vec![
                api,
                frontend,
                workload(WorkloadKind::Deployment, "worker", true),
            ];
            let consumers = find_consumers("prod", "app-secrets", &workloads);
            let plan = plan_restarts(&consumers, &["k"], &RestartMode::Auto, &workloads).unwrap();
            assert_eq!(
                unhealthy_targets(&plan, &workloads),
                [(
                    "deployment/api".to_string(),
                    "1 of 2 updated replicas are available".to_string()
                )]
            );
        }

        #[test]
        fn reloader_annotations_are_warned_about() {
            let mut api = workload(WorkloadKind::Deployment, "api", true);
            api.annotations
                .insert("reloader.stakater.com/auto".into(), "true".into());
            let workloads = vec![api];
            let consumers = find_consumers("prod", "app-secrets", &workloads);
            let plan = plan_restarts(&consumers, &["k"], &RestartMode::Auto, &workloads).unwrap();
            assert!(plan.warnings.iter().any(|w| w.contains("Reloader")));
        }

        #[test]
        fn a_usage_covering_several_changed_keys_is_listed_once() {
            let api = workload(WorkloadKind::Deployment, "api", true);
            let consumer = Consumer {
                workload: &api,
                usages: vec![
                    crate::plan::consumers::Usage::EnvFrom {
                        container: "c".into(),
                        init_container: false,
                        sidecar: false,
                        prefix: None,
                    },
                    crate::plan::consumers::Usage::Env {
                        container: "c".into(),
                        init_container: false,
                        sidecar: false,
                        variable: "B".into(),
                        key: "b".into(),
                    },
                ],
            };
            assert_eq!(
                usage_texts(&consumer, &["a", "b"]),
                ["envFrom in c", "env B in c"]
            );
            assert!(usage_texts(&consumer, &[]).is_empty());
        }

        #[test]
        fn a_listed_workload_that_cannot_be_restarted_is_refused_with_why() {
            let workloads = vec![
                workload(WorkloadKind::Deployment, "api", true),
                workload(WorkloadKind::CronJob, "report", true),
            ];
            let found = listed_workload(&workloads, WorkloadKind::Deployment, "api").unwrap();
            assert_eq!(found.reference(), "deployment/api");
            let err = listed_workload(&workloads, WorkloadKind::CronJob, "report")
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                "--restart names cronjob/report, which cannot be restarted: a CronJob's next Job reads the new value"
            );
            let err = listed_workload(&workloads, WorkloadKind::StatefulSet, "api")
                .unwrap_err()
                .to_string();
            assert!(err.contains("does not exist in this namespace"), "{err}");
        }

        #[test]
        fn a_partition_warns_only_about_pods_that_exist_below_it() {
            let mut db = workload(WorkloadKind::StatefulSet, "db", true);
            db.rollout.partition = Some(5);
            db.rollout.replicas = Some(2);
            let warning = partition_warning(&db).unwrap();
            assert!(
                warning.contains("pods db-0, db-1 are not restarted"),
                "{warning}"
            );
            db.rollout.partition = Some(0);
            assert_eq!(partition_warning(&db), None);
            let mut api = workload(WorkloadKind::Deployment, "api", true);
            api.rollout.partition = Some(2);
            assert_eq!(partition_warning(&api), None);
        }
    }
}

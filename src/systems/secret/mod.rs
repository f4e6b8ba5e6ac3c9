//! The Secret and its backup: back up the old values, patch in the new ones, restore the old
//! ones. Every write is guarded by `test` operations on the values it replaces, so it never
//! overwrites a change it did not plan; a failed or unanswered write is read back.

pub mod backups;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::context::{Applied, Checked, Ctx, StepOutcome};
use crate::cluster::short_error;
use crate::model::names::FIELD_MANAGER;
use crate::plan::backup::{self, BackupRequest};
use crate::plan::patch::{self, ChangeRequest, KeyChange, escape};
use crate::plan::secret_meta::ROTATIONS_ANNOTATION;
use crate::plan::steps::{Held, Version};
use crate::values::{SecretValue, fingerprint};

fn api(ctx: &Ctx<'_>) -> Api<Secret> {
    Api::namespaced(ctx.cluster.client.clone(), ctx.namespace())
}

pub fn value_of<'s>(secret: &'s Secret, key: &str) -> Option<&'s [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.as_slice())
}

/// Whether the Secret holds every new value of the run.
fn holds_new(live: &Secret, ctx: &Ctx<'_>) -> bool {
    !ctx.new_values.is_empty()
        && ctx
            .new_values
            .iter()
            .all(|(k, v)| value_of(live, k) == Some(v.expose()))
}

/// The first key whose value is neither the run's old one (by fingerprint; absent for a key
/// the run adds) nor, when `or_new`, its new one.
fn key_changed_by_someone_else(live: &Secret, ctx: &Ctx<'_>, or_new: bool) -> Option<String> {
    ctx.journal.keys.iter().find_map(|key| {
        let current = value_of(live, &key.name);
        let is_old = match (&key.before, current) {
            (None, None) => true,
            (Some(before), Some(v)) => fingerprint(v) == before.fingerprint,
            _ => false,
        };
        let is_new = ctx
            .new_values
            .iter()
            .any(|(k, v)| k == &key.name && current == Some(v.expose()));
        (!(is_old || or_new && is_new)).then(|| key.name.clone())
    })
}

pub(super) async fn read_live(ctx: &Ctx<'_>) -> Result<Secret> {
    api(ctx)
        .get(&ctx.journal.secret)
        .await
        .map_err(|e| anyhow!("cannot read {}: {}", ctx.object(), short_error(&e)))
}

/// The values the backup must hold: the Secret's current values of the keys that had one.
fn backup_request(live: &Secret, ctx: &Ctx<'_>) -> BackupRequest {
    let keys = ctx
        .journal
        .keys
        .iter()
        .filter(|k| k.before.is_some())
        .filter_map(|k| {
            value_of(live, &k.name).map(|v| (k.name.clone(), SecretValue::new(v.to_vec())))
        })
        .collect();
    BackupRequest {
        namespace: ctx.namespace().to_string(),
        secret: ctx.journal.secret.clone(),
        source_resource_version: live.metadata.resource_version.clone().unwrap_or_default(),
        keys,
        // To the millisecond, so backups taken within one second keep their order.
        at: crate::model::clock::now_rfc3339_millis(),
        by: ctx.journal.by.clone(),
        rotation_id: ctx.journal.id.clone(),
        reason: format!(
            "before {} {}",
            if ctx.journal.action == "rotate" {
                "rotating"
            } else {
                "rolling back"
            },
            ctx.journal.key_names().join(", ")
        ),
    }
}

pub async fn back_up(ctx: &Ctx<'_>, name: &str) -> StepOutcome {
    let namespace = ctx.namespace();
    let live = match read_live(ctx).await {
        Ok(live) => live,
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No);
        }
    };
    if let Some(key) = key_changed_by_someone_else(&live, ctx, false) {
        return StepOutcome::failed(
            format!(
                "the {} changed since it was read; nothing was overwritten; run again to re-plan (key {key} differs)",
                ctx.object()
            ),
            Applied::No,
        );
    }
    let request = backup_request(&live, ctx);
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_string()),
    };
    let created = api(ctx)
        .create(&params, &backup::build_backup(&request))
        .await;
    // Whatever the answer (created, already there from an earlier attempt, lost), the backup
    // counts only once it is read back holding the values.
    let stored = match api(ctx).get_opt(name).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            let why = created.err().map(|e| short_error(&e)).unwrap_or_default();
            return StepOutcome::failed(
                format!(
                    "cannot create the backup Secret {namespace}/{name}; nothing was changed: {why}"
                ),
                Applied::No,
            );
        }
        Err(err) => {
            return StepOutcome::failed(
                format!(
                    "cannot read back the backup Secret {namespace}/{name}; nothing was changed: {}",
                    short_error(&err)
                ),
                Applied::Unknown,
            );
        }
    };
    if !backup::holds(&stored, &request) {
        return StepOutcome::failed(
            format!(
                "the backup Secret {namespace}/{name} does not hold the old value as written; nothing was changed"
            ),
            Applied::No,
        );
    }
    StepOutcome::done(format!("backed up to {name} (read back, verified)"))
}

pub async fn check_backup(ctx: &Ctx<'_>, name: &str) -> Result<Checked> {
    let Some(stored) = api(ctx)
        .get_opt(name)
        .await
        .map_err(|e| anyhow!("cannot read the backup {name}: {}", short_error(&e)))?
    else {
        return Ok(Checked::NotApplied);
    };
    let held = ctx
        .journal
        .keys
        .iter()
        .filter(|k| k.before.is_some())
        .all(|k| {
            value_of(&stored, &k.name).is_some_and(|v| {
                k.before
                    .as_ref()
                    .is_some_and(|b| fingerprint(v) == b.fingerprint)
            })
        });
    Ok(if held {
        Checked::Applied(format!("backup {name} holds the old values"))
    } else {
        Checked::Conflict(format!(
            "the backup Secret {name} exists but does not hold the values this run backed up"
        ))
    })
}

pub async fn patch(ctx: &Ctx<'_>) -> StepOutcome {
    let object = ctx.object();
    let live = match read_live(ctx).await {
        Ok(live) => live,
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No);
        }
    };
    if holds_new(&live, ctx) {
        return StepOutcome::done("already held the new values");
    }
    if let Some(key) = key_changed_by_someone_else(&live, ctx, false) {
        return StepOutcome::failed(
            format!(
                "the {object} changed since it was read; nothing was overwritten; run again to re-plan (key {key} differs{})",
                ctx.journal
                    .backup
                    .as_deref()
                    .map(|b| format!("; the backup {b} holds the value as it was read"))
                    .unwrap_or_default()
            ),
            Applied::No,
        );
    }
    let request = ChangeRequest {
        changes: ctx
            .new_values
            .iter()
            .map(|(k, v)| KeyChange {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        create_key: true,
        force: true,
        record: ctx.journal.record.clone(),
    };
    let planned = match patch::plan_data_change(&live, &request) {
        Ok(planned) => planned,
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No);
        }
    };
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let sent = api(ctx)
        .patch(
            &ctx.journal.secret,
            &params,
            &Patch::<()>::Json(planned.patch),
        )
        .await;
    match sent {
        Ok(_) => StepOutcome::done(format!("patched {}", ctx.journal.key_names().join(", "))),
        Err(err) => read_back_patch(ctx, &err).await,
    }
}

/// After a patch that failed or whose answer was lost: what does the Secret hold?
async fn read_back_patch(ctx: &Ctx<'_>, err: &kube::Error) -> StepOutcome {
    let object = ctx.object();
    let why = short_error(err);
    match read_live(ctx).await {
        Ok(live) if holds_new(&live, ctx) => StepOutcome::done(format!(
            "patched: the answer was an error ({why}), but reading back shows the new values"
        )),
        Ok(live) => match key_changed_by_someone_else(&live, ctx, false) {
            None if is_guard_failure(err) => StepOutcome::failed(
                format!(
                    "the {object} changed since it was read; nothing was overwritten; run again to re-plan"
                ),
                Applied::No,
            ),
            None => StepOutcome::failed(
                format!(
                    "cannot patch {object}: {why}; read back: it still holds the old values, nothing was changed"
                ),
                Applied::No,
            ),
            Some(key) => StepOutcome::failed(
                format!(
                    "the {object} changed since it was read (key {key} holds neither the old nor the new value); \
                     nothing was overwritten"
                ),
                Applied::No,
            ),
        },
        Err(read) => StepOutcome::failed(
            format!(
                "cannot tell whether {object} was patched: the patch failed ({why}) and reading it back failed too ({read:#})"
            ),
            Applied::Unknown,
        ),
    }
}

/// A refused `test` operation (422) or a stale resourceVersion (409): someone else's write.
fn is_guard_failure(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409 || (s.code == 422 && !s.message.contains(" is invalid")))
}

pub async fn check_patch(ctx: &Ctx<'_>) -> Result<Checked> {
    let live = read_live(ctx).await?;
    if holds_new(&live, ctx) {
        return Ok(Checked::Applied("the Secret holds the new values".into()));
    }
    Ok(match key_changed_by_someone_else(&live, ctx, false) {
        None => Checked::NotApplied,
        Some(key) => Checked::Conflict(format!(
            "key {key} of {} holds neither the value this run read nor the one it writes: someone else changed it",
            ctx.object()
        )),
    })
}

/// The old values to put back: from the backup (keys that had a value); keys the run added
/// are removed.
pub(super) async fn old_values(
    ctx: &Ctx<'_>,
    backup: Option<&str>,
) -> Result<Vec<(String, Option<SecretValue>)>> {
    let saved = match backup {
        Some(name) => Some(api(ctx).get(name).await.map_err(|e| {
            anyhow!(
                "cannot read the backup {}/{name} that holds the old values: {}",
                ctx.namespace(),
                short_error(&e)
            )
        })?),
        None => None,
    };
    ctx.journal
        .keys
        .iter()
        .map(|key| match &key.before {
            None => Ok((key.name.clone(), None)),
            Some(_) => saved
                .as_ref()
                .and_then(|s| value_of(s, &key.name))
                .map(|v| (key.name.clone(), Some(SecretValue::new(v.to_vec()))))
                .ok_or_else(|| {
                    anyhow!(
                        "the backup {} does not hold key {:?}",
                        backup.unwrap_or("(none)"),
                        key.name
                    )
                }),
        })
        .collect()
}

pub async fn restore(ctx: &Ctx<'_>, backup: Option<&str>) -> StepOutcome {
    let object = ctx.object();
    let live = match read_live(ctx).await {
        Ok(live) => live,
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No);
        }
    };
    if let Some(key) = key_changed_by_someone_else(&live, ctx, true) {
        return StepOutcome::failed(
            format!(
                "key {key} of {object} no longer holds this run's value: someone else changed it; \
                 not overwriting it. Restore by hand from the backup if that is still wanted: \
                 kubectl rotate rollback {} {key} --to {} -n {}",
                ctx.journal.secret,
                backup.unwrap_or("BACKUP"),
                ctx.namespace()
            ),
            Applied::No,
        );
    }
    let old = match old_values(ctx, backup).await {
        Ok(old) => old,
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No);
        }
    };
    let Some(ops) = restore_ops(&live, ctx, &old) else {
        return StepOutcome::done("already held the old values");
    };
    let patch: json_patch::Patch = match serde_json::from_value(Value::Array(ops)) {
        Ok(p) => p,
        Err(err) => {
            return StepOutcome::failed(
                format!("cannot build the restore patch: {err}"),
                Applied::No,
            );
        }
    };
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    match api(ctx)
        .patch(&ctx.journal.secret, &params, &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => StepOutcome::done(format!(
            "restored {} from {}",
            ctx.journal.key_names().join(", "),
            backup.unwrap_or("the run's record (new keys removed)")
        )),
        Err(err) => {
            let why = short_error(&err);
            match check_restore(ctx, backup).await {
                Ok(Checked::Applied(_)) => StepOutcome::done(format!(
                    "restored: the answer was an error ({why}), but reading back shows the old values"
                )),
                Ok(Checked::NotApplied) => StepOutcome::failed(
                    format!(
                        "cannot restore {object}: {why}; read back: it still holds this run's values"
                    ),
                    Applied::No,
                ),
                Ok(Checked::Conflict(c)) => StepOutcome::failed(c, Applied::No),
                Err(read) => StepOutcome::failed(
                    format!(
                        "cannot tell whether {object} was restored: {why}; reading it back failed: {read:#}"
                    ),
                    Applied::Unknown,
                ),
            }
        }
    }
}

/// The guarded JSON Patch that puts `old` back where the Secret holds this run's values, and
/// the rotation records as they were; `None` when there is nothing to put back.
fn restore_ops(
    live: &Secret,
    ctx: &Ctx<'_>,
    old: &[(String, Option<SecretValue>)],
) -> Option<Vec<Value>> {
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": live.metadata.resource_version.clone().unwrap_or_default()}),
    ];
    let mut any = false;
    for (key, value) in old {
        let Some((_, new)) = ctx.new_values.iter().find(|(k, _)| k == key) else {
            continue;
        };
        if value_of(live, key) != Some(new.expose()) {
            continue;
        }
        any = true;
        let path = format!("/data/{}", escape(key));
        ops.push(json!({"op": "test", "path": path, "value": new.to_base64().as_str()}));
        match value {
            Some(v) => {
                ops.push(json!({"op": "replace", "path": path, "value": v.to_base64().as_str()}))
            }
            None => ops.push(json!({"op": "remove", "path": path})),
        }
    }
    if !any {
        return None;
    }
    restore_records(live, ctx, &mut ops);
    Some(ops)
}

/// The ops that put the rotation records back as they were before the run.
fn restore_records(live: &Secret, ctx: &Ctx<'_>, ops: &mut Vec<Value>) {
    let annotations = live.metadata.annotations.clone().unwrap_or_default();
    let path = format!("/metadata/annotations/{}", escape(ROTATIONS_ANNOTATION));
    match (
        &ctx.journal.previous_records,
        annotations.contains_key(ROTATIONS_ANNOTATION),
    ) {
        (Some(previous), _) => {
            if live.metadata.annotations.is_none() {
                ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
            }
            ops.push(json!({"op": "add", "path": path, "value": previous}));
        }
        (None, true) => ops.push(json!({"op": "remove", "path": path})),
        (None, false) => {}
    }
}

pub async fn check_restore(ctx: &Ctx<'_>, _backup: Option<&str>) -> Result<Checked> {
    let live = read_live(ctx).await?;
    if let Some(key) = key_changed_by_someone_else(&live, ctx, true) {
        return Ok(Checked::Conflict(format!(
            "key {key} of {} holds neither this run's value nor the old one: someone else changed it",
            ctx.object()
        )));
    }
    Ok(if holds_any_new(&live, ctx) {
        Checked::NotApplied
    } else {
        Checked::Applied("the Secret holds the old values".into())
    })
}

fn holds_any_new(live: &Secret, ctx: &Ctx<'_>) -> bool {
    ctx.new_values
        .iter()
        .any(|(k, v)| value_of(live, k) == Some(v.expose()))
}

/// The run's new value of `key` (from its journal Secret).
pub fn new_value<'a>(ctx: &'a Ctx<'_>, key: &str) -> Result<&'a SecretValue> {
    ctx.new_values
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| anyhow!("the run's journal holds no new value for {key}"))
}

/// The value of `key` before the run, from the run's backup.
pub async fn old_value(ctx: &Ctx<'_>, key: &str) -> Result<SecretValue> {
    let old = old_values(ctx, ctx.journal.backup.as_deref()).await?;
    old.into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v)
        .ok_or_else(|| anyhow!("the run's backup holds no old value of {key}"))
}

/// The bytes a key-ring run's `held` stands for.
async fn held_value(ctx: &Ctx<'_>, key: &str, held: &Held) -> Result<SecretValue> {
    let new = || new_value(ctx, key).cloned();
    Ok(match held {
        Held::Old => old_value(ctx, key).await?,
        Held::New => new()?,
        Held::Ring { first, separator } => {
            let old = old_value(ctx, key).await?;
            let new = new()?;
            let (a, b) = match first {
                Version::New => (new, old),
                Version::Old => (old, new),
            };
            let mut joined = a.expose().to_vec();
            joined.extend_from_slice(separator.as_bytes());
            joined.extend_from_slice(b.expose());
            SecretValue::new(joined)
        }
    })
}

/// Key-ring mode: `key` becomes `to` where it holds one of `from`, guarded by its current
/// value and the Secret's resourceVersion. `to` the new key also records the rotation (as the
/// patch of every run does); `to` the old key puts the records back as they were.
pub async fn write_key(ctx: &Ctx<'_>, key: &str, from: &[Held], to: &Held) -> StepOutcome {
    let object = ctx.object();
    let result = async {
        let live = read_live(ctx).await?;
        let target = held_value(ctx, key, to).await?;
        let current = value_of(&live, key).map(<[u8]>::to_vec);
        if current.as_deref() == Some(target.expose()) {
            return Ok(Err("already held it".to_string()));
        }
        let mut known = false;
        for held in from {
            if current.as_deref() == Some(held_value(ctx, key, held).await?.expose()) {
                known = true;
            }
        }
        if !known {
            anyhow::bail!(
                "key {key} of {object} holds neither what this run wrote nor what it read: someone else changed it; \
                 nothing was overwritten"
            );
        }
        let ops = write_key_ops(&live, ctx, key, &target, to)?;
        Ok(Ok(ops))
    };
    let ops = match result.await {
        Ok(Err(already)) => return StepOutcome::done(already),
        Ok(Ok(ops)) => ops,
        Err(err) => return StepOutcome::failed(format!("{err:#}"), Applied::No),
    };
    let patch: json_patch::Patch = match serde_json::from_value(Value::Array(ops)) {
        Ok(p) => p,
        Err(err) => {
            return StepOutcome::failed(format!("cannot build the patch: {err}"), Applied::No);
        }
    };
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    match api(ctx)
        .patch(&ctx.journal.secret, &params, &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => StepOutcome::done(format!("{key} holds {}", to.describe(key))),
        Err(err) => {
            let why = short_error(&err);
            match check_write_key(ctx, key, from, to).await {
                Ok(Checked::Applied(_)) => StepOutcome::done(format!(
                    "the answer was an error ({why}), but reading back shows {}",
                    to.describe(key)
                )),
                Ok(Checked::NotApplied) => StepOutcome::failed(
                    format!("cannot patch {object}: {why}; read back: nothing was changed"),
                    Applied::No,
                ),
                Ok(Checked::Conflict(c)) => StepOutcome::failed(c, Applied::No),
                Err(read) => StepOutcome::failed(
                    format!(
                        "cannot tell whether {object} was patched: {why}; reading it back failed: {read:#}"
                    ),
                    Applied::Unknown,
                ),
            }
        }
    }
}

/// The guarded JSON Patch of a key-ring write (and of the rotation records it changes).
fn write_key_ops(
    live: &Secret,
    ctx: &Ctx<'_>,
    key: &str,
    target: &SecretValue,
    to: &Held,
) -> Result<Vec<Value>> {
    if *to == Held::New {
        // The same patch as every run's, records included (its tests guard the live value).
        let request = ChangeRequest {
            changes: vec![KeyChange {
                key: key.to_string(),
                value: target.clone(),
            }],
            create_key: false,
            force: true,
            record: ctx.journal.record.clone(),
        };
        let planned = patch::plan_data_change(live, &request)?;
        let value = serde_json::to_value(&planned.patch)?;
        return match value {
            Value::Array(ops) => Ok(ops),
            _ => anyhow::bail!("the planned patch is not a list of operations"),
        };
    }
    let path = format!("/data/{}", escape(key));
    let current = value_of(live, key).unwrap_or_default();
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": live.metadata.resource_version.clone().unwrap_or_default()}),
        json!({"op": "test", "path": path, "value": SecretValue::new(current.to_vec()).to_base64().as_str()}),
        json!({"op": "replace", "path": path, "value": target.to_base64().as_str()}),
    ];
    if *to == Held::Old {
        restore_records(live, ctx, &mut ops);
    }
    Ok(ops)
}

pub async fn check_write_key(
    ctx: &Ctx<'_>,
    key: &str,
    from: &[Held],
    to: &Held,
) -> Result<Checked> {
    let live = read_live(ctx).await?;
    let current = value_of(&live, key);
    if current == Some(held_value(ctx, key, to).await?.expose()) {
        return Ok(Checked::Applied(format!(
            "{key} holds {}",
            to.describe(key)
        )));
    }
    for held in from {
        if current == Some(held_value(ctx, key, held).await?.expose()) {
            return Ok(Checked::NotApplied);
        }
    }
    Ok(Checked::Conflict(format!(
        "key {key} of {} holds neither what this run wrote nor what it read: someone else changed it",
        ctx.object()
    )))
}

/// Applies one of this system's steps (the runner calls it through `systems::apply`).
pub async fn apply(step: &crate::plan::steps::SecretStep, ctx: &Ctx<'_>) -> StepOutcome {
    match step {
        crate::plan::steps::SecretStep::BackUp { backup } => back_up(ctx, backup).await,
        crate::plan::steps::SecretStep::PatchSecret => patch(ctx).await,
        crate::plan::steps::SecretStep::RestoreSecret { backup } => {
            restore(ctx, backup.as_deref()).await
        }
        crate::plan::steps::SecretStep::WriteKey { key, from, to } => {
            write_key(ctx, key, from, to).await
        }
    }
}

/// Reads back whether one of this system's steps, recorded as started by a run that stopped,
/// took effect.
pub async fn check(
    step: &crate::plan::steps::SecretStep,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Checked> {
    match step {
        crate::plan::steps::SecretStep::BackUp { backup } => check_backup(ctx, backup).await,
        crate::plan::steps::SecretStep::PatchSecret => check_patch(ctx).await,
        crate::plan::steps::SecretStep::RestoreSecret { backup } => {
            check_restore(ctx, backup.as_deref()).await
        }
        crate::plan::steps::SecretStep::WriteKey { key, from, to } => {
            check_write_key(ctx, key, from, to).await
        }
    }
}

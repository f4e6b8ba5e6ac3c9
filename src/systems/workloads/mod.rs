//! The consumers: restart them (kubectl rollout restart's annotation) and watch their rollouts.
//! A restart with the same `restartedAt` is idempotent, so a restart whose answer was lost is
//! read back rather than sent again.

pub mod inventory;
pub mod rollout;
pub mod verify;

use anyhow::Result;

use super::context::{Applied, Checked, Ctx, StepOutcome};
use crate::cluster::short_error;
use crate::model::workload::WorkloadKind;
use crate::plan::rollout::{Outcome, Target, WorkloadResult};
use crate::plan::steps::{Scaled, WorkloadRef};
use crate::ui::Printer;
use crate::ui::progress::RolloutDisplay;
use serde_json::json;

fn targets(workloads: &[WorkloadRef]) -> Vec<Target> {
    workloads
        .iter()
        .map(|w| Target {
            kind: w.kind,
            name: w.name.clone(),
        })
        .collect()
}

pub async fn restart(ctx: &Ctx<'_>, workloads: &[WorkloadRef], restarted_at: &str) -> StepOutcome {
    let client = &ctx.cluster.client;
    let targets = targets(workloads);
    let sent = rollout::restart(client, ctx.namespace(), &targets, restarted_at).await;
    let mut restarted = Vec::new();
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    for (target, result) in targets.iter().zip(sent) {
        match result {
            Ok(()) => restarted.push(target.reference()),
            Err(err) => {
                let why = short_error(&err);
                match rollout::current_restarted_at(client, ctx.namespace(), target).await {
                    Ok(Some(at)) if at == restarted_at => restarted.push(target.reference()),
                    Ok(_) => failed.push(format!("{}: {why}", target.reference())),
                    Err(read) => unknown.push(format!(
                        "{}: {why} (reading it back failed: {})",
                        target.reference(),
                        short_error(&read)
                    )),
                }
            }
        }
    }
    if failed.is_empty() && unknown.is_empty() {
        return StepOutcome::done(format!("restarted {}", restarted.join(", ")));
    }
    let applied = if !unknown.is_empty() {
        Applied::Unknown
    } else if restarted.is_empty() {
        Applied::No
    } else {
        Applied::Yes
    };
    StepOutcome::failed(
        format!(
            "cannot restart {}{}",
            failed
                .iter()
                .chain(&unknown)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
            if restarted.is_empty() {
                String::new()
            } else {
                format!(" (restarted: {})", restarted.join(", "))
            }
        ),
        applied,
    )
}

pub async fn check_restart(
    ctx: &Ctx<'_>,
    workloads: &[WorkloadRef],
    restarted_at: &str,
) -> Result<Checked> {
    for target in targets(workloads) {
        let at = rollout::current_restarted_at(&ctx.cluster.client, ctx.namespace(), &target)
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot read {}: {}", target.reference(), short_error(&e))
            })?;
        if at.as_deref() != Some(restarted_at) {
            return Ok(Checked::NotApplied);
        }
    }
    Ok(Checked::Applied(
        "every workload carries this run's restartedAt".into(),
    ))
}

pub async fn watch(
    ctx: &Ctx<'_>,
    workloads: &[WorkloadRef],
    restarted_at: &str,
    printer: &mut Printer,
) -> StepOutcome {
    let targets = targets(workloads);
    let results = {
        let mut display = RolloutDisplay::new(printer);
        rollout::watch(
            &ctx.cluster.client,
            ctx.namespace(),
            &targets,
            restarted_at,
            ctx.timeout,
            &mut display,
            ctx.interrupt.wait(),
        )
        .await
    };
    let Some(results) = results else {
        return StepOutcome::Interrupted;
    };
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed { message, .. } => Some(format!("{}: {message}", r.reference())),
            Outcome::RolledOut { .. } => None,
        })
        .collect();
    if failures.is_empty() {
        StepOutcome::Done {
            note: format!(
                "rolled out: {}",
                results
                    .iter()
                    .map(WorkloadResult::reference)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            results,
        }
    } else {
        StepOutcome::Failed {
            message: failures.join("\n"),
            applied: Applied::Yes,
            results,
        }
    }
}

/// Every current pod (not being deleted) of each workload logged a line matching `pattern`,
/// in one of its containers (the last 5000 lines).
pub async fn check_logs(
    ctx: &Ctx<'_>,
    workloads: &[WorkloadRef],
    pattern: &str,
    absent: Option<&str>,
) -> StepOutcome {
    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;
    use kube::api::{ListParams, LogParams};
    let result = async {
        let regex = regex::Regex::new(pattern)
            .map_err(|e| anyhow::anyhow!("{pattern:?} is not a regular expression: {e}"))?;
        let absent = absent
            .map(|a| {
                regex::Regex::new(a)
                    .map_err(|e| anyhow::anyhow!("{a:?} is not a regular expression: {e}"))
            })
            .transpose()?;
        let pods: Api<Pod> = Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
        let all = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| anyhow::anyhow!("cannot list pods: {}", short_error(&e)))?
            .items;
        let mut checked = 0;
        let mut failures = Vec::new();
        for workload in workloads {
            for pod in all.iter().filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && crate::plan::rollout::pod_belongs_to(p, workload.kind, &workload.name)
            }) {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let containers = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter().map(|c| c.name.clone()));
                let mut matched = false;
                let mut unwanted = None;
                for container in containers {
                    let params = LogParams {
                        container: Some(container.clone()),
                        tail_lines: Some(5000),
                        ..LogParams::default()
                    };
                    let log = pods.logs(&name, &params).await.map_err(|e| {
                        anyhow::anyhow!(
                            "cannot read the log of pod {name} container {container}: {}",
                            short_error(&e)
                        )
                    })?;
                    if let Some(line) = absent
                        .as_ref()
                        .and_then(|a| log.lines().find(|l| a.is_match(l)))
                    {
                        unwanted = Some(line.chars().take(200).collect::<String>());
                    }
                    if regex.is_match(&log) {
                        matched = true;
                    }
                }
                checked += 1;
                if let Some(line) = unwanted {
                    failures.push(format!(
                        "pod {name} ({}) logged {line:?}, which matches {:?}",
                        workload.reference(),
                        absent
                            .as_ref()
                            .map(regex::Regex::as_str)
                            .unwrap_or_default()
                    ));
                }
                if !matched {
                    failures.push(format!(
                        "pod {name} ({}): no log line matches {pattern:?}",
                        workload.reference()
                    ));
                }
            }
        }
        anyhow::Ok((checked, failures))
    };
    match result.await {
        Ok((checked, failures)) if failures.is_empty() => StepOutcome::done(format!(
            "{checked} pod(s) logged a line matching {pattern:?}{}",
            if absent.is_some() {
                " and none a decryption error"
            } else {
                ""
            }
        )),
        Ok((_, failures)) => StepOutcome::failed(failures.join("\n"), Applied::No),
        Err(err) => StepOutcome::failed(format!("{err:#}"), Applied::No),
    }
}

/// The replicas a scalable workload asks for now (`None`: it does not exist).
async fn replicas_of(ctx: &Ctx<'_>, workload: &Scaled) -> Result<Option<(i32, Option<String>)>> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use kube::Api;
    let client = ctx.cluster.client.clone();
    let found = match workload.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client, ctx.namespace())
            .get_opt(&workload.name)
            .await
            .map(|d| {
                d.map(|d| d.spec).map(|s| {
                    (
                        s.replicas.unwrap_or(1),
                        crate::plan::rollout::template_restarted_at(
                            s.template.metadata.and_then(|m| m.annotations).as_ref(),
                        )
                        .map(str::to_string),
                    )
                })
            }),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client, ctx.namespace())
            .get_opt(&workload.name)
            .await
            .map(|d| {
                d.map(|d| d.spec).map(|s| {
                    (
                        s.replicas.unwrap_or(1),
                        crate::plan::rollout::template_restarted_at(
                            s.template.metadata.and_then(|m| m.annotations).as_ref(),
                        )
                        .map(str::to_string),
                    )
                })
            }),
        other => anyhow::bail!("a {} cannot be scaled", other.short()),
    };
    found.map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {}",
            workload.workload().reference(),
            short_error(&e)
        )
    })
}

/// Sends one strategic-merge patch to a Deployment or StatefulSet.
async fn patch_scalable(
    ctx: &Ctx<'_>,
    workload: &Scaled,
    patch: serde_json::Value,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use kube::Api;
    use kube::api::{Patch, PatchParams};
    let params = PatchParams {
        field_manager: Some(crate::model::names::FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let client = ctx.cluster.client.clone();
    let patch = Patch::Strategic(patch);
    match workload.kind {
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client, ctx.namespace())
            .patch(&workload.name, &params, &patch)
            .await
            .map(drop),
        _ => Api::<Deployment>::namespaced(client, ctx.namespace())
            .patch(&workload.name, &params, &patch)
            .await
            .map(drop),
    }
}

/// The pods (terminating ones included) that still belong to any of `workloads`.
async fn pods_left(ctx: &Ctx<'_>, workloads: &[Scaled]) -> Result<Vec<String>> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;
    use kube::api::ListParams;
    let pods: Api<Pod> = Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
    let all = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!("cannot list pods: {}", short_error(&e)))?;
    Ok(all
        .items
        .iter()
        .filter(|p| {
            workloads
                .iter()
                .any(|w| crate::plan::rollout::pod_belongs_to(p, w.kind, &w.name))
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect())
}

/// Scales each workload to 0, then waits (up to the run's timeout) until none of their pods
/// is left, terminating ones included: no pod may use the old key while the rows move.
pub async fn scale_down(ctx: &Ctx<'_>, workloads: &[Scaled]) -> StepOutcome {
    let mut scaled = Vec::new();
    for workload in workloads {
        if let Err(err) = patch_scalable(ctx, workload, json!({"spec": {"replicas": 0}})).await {
            let why = short_error(&err);
            let read = replicas_of(ctx, workload).await;
            if let Ok(Some((0, _))) = read {
                scaled.push(workload.workload().reference());
                continue;
            }
            return match read {
                Ok(_) => StepOutcome::failed(
                    format!(
                        "cannot scale {} to 0: {why}{}",
                        workload.workload().reference(),
                        already(&scaled)
                    ),
                    if scaled.is_empty() {
                        Applied::No
                    } else {
                        Applied::Yes
                    },
                ),
                Err(read) => StepOutcome::failed(
                    format!(
                        "cannot tell whether {} was scaled to 0: {why}; reading it back failed: {read:#}",
                        workload.workload().reference()
                    ),
                    Applied::Unknown,
                ),
            };
        }
        scaled.push(workload.workload().reference());
    }
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    loop {
        match pods_left(ctx, workloads).await {
            Ok(left) if left.is_empty() => {
                return StepOutcome::done(format!(
                    "scaled {} to 0; no pod left",
                    scaled.join(", ")
                ));
            }
            Ok(left) if tokio::time::Instant::now() >= deadline => {
                return StepOutcome::failed(
                    format!(
                        "scaled {} to 0, but pods are still there after {:?}: {} (a pod still running \
                         could use the old key during the migration)",
                        scaled.join(", "),
                        ctx.timeout,
                        left.join(", ")
                    ),
                    Applied::Yes,
                );
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            Err(err) => return StepOutcome::failed(format!("{err:#}"), Applied::Yes),
        }
    }
}

fn already(scaled: &[String]) -> String {
    if scaled.is_empty() {
        String::new()
    } else {
        format!(" (already scaled to 0: {})", scaled.join(", "))
    }
}

pub async fn check_scale_down(ctx: &Ctx<'_>, workloads: &[Scaled]) -> Result<Checked> {
    for workload in workloads {
        if !matches!(replicas_of(ctx, workload).await?, Some((0, _)) | None) {
            return Ok(Checked::NotApplied);
        }
    }
    // Scaled, but a pod still there: scaling again waits for it.
    if !pods_left(ctx, workloads).await?.is_empty() {
        return Ok(Checked::NotApplied);
    }
    Ok(Checked::Applied("scaled to 0, no pod left".into()))
}

/// Scales each workload back to its recorded replicas, its template marked with
/// `restarted_at` (the `Watch` step that follows waits for these pods).
pub async fn scale_up(ctx: &Ctx<'_>, workloads: &[Scaled], restarted_at: &str) -> StepOutcome {
    let mut done = Vec::new();
    for workload in workloads {
        let mut patch = crate::plan::rollout::restart_patch_labelled(restarted_at);
        patch["spec"]["replicas"] = json!(workload.replicas);
        if let Err(err) = patch_scalable(ctx, workload, patch).await {
            let why = short_error(&err);
            match replicas_of(ctx, workload).await {
                Ok(Some((n, Some(at)))) if n == workload.replicas && at == restarted_at => {}
                Ok(_) => {
                    return StepOutcome::failed(
                        format!(
                            "cannot scale {} to {}: {why}{}",
                            workload.workload().reference(),
                            workload.replicas,
                            if done.is_empty() {
                                String::new()
                            } else {
                                format!(" (scaled up: {})", done.join(", "))
                            }
                        ),
                        if done.is_empty() {
                            Applied::No
                        } else {
                            Applied::Yes
                        },
                    );
                }
                Err(read) => {
                    return StepOutcome::failed(
                        format!(
                            "cannot tell whether {} was scaled up: {why}; reading it back failed: {read:#}",
                            workload.workload().reference()
                        ),
                        Applied::Unknown,
                    );
                }
            }
        }
        done.push(format!(
            "{} to {}",
            workload.workload().reference(),
            workload.replicas
        ));
    }
    StepOutcome::done(format!("scaled {}", done.join(", ")))
}

pub async fn check_scale_up(
    ctx: &Ctx<'_>,
    workloads: &[Scaled],
    restarted_at: &str,
) -> Result<Checked> {
    for workload in workloads {
        match replicas_of(ctx, workload).await? {
            Some((n, Some(at))) if n == workload.replicas && at == restarted_at => {}
            _ => return Ok(Checked::NotApplied),
        }
    }
    Ok(Checked::Applied(
        "every workload has its recorded replicas and this run's restartedAt".into(),
    ))
}

/// Applies one of this system's steps (the runner calls it through `systems::apply`).
pub async fn apply(
    step: &crate::plan::steps::WorkloadStep,
    ctx: &Ctx<'_>,
    printer: &mut Printer,
) -> StepOutcome {
    match step {
        crate::plan::steps::WorkloadStep::Restart {
            workloads,
            restarted_at,
        } => restart(ctx, workloads, restarted_at).await,
        crate::plan::steps::WorkloadStep::Watch {
            workloads,
            restarted_at,
        } => watch(ctx, workloads, restarted_at, printer).await,
        crate::plan::steps::WorkloadStep::CheckLogs {
            workloads,
            pattern,
            absent,
        } => check_logs(ctx, workloads, pattern, absent.as_deref()).await,
        crate::plan::steps::WorkloadStep::ScaleDown { workloads } => {
            scale_down(ctx, workloads).await
        }
        crate::plan::steps::WorkloadStep::ScaleUp {
            workloads,
            restarted_at,
        } => scale_up(ctx, workloads, restarted_at).await,
    }
}

/// Reads back whether one of this system's steps, recorded as started by a run that stopped,
/// took effect.
pub async fn check(
    step: &crate::plan::steps::WorkloadStep,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Checked> {
    match step {
        crate::plan::steps::WorkloadStep::Restart {
            workloads,
            restarted_at,
        } => check_restart(ctx, workloads, restarted_at).await,
        // A watch only reads: watching again is the check.
        crate::plan::steps::WorkloadStep::Watch { .. }
        | crate::plan::steps::WorkloadStep::CheckLogs { .. } => Ok(Checked::NotApplied),
        crate::plan::steps::WorkloadStep::ScaleDown { workloads } => {
            check_scale_down(ctx, workloads).await
        }
        crate::plan::steps::WorkloadStep::ScaleUp {
            workloads,
            restarted_at,
        } => check_scale_up(ctx, workloads, restarted_at).await,
    }
}

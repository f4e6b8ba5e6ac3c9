//! The consumers: restart them (kubectl rollout restart's annotation) and watch their rollouts.
//! A restart with the same `restartedAt` is idempotent, so a restart whose answer was lost is
//! read back rather than sent again.

use anyhow::Result;

use super::{Applied, Checked, Ctx, StepOutcome};
use crate::cluster::short_error;
use crate::rollout::{self, Outcome, Target, WorkloadResult};
use crate::steps::WorkloadRef;
use crate::ui::Printer;
use crate::ui::progress::RolloutDisplay;

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
pub async fn check_logs(ctx: &Ctx<'_>, workloads: &[WorkloadRef], pattern: &str) -> StepOutcome {
    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;
    use kube::api::{ListParams, LogParams};
    let result = async {
        let regex = regex::Regex::new(pattern)
            .map_err(|e| anyhow::anyhow!("{pattern:?} is not a regular expression: {e}"))?;
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
                    && rollout::pod_belongs_to(p, workload.kind, &workload.name)
            }) {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let containers = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter().map(|c| c.name.clone()));
                let mut matched = false;
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
                    if regex.is_match(&log) {
                        matched = true;
                        break;
                    }
                }
                checked += 1;
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
            "{checked} pod(s) logged a line matching {pattern:?}"
        )),
        Ok((_, failures)) => StepOutcome::failed(failures.join("\n"), Applied::No),
        Err(err) => StepOutcome::failed(format!("{err:#}"), Applied::No),
    }
}

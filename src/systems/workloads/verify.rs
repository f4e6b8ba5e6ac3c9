//! `verify` of a Secret's consumers: for each workload that reads a checked key, its pods
//! restarted since the key's last recorded rotation (and none crash-loops), their logs show
//! the app loaded the value (`--logs`), and they answer a health check (`--health`). The
//! servers' own workloads are skipped with the reason their system gave.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::Api;
use kube::api::{ListParams, LogParams};

use crate::cluster::{Cluster, short_error};
use crate::model::workload::WorkloadKind;
use crate::plan::checks::{self, Checks};
use crate::plan::consumers::{Consumer, Workload};
use crate::plan::rollout::pod_belongs_to;
use crate::plan::secret_meta::RotationRecord;
use crate::systems::context::{ServerWorkload, VerifyContext};

/// What `verify` asks of each consumer besides its rollout.
pub struct ConsumerChecks<'a> {
    /// `--logs`: every current pod logged a line matching it.
    pub logs: Option<&'a regex::Regex>,
    /// `--health PORT/PATH`: every current pod answers it with 2xx.
    pub health: Option<&'a (String, String)>,
}

/// Checks every consumer of `keys` (one line per check in `checks`).
pub async fn verify_consumers(
    cx: &VerifyContext<'_>,
    consumers: &[Consumer<'_>],
    keys: &[String],
    records: &BTreeMap<String, RotationRecord>,
    servers: &[ServerWorkload],
    asks: &ConsumerChecks<'_>,
    checks: &mut Checks,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(cx.cluster.client.clone(), cx.namespace);
    let all_pods = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| {
            cx.cluster
                .explain(e, &format!("list pods in namespace {:?}", cx.namespace))
        })?
        .items;
    for consumer in consumers
        .iter()
        .filter(|c| keys.iter().any(|k| c.uses_key(k)))
    {
        let workload = consumer.workload;
        let target = workload.reference();
        if let Some(server) = servers
            .iter()
            .find(|s| s.kind == workload.kind && s.name == workload.name)
        {
            checks.skip("rollout", target, server.why.clone());
            continue;
        }
        if workload.kind == WorkloadKind::CronJob {
            checks.add(
                "rollout",
                target,
                Ok("a CronJob: its next Job reads the current value".into()),
            );
            continue;
        }
        let own = own_pods(&all_pods, workload);
        let latest = keys
            .iter()
            .filter(|k| consumer.uses_key(k))
            .filter_map(|k| records.get(k).map(|r| r.at.clone()))
            .max();
        checks.add("rollout", target.clone(), rollout_result(latest, &own));
        let current: Vec<&Pod> = own
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if let Some(pattern) = asks.logs {
            let result = logs_result(&pods, cx.namespace, &current, pattern).await?;
            checks.add("logs", target.clone(), result);
        }
        if let Some((port, path)) = asks.health {
            if !declares_port(&workload.pod_spec, port) {
                checks.skip(
                    "health",
                    target.clone(),
                    format!("no container of its pods declares port {port}"),
                );
            } else {
                let result = health_result(cx, &current, port, path).await;
                checks.add("health", target.clone(), result);
            }
        }
    }
    Ok(())
}

/// The workload's pods. A Job's pods, a bare pod itself: nothing replaced them, so they pass
/// only if they started after the rotation.
fn own_pods(all_pods: &[Pod], workload: &Workload) -> Vec<Pod> {
    all_pods
        .iter()
        .filter(|p| match workload.kind {
            WorkloadKind::Pod => p.metadata.name.as_deref() == Some(workload.name.as_str()),
            kind => pod_belongs_to(p, kind, &workload.name),
        })
        .cloned()
        .collect()
}

/// Whether the pods restarted since the latest recorded rotation of the keys they read.
fn rollout_result(latest: Option<String>, own: &[Pod]) -> Result<String, String> {
    match &latest {
        Some(at) => checks::check_pods_since(at, own),
        None => Ok("no recorded rotation of its keys to compare with".into()),
    }
}

/// Every current pod logged, in one of its containers, a line matching `pattern`.
async fn logs_result(
    pods: &Api<Pod>,
    namespace: &str,
    current: &[&Pod],
    pattern: &regex::Regex,
) -> Result<Result<String, String>> {
    let mut failures = Vec::new();
    for pod in current {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let containers: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        let mut matched = false;
        for container in &containers {
            let params = LogParams {
                container: Some(container.clone()),
                tail_lines: Some(5000),
                ..LogParams::default()
            };
            let log = pods.logs(&name, &params).await.map_err(|e| {
                anyhow!(
                    "cannot read the logs of pod {namespace}/{name} container {container}: {}",
                    short_error(&e)
                )
            })?;
            if pattern.is_match(&log) {
                matched = true;
                break;
            }
        }
        if !matched {
            failures.push(format!(
                "pod {name}: no log line matches {:?}",
                pattern.as_str()
            ));
        }
    }
    Ok(if failures.is_empty() {
        Ok(format!(
            "{} pod(s) logged a line matching {:?}",
            current.len(),
            pattern.as_str()
        ))
    } else {
        Err(failures.join("; "))
    })
}

/// Every current pod answers GET PATH on PORT with 2xx.
async fn health_result(
    cx: &VerifyContext<'_>,
    current: &[&Pod],
    port: &str,
    path: &str,
) -> Result<String, String> {
    let mut failures = Vec::new();
    for pod in current {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Err(problem) = health(cx.cluster, cx.namespace, &name, port, path).await {
            failures.push(format!("pod {name}: {problem}"));
        }
    }
    if failures.is_empty() {
        Ok(format!(
            "{} pod(s) answered GET :{port}{path} with 2xx",
            current.len()
        ))
    } else {
        Err(failures.join("; "))
    }
}

/// Whether a container of the pod template declares `port` (a number, or a port's name).
fn declares_port(spec: &PodSpec, port: &str) -> bool {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| p.container_port.to_string() == port || p.name.as_deref() == Some(port))
}

/// GET PATH on the pod's PORT through the API server's pod proxy; Ok when it answers 2xx.
async fn health(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    port: &str,
    path: &str,
) -> Result<(), String> {
    let uri = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}");
    let request = http::Request::get(&uri)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        cluster.client.send(request),
    )
    .await
    .map_err(|_| format!("GET :{port}{path} did not answer within 10s"))?
    .map_err(|e| format!("GET :{port}{path} failed: {}", short_error(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("GET :{port}{path} answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_checked_only_where_a_container_declares_the_port() {
        use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
        let spec = PodSpec {
            containers: vec![Container {
                name: "api".into(),
                ports: Some(vec![ContainerPort {
                    container_port: 8000,
                    name: Some("http".into()),
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        assert!(declares_port(&spec, "8000"));
        assert!(declares_port(&spec, "http"));
        assert!(!declares_port(&spec, "9090"));
        assert!(!declares_port(&PodSpec::default(), "8000"));
    }
}

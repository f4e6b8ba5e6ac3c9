//! Restarting consumers and watching their rollouts, against the API server. The restart is
//! what `kubectl rollout restart` does (the pod-template annotation `restartedAt`, with a
//! strategic-merge patch); the wait is driven by watches, one per kind in the namespace plus one
//! on the restarted pods, so the number of requests does not grow with time or with
//! per-workload polling. kubectl's rollout rules, which decide when a rollout is done or failed,
//! are pure and live in `plan::rollout`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::model::names::FIELD_MANAGER;
use crate::model::workload::WorkloadKind;
use crate::plan::rollout::{
    Outcome, ProgressSink, RESTART_LABEL, RESTARTED_AT, RolloutState, Target, WorkloadResult,
    daemonset_state, deployment_state, pod_belongs_to, pod_failure, restart_label_value,
    restart_patch_labelled, statefulset_state, template_restarted_at,
};

/// A watched object, whatever its kind.
enum Seen {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
    Pod(Box<Pod>),
    WatchError(String),
}

/// Restarts every target in parallel (one patch each, never retried blindly: the caller reads
/// back what a failed one did). Returns one result per target, in order.
pub async fn restart(
    client: &Client,
    namespace: &str,
    targets: &[Target],
    restarted_at: &str,
) -> Vec<Result<(), kube::Error>> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patch = Patch::Strategic(restart_patch_labelled(restarted_at));
    let patches = targets.iter().map(|t| {
        let client = client.clone();
        let params = params.clone();
        let patch = patch.clone();
        async move {
            let result: Result<(), kube::Error> = match t.kind {
                WorkloadKind::Deployment => Api::<Deployment>::namespaced(client, namespace)
                    .patch(&t.name, &params, &patch)
                    .await
                    .map(drop),
                WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client, namespace)
                    .patch(&t.name, &params, &patch)
                    .await
                    .map(drop),
                WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client, namespace)
                    .patch(&t.name, &params, &patch)
                    .await
                    .map(drop),
                // Never restarted (not `restartable`).
                WorkloadKind::CronJob | WorkloadKind::Job | WorkloadKind::Pod => Ok(()),
            };
            result
        }
    });
    futures::future::join_all(patches).await
}

/// The `restartedAt` a workload's pod template carries now (to read back a restart whose
/// answer was lost).
pub async fn current_restarted_at(
    client: &Client,
    namespace: &str,
    target: &Target,
) -> Result<Option<String>, kube::Error> {
    let annotations = match target.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get(&target.name)
            .await?
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get(&target.name)
            .await?
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get(&target.name)
            .await?
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations),
        WorkloadKind::CronJob | WorkloadKind::Job | WorkloadKind::Pod => None,
    };
    Ok(template_restarted_at(annotations.as_ref()).map(str::to_string))
}

/// Watches `targets` (restarted with `restarted_at`) until each has rolled out, failed, or
/// `timeout` passed; `None` when `stop` completes first (Ctrl-C: a watch only reads, so it can
/// stop at once). One watch per kind and one on the pods carrying this restart's label.
pub async fn watch(
    client: &Client,
    namespace: &str,
    targets: &[Target],
    restarted_at: &str,
    timeout: Duration,
    sink: &mut dyn ProgressSink,
    stop: impl std::future::Future<Output = ()>,
) -> Option<Vec<WorkloadResult>> {
    let started = Instant::now();
    let mut results: BTreeMap<usize, WorkloadResult> = BTreeMap::new();
    let mut last_message: BTreeMap<usize, String> = BTreeMap::new();
    for target in targets {
        sink.started(&target.reference());
    }
    tokio::pin!(stop);

    let config = watcher::Config::default();
    let kinds: Vec<WorkloadKind> = targets.iter().map(|t| t.kind).collect();
    let mut streams: Vec<futures::stream::BoxStream<'static, Seen>> = Vec::new();
    fn seen<K, F>(
        api: Api<K>,
        config: watcher::Config,
        wrap: F,
    ) -> futures::stream::BoxStream<'static, Seen>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        F: Fn(K) -> Seen + Send + 'static,
    {
        watcher(api, config)
            .default_backoff()
            .applied_objects()
            .map_ok(wrap)
            .map(|item| item.unwrap_or_else(|e| Seen::WatchError(e.to_string())))
            .boxed()
    }
    if kinds.contains(&WorkloadKind::Deployment) {
        streams.push(seen(
            Api::<Deployment>::namespaced(client.clone(), namespace),
            config.clone(),
            |d| Seen::Deployment(Box::new(d)),
        ));
    }
    if kinds.contains(&WorkloadKind::StatefulSet) {
        streams.push(seen(
            Api::<StatefulSet>::namespaced(client.clone(), namespace),
            config.clone(),
            |s| Seen::StatefulSet(Box::new(s)),
        ));
    }
    if kinds.contains(&WorkloadKind::DaemonSet) {
        streams.push(seen(
            Api::<DaemonSet>::namespaced(client.clone(), namespace),
            config.clone(),
            |d| Seen::DaemonSet(Box::new(d)),
        ));
    }
    streams.push(seen(
        Api::<Pod>::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(&format!(
            "{RESTART_LABEL}={}",
            restart_label_value(restarted_at)
        )),
        |p| Seen::Pod(Box::new(p)),
    ));
    let mut events = futures::stream::select_all(streams);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut watch_error: Option<String> = None;

    while results.len() < targets.len() {
        let next = tokio::select! {
            () = &mut stop => return None,
            next = tokio::time::timeout_at(deadline, events.next()) => match next {
                Ok(Some(seen)) => seen,
                Ok(None) | Err(_) => break,
            },
        };
        let workload_name = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.name.clone().unwrap_or_default()
        };
        let (kind, name, (state, counts)) = match &next {
            Seen::Deployment(d) => (
                WorkloadKind::Deployment,
                workload_name(&d.metadata),
                deployment_state(d),
            ),
            Seen::StatefulSet(s) => (
                WorkloadKind::StatefulSet,
                workload_name(&s.metadata),
                statefulset_state(s),
            ),
            Seen::DaemonSet(d) => (
                WorkloadKind::DaemonSet,
                workload_name(&d.metadata),
                daemonset_state(d),
            ),
            Seen::Pod(pod) => {
                let ours = pod
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(RESTARTED_AT))
                    .is_some_and(|v| v == restarted_at);
                if !ours {
                    continue;
                }
                let Some(failure) = pod_failure(pod) else {
                    continue;
                };
                let Some(i) = targets
                    .iter()
                    .position(|t| pod_belongs_to(pod, t.kind, &t.name))
                else {
                    continue;
                };
                if results.contains_key(&i) {
                    continue;
                }
                let result = WorkloadResult {
                    kind: targets[i].kind,
                    name: targets[i].name.clone(),
                    outcome: Outcome::Failed {
                        message: format!(
                            "new pod {} is failing: container {} is in {}{}",
                            failure.pod,
                            failure.container,
                            failure.reason,
                            if failure.message.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", failure.message)
                            }
                        ),
                        pod: Some(failure),
                    },
                    elapsed: started.elapsed(),
                };
                sink.finished(&result);
                results.insert(i, result);
                continue;
            }
            Seen::WatchError(e) => {
                watch_error = Some(e.clone());
                continue;
            }
        };
        let Some(index) = targets
            .iter()
            .position(|t| t.kind == kind && t.name == name)
        else {
            continue;
        };
        if results.contains_key(&index) {
            continue;
        }
        let target = &targets[index];
        match state {
            RolloutState::Waiting(message) => {
                sink.progress(&target.reference(), counts, &message);
                last_message.insert(index, message);
            }
            RolloutState::Done(message) => {
                sink.progress(&target.reference(), counts, &message);
                let result = WorkloadResult {
                    kind: target.kind,
                    name: target.name.clone(),
                    outcome: Outcome::RolledOut { message },
                    elapsed: started.elapsed(),
                };
                sink.finished(&result);
                results.insert(index, result);
            }
            RolloutState::Failed(message) => {
                let result = WorkloadResult {
                    kind: target.kind,
                    name: target.name.clone(),
                    outcome: Outcome::Failed { message, pod: None },
                    elapsed: started.elapsed(),
                };
                sink.finished(&result);
                results.insert(index, result);
            }
        }
    }

    for (i, target) in targets.iter().enumerate() {
        if results.contains_key(&i) {
            continue;
        }
        let waiting = last_message
            .get(&i)
            .cloned()
            .unwrap_or_else(|| "no status seen".to_string());
        let mut message = format!(
            "timed out after {} waiting for the rollout: {waiting}",
            crate::model::clock::humanize(timeout)
        );
        if let Some(err) = &watch_error {
            message.push_str(&format!(" (last watch error: {err})"));
        }
        let result = WorkloadResult {
            kind: target.kind,
            name: target.name.clone(),
            outcome: Outcome::Failed { message, pod: None },
            elapsed: started.elapsed(),
        };
        sink.finished(&result);
        results.insert(i, result);
    }
    Some(results.into_values().collect())
}

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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::model::names::FIELD_MANAGER;
use crate::model::workload::WorkloadKind;
use crate::plan::rollout::{
    Counts, Outcome, PodFailure, ProgressSink, RESTART_LABEL, RESTARTED_AT, RolloutState, Target,
    WorkloadResult, daemonset_state, deployment_state, pod_belongs_to, pod_failure,
    restart_label_value, restart_patch_labelled, statefulset_state, template_restarted_at,
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
            .template
            .metadata
            .and_then(|m| m.annotations),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get(&target.name)
            .await?
            .spec
            .template
            .metadata
            .and_then(|m| m.annotations),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get(&target.name)
            .await?
            .spec
            .template
            .metadata
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
    let mut progress = Progress::new(targets, restarted_at);
    for target in targets {
        sink.started(&target.reference());
    }
    let events = open_streams(client, namespace, targets, restarted_at);
    let deadline = tokio::time::Instant::now() + timeout;
    progress.follow(events, deadline, sink, stop).await?;
    Some(progress.time_out_the_rest(timeout, sink))
}

/// One watch per kind among `targets` and one on the pods carrying this restart's label,
/// merged into one stream of what they see.
fn open_streams(
    client: &Client,
    namespace: &str,
    targets: &[Target],
    restarted_at: &str,
) -> futures::stream::SelectAll<futures::stream::BoxStream<'static, Seen>> {
    let config = watcher::Config::default();
    let kinds: Vec<WorkloadKind> = targets.iter().map(|t| t.kind).collect();
    let mut streams: Vec<futures::stream::BoxStream<'static, Seen>> = Vec::new();
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
    futures::stream::select_all(streams)
}

/// One kind's watch as a stream of `Seen` (its errors included, so the loop can name the last).
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

/// The watch's state: each target's result once it has one, the last message of those still
/// rolling out, and the last watch error (named if the wait times out).
struct Progress<'a> {
    targets: &'a [Target],
    restarted_at: &'a str,
    started: Instant,
    results: BTreeMap<usize, WorkloadResult>,
    last_message: BTreeMap<usize, String>,
    watch_error: Option<String>,
}

impl<'a> Progress<'a> {
    fn new(targets: &'a [Target], restarted_at: &'a str) -> Self {
        Progress {
            targets,
            restarted_at,
            started: Instant::now(),
            results: BTreeMap::new(),
            last_message: BTreeMap::new(),
            watch_error: None,
        }
    }

    /// The event loop: takes what the watches see until every target has a result, the
    /// deadline passes or the streams end; `None` when `stop` completes first.
    async fn follow(
        &mut self,
        mut events: impl futures::Stream<Item = Seen> + Unpin,
        deadline: tokio::time::Instant,
        sink: &mut dyn ProgressSink,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<()> {
        tokio::pin!(stop);
        while self.results.len() < self.targets.len() {
            let next = tokio::select! {
                () = &mut stop => return None,
                next = tokio::time::timeout_at(deadline, events.next()) => match next {
                    Ok(Some(seen)) => seen,
                    Ok(None) | Err(_) => break,
                },
            };
            match next {
                Seen::Deployment(d) => self.on_workload(
                    WorkloadKind::Deployment,
                    &d.metadata,
                    deployment_state(&d),
                    sink,
                ),
                Seen::StatefulSet(s) => self.on_workload(
                    WorkloadKind::StatefulSet,
                    &s.metadata,
                    statefulset_state(&s),
                    sink,
                ),
                Seen::DaemonSet(d) => self.on_workload(
                    WorkloadKind::DaemonSet,
                    &d.metadata,
                    daemonset_state(&d),
                    sink,
                ),
                Seen::Pod(pod) => self.on_pod(&pod, sink),
                Seen::WatchError(e) => self.watch_error = Some(e),
            }
        }
        Some(())
    }

    /// A workload's new state: progress while it rolls out, its result once done or failed.
    fn on_workload(
        &mut self,
        kind: WorkloadKind,
        meta: &ObjectMeta,
        (state, counts): (RolloutState, Counts),
        sink: &mut dyn ProgressSink,
    ) {
        let name = meta.name.clone().unwrap_or_default();
        let Some(index) = self
            .targets
            .iter()
            .position(|t| t.kind == kind && t.name == name)
        else {
            return;
        };
        if self.results.contains_key(&index) {
            return;
        }
        let reference = self.targets[index].reference();
        match state {
            RolloutState::Waiting(message) => {
                sink.progress(&reference, counts, &message);
                self.last_message.insert(index, message);
            }
            RolloutState::Done(message) => {
                sink.progress(&reference, counts, &message);
                self.finish(index, Outcome::RolledOut { message }, sink);
            }
            RolloutState::Failed(message) => {
                self.finish(index, Outcome::Failed { message, pod: None }, sink);
            }
        }
    }

    /// A pod of this restart: its workload fails at once when the pod is failing for good.
    fn on_pod(&mut self, pod: &Pod, sink: &mut dyn ProgressSink) {
        if !restarted_by(pod, self.restarted_at) {
            return;
        }
        let Some(failure) = pod_failure(pod) else {
            return;
        };
        let Some(index) = self
            .targets
            .iter()
            .position(|t| pod_belongs_to(pod, t.kind, &t.name))
        else {
            return;
        };
        if self.results.contains_key(&index) {
            return;
        }
        let message = failing_pod_message(&failure);
        let outcome = Outcome::Failed {
            message,
            pod: Some(failure),
        };
        self.finish(index, outcome, sink);
    }

    /// Records target `index`'s result (timed from the start of the watch) and reports it.
    fn finish(&mut self, index: usize, outcome: Outcome, sink: &mut dyn ProgressSink) {
        let target = &self.targets[index];
        let result = WorkloadResult {
            kind: target.kind,
            name: target.name.clone(),
            outcome,
            elapsed: self.started.elapsed(),
        };
        sink.finished(&result);
        self.results.insert(index, result);
    }

    /// The results in the targets' order, every target still without one failed as timed out.
    fn time_out_the_rest(
        mut self,
        timeout: Duration,
        sink: &mut dyn ProgressSink,
    ) -> Vec<WorkloadResult> {
        for index in 0..self.targets.len() {
            if self.results.contains_key(&index) {
                continue;
            }
            let message = timed_out_message(
                timeout,
                self.last_message.get(&index).map(String::as_str),
                self.watch_error.as_deref(),
            );
            self.finish(index, Outcome::Failed { message, pod: None }, sink);
        }
        self.results.into_values().collect()
    }
}

/// Whether `pod` was started by this restart (its template's `restartedAt` is ours).
fn restarted_by(pod: &Pod, restarted_at: &str) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESTARTED_AT))
        .is_some_and(|v| v == restarted_at)
}

/// What a workload failed with when one of its new pods is failing.
fn failing_pod_message(failure: &PodFailure) -> String {
    format!(
        "new pod {} is failing: container {} is in {}{}",
        failure.pod,
        failure.container,
        failure.reason,
        if failure.message.is_empty() {
            String::new()
        } else {
            format!(" ({})", failure.message)
        }
    )
}

/// What a workload still rolling out at the deadline failed with: the last status seen, and
/// the last watch error if there was one.
fn timed_out_message(
    timeout: Duration,
    waiting: Option<&str>,
    watch_error: Option<&str>,
) -> String {
    let mut message = format!(
        "timed out after {} waiting for the rollout: {}",
        crate::model::clock::humanize(timeout),
        waiting.unwrap_or("no status seen")
    );
    if let Some(err) = watch_error {
        message.push_str(&format!(" (last watch error: {err})"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timed_out_rollout_names_its_last_status_and_the_last_watch_error() {
        assert_eq!(
            timed_out_message(
                Duration::from_secs(300),
                Some("1 of 3 updated"),
                Some("connection reset")
            ),
            "timed out after 5m waiting for the rollout: 1 of 3 updated (last watch error: connection reset)"
        );
        assert_eq!(
            timed_out_message(Duration::from_secs(30), None, None),
            "timed out after 30s waiting for the rollout: no status seen"
        );
    }

    #[test]
    fn a_failing_pod_is_named_with_its_container_and_reason() {
        let mut failure = PodFailure {
            pod: "web-1".into(),
            container: "app".into(),
            reason: "CrashLoopBackOff".into(),
            message: String::new(),
        };
        assert_eq!(
            failing_pod_message(&failure),
            "new pod web-1 is failing: container app is in CrashLoopBackOff"
        );
        failure.message = "back-off 10s".into();
        assert_eq!(
            failing_pod_message(&failure),
            "new pod web-1 is failing: container app is in CrashLoopBackOff (back-off 10s)"
        );
    }

    #[test]
    fn only_pods_carrying_this_restarts_time_are_ours() {
        let mut pod = Pod::default();
        assert!(!restarted_by(&pod, "2024-01-01T00:00:00Z"));
        pod.metadata.annotations = Some(
            [(RESTARTED_AT.to_string(), "2024-01-01T00:00:00Z".to_string())]
                .into_iter()
                .collect(),
        );
        assert!(restarted_by(&pod, "2024-01-01T00:00:00Z"));
        assert!(!restarted_by(&pod, "2024-02-02T00:00:00Z"));
    }
}

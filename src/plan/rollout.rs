//! Restarting consumers and watching their rollouts.
//!
//! The restart is what `kubectl rollout restart` does: set the pod-template annotation
//! `kubectl.kubernetes.io/restartedAt` (RFC 3339, one-second resolution) with a strategic-merge
//! patch. The rollout rules are kubectl's (`polymorphichelpers/rollout_status.go`), per kind, as
//! pure functions over k8s-openapi objects. The wait is driven by watches, one per kind in the
//! namespace plus one on pods, so the number of requests does not grow with time or with
//! per-workload polling; a new pod (one carrying this run's restartedAt) that crash-loops fails
//! its workload at once instead of at the timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::model::workload::WorkloadKind;

pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Where a rollout stands, by kubectl's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    Waiting(String),
    Done(String),
    Failed(String),
}

/// Replica counts for the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
}

/// kubectl's DeploymentStatusViewer.
pub fn deployment_state(d: &Deployment) -> (RolloutState, Counts) {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let desired = d.spec.replicas;
    let counts = Counts {
        desired: desired.unwrap_or(1),
        updated: status.updated_replicas.unwrap_or(0),
        ready: status.available_replicas.unwrap_or(0),
    };
    let generation = d.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return (
            RolloutState::Waiting("waiting for the deployment spec update to be observed".into()),
            counts,
        );
    }
    if status.conditions.iter().flatten().any(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return (
            RolloutState::Failed(format!(
                "deployment {name:?} exceeded its progress deadline"
            )),
            counts,
        );
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if let Some(desired) = desired
        && updated < desired
    {
        return (
            RolloutState::Waiting(format!(
                "{updated} out of {desired} new replicas have been updated"
            )),
            counts,
        );
    }
    if replicas > updated {
        return (
            RolloutState::Waiting(format!(
                "{} old replicas are pending termination",
                replicas - updated
            )),
            counts,
        );
    }
    if available < updated {
        return (
            RolloutState::Waiting(format!(
                "{available} of {updated} updated replicas are available"
            )),
            counts,
        );
    }
    (
        RolloutState::Done(format!("deployment {name:?} successfully rolled out")),
        counts,
    )
}

/// kubectl's StatefulSetStatusViewer.
pub fn statefulset_state(s: &StatefulSet) -> (RolloutState, Counts) {
    let spec = s.spec.clone();
    let status = s.status.clone().unwrap_or_default();
    let counts = Counts {
        desired: spec.replicas.unwrap_or(1),
        updated: status.updated_replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
    };
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy
        .type_
        .as_deref()
        .is_some_and(|t| t != "RollingUpdate")
    {
        return (
            RolloutState::Failed(
                "rollout status is only available for the RollingUpdate strategy".into(),
            ),
            counts,
        );
    }
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || s.metadata.generation.unwrap_or(0) > observed {
        return (
            RolloutState::Waiting("waiting for the statefulset spec update to be observed".into()),
            counts,
        );
    }
    if let Some(replicas) = spec.replicas
        && status.ready_replicas.unwrap_or(0) < replicas
    {
        return (
            RolloutState::Waiting(format!(
                "{} of {replicas} pods are ready",
                status.ready_replicas.unwrap_or(0)
            )),
            counts,
        );
    }
    if let Some(partition) = strategy.rolling_update.and_then(|r| r.partition)
        && let Some(replicas) = spec.replicas
    {
        let updated = status.updated_replicas.unwrap_or(0);
        if updated < replicas - partition {
            return (
                RolloutState::Waiting(format!(
                    "{updated} of {} new pods have been updated",
                    replicas - partition
                )),
                counts,
            );
        }
        return (
            RolloutState::Done(format!(
                "partitioned roll out complete: {updated} new pods have been updated"
            )),
            counts,
        );
    }
    if status.update_revision != status.current_revision {
        return (
            RolloutState::Waiting(format!(
                "{} pods at revision {}",
                status.updated_replicas.unwrap_or(0),
                status.update_revision.unwrap_or_default()
            )),
            counts,
        );
    }
    (
        RolloutState::Done("statefulset rolling update complete".into()),
        counts,
    )
}

/// kubectl's DaemonSetStatusViewer.
pub fn daemonset_state(d: &DaemonSet) -> (RolloutState, Counts) {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let counts = Counts {
        desired: status.desired_number_scheduled,
        updated: status.updated_number_scheduled.unwrap_or(0),
        ready: status.number_available.unwrap_or(0),
    };
    let strategy = d.spec.update_strategy.clone().unwrap_or_default();
    if strategy
        .type_
        .as_deref()
        .is_some_and(|t| t != "RollingUpdate")
    {
        return (
            RolloutState::Failed(
                "rollout status is only available for the RollingUpdate strategy".into(),
            ),
            counts,
        );
    }
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return (
            RolloutState::Waiting("waiting for the daemon set spec update to be observed".into()),
            counts,
        );
    }
    if counts.updated < status.desired_number_scheduled {
        return (
            RolloutState::Waiting(format!(
                "{} out of {} new pods have been updated",
                counts.updated, status.desired_number_scheduled
            )),
            counts,
        );
    }
    if counts.ready < status.desired_number_scheduled {
        return (
            RolloutState::Waiting(format!(
                "{} of {} updated pods are available",
                counts.ready, status.desired_number_scheduled
            )),
            counts,
        );
    }
    (
        RolloutState::Done(format!("daemon set {name:?} successfully rolled out")),
        counts,
    )
}

/// A container of a new pod that will not come up on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFailure {
    pub pod: String,
    pub container: String,
    pub reason: String,
    pub message: String,
}

/// Waiting reasons that mean the container is not going to start without a change.
const FATAL_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "RunContainerError",
];

/// How many times a container must have been restarted before its `CrashLoopBackOff` fails
/// the rollout. One crash is not yet a loop: a new pod restarted together with the server it
/// needs (a Redis restarted with its clients) may crash once while that server starts, and
/// come up after its back-off. A second crash, after the back-off, is a loop.
pub const RESTARTS_BEFORE_CRASH_LOOP: i32 = 2;

/// Whether `pod` shows a container that crash-loops or cannot start.
pub fn pod_failure(pod: &Pod) -> Option<PodFailure> {
    let status = pod.status.as_ref()?;
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in statuses {
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(waiting) = waiting
            && let Some(reason) = waiting.reason.as_deref()
            && FATAL_WAITING_REASONS.contains(&reason)
            && (reason != "CrashLoopBackOff"
                || container.restart_count >= RESTARTS_BEFORE_CRASH_LOOP)
        {
            return Some(PodFailure {
                pod: pod.metadata.name.clone().unwrap_or_default(),
                container: container.name.clone(),
                reason: reason.to_string(),
                message: waiting.message.clone().unwrap_or_default(),
            });
        }
    }
    None
}

/// The strategic-merge patch `kubectl rollout restart` sends.
pub fn restart_patch(restarted_at: &str) -> serde_json::Value {
    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}})
}

/// Whether `pod` belongs to the workload `kind/name` (through its ReplicaSet for Deployments).
pub fn pod_belongs_to(pod: &Pod, kind: WorkloadKind, name: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| match kind {
            WorkloadKind::Deployment => {
                owner.kind == "ReplicaSet"
                    && owner
                        .name
                        .rsplit_once('-')
                        .is_some_and(|(prefix, _)| prefix == name)
            }
            WorkloadKind::StatefulSet => owner.kind == "StatefulSet" && owner.name == name,
            WorkloadKind::DaemonSet => owner.kind == "DaemonSet" && owner.name == name,
            WorkloadKind::Job => owner.kind == "Job" && owner.name == name,
            WorkloadKind::CronJob | WorkloadKind::Pod => false,
        })
}

/// How one workload's restart ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    RolledOut {
        message: String,
    },
    Failed {
        message: String,
        pod: Option<PodFailure>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadResult {
    pub kind: WorkloadKind,
    pub name: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

impl WorkloadResult {
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::RolledOut { .. })
    }
}

/// Receives progress while rollouts are watched (the terminal display implements it).
pub trait ProgressSink {
    fn started(&mut self, reference: &str);
    fn progress(&mut self, reference: &str, counts: Counts, message: &str);
    fn finished(&mut self, result: &WorkloadResult);
}

/// What the caller asks to restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: WorkloadKind,
    pub name: String,
}

impl Target {
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}

/// The pod-template label a restart sets, so the watch sees only the pods of the restarted
/// workloads (a namespace may hold thousands of unrelated pods). Its value is the restart's
/// time, which also is the `restartedAt` annotation's.
pub const RESTART_LABEL: &str = "kubectl-rotate.io/restart";

/// `restarted_at` as a label value (`:` is not allowed in one).
pub fn restart_label_value(restarted_at: &str) -> String {
    restarted_at.replace(':', ".")
}

/// The strategic-merge patch of a restart: kubectl's annotation, plus the label that scopes
/// the watch.
pub fn restart_patch_labelled(restarted_at: &str) -> serde_json::Value {
    json!({"spec": {"template": {"metadata": {
        "annotations": {RESTARTED_AT: restarted_at},
        "labels": {RESTART_LABEL: restart_label_value(restarted_at)},
    }}}})
}

/// Whether a workload's pod template already carries this restart.
pub fn template_restarted_at(
    template_annotations: Option<&BTreeMap<String, String>>,
) -> Option<&str> {
    template_annotations
        .and_then(|a| a.get(RESTARTED_AT))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy, DeploymentCondition,
        DeploymentSpec, DeploymentStatus, RollingUpdateStatefulSetStrategy, StatefulSetSpec,
        StatefulSetStatus, StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn meta(generation: i64) -> ObjectMeta {
        ObjectMeta {
            name: Some("api".into()),
            generation: Some(generation),
            ..ObjectMeta::default()
        }
    }

    fn deployment(generation: i64, replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: meta(generation),
            spec: DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            },
            status: Some(status),
        }
    }

    fn dstatus(observed: i64, replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }
    }

    fn waiting(state: (RolloutState, Counts)) -> String {
        match state.0 {
            RolloutState::Waiting(m) => m,
            other => panic!("expected waiting, got {other:?}"),
        }
    }

    #[test]
    fn deployment_follows_kubectls_rules_in_order() {
        assert!(
            waiting(deployment_state(&deployment(3, 2, dstatus(2, 2, 2, 2))))
                .contains("spec update to be observed")
        );
        assert_eq!(
            waiting(deployment_state(&deployment(3, 2, dstatus(3, 3, 1, 2)))),
            "1 out of 2 new replicas have been updated"
        );
        assert_eq!(
            waiting(deployment_state(&deployment(3, 2, dstatus(3, 3, 2, 2)))),
            "1 old replicas are pending termination"
        );
        assert_eq!(
            waiting(deployment_state(&deployment(3, 2, dstatus(3, 2, 2, 1)))),
            "1 of 2 updated replicas are available"
        );
        assert!(matches!(
            deployment_state(&deployment(3, 2, dstatus(3, 2, 2, 2))).0,
            RolloutState::Done(_)
        ));
        let mut stuck = dstatus(3, 3, 1, 2);
        stuck.conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            ..DeploymentCondition::default()
        }]);
        assert!(
            matches!(deployment_state(&deployment(3, 2, stuck)).0, RolloutState::Failed(m) if m.contains("progress deadline"))
        );
    }

    fn statefulset(
        generation: i64,
        replicas: i32,
        partition: Option<i32>,
        status: StatefulSetStatus,
    ) -> StatefulSet {
        StatefulSet {
            metadata: meta(generation),
            spec: StatefulSetSpec {
                replicas: Some(replicas),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: partition.map(|p| RollingUpdateStatefulSetStrategy {
                        partition: Some(p),
                        ..Default::default()
                    }),
                }),
                ..StatefulSetSpec::default()
            },
            status: Some(status),
        }
    }

    fn sstatus(
        observed: i64,
        ready: i32,
        updated: i32,
        current: &str,
        update: &str,
    ) -> StatefulSetStatus {
        StatefulSetStatus {
            observed_generation: Some(observed),
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            current_revision: Some(current.into()),
            update_revision: Some(update.into()),
            ..StatefulSetStatus::default()
        }
    }

    #[test]
    fn statefulset_follows_kubectls_rules_in_order() {
        assert!(
            waiting(statefulset_state(&statefulset(
                2,
                3,
                None,
                sstatus(1, 3, 3, "a", "a")
            )))
            .contains("observed")
        );
        assert_eq!(
            waiting(statefulset_state(&statefulset(
                2,
                3,
                None,
                sstatus(2, 2, 3, "a", "b")
            ))),
            "2 of 3 pods are ready"
        );
        assert!(
            waiting(statefulset_state(&statefulset(
                2,
                3,
                None,
                sstatus(2, 3, 1, "a", "b")
            )))
            .contains("at revision b")
        );
        assert!(matches!(
            statefulset_state(&statefulset(2, 3, None, sstatus(2, 3, 3, "b", "b"))).0,
            RolloutState::Done(_)
        ));
        assert!(
            waiting(statefulset_state(&statefulset(
                2,
                3,
                Some(1),
                sstatus(2, 3, 1, "a", "b")
            )))
            .contains("1 of 2 new pods")
        );
        assert!(matches!(
            statefulset_state(&statefulset(2, 3, Some(1), sstatus(2, 3, 2, "a", "b"))).0,
            RolloutState::Done(_)
        ));
        let mut on_delete = statefulset(2, 3, None, sstatus(2, 3, 3, "b", "b"));
        on_delete.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
        assert!(matches!(
            statefulset_state(&on_delete).0,
            RolloutState::Failed(_)
        ));
    }

    fn daemonset(
        generation: i64,
        observed: i64,
        desired: i32,
        updated: i32,
        available: i32,
    ) -> DaemonSet {
        DaemonSet {
            metadata: meta(generation),
            spec: DaemonSetSpec {
                update_strategy: Some(DaemonSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: None,
                }),
                ..DaemonSetSpec::default()
            },
            status: Some(DaemonSetStatus {
                observed_generation: Some(observed),
                desired_number_scheduled: desired,
                updated_number_scheduled: Some(updated),
                number_available: Some(available),
                ..DaemonSetStatus::default()
            }),
        }
    }

    #[test]
    fn daemonset_follows_kubectls_rules_in_order() {
        assert!(waiting(daemonset_state(&daemonset(2, 1, 3, 3, 3))).contains("observed"));
        assert_eq!(
            waiting(daemonset_state(&daemonset(2, 2, 3, 1, 3))),
            "1 out of 3 new pods have been updated"
        );
        assert_eq!(
            waiting(daemonset_state(&daemonset(2, 2, 3, 3, 2))),
            "2 of 3 updated pods are available"
        );
        assert!(matches!(
            daemonset_state(&daemonset(2, 2, 3, 3, 3)).0,
            RolloutState::Done(_)
        ));
    }

    fn pod(owner_kind: &str, owner: &str, waiting_reason: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("api-abc-1".into()),
                owner_references: Some(vec![OwnerReference {
                    kind: owner_kind.into(),
                    name: owner.into(),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "api".into(),
                    restart_count: 3,
                    state: Some(ContainerState {
                        waiting: waiting_reason.map(|r| ContainerStateWaiting {
                            reason: Some(r.into()),
                            message: Some("boom".into()),
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn a_crash_looping_container_is_a_pod_failure() {
        let failure =
            pod_failure(&pod("ReplicaSet", "api-5d8f", Some("CrashLoopBackOff"))).unwrap();
        assert_eq!(
            (failure.container.as_str(), failure.reason.as_str()),
            ("api", "CrashLoopBackOff")
        );
        assert!(pod_failure(&pod("ReplicaSet", "api-5d8f", Some("ContainerCreating"))).is_none());
        assert!(pod_failure(&pod("ReplicaSet", "api-5d8f", None)).is_none());
    }

    #[test]
    fn one_crash_is_not_yet_a_loop_but_a_config_error_fails_at_once() {
        let with_restarts = |reason: &str, restarts: i32| {
            let mut p = pod("ReplicaSet", "api-5d8f", Some(reason));
            let status = p.status.as_mut().unwrap();
            status.container_statuses.as_mut().unwrap()[0].restart_count = restarts;
            p
        };
        assert!(pod_failure(&with_restarts("CrashLoopBackOff", 1)).is_none());
        assert!(pod_failure(&with_restarts("CrashLoopBackOff", 2)).is_some());
        assert!(pod_failure(&with_restarts("CreateContainerConfigError", 0)).is_some());
    }

    #[test]
    fn pods_are_matched_to_their_workload_through_owners() {
        assert!(pod_belongs_to(
            &pod("ReplicaSet", "my-api-5d8f", None),
            WorkloadKind::Deployment,
            "my-api"
        ));
        assert!(!pod_belongs_to(
            &pod("ReplicaSet", "my-api-5d8f", None),
            WorkloadKind::Deployment,
            "api"
        ));
        assert!(pod_belongs_to(
            &pod("StatefulSet", "db", None),
            WorkloadKind::StatefulSet,
            "db"
        ));
        assert!(pod_belongs_to(
            &pod("DaemonSet", "agent", None),
            WorkloadKind::DaemonSet,
            "agent"
        ));
    }

    #[test]
    fn the_restart_patch_is_kubectls() {
        assert_eq!(
            restart_patch("2026-11-26T04:00:00Z"),
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-26T04:00:00Z"}}}}})
        );
    }
}

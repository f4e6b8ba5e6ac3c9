//! The kinds of workload that consume a Secret, and how kubectl and RBAC name them.

use serde::Serialize;

/// The kinds of workload that can consume a Secret.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
    /// A Job that has not finished: its own, or a CronJob's.
    Job,
    /// A pod without a controller, not finished.
    Pod,
}

impl WorkloadKind {
    /// The lower-case form kubectl uses in `kind/name`.
    pub fn short(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::Job => "job",
            WorkloadKind::Pod => "pod",
        }
    }

    /// The API resource, as RBAC rules name it.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::DaemonSet => "daemonsets",
            WorkloadKind::CronJob => "cronjobs",
            WorkloadKind::Job => "jobs",
            WorkloadKind::Pod => "pods",
        }
    }

    /// The API group (`""`: the core group).
    pub fn api_group(self) -> &'static str {
        match self {
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => {
                "apps"
            }
            WorkloadKind::CronJob | WorkloadKind::Job => "batch",
            WorkloadKind::Pod => "",
        }
    }

    /// Whether a rolling restart applies: a CronJob's pods are Jobs that start fresh anyway;
    /// a Job or a bare pod has nothing that would replace its pods with new ones.
    pub fn restartable(self) -> bool {
        matches!(
            self,
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
        )
    }
}

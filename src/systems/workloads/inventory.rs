//! Reading the workloads of a namespace (or all): every kind that can consume a Secret, for
//! consumer discovery (`plan::consumers`), and the HorizontalPodAutoscalers that scale them.

use anyhow::Result;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use kube::Api;
use kube::api::ListParams;

use crate::cluster::{Cluster, Scope};
use crate::model::workload::WorkloadKind;
use crate::plan::consumers::{Inventory, Unlisted, Workload};

/// Every workload that could consume a Secret: Deployments, StatefulSets, DaemonSets,
/// CronJobs, unfinished Jobs (their own and CronJobs') and pods without a controller. A server that does
/// not serve batch/v1 CronJobs (before Kubernetes 1.21) simply has none to report.
///
/// CronJobs, Jobs and bare pods are only reported, never restarted: a list of them that
/// the API server refuses (Forbidden) does not fail the read; the kind is returned as
/// unlisted, for a warning (or `--strict`'s refusal). A refused list of a kind a run
/// restarts is an error naming the rule to add.
pub async fn list_workloads(cluster: &Cluster, scope: &Scope) -> Result<Inventory> {
    let lp = ListParams::default();
    let (deployment_api, statefulset_api, daemonset_api, cronjob_api) = (
        cluster.api::<Deployment>(scope),
        cluster.api::<StatefulSet>(scope),
        cluster.api::<DaemonSet>(scope),
        cluster.api::<CronJob>(scope),
    );
    let job_api = cluster.api::<k8s_openapi::api::batch::v1::Job>(scope);
    let pod_api = cluster.api::<k8s_openapi::api::core::v1::Pod>(scope);
    let (deployments, statefulsets, daemonsets, cronjobs, jobs, pods) = futures::join!(
        deployment_api.list(&lp),
        statefulset_api.list(&lp),
        daemonset_api.list(&lp),
        cronjob_api.list(&lp),
        job_api.list(&lp),
        pod_api.list(&lp),
    );
    let what = |kind: &str| {
        format!(
            "list {kind} {} to find the Secret's consumers",
            scope.describe()
        )
    };
    let mut found = Inventory::default();
    let deployments = deployments.map_err(|e| cluster.explain(e, &what("Deployments")))?;
    found
        .workloads
        .extend(deployments.items.iter().map(Workload::from_deployment));
    let statefulsets = statefulsets.map_err(|e| cluster.explain(e, &what("StatefulSets")))?;
    found
        .workloads
        .extend(statefulsets.items.iter().map(Workload::from_statefulset));
    let daemonsets = daemonsets.map_err(|e| cluster.explain(e, &what("DaemonSets")))?;
    found
        .workloads
        .extend(daemonsets.items.iter().map(Workload::from_daemonset));
    // Only reported: not served (404) means none; refused (403) means unknown.
    let unlisted = |kind: WorkloadKind| Unlisted {
        kind,
        namespace: match scope {
            Scope::Namespace(ns) => Some(ns.clone()),
            Scope::AllNamespaces => None,
        },
    };
    match cronjobs {
        Ok(list) => found
            .workloads
            .extend(list.items.iter().map(Workload::from_cronjob)),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(kube::Error::Api(status)) if status.code == 403 => {
            found.unlisted.push(unlisted(WorkloadKind::CronJob));
        }
        Err(err) => return Err(cluster.explain(err, &what("CronJobs"))),
    }
    match jobs {
        Ok(list) => found
            .workloads
            .extend(list.items.iter().filter_map(Workload::from_job)),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(kube::Error::Api(status)) if status.code == 403 => {
            found.unlisted.push(unlisted(WorkloadKind::Job));
        }
        Err(err) => return Err(cluster.explain(err, &what("Jobs"))),
    }
    match pods {
        Ok(list) => found
            .workloads
            .extend(list.items.iter().filter_map(Workload::from_pod)),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(kube::Error::Api(status)) if status.code == 403 => {
            found.unlisted.push(unlisted(WorkloadKind::Pod));
        }
        Err(err) => return Err(cluster.explain(err, &what("pods"))),
    }
    Ok(found)
}

/// The HorizontalPodAutoscalers that scale any of `workloads` (`plan::autoscaling`).
/// Empty when they cannot be listed (reported as "none"; the permission review asks for it).
pub async fn autoscalers_of(
    cluster: &Cluster,
    namespace: &str,
    workloads: &[crate::plan::steps::Scaled],
) -> Vec<crate::plan::autoscaling::Autoscaler> {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(cluster.client.clone(), namespace);
    match api.list(&kube::api::ListParams::default()).await {
        Ok(list) => crate::plan::autoscaling::targeting(&list.items, workloads),
        Err(_) => Vec::new(),
    }
}

//! Pure consumer discovery: which workloads use a Secret, and which of its keys.
//!
//! A pod template can reach a Secret's keys five ways (Stakater Reloader's rules, in containers,
//! init containers and native sidecars alike): `env[].valueFrom.secretKeyRef` (one key), `envFrom[].secretRef`
//! (every key), a `secret` volume and a `projected` volume's `secret` source (every key, or only
//! the keys listed under `items`). Deployments, StatefulSets and DaemonSets can be restarted;
//! CronJobs and unfinished Jobs (their own or a CronJob's) are reported (a CronJob's next Job
//! reads the new value) but never restarted.
//!
//! Everything here works on k8s-openapi types built by hand in tests; no cluster I/O.

use std::collections::BTreeMap;

use crate::model::workload::WorkloadKind;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde::Serialize;

/// A kind of workload the API server refused to list (Forbidden): whether any of its objects
/// consumes the Secret is unknown. Only kinds that are reported, never restarted (CronJobs,
/// Jobs, pods without a controller), end up here; a refused list of a kind that a
/// run restarts is an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unlisted {
    pub kind: WorkloadKind,
    /// `None`: every namespace (`status -A`).
    pub namespace: Option<String>,
}

impl Unlisted {
    /// The rule that lets the plugin list them.
    pub fn rule(&self) -> crate::cluster::access::Rule {
        crate::cluster::access::Rule::new(self.kind.api_group(), self.kind.resource(), &["list"])
    }

    /// Which consumers could not be checked, in words: `CronJobs in namespace prod`.
    pub fn what(&self) -> String {
        let kinds = match self.kind {
            WorkloadKind::Deployment => "Deployments",
            WorkloadKind::StatefulSet => "StatefulSets",
            WorkloadKind::DaemonSet => "DaemonSets",
            WorkloadKind::CronJob => "CronJobs",
            WorkloadKind::Job => "Jobs",
            WorkloadKind::Pod => "pods",
        };
        match &self.namespace {
            Some(ns) => format!("{kinds} in namespace {ns}"),
            None => format!("{kinds} in any namespace"),
        }
    }

    /// The warning a preview or `status` shows: what is not checked, why it does not block,
    /// and the rule to add.
    pub fn warning(&self) -> String {
        let which = match self.kind {
            WorkloadKind::Job => "a Job",
            WorkloadKind::Pod => "a pod without a controller",
            WorkloadKind::CronJob => "a CronJob",
            _ => "one",
        };
        format!(
            "consumers not checked: you may not list {}, so {which} that uses the Secret would be missing here \
             (they are only reported, never restarted; --strict refuses instead). To check them, add to {}: {}",
            self.what(),
            crate::cluster::access::where_to_add(self.namespace.as_deref()),
            self.rule().inline()
        )
    }
}

/// The refusal of `--strict` when some consumers could not be checked: what, and the rules
/// to add. `doing` says what was refused (`rotate Secret prod/app-secrets`); `writes`, whether
/// it would have changed anything (then the refusal says that nothing was).
pub fn refuse_unlisted(unlisted: &[Unlisted], doing: &str, writes: bool) -> anyhow::Result<()> {
    let Some(first) = unlisted.first() else {
        return Ok(());
    };
    let what: Vec<String> = unlisted.iter().map(Unlisted::what).collect();
    let rules: Vec<String> = unlisted
        .iter()
        .flat_map(|u| u.rule().yaml_lines())
        .map(|l| format!("  {l}"))
        .collect();
    anyhow::bail!(
        "refusing to {doing} (--strict): not every consumer of the Secret could be checked: you may not list {}{}. \
         Ask a cluster administrator to add to {}:\n{}\n\
         or run without --strict to go on with a warning (they are only reported, never restarted)",
        what.join(", "),
        if writes { "; nothing was changed" } else { "" },
        crate::cluster::access::where_to_add(first.namespace.as_deref()),
        rules.join("\n")
    )
}

/// Every workload that could consume a Secret, as read from the cluster, and the kinds the
/// API server refused to list.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub workloads: Vec<Workload>,
    pub unlisted: Vec<Unlisted>,
}

/// A workload reduced to what consumer discovery needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// The workload's own annotations (Reloader's live here, not on the pod template).
    pub annotations: BTreeMap<String, String>,
    pub pod_spec: PodSpec,
    /// A paused Deployment does not roll out; `kubectl rollout restart` refuses it.
    pub paused: bool,
    /// How it rolls out, and whether it is healthy now (read from its spec and status).
    pub rollout: RolloutFacts,
    /// The CronJob that created a Job (`cronjob/report`), which creates the next one.
    pub created_by: Option<String>,
}

/// What a restart of a workload depends on, read from its spec and status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RolloutFacts {
    /// `updateStrategy: OnDelete` (StatefulSets, DaemonSets): a template change replaces no pod
    /// until someone deletes it.
    pub on_delete: bool,
    /// A StatefulSet's `rollingUpdate.partition`: pods with a lower ordinal are not updated.
    pub partition: Option<i32>,
    pub replicas: Option<i32>,
    /// The pod selector as a label-selector string (`app=api,tier=web`), when it has only
    /// `matchLabels`.
    pub selector: Option<String>,
    /// Why it is not healthy right now (mid-rollout, unavailable replicas, stuck), by
    /// kubectl's rollout-status rules; `None` when rolled out.
    pub unhealthy: Option<String>,
}

impl Workload {
    pub fn from_deployment(d: &Deployment) -> Self {
        let spec = &d.spec;
        let mut workload = Self::new(
            WorkloadKind::Deployment,
            &d.metadata,
            spec.template.spec.clone(),
            spec.paused.unwrap_or(false),
        );
        workload.rollout = RolloutFacts {
            replicas: spec.replicas,
            selector: selector_string(&spec.selector),
            unhealthy: unhealthy(crate::plan::rollout::deployment_state(d).0),
            ..RolloutFacts::default()
        };
        workload
    }

    pub fn from_statefulset(s: &StatefulSet) -> Self {
        let spec = &s.spec;
        let pod_spec = spec.template.spec.clone();
        let mut workload = Self::new(WorkloadKind::StatefulSet, &s.metadata, pod_spec, false);
        let strategy = spec.update_strategy.clone();
        let on_delete = strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref())
            .is_some_and(|t| t == "OnDelete");
        workload.rollout = RolloutFacts {
            on_delete,
            partition: strategy
                .and_then(|u| u.rolling_update)
                .and_then(|r| r.partition)
                .filter(|p| *p > 0),
            replicas: spec.replicas,
            selector: selector_string(&spec.selector),
            unhealthy: if on_delete {
                on_delete_unhealthy(
                    spec.replicas.unwrap_or(1),
                    s.status
                        .as_ref()
                        .and_then(|st| st.ready_replicas)
                        .unwrap_or(0),
                )
            } else {
                unhealthy(crate::plan::rollout::statefulset_state(s).0)
            },
        };
        workload
    }

    pub fn from_daemonset(d: &DaemonSet) -> Self {
        let spec = &d.spec;
        let pod_spec = spec.template.spec.clone();
        let mut workload = Self::new(WorkloadKind::DaemonSet, &d.metadata, pod_spec, false);
        let on_delete = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref())
            .is_some_and(|t| t == "OnDelete");
        let status = d.status.clone().unwrap_or_default();
        workload.rollout = RolloutFacts {
            on_delete,
            selector: selector_string(&spec.selector),
            unhealthy: if on_delete {
                on_delete_unhealthy(
                    status.desired_number_scheduled,
                    status.number_available.unwrap_or(0),
                )
            } else {
                unhealthy(crate::plan::rollout::daemonset_state(d).0)
            },
            ..RolloutFacts::default()
        };
        workload
    }

    pub fn from_cronjob(c: &CronJob) -> Self {
        let pod_spec = c
            .spec
            .job_template
            .spec
            .as_ref()
            .and_then(|j| j.template.spec.clone());
        let suspended = c.spec.suspend.unwrap_or(false);
        Self::new(WorkloadKind::CronJob, &c.metadata, pod_spec, suspended)
    }

    /// A Job that has not finished (its running pods hold the value they started with), its
    /// own or a CronJob's; `None` once it has.
    pub fn from_job(j: &k8s_openapi::api::batch::v1::Job) -> Option<Self> {
        let cronjob = j
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "CronJob")
            .map(|o| format!("{}/{}", WorkloadKind::CronJob.short(), o.name));
        let finished = j
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
        if finished {
            return None;
        }
        let pod_spec = j.spec.as_ref().and_then(|s| s.template.spec.clone());
        let mut workload = Self::new(WorkloadKind::Job, &j.metadata, pod_spec, false);
        workload.created_by = cronjob;
        Some(workload)
    }

    /// A pod that no controller owns and that has not ended; `None` otherwise (a controller's
    /// pod is accounted for by its workload).
    pub fn from_pod(p: &k8s_openapi::api::core::v1::Pod) -> Option<Self> {
        let controlled = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true));
        let ended = p
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
        if controlled || ended || p.metadata.deletion_timestamp.is_some() {
            return None;
        }
        Some(Self::new(
            WorkloadKind::Pod,
            &p.metadata,
            p.spec.clone(),
            false,
        ))
    }

    fn new(
        kind: WorkloadKind,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        pod_spec: Option<PodSpec>,
        paused: bool,
    ) -> Self {
        Workload {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            pod_spec: pod_spec.unwrap_or_default(),
            paused,
            rollout: RolloutFacts::default(),
            created_by: None,
        }
    }

    /// `kind/name`, as kubectl prints it.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}

fn unhealthy(state: crate::plan::rollout::RolloutState) -> Option<String> {
    match state {
        crate::plan::rollout::RolloutState::Done(_) => None,
        crate::plan::rollout::RolloutState::Waiting(why)
        | crate::plan::rollout::RolloutState::Failed(why) => Some(why),
    }
}

/// kubectl has no rollout status for OnDelete workloads: healthy means every pod is ready.
fn on_delete_unhealthy(desired: i32, ready: i32) -> Option<String> {
    (ready < desired).then(|| format!("{ready} of {desired} pods are ready"))
}

/// `matchLabels` as a label-selector string; `None` when the selector also has expressions
/// (then only the workload's own status tells about its pods).
fn selector_string(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Option<String> {
    if selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        return None;
    }
    let labels = selector.match_labels.as_ref()?;
    if labels.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// One way a workload reaches a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Usage {
    /// `env[].valueFrom.secretKeyRef`: one key as one variable.
    #[serde(rename_all = "camelCase")]
    Env {
        container: String,
        init_container: bool,
        /// A native sidecar: an init container with `restartPolicy: Always`, which runs beside
        /// the app for the pod's life (Kubernetes 1.28+).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        sidecar: bool,
        variable: String,
        key: String,
    },
    /// `envFrom[].secretRef`: every key, each as a variable.
    #[serde(rename_all = "camelCase")]
    EnvFrom {
        container: String,
        init_container: bool,
        /// A native sidecar (see [`Usage::Env`]).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        sidecar: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// `volumes[].secret`: every key as a file, or only `items`.
    #[serde(rename_all = "camelCase")]
    Volume {
        volume: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        items: Option<Vec<String>>,
    },
    /// `volumes[].projected.sources[].secret`: every key as a file, or only `items`.
    #[serde(rename_all = "camelCase")]
    ProjectedVolume {
        volume: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        items: Option<Vec<String>>,
    },
}

impl Usage {
    /// Whether this usage reads `key`.
    pub fn covers(&self, key: &str) -> bool {
        match self {
            Usage::Env { key: k, .. } => k == key,
            Usage::EnvFrom { .. } => true,
            Usage::Volume { items, .. } | Usage::ProjectedVolume { items, .. } => items
                .as_ref()
                .is_none_or(|items| items.iter().any(|i| i == key)),
        }
    }

    /// A short phrase for people: `env OPENAI_API_KEY in app`, `envFrom in init container x`,
    /// `env TOKEN in sidecar proxy`.
    pub fn describe(&self) -> String {
        let container = |name: &str, init: bool, sidecar: bool| match (init, sidecar) {
            (true, true) => format!("sidecar {name}"),
            (true, false) => format!("init container {name}"),
            _ => name.to_string(),
        };
        match self {
            Usage::Env {
                container: c,
                init_container,
                sidecar,
                variable,
                ..
            } => {
                format!(
                    "env {variable} in {}",
                    container(c, *init_container, *sidecar)
                )
            }
            Usage::EnvFrom {
                container: c,
                init_container,
                sidecar,
                ..
            } => {
                format!("envFrom in {}", container(c, *init_container, *sidecar))
            }
            Usage::Volume { volume, .. } => format!("volume {volume}"),
            Usage::ProjectedVolume { volume, .. } => format!("projected volume {volume}"),
        }
    }
}

/// A workload that uses the Secret, with every way it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer<'w> {
    pub workload: &'w Workload,
    pub usages: Vec<Usage>,
}

impl Consumer<'_> {
    pub fn uses_key(&self, key: &str) -> bool {
        self.usages.iter().any(|u| u.covers(key))
    }

    pub fn usages_of(&self, key: &str) -> Vec<&Usage> {
        self.usages.iter().filter(|u| u.covers(key)).collect()
    }
}

/// Every workload in `workloads` that uses the Secret `secret` of `namespace`, in the order
/// given. Workloads in other namespaces never match: a pod can only mount its own namespace's
/// Secrets.
pub fn find_consumers<'w>(
    namespace: &str,
    secret: &str,
    workloads: &'w [Workload],
) -> Vec<Consumer<'w>> {
    workloads
        .iter()
        .filter(|w| w.namespace == namespace)
        .filter_map(|workload| {
            let usages = usages_in(&workload.pod_spec, secret);
            (!usages.is_empty()).then_some(Consumer { workload, usages })
        })
        .collect()
}

/// The consumers of one key of the Secret.
pub fn consumers_of_key<'c, 'w>(consumers: &'c [Consumer<'w>], key: &str) -> Vec<&'c Consumer<'w>> {
    consumers.iter().filter(|c| c.uses_key(key)).collect()
}

fn usages_in(spec: &PodSpec, secret: &str) -> Vec<Usage> {
    let mut usages = Vec::new();
    let init = spec.init_containers.iter().flatten().map(|c| (c, true));
    let main = spec.containers.iter().map(|c| (c, false));
    for (container, is_init) in init.chain(main) {
        usages.extend(container_usages(container, is_init, secret));
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(source) = &volume.secret
            && source.secret_name.as_deref() == Some(secret)
        {
            usages.push(Usage::Volume {
                volume: volume.name.clone(),
                items: source
                    .items
                    .as_ref()
                    .map(|items| items.iter().map(|i| i.key.clone()).collect()),
            });
        }
        if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(s) = &source.secret
                    && s.name == secret
                {
                    usages.push(Usage::ProjectedVolume {
                        volume: volume.name.clone(),
                        items: s
                            .items
                            .as_ref()
                            .map(|items| items.iter().map(|i| i.key.clone()).collect()),
                    });
                }
            }
        }
    }
    usages
}

/// How `container` reads the Secret. An init container counts as well as the app's: a restart
/// runs it again and it reads the new value; a native sidecar (`restartPolicy: Always`) reads it
/// for as long as the pod runs.
fn container_usages(container: &Container, init_container: bool, secret: &str) -> Vec<Usage> {
    let sidecar = init_container && container.restart_policy.as_deref() == Some("Always");
    let mut usages = Vec::new();
    for env in container.env.iter().flatten() {
        if let Some(key_ref) = env
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            && key_ref.name == secret
        {
            usages.push(Usage::Env {
                container: container.name.clone(),
                init_container,
                sidecar,
                variable: env.name.clone(),
                key: key_ref.key.clone(),
            });
        }
    }
    for from in container.env_from.iter().flatten() {
        if let Some(secret_ref) = &from.secret_ref
            && secret_ref.name == secret
        {
            usages.push(Usage::EnvFrom {
                container: container.name.clone(),
                init_container,
                sidecar,
                prefix: from.prefix.clone(),
            });
        }
    }
    usages
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::batch::v1::{CronJobSpec, JobSpec, JobTemplateSpec};
    use k8s_openapi::api::core::v1::{
        EnvFromSource, EnvVar, EnvVarSource, KeyToPath, PodTemplateSpec, ProjectedVolumeSource,
        SecretEnvSource, SecretKeySelector, SecretProjection, SecretVolumeSource, Volume,
        VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn workload(kind: WorkloadKind, name: &str, spec: PodSpec) -> Workload {
        Workload {
            kind,
            namespace: "prod".into(),
            name: name.into(),
            annotations: BTreeMap::new(),
            pod_spec: spec,
            paused: false,
            rollout: crate::plan::consumers::RolloutFacts::default(),
            created_by: None,
        }
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: Some("app:1".into()),
            ..Container::default()
        }
    }

    fn env_ref(var: &str, secret: &str, key: &str) -> EnvVar {
        EnvVar {
            name: var.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.into(),
                    key: key.into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }
    }

    fn env_from(secret: &str) -> EnvFromSource {
        EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.into(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }
    }

    fn items(keys: &[&str]) -> Option<Vec<KeyToPath>> {
        Some(
            keys.iter()
                .map(|k| KeyToPath {
                    key: (*k).into(),
                    path: (*k).into(),
                    mode: None,
                    user: None,
                })
                .collect(),
        )
    }

    fn secret_volume(name: &str, secret: &str, keys: Option<&[&str]>) -> Volume {
        Volume {
            name: name.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                items: keys.and_then(items),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }
    }

    fn projected_volume(name: &str, secret: &str, keys: Option<&[&str]>) -> Volume {
        Volume {
            name: name.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    secret: Some(SecretProjection {
                        name: secret.into(),
                        items: keys.and_then(items),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        }
    }

    #[test]
    fn env_secret_key_ref_consumes_only_its_key() {
        let spec = PodSpec {
            containers: vec![Container {
                env: Some(vec![env_ref(
                    "DB_PASSWORD",
                    "app-secrets",
                    "postgres-password",
                )]),
                ..container("app")
            }],
            ..PodSpec::default()
        };
        let workloads = vec![workload(WorkloadKind::Deployment, "worker", spec)];
        let consumers = find_consumers("prod", "app-secrets", &workloads);
        assert_eq!(consumers.len(), 1);
        assert!(consumers[0].uses_key("postgres-password"));
        assert!(!consumers[0].uses_key("openai-api-key"));
        assert_eq!(
            consumers[0].usages_of("postgres-password")[0].describe(),
            "env DB_PASSWORD in app"
        );
    }

    #[test]
    fn env_from_consumes_every_key() {
        let spec = PodSpec {
            containers: vec![Container {
                env_from: Some(vec![env_from("app-secrets")]),
                ..container("app")
            }],
            ..PodSpec::default()
        };
        let workloads = vec![workload(WorkloadKind::Deployment, "api", spec)];
        let consumers = find_consumers("prod", "app-secrets", &workloads);
        assert!(consumers[0].uses_key("anything-at-all"));
    }

    #[test]
    fn secret_volume_without_items_consumes_every_key_and_with_items_only_those() {
        let spec = PodSpec {
            containers: vec![container("app")],
            volumes: Some(vec![
                secret_volume("all", "app-secrets", None),
                secret_volume("some", "other", Some(&["tls.crt"])),
            ]),
            ..PodSpec::default()
        };
        let workloads = vec![workload(WorkloadKind::StatefulSet, "db", spec)];
        let all = find_consumers("prod", "app-secrets", &workloads);
        assert!(all[0].uses_key("redis-password"));
        let some = find_consumers("prod", "other", &workloads);
        assert!(some[0].uses_key("tls.crt"));
        assert!(!some[0].uses_key("tls.key"));
    }

    #[test]
    fn projected_volume_sources_are_followed_with_and_without_items() {
        let spec = PodSpec {
            containers: vec![container("app")],
            volumes: Some(vec![
                projected_volume("bundle", "app-secrets", Some(&["encryption-key"])),
                projected_volume("all", "other", None),
            ]),
            ..PodSpec::default()
        };
        let workloads = vec![workload(WorkloadKind::DaemonSet, "agent", spec)];
        let consumers = find_consumers("prod", "app-secrets", &workloads);
        assert!(consumers[0].uses_key("encryption-key"));
        assert!(!consumers[0].uses_key("openai-api-key"));
        assert_eq!(consumers[0].usages[0].describe(), "projected volume bundle");
        assert!(find_consumers("prod", "other", &workloads)[0].uses_key("x"));
    }

    #[test]
    fn init_containers_count_as_consumers() {
        let spec = PodSpec {
            init_containers: Some(vec![Container {
                env: Some(vec![env_ref("KEY", "app-secrets", "encryption-key")]),
                ..container("migrate")
            }]),
            containers: vec![container("app")],
            ..PodSpec::default()
        };
        let workloads = vec![workload(WorkloadKind::Deployment, "api", spec)];
        let consumers = find_consumers("prod", "app-secrets", &workloads);
        assert_eq!(
            consumers[0].usages[0].describe(),
            "env KEY in init container migrate"
        );
    }

    #[test]
    fn a_native_sidecar_is_a_consumer_named_as_such_and_its_workload_restartable() {
        let spec = PodSpec {
            init_containers: Some(vec![
                Container {
                    restart_policy: Some("Always".into()),
                    env_from: Some(vec![env_from("app-secrets")]),
                    ..container("proxy")
                },
                Container {
                    env: Some(vec![env_ref("KEY", "app-secrets", "redis-password")]),
                    ..container("migrate")
                },
            ]),
            containers: vec![container("app")],
            ..PodSpec::default()
        };
        let workloads = vec![workload(WorkloadKind::Deployment, "api", spec)];
        let consumers = find_consumers("prod", "app-secrets", &workloads);
        assert_eq!(consumers.len(), 1);
        assert!(consumers[0].workload.kind.restartable());
        let described: Vec<String> = consumers[0].usages.iter().map(Usage::describe).collect();
        assert_eq!(
            described,
            [
                "envFrom in sidecar proxy",
                "env KEY in init container migrate"
            ]
        );
        // `sidecar` appears in -o json only when true: an ordinary init container's usage keeps
        // its documented shape.
        assert_eq!(
            serde_json::to_value(&consumers[0].usages).unwrap(),
            serde_json::json!([
                {"type": "envFrom", "container": "proxy", "initContainer": true, "sidecar": true},
                {"type": "env", "container": "migrate", "initContainer": true, "variable": "KEY", "key": "redis-password"},
            ])
        );
    }

    #[test]
    fn a_workload_that_uses_no_secret_or_another_namespace_is_not_a_consumer() {
        let uses = PodSpec {
            containers: vec![Container {
                env_from: Some(vec![env_from("app-secrets")]),
                ..container("app")
            }],
            ..PodSpec::default()
        };
        let mut elsewhere = workload(WorkloadKind::Deployment, "api", uses);
        elsewhere.namespace = "staging".into();
        let workloads = vec![
            workload(
                WorkloadKind::Deployment,
                "frontend",
                PodSpec {
                    containers: vec![container("web")],
                    ..PodSpec::default()
                },
            ),
            elsewhere,
        ];
        assert!(find_consumers("prod", "app-secrets", &workloads).is_empty());
    }

    #[test]
    fn every_usage_of_a_workload_is_listed_once_in_order() {
        let spec = PodSpec {
            containers: vec![Container {
                env: Some(vec![env_ref(
                    "OPENAI_API_KEY",
                    "app-secrets",
                    "openai-api-key",
                )]),
                env_from: Some(vec![env_from("app-secrets")]),
                ..container("app")
            }],
            volumes: Some(vec![secret_volume("secrets", "app-secrets", None)]),
            ..PodSpec::default()
        };
        let workloads = vec![workload(WorkloadKind::Deployment, "worker", spec)];
        let consumers = find_consumers("prod", "app-secrets", &workloads);
        let described: Vec<String> = consumers[0].usages.iter().map(Usage::describe).collect();
        assert_eq!(
            described,
            [
                "env OPENAI_API_KEY in app",
                "envFrom in app",
                "volume secrets"
            ]
        );
        assert_eq!(consumers_of_key(&consumers, "openai-api-key").len(), 1);
    }

    #[test]
    fn cronjobs_are_consumers_but_never_restartable() {
        let cronjob = CronJob {
            metadata: ObjectMeta {
                name: Some("report".into()),
                namespace: Some("prod".into()),
                ..ObjectMeta::default()
            },
            spec: CronJobSpec {
                schedule: "0 * * * *".into(),
                job_template: JobTemplateSpec {
                    spec: Some(JobSpec {
                        template: PodTemplateSpec {
                            spec: Some(PodSpec {
                                containers: vec![Container {
                                    env_from: Some(vec![env_from("app-secrets")]),
                                    ..container("job")
                                }],
                                ..PodSpec::default()
                            }),
                            ..PodTemplateSpec::default()
                        },
                        ..JobSpec::default()
                    }),
                    ..JobTemplateSpec::default()
                },
                ..CronJobSpec::default()
            },
            ..CronJob::default()
        };
        let workloads = vec![Workload::from_cronjob(&cronjob)];
        let consumers = find_consumers("prod", "app-secrets", &workloads);
        assert_eq!(consumers[0].workload.reference(), "cronjob/report");
        assert!(!consumers[0].workload.kind.restartable());
        assert!(WorkloadKind::Deployment.restartable());
    }

    #[test]
    fn deployment_conversion_keeps_paused_and_annotations() {
        let deployment = Deployment {
            metadata: ObjectMeta {
                name: Some("api".into()),
                namespace: Some("prod".into()),
                annotations: Some(
                    [("reloader.stakater.com/auto".to_string(), "true".to_string())].into(),
                ),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                paused: Some(true),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![container("app")],
                        ..PodSpec::default()
                    }),
                    ..PodTemplateSpec::default()
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        };
        let w = Workload::from_deployment(&deployment);
        assert!(w.paused);
        assert_eq!(
            w.annotations
                .get("reloader.stakater.com/auto")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(w.reference(), "deployment/api");
    }

    #[test]
    fn a_bare_running_pod_and_an_unfinished_job_of_its_own_are_consumers_never_restarted() {
        let pod = |owner: serde_json::Value, phase: &str| -> k8s_openapi::api::core::v1::Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "debug", "namespace": "prod", "ownerReferences": owner},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                "status": {"phase": phase},
            }))
            .unwrap()
        };
        let bare = Workload::from_pod(&pod(serde_json::json!([]), "Running")).unwrap();
        assert_eq!(bare.reference(), "pod/debug");
        assert!(!bare.kind.restartable());
        let replicaset = serde_json::json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-1", "uid": "u", "controller": true}]);
        assert!(Workload::from_pod(&pod(replicaset, "Running")).is_none());
        assert!(Workload::from_pod(&pod(serde_json::json!([]), "Succeeded")).is_none());

        let job = |owner: serde_json::Value,
                   conditions: serde_json::Value|
         -> k8s_openapi::api::batch::v1::Job {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "migrate", "namespace": "prod", "ownerReferences": owner},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "app"}], "restartPolicy": "Never"}}},
                "status": {"active": 1, "conditions": conditions},
            }))
            .unwrap()
        };
        let running =
            Workload::from_job(&job(serde_json::json!([]), serde_json::json!([]))).unwrap();
        assert_eq!(running.reference(), "job/migrate");
        assert!(!running.kind.restartable());
        let done = serde_json::json!([{"type": "Complete", "status": "True"}]);
        assert!(Workload::from_job(&job(serde_json::json!([]), done)).is_none());
        assert_eq!(running.created_by, None);
        // A CronJob's Job that runs is listed too, with its CronJob: its pods hold the old value.
        let cron = serde_json::json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report", "uid": "u", "controller": true}]);
        let spawned = Workload::from_job(&job(cron.clone(), serde_json::json!([]))).unwrap();
        assert_eq!(spawned.created_by.as_deref(), Some("cronjob/report"));
        let done = serde_json::json!([{"type": "Failed", "status": "True"}]);
        assert!(Workload::from_job(&job(cron, done)).is_none());
    }

    #[test]
    fn an_unlisted_kind_warns_with_the_rule_that_lets_it_be_checked() {
        let cronjobs = Unlisted {
            kind: WorkloadKind::CronJob,
            namespace: Some("prod".into()),
        };
        let warning = cronjobs.warning();
        assert!(
            warning
                .starts_with("consumers not checked: you may not list CronJobs in namespace prod"),
            "{warning}"
        );
        assert!(
            warning.contains(
                r#"add to a Role in namespace prod that is bound to you: {apiGroups: ["batch"], resources: ["cronjobs"], verbs: ["list"]}"#
            ),
            "{warning}"
        );
        assert!(warning.contains("--strict"), "{warning}");
        let pods = Unlisted {
            kind: WorkloadKind::Pod,
            namespace: None,
        };
        assert!(
            pods.warning().contains(r#"a ClusterRole that is bound to you (ClusterRoleBinding): {apiGroups: [""], resources: ["pods"], verbs: ["list"]}"#),
            "{}",
            pods.warning()
        );
    }

    #[test]
    fn strict_refuses_unlisted_kinds_naming_every_rule_and_allows_none() {
        assert!(refuse_unlisted(&[], "rotate Secret prod/s", true).is_ok());
        let unlisted = [
            Unlisted {
                kind: WorkloadKind::CronJob,
                namespace: Some("prod".into()),
            },
            Unlisted {
                kind: WorkloadKind::Job,
                namespace: Some("prod".into()),
            },
        ];
        let text = refuse_unlisted(&unlisted, "rotate Secret prod/s", true)
            .expect_err("refused")
            .to_string();
        assert!(
            text.starts_with(
                "refusing to rotate Secret prod/s (--strict): not every consumer of the Secret could be checked: \
                 you may not list CronJobs in namespace prod, Jobs in namespace prod; nothing was changed"
            ),
            "{text}"
        );
        for rule in [
            "  - apiGroups: [\"batch\"]\n    resources: [\"cronjobs\"]\n    verbs: [\"list\"]",
            "  - apiGroups: [\"batch\"]\n    resources: [\"jobs\"]\n    verbs: [\"list\"]",
        ] {
            assert!(text.contains(rule), "{text}");
        }
    }
}

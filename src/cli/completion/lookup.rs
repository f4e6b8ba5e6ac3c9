//! The completion edge: live names from the cluster and the kubeconfig, for the connection the
//! line asks for (`-n`, `--context`, `--kubeconfig`, ... already typed, resolved by the same
//! rules as every verb), within a hard time bound.
//!
//! Every failure (no kubeconfig, unknown context, refused connection, no permission, no answer
//! in time) is an `Err` that completion turns into "nothing to offer": an error message would
//! end up in the user's command line. Only names and keys leave this module, never a value.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::ListParams;
use kube::config::Kubeconfig;

use super::{Candidate, Lookup, Query, TypedFlags};
use crate::cli::settings;
use crate::cli::{ColorWhen, GlobalArgs};
use crate::cluster::connect::{ConnectionSettings, KubeconfigSource};
use crate::cluster::{self, Cluster, Scope};
use crate::model::environment::Environment;
use crate::plan::secret_meta::{BACKUP_OF_LABEL, skip_reason};

/// How long a completion may wait for the cluster: a Tab that hangs is worse than none.
pub const LOOKUP_BOUND: Duration = Duration::from_millis(1000);

/// Looks names up in the cluster and the kubeconfig the line points at.
pub struct ClusterLookup {
    env: Environment,
    bound: Duration,
}

impl ClusterLookup {
    pub fn new(env: Environment, bound: Duration) -> Self {
        ClusterLookup { env, bound }
    }
}

impl Lookup for ClusterLookup {
    async fn find(&self, query: &Query, flags: &TypedFlags) -> Result<Vec<Candidate>> {
        let settings = connection_settings(flags, &self.env, self.bound)?;
        if let Some(names) = from_kubeconfig(query, &settings)? {
            return Ok(names);
        }
        // A task of its own, so that the bound holds even if something in the client blocks
        // its thread (an exec credential plugin runs synchronously); the caller shuts the
        // runtime down without waiting for it.
        let query = query.clone();
        let task = tokio::spawn(async move { from_cluster(&query, &settings).await });
        match tokio::time::timeout(self.bound, task).await {
            Ok(Ok(found)) => found,
            Ok(Err(failed)) => Err(anyhow!("the look-up stopped: {failed}")),
            Err(_) => Err(anyhow!("no answer within {:?}", self.bound)),
        }
    }
}

/// The connection settings the verb would use for the flags typed so far.
fn connection_settings(
    flags: &TypedFlags,
    env: &Environment,
    bound: Duration,
) -> Result<ConnectionSettings> {
    let owned = |long: &str| flags.last(long).map(str::to_string);
    let args = GlobalArgs {
        namespace: owned("namespace"),
        context: owned("context"),
        kubeconfig: owned("kubeconfig").map(PathBuf::from),
        cluster: owned("cluster"),
        user: owned("user"),
        as_user: owned("as"),
        as_group: flags.all("as-group").to_vec(),
        request_timeout: "0".to_string(),
        config: None,
        color: ColorWhen::Never,
    };
    let mut settings = settings::resolve_connection(&args, env)?;
    settings.request_timeout = Some(bound);
    Ok(settings)
}

/// Contexts, clusters and users: read from the kubeconfig, no request. `None` for the rest.
fn from_kubeconfig(query: &Query, settings: &ConnectionSettings) -> Result<Option<Vec<Candidate>>> {
    if !matches!(query, Query::Contexts | Query::Clusters | Query::Users) {
        return Ok(None);
    }
    let kubeconfig = match &settings.kubeconfig {
        KubeconfigSource::InCluster => Kubeconfig::default(),
        source => cluster::connect::load_kubeconfig(source)?.0,
    };
    Ok(Some(kubeconfig_names(query, &kubeconfig)))
}

/// The names a kubeconfig holds for `query`; pure.
fn kubeconfig_names(query: &Query, kubeconfig: &Kubeconfig) -> Vec<Candidate> {
    match query {
        Query::Contexts => kubeconfig
            .contexts
            .iter()
            .map(|named| {
                let mut about = Vec::new();
                if let Some(context) = &named.context {
                    about.push(format!("cluster {}", context.cluster));
                    if let Some(ns) = &context.namespace {
                        about.push(format!("namespace {ns}"));
                    }
                }
                if kubeconfig.current_context.as_deref() == Some(named.name.as_str()) {
                    about.push("current".to_string());
                }
                Candidate::described(&named.name, about.join(", "))
            })
            .collect(),
        Query::Clusters => kubeconfig
            .clusters
            .iter()
            .map(|c| Candidate::new(&c.name))
            .collect(),
        Query::Users => kubeconfig
            .auth_infos
            .iter()
            .map(|u| Candidate::new(&u.name))
            .collect(),
        _ => Vec::new(),
    }
}

async fn from_cluster(query: &Query, settings: &ConnectionSettings) -> Result<Vec<Candidate>> {
    let cluster = cluster::connect::connect(settings).await?;
    let namespace = cluster.namespace.clone();
    let mut found = match query {
        Query::Secrets => cluster
            .list_secrets(&Scope::Namespace(namespace))
            .await?
            .iter()
            .filter(|s| skip_reason(s).is_none())
            .map(describe_secret)
            .collect(),
        Query::Keys { secret } => {
            let secret = cluster.get_secret(&namespace, secret).await?;
            // Only the key names leave here; the values are dropped with the object.
            secret
                .data
                .iter()
                .flatten()
                .map(|(key, _)| Candidate::new(key))
                .collect()
        }
        Query::Backups { secret } => backups(&cluster, secret.as_deref()).await?,
        Query::Runs { secret } => runs(&cluster, secret.as_deref()).await?,
        Query::Workloads => workloads(&cluster).await?,
        Query::Namespaces => {
            let api: Api<Namespace> = Api::all(cluster.client.clone());
            let list = api.list_metadata(&ListParams::default()).await?;
            list.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .map(Candidate::new)
                .collect()
        }
        Query::Contexts | Query::Clusters | Query::Users => Vec::new(),
    };
    found.sort_by(|a, b| a.value.cmp(&b.value));
    Ok(found)
}

fn describe_secret(secret: &Secret) -> Candidate {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    let keys = secret.data.as_ref().map_or(0, |d| d.len());
    let plural = if keys == 1 { "" } else { "s" };
    Candidate::described(name, format!("{kind}, {keys} key{plural}"))
}

async fn backups(cluster: &Cluster, secret: Option<&str>) -> Result<Vec<Candidate>> {
    let selector = match secret {
        Some(name) => format!("{BACKUP_OF_LABEL}={name}"),
        None => BACKUP_OF_LABEL.to_string(),
    };
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .context("listing backups")?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|backup| {
            let meta = backup.metadata;
            let of = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(BACKUP_OF_LABEL))
                .cloned()
                .unwrap_or_default();
            let annotations = meta.annotations.clone().unwrap_or_default();
            let created = annotations
                .get(crate::plan::backup::CREATED_AT)
                .cloned()
                .or_else(|| meta.creation_timestamp.map(|t| t.0.to_string()))
                .map(|t| format!(", {t}"))
                .unwrap_or_default();
            // Which keys it holds (from its fingerprints annotation: names only), so the
            // backup to restore a given key is the one to pick.
            let keys: Vec<String> = annotations
                .get(crate::plan::backup::FINGERPRINTS)
                .and_then(|f| serde_json::from_str::<BTreeMap<String, String>>(f).ok())
                .map(|f| f.into_keys().collect())
                .unwrap_or_default();
            let keys = if keys.is_empty() {
                String::new()
            } else {
                format!(", keys: {}", keys.join(", "))
            };
            Some(Candidate::described(
                meta.name?,
                format!("backup of {of}{created}{keys}"),
            ))
        })
        .collect())
}

/// The ids of unfinished runs (from their journals' names, `<secret>-run-<id>`), never a value.
async fn runs(cluster: &Cluster, secret: Option<&str>) -> Result<Vec<Candidate>> {
    let mut selector = format!("{}=false", crate::plan::journal::FINISHED_LABEL);
    if let Some(name) = secret {
        selector.push_str(&format!(
            ",{}={}",
            crate::plan::journal::RUN_OF_LABEL,
            crate::plan::backup::backup_label_value(name)
        ));
    }
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .context("listing unfinished runs")?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|journal| {
            let name = journal.metadata.name?;
            let (of, id) = name.rsplit_once("-run-")?;
            Some(Candidate::described(id, format!("unfinished run of {of}")))
        })
        .collect())
}

/// The workloads a rotation can restart, as kubectl names them (`deployment/api`).
async fn workloads(cluster: &Cluster) -> Result<Vec<Candidate>> {
    let lp = ListParams::default();
    let ns = &cluster.namespace;
    let (deployment_api, statefulset_api, daemonset_api) = (
        Api::<Deployment>::namespaced(cluster.client.clone(), ns),
        Api::<StatefulSet>::namespaced(cluster.client.clone(), ns),
        Api::<DaemonSet>::namespaced(cluster.client.clone(), ns),
    );
    let (deployments, statefulsets, daemonsets) = futures::join!(
        deployment_api.list_metadata(&lp),
        statefulset_api.list_metadata(&lp),
        daemonset_api.list_metadata(&lp),
    );
    let names = |kind: &str, names: Vec<Option<String>>| -> Vec<Candidate> {
        names
            .into_iter()
            .flatten()
            .map(|name| Candidate::new(format!("{kind}/{name}")))
            .collect()
    };
    let mut found = names(
        "deployment",
        deployments?
            .items
            .into_iter()
            .map(|w| w.metadata.name)
            .collect(),
    );
    found.extend(names(
        "statefulset",
        statefulsets?
            .items
            .into_iter()
            .map(|w| w.metadata.name)
            .collect(),
    ));
    found.extend(names(
        "daemonset",
        daemonsets?
            .items
            .into_iter()
            .map(|w| w.metadata.name)
            .collect(),
    ));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig() -> Kubeconfig {
        Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:1\n\
             users:\n- name: admin\n  user:\n    token: t\ncontexts:\n- name: admin\n  context:\n    cluster: local\n    user: admin\n\
             - name: prod\n  context:\n    cluster: local\n    user: admin\n    namespace: prod\ncurrent-context: admin\n",
        )
        .expect("a valid kubeconfig")
    }

    #[test]
    fn contexts_are_described_by_cluster_namespace_and_which_is_current() {
        let names = kubeconfig_names(&Query::Contexts, &kubeconfig());
        assert_eq!(
            names,
            [
                Candidate::described("admin", "cluster local, current"),
                Candidate::described("prod", "cluster local, namespace prod"),
            ]
        );
        assert_eq!(
            kubeconfig_names(&Query::Users, &kubeconfig()),
            [Candidate::new("admin")]
        );
    }

    #[test]
    fn the_typed_connection_flags_resolve_like_the_verbs_with_the_bound_as_timeout() {
        let mut flags = TypedFlags::default();
        let arg = clap::Arg::new("namespace").long("namespace");
        flags.push(&arg, "prod");
        let arg = clap::Arg::new("kubeconfig").long("kubeconfig");
        flags.push(&arg, "/tmp/k");
        let settings =
            connection_settings(&flags, &Environment::default(), LOOKUP_BOUND).expect("resolves");
        assert_eq!(settings.namespace.as_deref(), Some("prod"));
        assert_eq!(settings.kubeconfig, KubeconfigSource::Flag("/tmp/k".into()));
        assert_eq!(settings.request_timeout, Some(LOOKUP_BOUND));
    }

    #[test]
    fn a_secret_is_described_by_type_and_key_count_never_by_value() {
        let secret = Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("app-secrets".into()),
                ..Default::default()
            },
            data: Some(
                [(
                    "token".to_string(),
                    k8s_openapi::ByteString(b"hunter22".to_vec()),
                )]
                .into(),
            ),
            ..Secret::default()
        };
        let candidate = describe_secret(&secret);
        assert_eq!(
            candidate,
            Candidate::described("app-secrets", "Opaque, 1 key")
        );
    }
}

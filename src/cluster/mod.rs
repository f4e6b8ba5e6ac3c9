//! The edge where the plugin meets the API server: building a client from the resolved
//! connection settings, reading Secrets and workloads, and turning API errors into messages that
//! name the object and the next step.
//!
//! Decisions are not made here; the pure modules (`consumers.rs`, `report.rs`) take what this
//! module reads.

pub mod access;
pub mod net;

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::plan::consumers::{Inventory, Unlisted, Workload};
use crate::model::workload::WorkloadKind;
use crate::cli::settings::{ConnectionSettings, KubeconfigSource};
use crate::model::errors::error_chain;
use crate::model::clock::humanize;

/// A connected client plus what the user should see about where it points.
pub struct Cluster {
    pub client: Client,
    /// The namespace verbs work in: `-n`, else the context's, else `default`.
    pub namespace: String,
    /// The API server URL, for error messages.
    pub server: String,
    pub request_timeout: Option<Duration>,
    /// Who the kubeconfig says we are (impersonated user, else the kubeconfig user's name), for
    /// the rotation record when the server cannot tell (before Kubernetes 1.28).
    pub user_hint: String,
}

/// Which namespaces a read covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    AllNamespaces,
}

impl Scope {
    fn describe(&self) -> String {
        match self {
            Scope::Namespace(ns) => format!("in namespace {ns:?}"),
            Scope::AllNamespaces => "in any namespace".to_string(),
        }
    }
}

/// Loads the kubeconfig the settings name and builds a client, the way kubectl would.
pub async fn connect(settings: &ConnectionSettings) -> Result<Cluster> {
    let mut user_hint = "in-cluster service account".to_string();
    // What kubectl's transport takes from the kubeconfig beyond kube's Config: the cluster's
    // `proxy-url` (kube also reads HTTPS_PROXY into `Config::proxy_url`, ignoring NO_PROXY), and
    // where its trusted certificates came from, for messages.
    let mut proxy_url: Option<(String, String)> = None;
    let mut trust = "in-cluster service account CA".to_string();
    let mut config = match &settings.kubeconfig {
        KubeconfigSource::InCluster => Config::incluster().map_err(|_| {
            anyhow!(
                "no kubeconfig found: ~/.kube/config does not exist, KUBECONFIG is not set and this is not a pod; \
                 pass --kubeconfig PATH or set KUBECONFIG"
            )
        })?,
        source => {
            let (kubeconfig, described) = load_kubeconfig(source)?;
            check_names(&kubeconfig, settings, &described)?;
            let context = settings.context.clone().or_else(|| kubeconfig.current_context.clone());
            let context = context
                .and_then(|name| kubeconfig.contexts.iter().find(|c| c.name == name))
                .and_then(|c| c.context.as_ref());
            user_hint = settings
                .user
                .clone()
                .or_else(|| context?.user.clone())
                .unwrap_or_else(|| "unknown".to_string());
            let cluster_name = settings.cluster.clone().or_else(|| Some(context?.cluster.clone()));
            if let Some(name) = cluster_name {
                let cluster = kubeconfig
                    .clusters
                    .iter()
                    .find(|c| c.name == name)
                    .and_then(|c| c.cluster.as_ref());
                let field = match cluster {
                    Some(c) if c.certificate_authority_data.is_some() => "certificate-authority-data".to_string(),
                    Some(c) if c.certificate_authority.is_some() => format!(
                        "certificate-authority file {}",
                        c.certificate_authority.as_deref().unwrap_or_default()
                    ),
                    _ => "certificate-authority".to_string(),
                };
                trust = format!("{field} of cluster {name:?} in the kubeconfig {described}");
                proxy_url = cluster
                    .and_then(|c| c.proxy_url.clone())
                    .map(|url| (url, format!("proxy-url of cluster {name:?} in the kubeconfig {described}")));
            }
            let options = KubeConfigOptions {
                context: settings.context.clone(),
                cluster: settings.cluster.clone(),
                user: settings.user.clone(),
            };
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("cannot use the kubeconfig {described}"))?
        }
    };
    if let Some(user) = &settings.impersonate_user {
        config.auth_info.impersonate = Some(user.clone());
        user_hint = user.clone();
    }
    if !settings.impersonate_groups.is_empty() {
        config.auth_info.impersonate_groups = Some(settings.impersonate_groups.clone());
    }
    // Like kubectl, say who is calling, so audit logs tell the plugin's requests apart.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("kubectl-rotate/", env!("CARGO_PKG_VERSION"))),
    ));
    if let Some(timeout) = settings.request_timeout {
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        // Count from when the request is sent, not from when a pooled connection went idle.
        config.reset_reader_on_write = true;
    }
    let namespace = settings
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let route = crate::cluster::net::proxy::route(
        &config.cluster_url,
        proxy_url
            .as_ref()
            .map(|(url, from)| (url.as_str(), from.as_str())),
        &crate::cluster::net::ProxyEnv::from_process(),
    )
    .with_context(|| format!("cannot reach the API server at {server}"))?;
    let client = build_client(config, &route, trust)
        .with_context(|| format!("cannot build a client for the API server at {server}"))?;
    Ok(Cluster {
        client,
        namespace,
        server,
        request_timeout: settings.request_timeout,
        user_hint,
    })
}

/// kube's default client stack, over the connection kubectl would make (`net`): TCP_NODELAY on
/// (kube 5 leaves Nagle's algorithm on, kube-rs/kube#2056, and every new connection then stalls
/// ~40 ms on delayed ACKs), the proxy kubectl would use, and server verification as Go does it.
fn build_client(config: Config, route: &crate::cluster::net::Route, trust: String) -> Result<Client> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;

    let mut tls = config.rustls_client_config()?;
    // kube verifies in-cluster (`root_cert_file`) with a verifier that re-reads the mounted CA;
    // a kubeconfig's bundle is verified as Go does.
    if !config.accept_invalid_certs
        && config.root_cert_file.is_none()
        && let Some(roots) = &config.root_cert
    {
        let verifier = crate::cluster::net::verify::GoVerifier::new(roots, trust).map_err(|e| anyhow!(e))?;
        tls.dangerous()
            .set_certificate_verifier(std::sync::Arc::new(verifier));
    }
    let https = crate::cluster::net::https_connector(route, tls, config.tls_server_name.as_deref())?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .layer(tower::retry::RetryLayer::new(ReadsOnly(
            kube::client::retry::RetryPolicy::server_retry(),
        )))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace.clone()))
}

/// kube's retry policy (429, 503, 504, with back-off) for requests that only read. A write is
/// never retried blindly: a PATCH whose answer was lost may have been stored, and sending it
/// again would fail its guard and hide that; the steps read back instead (`systems/`).
#[derive(Clone)]
struct ReadsOnly(kube::client::retry::RetryPolicy);

impl ReadsOnly {
    fn reads(req: &http::Request<kube::client::Body>) -> bool {
        matches!(
            *req.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        )
    }
}

impl<Res>
    tower::retry::Policy<http::Request<kube::client::Body>, http::Response<Res>, tower::BoxError>
    for ReadsOnly
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut http::Request<kube::client::Body>,
        result: &mut Result<http::Response<Res>, tower::BoxError>,
    ) -> Option<Self::Future> {
        if !Self::reads(req) {
            return None;
        }
        self.0.retry(req, result)
    }

    fn clone_request(
        &mut self,
        req: &http::Request<kube::client::Body>,
    ) -> Option<http::Request<kube::client::Body>> {
        if !Self::reads(req) {
            return None;
        }
        <kube::client::retry::RetryPolicy as tower::retry::Policy<
            http::Request<kube::client::Body>,
            http::Response<Res>,
            tower::BoxError,
        >>::clone_request(&mut self.0, req)
    }
}

/// Reads (and for a `KUBECONFIG` list, merges) the kubeconfig `source` names; also returns how
/// to name it in messages.
pub fn load_kubeconfig(source: &KubeconfigSource) -> Result<(Kubeconfig, String)> {
    match source {
        KubeconfigSource::Flag(path) | KubeconfigSource::Default(path) => {
            let described = path.display().to_string();
            let config = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {described}"))?;
            Ok((config, described))
        }
        KubeconfigSource::EnvList(paths) => {
            let described = format!(
                "from KUBECONFIG ({})",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut merged = Kubeconfig::default();
            for path in paths {
                // kubectl skips files in the list that do not exist.
                if !path.exists() {
                    continue;
                }
                let next = Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
                merged = merged
                    .merge(next)
                    .with_context(|| format!("cannot merge the kubeconfig {}", path.display()))?;
            }
            Ok((merged, described))
        }
        KubeconfigSource::InCluster => unreachable!("in-cluster config is handled by the caller"),
    }
}

/// Checks that the context, cluster and user named on the command line exist, so the error can
/// list the ones that do.
fn check_names(
    kubeconfig: &Kubeconfig,
    settings: &ConnectionSettings,
    described: &str,
) -> Result<()> {
    let context_name = settings
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let Some(context_name) = context_name else {
        bail!(
            "the kubeconfig {described} has no current context; pass --context NAME (contexts: {})",
            names(kubeconfig.contexts.iter().map(|c| &c.name))
        );
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == context_name) {
        bail!(
            "context {context_name:?} not found in the kubeconfig {described}; contexts there: {}",
            names(kubeconfig.contexts.iter().map(|c| &c.name))
        );
    }
    if let Some(cluster) = &settings.cluster
        && !kubeconfig.clusters.iter().any(|c| &c.name == cluster)
    {
        bail!(
            "cluster {cluster:?} not found in the kubeconfig {described}; clusters there: {}",
            names(kubeconfig.clusters.iter().map(|c| &c.name))
        );
    }
    if let Some(user) = &settings.user
        && !kubeconfig.auth_infos.iter().any(|u| &u.name == user)
    {
        bail!(
            "user {user:?} not found in the kubeconfig {described}; users there: {}",
            names(kubeconfig.auth_infos.iter().map(|u| &u.name))
        );
    }
    Ok(())
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<&str> = names.map(String::as_str).collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

impl Cluster {
    /// The user name the API server sees (SelfSubjectReview, Kubernetes 1.28+), else the
    /// kubeconfig's idea of it. Only for records; never for decisions.
    pub async fn identity(&self) -> String {
        use k8s_openapi::api::authentication::v1::SelfSubjectReview;
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        match api
            .create(
                &kube::api::PostParams::default(),
                &SelfSubjectReview::default(),
            )
            .await
        {
            Ok(review) => review
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .unwrap_or_else(|| self.user_hint.clone()),
            Err(_) => self.user_hint.clone(),
        }
    }

    /// Reads one Secret; a missing Secret is an error naming it and the way to list the others.
    pub async fn get_secret(&self, namespace: &str, name: &str) -> Result<Secret> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(secret),
            Ok(None) => bail!(
                "Secret {name:?} not found in namespace {namespace:?}; list the Secrets there with \
                 `kubectl rotate status -n {namespace}`, or pass -n NAMESPACE"
            ),
            Err(err) => Err(self.explain(err, &format!("read Secret {namespace}/{name}"))),
        }
    }

    /// The replicas Deployment `name` asks for (1 when unset, as the API server defaults it).
    pub async fn deployment_replicas(&self, namespace: &str, name: &str) -> Result<i32> {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), namespace);
        let found = api
            .get(name)
            .await
            .map_err(|e| self.explain(e, &format!("read Deployment {namespace}/{name}")))?;
        Ok(found.spec.and_then(|s| s.replicas).unwrap_or(1))
    }

    /// The replicas StatefulSet `name` asks for.
    pub async fn statefulset_replicas(&self, namespace: &str, name: &str) -> Result<i32> {
        let api: Api<k8s_openapi::api::apps::v1::StatefulSet> =
            Api::namespaced(self.client.clone(), namespace);
        let found = api
            .get(name)
            .await
            .map_err(|e| self.explain(e, &format!("read StatefulSet {namespace}/{name}")))?;
        Ok(found.spec.and_then(|s| s.replicas).unwrap_or(1))
    }

    /// The HorizontalPodAutoscalers that scale any of `workloads`: (HPA name, `kind/name`).
    /// Empty when they cannot be listed (reported as "none": an HPA only matters as a note).
    pub async fn autoscalers_of(
        &self,
        namespace: &str,
        workloads: &[crate::plan::steps::Scaled],
    ) -> Vec<(String, String)> {
        use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), namespace);
        let Ok(list) = api.list(&kube::api::ListParams::default()).await else {
            return Vec::new();
        };
        list.items
            .iter()
            .filter_map(|hpa| {
                let target = &hpa.spec.as_ref()?.scale_target_ref;
                let scaled = workloads.iter().find(|w| {
                    w.name == target.name
                        && matches!(
                            (w.kind, target.kind.as_str()),
                            (crate::model::workload::WorkloadKind::Deployment, "Deployment")
                                | (crate::model::workload::WorkloadKind::StatefulSet, "StatefulSet")
                        )
                })?;
                Some((
                    hpa.metadata.name.clone().unwrap_or_default(),
                    scaled.workload().reference(),
                ))
            })
            .collect()
    }

    /// Whether namespace `name` exists: `None` when this user may not read namespaces (then
    /// nothing can be said).
    pub async fn namespace_exists(&self, name: &str) -> Option<bool> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(name).await {
            Ok(found) => Some(found.is_some()),
            Err(_) => None,
        }
    }

    /// The backups of Secret `secret`, newest first.
    pub async fn list_backups(&self, namespace: &str, secret: &str) -> Result<Vec<Secret>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let selector = format!(
            "{}={}",
            crate::plan::secret_meta::BACKUP_OF_LABEL,
            crate::plan::backup::backup_label_value(secret)
        );
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|err| {
                self.explain(
                    err,
                    &format!("list the backups of Secret {namespace}/{secret}"),
                )
            })?;
        Ok(crate::plan::backup::newest_first(list.items))
    }

    /// The journals of runs (`journal.rs`), finished or not (the finished ones are kept,
    /// without values, up to each Secret's backup retention).
    pub async fn list_runs(&self, scope: &Scope) -> Result<Vec<crate::plan::journal::Journal>> {
        let api: Api<Secret> = self.api(scope);
        let list = api
            .list(&ListParams::default().labels(crate::plan::journal::RUN_OF_LABEL))
            .await
            .map_err(|err| self.explain(err, &format!("list the runs {}", scope.describe())))?;
        Ok(list
            .items
            .iter()
            .filter_map(|s| crate::plan::journal::from_secret(s).ok().map(|(j, _)| j))
            .collect())
    }

    /// The journals of unfinished runs (`journal.rs`).
    pub async fn list_unfinished_runs(
        &self,
        scope: &Scope,
    ) -> Result<Vec<crate::plan::journal::Journal>> {
        let api: Api<Secret> = self.api(scope);
        let selector = format!("{}=false", crate::plan::journal::FINISHED_LABEL);
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|err| {
                self.explain(err, &format!("list unfinished runs {}", scope.describe()))
            })?;
        Ok(list
            .items
            .iter()
            .filter_map(|s| crate::plan::journal::from_secret(s).ok().map(|(j, _)| j))
            .collect())
    }

    pub async fn list_secrets(&self, scope: &Scope) -> Result<Vec<Secret>> {
        let api: Api<Secret> = self.api(scope);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|err| self.explain(err, &format!("list Secrets {}", scope.describe())))?;
        Ok(list.items)
    }

    /// Every workload that could consume a Secret: Deployments, StatefulSets, DaemonSets,
    /// CronJobs, unfinished Jobs of their own and pods without a controller. A server that does
    /// not serve batch/v1 CronJobs (before Kubernetes 1.21) simply has none to report.
    ///
    /// CronJobs, Jobs and bare pods are only reported, never restarted: a list of them that
    /// the API server refuses (Forbidden) does not fail the read; the kind is returned as
    /// unlisted, for a warning (or `--strict`'s refusal). A refused list of a kind a run
    /// restarts is an error naming the rule to add.
    pub async fn list_workloads(&self, scope: &Scope) -> Result<Inventory> {
        let lp = ListParams::default();
        let (deployment_api, statefulset_api, daemonset_api, cronjob_api) = (
            self.api::<Deployment>(scope),
            self.api::<StatefulSet>(scope),
            self.api::<DaemonSet>(scope),
            self.api::<CronJob>(scope),
        );
        let job_api = self.api::<k8s_openapi::api::batch::v1::Job>(scope);
        let pod_api = self.api::<k8s_openapi::api::core::v1::Pod>(scope);
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
        let deployments = deployments.map_err(|e| self.explain(e, &what("Deployments")))?;
        found
            .workloads
            .extend(deployments.items.iter().map(Workload::from_deployment));
        let statefulsets = statefulsets.map_err(|e| self.explain(e, &what("StatefulSets")))?;
        found
            .workloads
            .extend(statefulsets.items.iter().map(Workload::from_statefulset));
        let daemonsets = daemonsets.map_err(|e| self.explain(e, &what("DaemonSets")))?;
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
            Err(err) => return Err(self.explain(err, &what("CronJobs"))),
        }
        match jobs {
            Ok(list) => found
                .workloads
                .extend(list.items.iter().filter_map(Workload::from_job)),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(kube::Error::Api(status)) if status.code == 403 => {
                found.unlisted.push(unlisted(WorkloadKind::Job));
            }
            Err(err) => return Err(self.explain(err, &what("Jobs"))),
        }
        match pods {
            Ok(list) => found
                .workloads
                .extend(list.items.iter().filter_map(Workload::from_pod)),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(kube::Error::Api(status)) if status.code == 403 => {
                found.unlisted.push(unlisted(WorkloadKind::Pod));
            }
            Err(err) => return Err(self.explain(err, &what("pods"))),
        }
        Ok(found)
    }

    fn api<K>(&self, scope: &Scope) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match scope {
            Scope::Namespace(ns) => Api::namespaced(self.client.clone(), ns),
            Scope::AllNamespaces => Api::all(self.client.clone()),
        }
    }

    /// Turns a client error into a message that says what failed, why, and what to do.
    pub fn explain(&self, err: kube::Error, action: &str) -> anyhow::Error {
        explain_error(err, action, &self.server, self.request_timeout)
    }
}

/// The message for a failed request; pure so that each case can be tested.
pub fn explain_error(
    err: kube::Error,
    action: &str,
    server: &str,
    request_timeout: Option<Duration>,
) -> anyhow::Error {
    match err {
        kube::Error::Api(status) if status.code == 403 => {
            match crate::cluster::access::forbidden_advice(&status.message) {
                Some(advice) => anyhow!(
                    "cannot {action}: permission denied: {}\n{advice}",
                    status.message
                ),
                None => anyhow!(
                    "cannot {action}: permission denied: {}\nask a cluster administrator for that permission \
                     (check yours with `kubectl auth can-i --list`), or use another --context/--as",
                    status.message
                ),
            }
        }
        kube::Error::Api(status) if status.code == 401 => anyhow!(
            "cannot {action}: the API server at {server} did not accept your credentials ({}); \
             log in again or check the kubeconfig user",
            status.message
        ),
        kube::Error::Api(status) => {
            anyhow!("cannot {action}: {} ({})", status.message, status.reason)
        }
        other => {
            let chain = error_chain(&other);
            let timed_out = chain.to_lowercase().contains("timed out") || chain.contains("elapsed");
            match (timed_out, request_timeout) {
                (true, Some(limit)) => anyhow!(
                    "cannot {action}: the API server at {server} did not answer within --request-timeout={}; \
                     check that the cluster is reachable, or raise --request-timeout",
                    humanize(limit)
                ),
                _ if chain.contains("certificate")
                    && crate::cluster::net::verify::last_refusal().is_some() =>
                {
                    anyhow!(
                        "cannot {action}: the API server at {server} presented a certificate that kubectl would refuse too: {}",
                        crate::cluster::net::verify::last_refusal().unwrap_or_default()
                    )
                }
                _ if chain.contains("through the proxy") => anyhow!(
                    "cannot {action}: cannot reach the API server at {server}: {chain}\n\
                     check the proxy (unset it, or add the server to NO_PROXY, if the cluster is reachable without it)"
                ),
                _ => anyhow!(
                    "cannot {action}: cannot reach the API server at {server}: {chain}\n\
                     check that the cluster is running and that --context/--kubeconfig point at it"
                ),
            }
        }
    }
}

/// One line for a failed request: the server's message, or the transport's error chain. A
/// refusal (Forbidden) also names the rule that would allow it.
pub fn short_error(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.code == 403 => {
            match crate::cluster::access::forbidden_rule(&status.message) {
                Some((rule, namespace)) => format!(
                    "{} (to allow it, add to {}: {})",
                    status.message,
                    crate::cluster::access::where_to_add(namespace.as_deref()),
                    rule.inline()
                ),
                None => status.message.clone(),
            }
        }
        kube::Error::Api(status) => status.message.clone(),
        other => error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let status = Status::failure(message, reason).with_code(code);
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_forbidden_answer_names_the_missing_permission_and_the_next_step() {
        let err = explain_error(
            api_error(
                403,
                "Forbidden",
                r#"secrets is forbidden: User "nobody" cannot list resource "secrets" in API group "" in the namespace "prod""#,
            ),
            "list Secrets in namespace \"prod\"",
            "https://127.0.0.1:6443/",
            None,
        );
        let text = format!("{err:#}");
        assert!(text.contains(r#"cannot list resource "secrets""#), "{text}");
        assert!(text.contains("kubectl auth can-i"), "{text}");
    }

    #[test]
    fn durations_read_like_the_flag_the_user_typed() {
        assert_eq!(humanize(Duration::from_secs(2)), "2s");
        assert_eq!(humanize(Duration::from_millis(1500)), "1500ms");
        assert_eq!(humanize(Duration::from_secs(300)), "5m");
        assert_eq!(humanize(Duration::from_secs(90)), "90s");
    }
}

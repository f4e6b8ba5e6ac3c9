//! Connecting the way kubectl does: the kubeconfig (or the in-cluster service account) the
//! settings name, its context, cluster, user and impersonation, verified TLS and the proxy
//! kubectl would use (`net`), and a client that retries only reads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cluster::Cluster;

/// Where the kubeconfig comes from, by kubectl's precedence rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `--kubeconfig PATH`: exactly this file, nothing merged.
    Flag(PathBuf),
    /// `KUBECONFIG=a:b:c`: every listed file, merged with the first one to set a value winning.
    EnvList(Vec<PathBuf>),
    /// Neither given: `~/.kube/config`, when it exists.
    Default(PathBuf),
    /// No kubeconfig at all: the in-cluster service account, when running in a pod.
    InCluster,
}

/// The connection settings every verb uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub kubeconfig: KubeconfigSource,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub impersonate_user: Option<String>,
    pub impersonate_groups: Vec<String>,
    /// `None` means no limit (kubectl's `--request-timeout=0`).
    pub request_timeout: Option<Duration>,
    /// `-n`; `None` means the context's namespace, else `default`.
    pub namespace: Option<String>,
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
fn build_client(
    config: Config,
    route: &crate::cluster::net::Route,
    trust: String,
) -> Result<Client> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;

    let mut tls = config.rustls_client_config()?;
    // kube verifies in-cluster (`root_cert_file`) with a verifier that re-reads the mounted CA;
    // a kubeconfig's bundle is verified as Go does.
    if !config.accept_invalid_certs
        && config.root_cert_file.is_none()
        && let Some(roots) = &config.root_cert
    {
        let verifier =
            crate::cluster::net::verify::GoVerifier::new(roots, trust).map_err(|e| anyhow!(e))?;
        tls.dangerous()
            .set_certificate_verifier(std::sync::Arc::new(verifier));
    }
    let https =
        crate::cluster::net::https_connector(route, tls, config.tls_server_name.as_deref())?;
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

//! The API client: the lowest layer that talks to the API server. `connect.rs` builds a client
//! the way kubectl would (kubeconfig, TLS and proxies through `net/`), this file reads objects
//! and turns API errors into messages that name the object and the next step (`explain`,
//! `short_error`), `access.rs` holds the RBAC rules and asks the API server which are granted.
//!
//! It knows no domain type: the modules that own backups (`systems::secret::backups`), runs
//! (`engine::runs`) and workloads (`systems::workloads::inventory`) list them through it.

pub mod access;
pub mod connect;
pub mod net;

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;
use kube::{Api, Client};

use crate::model::clock::humanize;
use crate::model::errors::error_chain;

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
    pub fn describe(&self) -> String {
        match self {
            Scope::Namespace(ns) => format!("in namespace {ns:?}"),
            Scope::AllNamespaces => "in any namespace".to_string(),
        }
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

    /// Whether namespace `name` exists: `None` when this user may not read namespaces (then
    /// nothing can be said).
    pub async fn namespace_exists(&self, name: &str) -> Option<bool> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(name).await {
            Ok(found) => Some(found.is_some()),
            Err(_) => None,
        }
    }

    pub async fn list_secrets(&self, scope: &Scope) -> Result<Vec<Secret>> {
        let api: Api<Secret> = self.api(scope);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|err| self.explain(err, &format!("list Secrets {}", scope.describe())))?;
        Ok(list.items)
    }

    pub fn api<K>(&self, scope: &Scope) -> Api<K>
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

//! The API client: the lowest layer that talks to the API server. `connect.rs` builds a client
//! the way kubectl would (kubeconfig, TLS and proxies through `net/`), this file reads objects,
//! `errors.rs` turns API errors into messages that name the object and the next step,
//! `access.rs` holds the RBAC rules a run needs and `review.rs` asks which are granted.
//!
//! It knows no domain type: the modules that own backups (`systems::secret::backups`), runs
//! (`engine::runs`) and workloads (`systems::workloads::inventory`) list them through it.

pub mod access;
pub mod connect;
pub mod errors;
pub mod net;
pub mod review;

pub use errors::{explain_error, short_error};

use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;
use kube::{Api, Client};

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
        Ok(found.spec.replicas.unwrap_or(1))
    }

    /// The replicas StatefulSet `name` asks for.
    pub async fn statefulset_replicas(&self, namespace: &str, name: &str) -> Result<i32> {
        let api: Api<k8s_openapi::api::apps::v1::StatefulSet> =
            Api::namespaced(self.client.clone(), namespace);
        let found = api
            .get(name)
            .await
            .map_err(|e| self.explain(e, &format!("read StatefulSet {namespace}/{name}")))?;
        Ok(found.spec.replicas.unwrap_or(1))
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

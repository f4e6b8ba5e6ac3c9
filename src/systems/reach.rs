//! Reaching a server that a rotation changes besides the Secret (PostgreSQL, Redis): a pod or
//! the Ready pod behind a Service, through the API server's WebSocket port-forward (as
//! `kubectl port-forward` does), or a host outside the cluster; and which workloads run it.
//! Each system's module (`postgres`, `redis`) speaks its own protocol over what this opens.

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;

use crate::cluster::Cluster;
use crate::cluster::access;
use crate::plan::change::Change;
use crate::plan::server::{
    Lookup, SERVICE_NAME_LABEL, Server, ready_pod_of_endpoints, ready_pod_of_slices,
};

/// The pod and port behind `server` in `namespace` (a Service: the first Ready endpoint of its
/// EndpointSlices that names a pod, at the endpoint's port for the Service's `port`; its
/// Endpoints on a server that serves no slices).
pub async fn resolve_pod(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
) -> Result<Option<(String, u16)>> {
    match server {
        Server::Pod { name, port } => Ok(Some((name.clone(), *port))),
        Server::Direct { .. } => Ok(None),
        Server::Service { name, port } => {
            let (lookup, found) = match service_slices(client, namespace, name).await? {
                Some(slices) => (Lookup::Slices, ready_pod_of_slices(&slices, *port)),
                None => (
                    Lookup::Endpoints,
                    service_endpoints(client, namespace, name)
                        .await?
                        .and_then(|e| ready_pod_of_endpoints(&e, *port)),
                ),
            };
            found.map(Some).ok_or_else(|| {
                anyhow!(
                    "service {namespace}/{name} has no Ready pod for port {port}; check `{}` and the \
                     database's pods",
                    lookup.kubectl_get(name, namespace)
                )
            })
        }
    }
}

/// The EndpointSlices of Service `name`, by their `kubernetes.io/service-name` label; `None`
/// on a server that does not serve `discovery.k8s.io/v1` (before Kubernetes 1.21).
async fn service_slices(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Vec<EndpointSlice>>> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let params = kube::api::ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={name}"));
    match slices.list(&params).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(err) => Err(anyhow!(
            "cannot list the EndpointSlices of service {namespace}/{name}: {}",
            crate::cluster::short_error(&err)
        )),
    }
}

/// The Endpoints of Service `name` (only read on a server without EndpointSlices: from
/// Kubernetes 1.33 reading them draws a deprecation warning).
async fn service_endpoints(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Endpoints>> {
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    endpoints.get_opt(name).await.map_err(|e| {
        anyhow!(
            "cannot read the Endpoints of service {namespace}/{name}: {}",
            crate::cluster::short_error(&e)
        )
    })
}

/// Where this server keeps the pods behind a Service: EndpointSlices when it serves
/// `discovery.k8s.io/v1` (asked of its discovery, which every user may read), else Endpoints.
pub async fn service_lookup(client: &kube::Client) -> Result<Lookup> {
    match client.list_api_group_resources("discovery.k8s.io/v1").await {
        Ok(list) if list.resources.iter().any(|r| r.name == "endpointslices") => Ok(Lookup::Slices),
        Ok(_) => Ok(Lookup::Endpoints),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Lookup::Endpoints),
        Err(err) => Err(anyhow!(
            "cannot ask the API server whether it serves discovery.k8s.io/v1 EndpointSlices: {}",
            crate::cluster::short_error(&err)
        )),
    }
}

/// A byte stream to `pod`'s `port` through the API server (kube-rs's WebSocket port-forward).
/// The forwarder ends with the stream: dropping the connection closes both.
pub async fn open_stream(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut forwarder = match pods.portforward(pod, &[port]).await {
        Ok(forwarder) => forwarder,
        Err(err) if crate::cluster::access::upgrade_forbidden(&err) => {
            bail!(crate::cluster::access::upgrade_refusal(
                "pods/portforward",
                namespace,
                pod
            ))
        }
        Err(err) => {
            return Err(err).with_context(|| {
                format!("port-forward to pod {namespace}/{pod}:{port} through the API server")
            });
        }
    };
    let stream = forwarder
        .take_stream(port)
        .ok_or_else(|| anyhow!("port-forward to {pod}:{port} gave no stream"))?;
    tokio::spawn(async move {
        let _ = forwarder.join().await;
    });
    Ok(stream)
}

/// Whether the pod or Service `server` names exists (a server outside the cluster: assumed).
pub async fn server_exists(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
) -> Result<bool> {
    use k8s_openapi::api::core::v1::Service;
    Ok(match server {
        Server::Pod { name, .. } => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            pods.get_opt(name).await?.is_some()
        }
        Server::Service { name, .. } => {
            let services: Api<Service> = Api::namespaced(client.clone(), namespace);
            services.get_opt(name).await?.is_some()
        }
        Server::Direct { .. } => true,
    })
}

/// The Deployment, StatefulSet or DaemonSet that runs `pod`, by its owner references.
pub async fn owners_of_pod(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
) -> Result<Vec<(crate::model::workload::WorkloadKind, String)>> {
    use crate::model::workload::WorkloadKind;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Some(found) = pods
        .get_opt(pod)
        .await
        .with_context(|| format!("reading pod {namespace}/{pod}"))?
    else {
        return Ok(Vec::new());
    };
    let mut owners = Vec::new();
    for owner in found.metadata.owner_references.iter().flatten() {
        match owner.kind.as_str() {
            "StatefulSet" => owners.push((WorkloadKind::StatefulSet, owner.name.clone())),
            "DaemonSet" => owners.push((WorkloadKind::DaemonSet, owner.name.clone())),
            "ReplicaSet" => {
                let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
                if let Ok(Some(set)) = sets.get_opt(&owner.name).await {
                    for up in set.metadata.owner_references.iter().flatten() {
                        if up.kind == "Deployment" {
                            owners.push((WorkloadKind::Deployment, up.name.clone()));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(owners)
}

/// The workloads whose pods serve `server`: the owner of the pod it resolves to, or of the pod
/// whose address a direct `HOST:PORT` names; and any workload whose pods `looks_like` a server
/// of that kind (restarting a server cuts every connection and never applies a password).
pub async fn server_workloads(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
    looks_like: fn(&Pod) -> bool,
) -> Result<Vec<(crate::model::workload::WorkloadKind, String)>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let all = pods
        .list(&kube::api::ListParams::default())
        .await
        .with_context(|| format!("listing the pods of namespace {namespace}"))?
        .items;
    let mut names: Vec<String> = all
        .iter()
        .filter(|p| looks_like(p))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    match resolve_pod(client, namespace, server).await {
        Ok(Some((pod, _))) => names.push(pod),
        Ok(None) => {
            if let Server::Direct { host, .. } = server {
                names.extend(
                    all.iter()
                        .filter(|p| {
                            p.status.as_ref().and_then(|s| s.pod_ip.as_deref())
                                == Some(host.as_str())
                        })
                        .filter_map(|p| p.metadata.name.clone()),
                );
            }
        }
        Err(_) => {}
    }
    let mut owners = Vec::new();
    for pod in names {
        for owner in owners_of_pod(client, namespace, &pod).await? {
            if !owners.contains(&owner) {
                owners.push(owner);
            }
        }
    }
    Ok(owners)
}

/// Reading the pods behind the Service `server` names (its EndpointSlices, or its Endpoints on
/// a server without slices), to find `what` behind it (none for a pod or a host): the first
/// permission a preflight checks.
pub async fn service_need(
    client: &kube::Client,
    server: &Server,
    namespace: &str,
    what: &str,
) -> Result<Option<access::Need>> {
    let Server::Service { name, .. } = server else {
        return Ok(None);
    };
    let lookup = service_lookup(client).await?;
    Ok(Some(lookup.need(
        name,
        namespace,
        &format!("to find {what} behind its Service"),
    )))
}

/// A port-forward to each of `pods` through the API server, to reach `system`: a WebSocket
/// port-forward is authorized as get, and from Kubernetes 1.35 also as create.
pub fn portforward_needs(pods: &[String], namespace: &str, system: &str) -> Vec<access::Need> {
    let why = format!(
        "to reach {system} through the API server (a WebSocket port-forward is authorized as get, and from Kubernetes 1.35 also as create)"
    );
    pods.iter()
        .flat_map(|pod| {
            ["get", "create"].map(|verb| {
                access::Need::new(verb, "", "pods/portforward", Some(pod), namespace, &why)
            })
        })
        .collect()
}

/// Reading the PostgreSQL admin's password from its Secret.
pub fn admin_secret_need(secret: &str, namespace: &str) -> access::Need {
    access::Need::new(
        "get",
        "",
        "secrets",
        Some(secret),
        namespace,
        "to read the PostgreSQL admin's password",
    )
}

/// An image's name without its registry, tag or digest (`docker.io/library/redis:7` is
/// `redis`): how a server's pod is told from its clients.
pub fn image_name(image: &str) -> &str {
    image
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split([':', '@'])
        .next()
        .unwrap_or_default()
}

/// What a preset needs to reach its server, asked before its preflight logs in anywhere, so that
/// every missing permission is refused at once with the rules to add (instead of one refused
/// request at a time): the Service and its EndpointSlices, the pod and the ReplicaSet that tell the
/// server's own workload (never restarted), a port-forward to the pod, the admin's password
/// Secret, and for pg_dump an exec into the pod.
pub struct Reach<'a> {
    pub server: &'a str,
    pub admin_secret: Option<&'a str>,
    pub dump: bool,
}

/// Refuses, before any login, a preset run whose server the user may not reach (see [`Reach`]).
pub async fn refuse_unreachable(
    cluster: &Cluster,
    change: &Change,
    reach: Reach<'_>,
) -> Result<()> {
    use crate::plan::server::{Server, parse_server};
    use crate::systems::reach::resolve_pod;
    let namespace = &change.data.namespace;
    let Ok(server) = parse_server(reach.server) else {
        return Ok(()); // the preflight says what is wrong with it
    };
    let lookup = service_lookup(&cluster.client).await?;
    // The pod, when the Service's slices can be read now; else any pod of the namespace.
    let pod = match &server {
        Server::Direct { .. } => None,
        _ => resolve_pod(&cluster.client, namespace, &server)
            .await
            .ok()
            .flatten()
            .map(|(pod, _)| pod),
    };
    let needs = needs_to_reach(&server, pod.as_deref(), &reach, namespace, lookup);
    let lacking = crate::cluster::review::missing(&cluster.client, namespace, &needs).await?;
    if lacking.is_empty() {
        return Ok(());
    }
    Err(access::refusal(
        &format!("Secret {namespace}/{}", change.data.secret),
        &lacking,
    ))
}

/// Every permission reaching `server` needs (see [`Reach`]), `pod` being its pod when known
/// (else the rules name any pod of the namespace), a Service's pods read by `lookup`. Pure.
fn needs_to_reach(
    server: &Server,
    pod: Option<&str>,
    reach: &Reach<'_>,
    namespace: &str,
    lookup: Lookup,
) -> Vec<access::Need> {
    let mut needs = Vec::new();
    if let Some(secret) = reach.admin_secret {
        needs.push(access::Need::new(
            "get",
            "",
            "secrets",
            Some(secret),
            namespace,
            "to read the database admin's password",
        ));
    }
    let why = format!("to reach {server} through the API server");
    match server {
        Server::Service { name, .. } => {
            needs.push(access::Need::new(
                "get",
                "",
                "services",
                Some(name),
                namespace,
                "to find the server's Service",
            ));
            needs.push(lookup.need(
                name,
                namespace,
                "to find the server's pod behind its Service",
            ));
        }
        Server::Pod { name, .. } => needs.push(access::Need::new(
            "get",
            "",
            "pods",
            Some(name),
            namespace,
            "to find the server's pod",
        )),
        Server::Direct { .. } => {}
    }
    if !matches!(server, Server::Direct { .. }) {
        // Which workload runs the server (a pod's owner, a Deployment's ReplicaSet): without
        // them the server's own workload would look like any consumer, and be restarted.
        needs.push(access::Need::new(
            "get",
            "",
            "pods",
            pod,
            namespace,
            "to find the workload that runs the server, which is never restarted",
        ));
        needs.push(access::Need::new(
            "get",
            "apps",
            "replicasets",
            None,
            namespace,
            "to find the Deployment that runs the server, which is never restarted",
        ));
        let mut subresources = vec!["pods/portforward"];
        if reach.dump {
            subresources.push("pods/exec");
        }
        for subresource in subresources {
            let what = if subresource == "pods/exec" {
                "to run pg_dump in the database's pod (as kubectl exec)"
            } else {
                &why
            };
            // A WebSocket upgrade is authorized as get, and from Kubernetes 1.35 also as create:
            // a Role written for an older release lacks create, so its why says so.
            needs.push(access::Need::new(
                "get",
                "",
                subresource,
                pod,
                namespace,
                what,
            ));
            needs.push(access::Need::new(
                "create",
                "",
                subresource,
                pod,
                namespace,
                &format!(
                    "{what}; from Kubernetes 1.35 a WebSocket upgrade is also authorized as create"
                ),
            ));
        }
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaching_a_service_for_a_dump_needs_its_endpoint_slices_the_admin_secret_and_exec_into_its_pod()
     {
        let server = Server::Service {
            name: "postgres".into(),
            port: 5432,
        };
        let reach = Reach {
            server: "service/postgres:5432",
            admin_secret: Some("postgres-admin"),
            dump: true,
        };
        let needs = needs_to_reach(&server, Some("postgres-0"), &reach, "prod", Lookup::Slices);
        let rules: Vec<String> = needs
            .iter()
            .map(|n| format!("{} {} {:?}", n.verb, n.resource, n.name))
            .collect();
        assert_eq!(
            rules,
            [
                r#"get secrets Some("postgres-admin")"#,
                r#"get services Some("postgres")"#,
                "list endpointslices None",
                r#"get pods Some("postgres-0")"#,
                "get replicasets None",
                r#"get pods/portforward Some("postgres-0")"#,
                r#"create pods/portforward Some("postgres-0")"#,
                r#"get pods/exec Some("postgres-0")"#,
                r#"create pods/exec Some("postgres-0")"#,
            ]
        );
        let create = needs
            .iter()
            .find(|n| n.verb == "create" && n.resource == "pods/portforward")
            .unwrap();
        assert_eq!(
            create.why,
            "to reach service/postgres:5432 through the API server; from Kubernetes 1.35 a WebSocket upgrade \
             is also authorized as create"
        );
        let direct = Server::Direct {
            host: "db.example".into(),
            port: 5432,
            tls: crate::plan::steps::Tls::default(),
        };
        let reach = Reach {
            dump: false,
            admin_secret: None,
            ..reach
        };
        assert!(needs_to_reach(&direct, None, &reach, "prod", Lookup::Slices).is_empty());
        // On a server without EndpointSlices, the Service's Endpoints by name.
        let old = needs_to_reach(&server, None, &reach, "prod", Lookup::Endpoints);
        assert!(
            old.iter().any(|n| n.verb == "get"
                && n.resource == "endpoints"
                && n.name.as_deref() == Some("postgres")),
            "{old:?}"
        );
    }
}

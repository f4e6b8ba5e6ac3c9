//! The kubelet's own endpoint and the Node object that advertises it, so the API server can
//! reach "the node" the way it reaches a real one: `kubectl logs` becomes
//! `GET https://NODE_IP:10250/containerLogs/NS/POD/CONTAINER?...` from the API server.
//!
//! The Node (`fake-node` by default) is Ready, has one address (InternalIP, the node IP of our
//! block, see `network`) and `daemonEndpoints.kubeletEndpoint.Port` = `PORT`. The endpoint is
//! HTTPS with the certificate `scripts/cluster.sh` signs with the cluster's CA; it asks for no
//! client certificate (the API server checks no kubelet certificate either unless given
//! `--kubelet-certificate-authority`). It serves `/containerLogs/...` (see `logs`) and
//! `/healthz`, and `exec`, `attach` and `portforward` over SPDY/3.1 or WebSocket (see `streams`);
//! not metrics or stats.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::pem::PemObject};

use crate::http::{self, Request, Response};
use crate::logs;
use crate::streams::{Streams, Target};

/// The kubelet's usual port. Listening on it at a block's node IP is also how a fake kubelet
/// claims that block (see `network`).
pub const PORT: u16 = 10250;

/// The TLS side of the endpoint, from PEM files.
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading the private key {}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("configuring TLS")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("loading the kubelet certificate and key")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The Node object of a fake kubelet at `ip`:`port`, Ready since `now` (RFC 3339).
pub fn node_object(name: &str, ip: Ipv4Addr, port: u16, now: &str) -> Value {
    // No scheduler reads the capacity; `kubectl describe node` and DaemonSets like to see one.
    let capacity = json!({"cpu": "16", "memory": "64Gi", "pods": "4093"}); // the pod IPs of a block
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
        },
        "status": {
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "fake-kubelet is posting ready status",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
            "addresses": [{"type": "InternalIP", "address": ip.to_string()}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "capacity": capacity,
            "allocatable": capacity,
        },
    })
}

/// Creates the Node, or brings an existing one up to date. Its Lease and status heartbeats
/// (see `lease`) keep the node lifecycle controller from marking it NotReady later.
pub async fn register_node(client: &Client, node: &Value) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let typed: Node = serde_json::from_value(node.clone()).context("building the Node")?;
    let name = typed.metadata.name.clone().unwrap_or_default();
    match nodes.create(&PostParams::default(), &typed).await {
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        done => {
            done.with_context(|| format!("creating Node {name}"))?;
        }
    }
    // The API server taints a new node not-ready until the node lifecycle controller sees it
    // Ready; DaemonSets would place no pod on it meanwhile.
    let params = PatchParams::default();
    let untaint = json!({"spec": {"taints": null}});
    nodes
        .patch(&name, &params, &Patch::Merge(&untaint))
        .await
        .with_context(|| format!("removing the taints of Node {name}"))?;
    let status = json!({"status": node["status"]});
    nodes
        .patch_status(&name, &params, &Patch::Merge(&status))
        .await
        .with_context(|| format!("updating the status of Node {name}"))?;
    Ok(())
}

/// What the endpoint's requests need: the API client, the Service proxies (an exec's service
/// environment), the node's name, the state directory and the streaming helper.
#[derive(Clone)]
pub struct Endpoint {
    pub client: Client,
    pub services: Arc<crate::services::Proxies>,
    pub name: String,
    pub state_dir: std::path::PathBuf,
    pub streams: Option<Arc<Streams>>,
}

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, node: Endpoint) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                eprintln!("fake-kubelet: accepting a kubelet connection failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, node) = (tls.clone(), node.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await
            else {
                return;
            };
            let mut stream = stream;
            let Some(head) = http::read_head(&mut stream).await else {
                return;
            };
            if std::env::var_os("FAKE_KUBELET_LOG_REQUESTS").is_some() {
                // The request line and header names only: the spec header is never logged.
                let names: Vec<&str> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split(':').next())
                    .collect();
                eprintln!(
                    "fake-kubelet: kubelet request: {} ({})",
                    head.lines().next().unwrap_or(""),
                    names.join(", ")
                );
            }
            if let Some(target) = Target::of_upgrade(&head) {
                serve_stream(stream, &head, target, &node).await;
                return;
            }
            http::answer(stream, &head, |request| {
                handle(node.client, node.name, node.state_dir, request)
            })
            .await;
        });
    }
}

/// Answers a streaming upgrade: refuses it with a plain HTTP error, or hands it to
/// `kubelet-streams` with what it needs to know of the pod (see `streams`).
async fn serve_stream<S>(mut stream: S, head: &str, target: Target, node: &Endpoint)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    match stream_spec(&target, node).await {
        Ok(spec) => {
            let Some(streams) = &node.streams else {
                let refusal = "fake-kubelet: started without --kubelet-streams: exec, attach and port-forward are not served";
                let _ = stream.write_all(&refuse(501, refusal)).await;
                return;
            };
            if let Err(err) = streams.hand_over(stream, head, &spec).await {
                eprintln!("fake-kubelet: {err:#}");
            }
        }
        Err((status, message)) => {
            let _ = stream.write_all(&refuse(status, &message)).await;
            let _ = stream.shutdown().await;
        }
    }
}

fn refuse(status: u16, message: &str) -> Vec<u8> {
    http::render_response(&Response::error(status, message), false)
}

/// What `kubelet-streams` needs to serve `target`: the pod's IP, an exec's environment, an
/// attach's log file. Or the kubelet's answer when the pod is not one it serves.
async fn stream_spec(target: &Target, node: &Endpoint) -> Result<Value, (u16, String)> {
    let (namespace, pod_name) = target.pod();
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), namespace);
    let pod = match pods.get_opt(pod_name).await {
        Ok(Some(found))
            if found.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node.name) =>
        {
            found
        }
        Ok(_) => {
            return Err((
                404,
                format!("pod {namespace}/{pod_name} is not on node {}", node.name),
            ));
        }
        Err(err) => return Err((500, format!("reading pod {namespace}/{pod_name}: {err}"))),
    };
    let pod_ip: Ipv4Addr = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| (400, format!("pod {namespace}/{pod_name} has no IP yet")))?;
    let is_app = crate::app::pod_image(&pod).is_some();
    let mut spec = json!({"podIP": pod_ip.to_string(), "env": {}, "logFile": ""});
    match target {
        Target::Exec { container, .. } if is_app => {
            let env = crate::app::exec_env(
                &node.client,
                &node.services,
                &node.state_dir,
                &pod,
                container,
                pod_ip,
            );
            spec["env"] = json!(env.await.map_err(|why| (500, why))?);
        }
        Target::Attach { container, .. } if is_app => {
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            let log = crate::app::log_path(&node.state_dir, uid, container, false);
            spec["logFile"] = json!(log.display().to_string());
        }
        _ => {}
    }
    Ok(spec)
}

async fn handle(
    client: Client,
    node_name: String,
    state_dir: std::path::PathBuf,
    request: Request,
) -> Response {
    let segments: Vec<&str> = request.path.split('/').skip(1).collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["healthz"]) => Response::new(200, "ok"),
        ("GET", ["containerLogs", namespace, pod, container]) => {
            let query = logs::LogQuery::from_request(&request);
            let pods: Api<Pod> = Api::namespaced(client, namespace);
            match pods.get_opt(pod).await {
                Ok(Some(found))
                    if found.spec.as_ref().and_then(|s| s.node_name.as_deref())
                        == Some(&node_name) =>
                {
                    logs::app_log(&state_dir, &found, container, &query)
                        .unwrap_or_else(|| logs::container_log(&found, container, &query))
                }
                Ok(_) => Response::error(
                    404,
                    &format!("pod {namespace}/{pod} is not on node {node_name}"),
                ),
                Err(err) => Response::error(500, &format!("reading pod {namespace}/{pod}: {err}")),
            }
        }
        _ => Response::error(404, "404 page not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_is_ready_and_points_at_its_kubelet() {
        let node = node_object(
            "fake-node",
            Ipv4Addr::new(198, 18, 4, 1),
            PORT,
            "2025-01-01T00:00:00Z",
        );
        let typed: Node = serde_json::from_value(node).expect("a valid Node");
        let status = typed.status.expect("status");
        let ready = &status.conditions.expect("conditions")[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "True")
        );
        let address = &status.addresses.expect("addresses")[0];
        assert_eq!(
            (address.type_.as_str(), address.address.as_str()),
            ("InternalIP", "198.18.4.1")
        );
        let endpoint = status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .expect("endpoint");
        assert_eq!(endpoint.port, 10250);
    }
}

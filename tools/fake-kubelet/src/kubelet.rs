//! The kubelet's own endpoint and the Node object that advertises it, so the API server can
//! reach "the node" the way it reaches a real one: `kubectl logs` becomes
//! `GET https://NODE_IP:10250/containerLogs/NS/POD/CONTAINER?...` from the API server.
//!
//! The Node (`fake-node` by default) is Ready, has one address (InternalIP, the node IP of our
//! block, see `network`) and `daemonEndpoints.kubeletEndpoint.Port` = `PORT`. The endpoint is
//! HTTPS with the certificate `scripts/cluster.sh` signs with the cluster's CA; it asks for no
//! client certificate (the API server checks no kubelet certificate either unless given
//! `--kubelet-certificate-authority`). It serves `/containerLogs/...` (see `logs`) and
//! `/healthz`, and `exec` and `portforward` over WebSocket (see `stream`); not attach, SPDY,
//! metrics or stats.

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
use crate::stream;

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

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    client: Client,
    services: std::sync::Arc<crate::services::Proxies>,
    node_name: String,
    state_dir: std::path::PathBuf,
) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                eprintln!("fake-kubelet: accepting a kubelet connection failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, client, node_name) = (tls.clone(), client.clone(), node_name.clone());
        let (state_dir, services) = (state_dir.clone(), services.clone());
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
                eprintln!("fake-kubelet: kubelet request:\n{}", head.trim_end());
            }
            if let Some(upgrade) = streaming_upgrade(&head) {
                let node = (client, services, node_name, state_dir);
                serve_stream(stream, &head, upgrade, node).await;
                return;
            }
            http::answer(stream, &head, |request| {
                handle(client, node_name, state_dir, request)
            })
            .await;
        });
    }
}

/// A WebSocket upgrade to `/exec/...` or `/portforward/...`: (path, raw query).
fn streaming_upgrade(head: &str) -> Option<(String, String)> {
    let target = head.lines().next()?.split(' ').nth(1)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let upgrade = stream::header(head, "Upgrade")?;
    (upgrade.eq_ignore_ascii_case("websocket")
        && (path.starts_with("/exec/")
            || path.starts_with("/portforward/")
            || path.starts_with("/portForward/")))
    .then(|| (path.to_string(), query.to_string()))
}

/// Answers a streaming upgrade: refuses it with a plain HTTP error, or switches protocols and
/// runs the exec or the port-forward.
async fn serve_stream<S>(
    mut stream: S,
    head: &str,
    (path, query): (String, String),
    (client, services, node_name, state_dir): (
        Client,
        std::sync::Arc<crate::services::Proxies>,
        String,
        std::path::PathBuf,
    ),
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let refuse = |status: u16, message: String| {
        http::render_response(&Response::error(status, &message), false)
    };
    let protocol = stream::header(head, "Sec-WebSocket-Protocol").and_then(stream::choose_protocol);
    let key = stream::header(head, "Sec-WebSocket-Key");
    let (Some(protocol), Some(key)) = (protocol, key) else {
        let _ = stream
            .write_all(&refuse(400, "websocket: no supported subprotocol (v5.channel.k8s.io, v4.channel.k8s.io) or no key".into()))
            .await;
        let _ = stream.shutdown().await;
        return;
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let (namespace, pod_name) = match segments.as_slice() {
        ["exec", ns, pod, _] | ["portforward" | "portForward", ns, pod] => {
            (ns.to_string(), pod.to_string())
        }
        _ => {
            let _ = stream
                .write_all(&refuse(404, "404 page not found".into()))
                .await;
            return;
        }
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod = match pods.get_opt(&pod_name).await {
        Ok(Some(found))
            if found.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node_name) =>
        {
            found
        }
        Ok(_) => {
            let message = format!("pod {namespace}/{pod_name} is not on node {node_name}");
            let _ = stream.write_all(&refuse(404, message)).await;
            return;
        }
        Err(err) => {
            let message = format!("reading pod {namespace}/{pod_name}: {err}");
            let _ = stream.write_all(&refuse(500, message)).await;
            return;
        }
    };
    let pod_ip: Option<Ipv4Addr> = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let Some(pod_ip) = pod_ip else {
        let message = format!("pod {namespace}/{pod_name} has no IP yet");
        let _ = stream.write_all(&refuse(400, message)).await;
        return;
    };
    match segments.as_slice() {
        ["exec", _, _, container] => {
            let env = if crate::app::pod_image(&pod).is_some() {
                let exec_env =
                    crate::app::exec_env(&client, &services, &state_dir, &pod, container, pod_ip);
                match exec_env.await {
                    Ok(env) => env,
                    Err(why) => {
                        let _ = stream.write_all(&refuse(500, why)).await;
                        return;
                    }
                }
            } else {
                Default::default()
            };
            let command = stream::query_values(&query, "command");
            // The API server asks the kubelet for `input`; `stdin` is the client's spelling.
            let want_stdin = ["input", "stdin"].iter().any(|name| {
                stream::query_values(&query, name)
                    .first()
                    .is_some_and(|v| v == "true" || v == "1")
            });
            if stream
                .write_all(&stream::upgrade_response(key, protocol))
                .await
                .is_err()
            {
                return;
            }
            let ws = stream::accept(stream).await;
            stream::exec(ws, protocol.starts_with("v5"), command, env, want_stdin).await;
        }
        _ => {
            let mut ports = Vec::new();
            for value in stream::query_values(&query, "ports")
                .into_iter()
                .chain(stream::query_values(&query, "port"))
            {
                for port in value.split(',').filter(|p| !p.is_empty()) {
                    match port.trim().parse::<u16>() {
                        Ok(port) if port != 0 => ports.push(port),
                        _ => {
                            let message = format!("invalid port {port:?}");
                            let _ = stream.write_all(&refuse(400, message)).await;
                            return;
                        }
                    }
                }
            }
            if ports.is_empty() || ports.len() > 64 {
                let _ = stream
                    .write_all(&refuse(400, "ports: one to 64 ports required".into()))
                    .await;
                return;
            }
            if stream
                .write_all(&stream::upgrade_response(key, protocol))
                .await
                .is_err()
            {
                return;
            }
            let ws = stream::accept(stream).await;
            stream::portforward(ws, pod_ip, ports).await;
        }
    }
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

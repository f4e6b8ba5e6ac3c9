//! The node's kube-proxy, for the pods this fake kubelet runs as real processes (see `app`).
//!
//! A real cluster reaches a Service at its ClusterIP through kube-proxy's rules on every node.
//! Here the ClusterIP range (10.96.0.0/16 in `scripts/cluster.sh`) is the same for every local
//! cluster on the machine, so it cannot be made local without two clusters colliding. Instead
//! each ClusterIP Service gets a **node-local address** from this node's pod IP block, held for
//! the Service's lifetime: the proxy listens there on each of the Service's TCP ports and
//! forwards every connection to a Ready address of the Service's Endpoints (round-robin, read
//! afresh per connection, so a restarted server is found at its new pod IP; none Ready: the
//! connection is closed, as kube-proxy rejects it). Pods learn the address the way they learn a
//! ClusterIP: from the service link variables `NAME_SERVICE_HOST` / `NAME_SERVICE_PORT` the
//! kubelet puts in their environment (`service_env`), which manifests pass on with `$(VAR)`
//! references (`expand`). What differs from a real cluster: `kubectl get service` shows the
//! ClusterIP, not the node-local address, and there is no DNS.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::network::IpPool;

/// One TCP port of a Service: (port name, port).
type Port = (String, u16);

struct Proxy {
    uid: String,
    ip: Ipv4Addr,
    ports: Vec<Port>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The Services' node-local addresses and their listeners.
pub struct Proxies {
    client: Client,
    pool: Arc<Mutex<IpPool>>,
    by_service: Mutex<HashMap<(String, String), Proxy>>,
}

/// The ports a proxy serves: the TCP ports of a ClusterIP Service (none for headless,
/// ExternalName or port-less Services).
pub fn proxied_ports(service: &Service) -> Vec<Port> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if headless || spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    spec.ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            Some((
                p.name.clone().unwrap_or_default(),
                u16::try_from(p.port).ok()?,
            ))
        })
        .collect()
}

impl Proxies {
    pub fn new(client: Client, pool: Arc<Mutex<IpPool>>) -> Arc<Proxies> {
        Arc::new(Proxies {
            client,
            pool,
            by_service: Mutex::new(HashMap::new()),
        })
    }

    /// The Service's node-local address, starting its proxy if needed (`None`: not proxied).
    pub fn ensure(self: &Arc<Self>, service: &Service) -> Option<Ipv4Addr> {
        let ports = proxied_ports(service);
        let (namespace, name, uid) = (service.namespace()?, service.name_any(), service.uid()?);
        let key = (namespace.clone(), name.clone());
        let mut map = self.by_service.lock().expect("not poisoned");
        if ports.is_empty() {
            if let Some(old) = map.remove(&key) {
                self.pool.lock().expect("not poisoned").release(old.ip);
            }
            return None;
        }
        if let Some(proxy) = map.get(&key)
            && proxy.uid == uid
            && proxy.ports == ports
        {
            return Some(proxy.ip);
        }
        let ip = match map.remove(&key) {
            Some(old) if old.uid == uid => old.ip, // same Service, ports changed: same address
            Some(old) => {
                self.pool.lock().expect("not poisoned").release(old.ip);
                self.pool.lock().expect("not poisoned").allocate()?
            }
            None => self.pool.lock().expect("not poisoned").allocate()?,
        };
        let next = Arc::new(AtomicUsize::new(0));
        let tasks = ports
            .iter()
            .map(|(port_name, port)| {
                tokio::spawn(serve(
                    self.client.clone(),
                    namespace.clone(),
                    name.clone(),
                    port_name.clone(),
                    ip,
                    *port,
                    next.clone(),
                ))
            })
            .collect();
        eprintln!("{namespace}/{name}: service reachable at {ip} (node-local address)");
        map.insert(
            key,
            Proxy {
                uid,
                ip,
                ports,
                tasks,
            },
        );
        Some(ip)
    }

    fn remove(&self, namespace: &str, name: &str) {
        let removed = self
            .by_service
            .lock()
            .expect("not poisoned")
            .remove(&(namespace.to_string(), name.to_string()));
        if let Some(proxy) = removed {
            self.pool.lock().expect("not poisoned").release(proxy.ip);
        }
    }

    /// Follows every Service of the cluster: a proxy per ClusterIP Service, removed with it.
    pub async fn follow(self: Arc<Self>) {
        let services: Api<Service> = Api::all(self.client.clone());
        let mut events =
            pin!(watcher::watcher(services, watcher::Config::default()).default_backoff());
        let mut listed: Vec<(String, String)> = Vec::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(s)) => {
                    self.ensure(&s);
                }
                Ok(Event::InitApply(s)) => {
                    listed.push((s.namespace().unwrap_or_default(), s.name_any()));
                    self.ensure(&s);
                }
                Ok(Event::Delete(s)) => {
                    self.remove(&s.namespace().unwrap_or_default(), &s.name_any());
                }
                Ok(Event::Init) => listed.clear(),
                Ok(Event::InitDone) => {
                    let gone: Vec<(String, String)> = self
                        .by_service
                        .lock()
                        .expect("not poisoned")
                        .keys()
                        .filter(|k| !listed.contains(k))
                        .cloned()
                        .collect();
                    for (namespace, name) in gone {
                        self.remove(&namespace, &name);
                    }
                }
                Err(err) => eprintln!("fake-kubelet: service watch failed, retrying: {err}"),
            }
        }
    }

    /// The service link variables of `namespace`'s Services for a pod started now, as a kubelet
    /// adds them (`enableServiceLinks`): listed afresh, each with its node-local address.
    pub async fn service_env(
        self: &Arc<Self>,
        namespace: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let params = kube::api::ListParams::default();
        let list = crate::with_retries(|| services.list(&params))
            .await
            .map_err(|e| format!("listing services: {}", crate::describe(&e)))?;
        let mut env = BTreeMap::new();
        for service in &list.items {
            if let Some(ip) = self.ensure(service) {
                env.extend(link_variables(
                    &service.name_any(),
                    ip,
                    &proxied_ports(service),
                ));
            }
        }
        Ok(env)
    }
}

/// `NAME_SERVICE_HOST`, `NAME_SERVICE_PORT` (the first port) and `NAME_SERVICE_PORT_PORTNAME`
/// for a Service named `name` (upper case, `-` as `_`, as Kubernetes spells them).
pub fn link_variables(name: &str, ip: Ipv4Addr, ports: &[Port]) -> BTreeMap<String, String> {
    let upper = |s: &str| s.to_ascii_uppercase().replace('-', "_");
    let prefix = upper(name);
    let mut env = BTreeMap::new();
    let Some((_, first)) = ports.first() else {
        return env;
    };
    env.insert(format!("{prefix}_SERVICE_HOST"), ip.to_string());
    env.insert(format!("{prefix}_SERVICE_PORT"), first.to_string());
    for (port_name, port) in ports.iter().filter(|(n, _)| !n.is_empty()) {
        env.insert(
            format!("{prefix}_SERVICE_PORT_{}", upper(port_name)),
            port.to_string(),
        );
    }
    env
}

/// Expands `$(VAR)` references in an env value as Kubernetes does: a defined variable is
/// replaced, an undefined reference is kept as written, `$$` is a literal `$`.
pub fn expand(value: &str, defined: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match defined.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Ready addresses of the Endpoints for the Service port named `port_name`, with their port.
fn ready_targets(endpoints: &Endpoints, port_name: &str) -> Vec<(Ipv4Addr, u16)> {
    let mut targets = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.iter().flatten();
        let port = ports
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| u16::try_from(p.port).ok());
        let Some(port) = port else { continue };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse() {
                targets.push((ip, port));
            }
        }
    }
    targets
}

async fn serve(
    client: Client,
    namespace: String,
    name: String,
    port_name: String,
    ip: Ipv4Addr,
    port: u16,
    next: Arc<AtomicUsize>,
) {
    let listener = match crate::netns::bind((ip, port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("{namespace}/{name}: cannot listen on {ip}:{port}: {err}");
            return;
        }
    };
    let endpoints: Api<Endpoints> = Api::namespaced(client, &namespace);
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (endpoints, name, port_name, next) = (
            endpoints.clone(),
            name.clone(),
            port_name.clone(),
            next.clone(),
        );
        tokio::spawn(async move {
            let targets = match endpoints.get_opt(&name).await {
                Ok(Some(e)) => ready_targets(&e, &port_name),
                _ => Vec::new(),
            };
            if targets.is_empty() {
                return; // no Ready endpoint: the connection is closed
            }
            let target = targets[next.fetch_add(1, Ordering::Relaxed) % targets.len()];
            let connect = TcpStream::connect(target);
            let Ok(Ok(mut outbound)) = tokio::time::timeout(Duration::from_secs(2), connect).await
            else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_expanded_as_kubernetes_does() {
        let defined = BTreeMap::from([
            (
                "POSTGRES_SERVICE_HOST".to_string(),
                "198.18.0.9".to_string(),
            ),
            ("A".to_string(), "x".to_string()),
        ]);
        assert_eq!(expand("$(POSTGRES_SERVICE_HOST)", &defined), "198.18.0.9");
        assert_eq!(expand("h=$(A):$(A)", &defined), "h=x:x");
        assert_eq!(expand("$(MISSING)", &defined), "$(MISSING)");
        assert_eq!(expand("$$(A)", &defined), "$(A)");
        assert_eq!(expand("cost $5 $(A", &defined), "cost $5 $(A");
        assert_eq!(expand("plain", &defined), "plain");
    }

    #[test]
    fn link_variables_are_named_after_the_service() {
        let ip = Ipv4Addr::new(198, 18, 0, 9);
        let ports = vec![("db".to_string(), 5432), (String::new(), 9187)];
        let env = link_variables("my-postgres", ip, &ports);
        assert_eq!(env["MY_POSTGRES_SERVICE_HOST"], "198.18.0.9");
        assert_eq!(env["MY_POSTGRES_SERVICE_PORT"], "5432");
        assert_eq!(env["MY_POSTGRES_SERVICE_PORT_DB"], "5432");
        assert_eq!(env.len(), 3);
    }

    #[test]
    fn only_tcp_ports_of_clusterip_services_are_proxied() {
        let service = |spec: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).unwrap()
        };
        let ports = json!([{"port": 5432}, {"name": "dns", "port": 53, "protocol": "UDP"}]);
        assert_eq!(
            proxied_ports(&service(json!({"ports": ports}))),
            vec![(String::new(), 5432)]
        );
        let headless = json!({"clusterIP": "None", "ports": [{"port": 1}]});
        assert!(proxied_ports(&service(headless)).is_empty());
    }

    #[test]
    fn only_ready_addresses_of_the_named_port_are_targets() {
        let endpoints: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "s"},
            "subsets": [{
                "addresses": [{"ip": "198.18.0.5"}],
                "notReadyAddresses": [{"ip": "198.18.0.6"}],
                "ports": [{"name": "db", "port": 5432}, {"name": "metrics", "port": 9187}],
            }],
        }))
        .unwrap();
        assert_eq!(
            ready_targets(&endpoints, "db"),
            vec![(Ipv4Addr::new(198, 18, 0, 5), 5432)]
        );
        assert!(ready_targets(&endpoints, "other").is_empty());
    }
}

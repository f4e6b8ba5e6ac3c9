//! Where a server that a rotation changes besides the Secret lives (PostgreSQL, Redis), as a
//! preset or a flag names it: `pod/NAME:PORT`, `service/NAME:PORT` or `HOST:PORT`; and which
//! Ready pod serves a Service, read from its EndpointSlices (or its Endpoints on a server that
//! has no slices). Pure; reaching it is `systems::reach`.

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::cluster::access::Need;
use crate::plan::steps::Tls;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// A pod, through the API server's port-forward.
    Pod { name: String, port: u16 },
    /// A Service: a Ready pod behind it (its EndpointSlices), through the API server's
    /// port-forward.
    Service { name: String, port: u16 },
    /// A server outside the cluster, and how the connection is secured.
    Direct { host: String, port: u16, tls: Tls },
}

impl Server {
    /// The same server with `tls` (which matters only for a server reached directly).
    pub fn with_tls(self, tls: &Tls) -> Server {
        match self {
            Server::Direct { host, port, .. } => Server::Direct {
                host,
                port,
                tls: tls.clone(),
            },
            other => other,
        }
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Server::Pod { name, port } => write!(f, "pod/{name}:{port}"),
            Server::Service { name, port } => write!(f, "service/{name}:{port}"),
            Server::Direct { host, port, .. } => write!(f, "{host}:{port}"),
        }
    }
}

/// Reads `pod/NAME:PORT`, `service/NAME:PORT` (also `svc/`) or `HOST:PORT`.
pub fn parse_server(text: &str) -> Result<Server> {
    let (target, port) = text.rsplit_once(':').ok_or_else(|| {
        anyhow!("{text:?} is not a server: use service/NAME:PORT, pod/NAME:PORT or HOST:PORT")
    })?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow!("{text:?}: {port:?} is not a port number"))?;
    let (kind, name) = match target.split_once('/') {
        Some((kind, name)) => (Some(kind), name),
        None => (None, target),
    };
    if name.is_empty() {
        bail!("{text:?} names no pod, Service or host");
    }
    Ok(match kind {
        Some("pod" | "pods" | "po") => Server::Pod {
            name: name.to_string(),
            port,
        },
        Some("service" | "services" | "svc") => Server::Service {
            name: name.to_string(),
            port,
        },
        Some(other) => bail!("{text:?}: {other:?} is not pod or service"),
        None => Server::Direct {
            host: name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            tls: Tls::default(),
        },
    })
}

/// Where a Service's pods are read: its EndpointSlices (`discovery.k8s.io/v1`, served from
/// Kubernetes 1.21; reading `v1` Endpoints draws a deprecation warning from 1.33), or its
/// Endpoints on a server that serves no slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Slices,
    Endpoints,
}

/// The label an EndpointSlice names its Service by.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl Lookup {
    /// The permission finding the pods of Service `service` needs: list its EndpointSlices
    /// (found by label, so RBAC cannot name them), or get its Endpoints.
    pub fn need(self, service: &str, namespace: &str, why: &str) -> Need {
        match self {
            Lookup::Slices => Need::new(
                "list",
                "discovery.k8s.io",
                "endpointslices",
                None,
                namespace,
                why,
            ),
            Lookup::Endpoints => Need::new("get", "", "endpoints", Some(service), namespace, why),
        }
    }

    /// The kubectl command that shows what was read, for an error's next step.
    pub fn kubectl_get(self, service: &str, namespace: &str) -> String {
        match self {
            Lookup::Slices => format!(
                "kubectl get endpointslices -n {namespace} -l {SERVICE_NAME_LABEL}={service}"
            ),
            Lookup::Endpoints => format!("kubectl get endpoints {service} -n {namespace}"),
        }
    }
}

/// The target port for a Service's `port` among an endpoint group's ports: the only one, or
/// the one equal to it by number.
fn target_port(ports: &[u16], port: u16) -> Option<u16> {
    match ports {
        [only] => Some(*only),
        many => many.iter().copied().find(|p| *p == port),
    }
}

/// The first Ready endpoint of the Service's `slices` that names a pod, with the endpoint port
/// for the Service's `port` (see [`target_port`]). Slices are read in name order, so the
/// same pod is picked every time; an endpoint whose `ready` is unset counts as Ready (as the
/// API says consumers should read it), a terminating one never is.
pub fn ready_pod_of_slices(slices: &[EndpointSlice], port: u16) -> Option<(String, u16)> {
    let mut sorted: Vec<&EndpointSlice> = slices.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for slice in sorted {
        let ports: Vec<u16> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.and_then(|p| u16::try_from(p).ok()))
            .collect();
        let Some(target) = target_port(&ports, port) else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            if conditions.ready == Some(false) || conditions.terminating == Some(true) {
                continue;
            }
            let pod = endpoint
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"));
            if let Some(name) = pod.and_then(|r| r.name.clone()) {
                return Some((name, target));
            }
        }
    }
    None
}

/// The first Ready address of `endpoints` that names a pod, with its port (as
/// [`ready_pod_of_slices`], for a server that serves no EndpointSlices).
pub fn ready_pod_of_endpoints(endpoints: &Endpoints, port: u16) -> Option<(String, u16)> {
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<u16> = subset
            .ports
            .iter()
            .flatten()
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect();
        let Some(target) = target_port(&ports, port) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            let pod = address
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"));
            if let Some(name) = pod.and_then(|r| r.name.clone()) {
                return Some((name, target));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(name: &str, ports: serde_json::Value, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {SERVICE_NAME_LABEL: "postgres"}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    fn endpoint(ip: &str, pod: &str, conditions: serde_json::Value) -> serde_json::Value {
        json!({"addresses": [ip], "conditions": conditions, "targetRef": {"kind": "Pod", "name": pod}})
    }

    #[test]
    fn a_service_resolves_to_a_ready_pod_of_its_slices_at_the_endpoint_port() {
        let slices = [
            slice(
                "postgres-b",
                json!([{"name": "postgres", "port": 5432}]),
                json!([endpoint("198.18.0.7", "postgres-2", json!({"ready": true}))]),
            ),
            slice(
                "postgres-a",
                json!([{"name": "postgres", "port": 5432}]),
                json!([
                    endpoint("198.18.0.5", "postgres-0", json!({"ready": false})),
                    endpoint("198.18.0.6", "postgres-1", json!({"ready": false, "serving": true, "terminating": true})),
                    {"addresses": ["198.18.0.9"], "conditions": {"ready": true}},
                    endpoint("198.18.0.8", "postgres-3", json!({})),
                ]),
            ),
        ];
        // Not Ready, terminating and pod-less endpoints are passed over; unset `ready` is Ready;
        // slices are read in name order.
        assert_eq!(
            ready_pod_of_slices(&slices, 5432),
            Some(("postgres-3".into(), 5432))
        );
        assert_eq!(
            ready_pod_of_slices(&slices[..1], 5432),
            Some(("postgres-2".into(), 5432))
        );
        assert_eq!(ready_pod_of_slices(&[], 5432), None);
    }

    #[test]
    fn a_services_port_picks_the_slice_port_by_number_unless_there_is_only_one() {
        let one = [slice(
            "api",
            json!([{"name": "http", "port": 8080}]),
            json!([endpoint("198.18.0.5", "api-1", json!({"ready": true}))]),
        )];
        // A Service port 80 with targetPort 8080: the slice's only port.
        assert_eq!(ready_pod_of_slices(&one, 80), Some(("api-1".into(), 8080)));
        let two = [slice(
            "redis",
            json!([{"name": "redis", "port": 6379}, {"name": "metrics", "port": 9121}]),
            json!([endpoint("198.18.0.5", "redis-0", json!({"ready": true}))]),
        )];
        assert_eq!(
            ready_pod_of_slices(&two, 9121),
            Some(("redis-0".into(), 9121))
        );
        assert_eq!(ready_pod_of_slices(&two, 80), None);
    }

    #[test]
    fn endpoints_resolve_to_a_ready_pod_on_a_server_without_slices() {
        let endpoints: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "postgres"},
            "subsets": [{
                "addresses": [{"ip": "198.18.0.5", "targetRef": {"kind": "Pod", "name": "postgres-0"}}],
                "notReadyAddresses": [{"ip": "198.18.0.6", "targetRef": {"kind": "Pod", "name": "postgres-1"}}],
                "ports": [{"name": "postgres", "port": 5432}],
            }],
        }))
        .unwrap();
        assert_eq!(
            ready_pod_of_endpoints(&endpoints, 5432),
            Some(("postgres-0".into(), 5432))
        );
        let none: Endpoints = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(ready_pod_of_endpoints(&none, 5432), None);
    }

    #[test]
    fn reading_slices_needs_list_on_endpointslices_and_endpoints_get_by_name() {
        let slices = Lookup::Slices.need("postgres", "prod", "to find it");
        assert_eq!(
            (slices.verb, slices.group, slices.resource, slices.name),
            ("list", "discovery.k8s.io", "endpointslices", None)
        );
        let endpoints = Lookup::Endpoints.need("postgres", "prod", "to find it");
        assert_eq!(
            (endpoints.verb, endpoints.group, endpoints.resource),
            ("get", "", "endpoints")
        );
        assert_eq!(endpoints.name.as_deref(), Some("postgres"));
        assert_eq!(
            Lookup::Slices.kubectl_get("postgres", "prod"),
            "kubectl get endpointslices -n prod -l kubernetes.io/service-name=postgres"
        );
    }

    #[test]
    fn servers_are_named_as_kubectl_names_them() {
        let pod = Server::Pod {
            name: "postgres-0".into(),
            port: 5432,
        };
        assert_eq!(pod.to_string(), "pod/postgres-0:5432");
        let direct = Server::Direct {
            host: "db.example".into(),
            port: 5432,
            tls: Tls::default(),
        };
        assert_eq!(direct.to_string(), "db.example:5432");
    }
}

//! Where a server that a rotation changes besides the Secret lives (PostgreSQL, Redis), as a
//! preset or a flag names it: `pod/NAME:PORT`, `service/NAME:PORT` or `HOST:PORT`. Pure; reaching
//! it is `systems::reach`.

use anyhow::{Result, anyhow, bail};

use crate::plan::steps::Tls;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// A pod, through the API server's port-forward.
    Pod { name: String, port: u16 },
    /// A Service: a Ready pod of its Endpoints, through the API server's port-forward.
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! PostgreSQL, the second system of the runbook's database procedure (issue 11): reaching the
//! server, checking a login, and changing a role's password without the plaintext ever
//! reaching the server.
//!
//! - **Reaching it**: through the API server, as `kubectl port-forward` does (kube-rs's
//!   WebSocket port-forward to a pod; a Service is resolved to a Ready pod of its Endpoints), or
//!   directly at `host:port` for a database outside the cluster. The PostgreSQL protocol then
//!   runs over that stream (tokio-postgres, no TLS inside the API server's tunnel).
//! - **Checking a login** tells "the password is wrong" (SQLSTATE 28P01, 28000) apart from "the
//!   server cannot be reached or refused for another reason", because a rotation must never
//!   conclude that a password is stale when the database was merely down.
//! - **Changing a password**: `ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$4096:...'`, a verifier
//!   computed here (postgres-protocol's `scram_sha_256`, random salt, 4096 iterations, what the
//!   server itself stores), so neither the statement nor the server's log (even with
//!   `log_statement = all`) holds the password.
//!
//! Password values are `SecretValue`s and reach only the connection's authentication.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::Api;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::values::SecretValue;

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// A pod, through the API server's port-forward.
    Pod { name: String, port: u16 },
    /// A Service: a Ready pod of its Endpoints, through the API server's port-forward.
    Service { name: String, port: u16 },
    /// A server outside the cluster.
    Direct { host: String, port: u16 },
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Server::Pod { name, port } => write!(f, "pod/{name}:{port}"),
            Server::Service { name, port } => write!(f, "service/{name}:{port}"),
            Server::Direct { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// What a login attempt showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The server accepted the password.
    Accepted,
    /// The server rejected the password (or the role cannot log in).
    Rejected(String),
}

/// A role, database and password to log in with.
pub struct Credentials<'a> {
    pub user: &'a str,
    pub database: &'a str,
    pub password: &'a SecretValue,
}

/// How long a connection may take, port-forward included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The pod and port behind `server` in `namespace` (a Service: the first Ready address of its
/// Endpoints that names a pod, at the endpoint's port for the Service's `port`).
pub async fn resolve_pod(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
) -> Result<Option<(String, u16)>> {
    match server {
        Server::Pod { name, port } => Ok(Some((name.clone(), *port))),
        Server::Direct { .. } => Ok(None),
        Server::Service { name, port } => {
            let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
            let found = endpoints
                .get_opt(name)
                .await
                .with_context(|| format!("reading the Endpoints of service {namespace}/{name}"))?
                .ok_or_else(|| anyhow!("service {namespace}/{name} has no Endpoints object"))?;
            ready_pod(&found, *port).map(Some).ok_or_else(|| {
                anyhow!(
                    "service {namespace}/{name} has no Ready pod for port {port}; check `kubectl \
                     get endpoints {name} -n {namespace}` and the database's pods"
                )
            })
        }
    }
}

/// The first Ready address of `endpoints` that names a pod, with its port. The Service's
/// `port` is matched by number against the endpoint ports when several are listed; a single
/// endpoint port is the target port of the Service's only port.
pub fn ready_pod(endpoints: &Endpoints, port: u16) -> Option<(String, u16)> {
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<u16> = subset
            .ports
            .iter()
            .flatten()
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect();
        let target = match ports.as_slice() {
            [only] => *only,
            many => *many.iter().find(|p| **p == port)?,
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

/// Logs in and returns the connection, or why the password was rejected.
pub async fn connect(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
    login: &Credentials<'_>,
) -> Result<std::result::Result<Client, String>> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(login.user)
        .dbname(login.database)
        .password(login.password.expose())
        .application_name("kubectl-rotate")
        .connect_timeout(CONNECT_TIMEOUT);
    let attempt = async {
        let connected = match resolve_pod(client, namespace, server).await? {
            Some((pod, port)) => {
                let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
                let mut forwarder = pods.portforward(&pod, &[port]).await.with_context(|| {
                    format!("port-forward to pod {namespace}/{pod}:{port} through the API server")
                })?;
                let stream = forwarder
                    .take_stream(port)
                    .ok_or_else(|| anyhow!("port-forward to {pod}:{port} gave no stream"))?;
                // The forwarder ends with the stream: dropping the connection closes both.
                tokio::spawn(async move {
                    let _ = forwarder.join().await;
                });
                config
                    .connect_raw(stream, NoTls)
                    .await
                    .map(|(c, conn)| (c, Box::pin(conn) as ConnectionTask))
            }
            None => {
                let Server::Direct { host, port } = server else {
                    unreachable!("only a direct server has no pod")
                };
                config.host(host).port(*port);
                config
                    .connect(NoTls)
                    .await
                    .map(|(c, conn)| (c, Box::pin(conn) as ConnectionTask))
            }
        };
        match connected {
            Ok((pg, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(Ok(pg))
            }
            Err(err) if is_rejection(&err) => Ok(Err(server_message(&err))),
            Err(err) => Err(anyhow!(
                "cannot reach PostgreSQL at {server} in namespace {namespace}: {}",
                server_message(&err)
            )),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| anyhow!("PostgreSQL at {server} did not answer within {CONNECT_TIMEOUT:?}"))?
}

type ConnectionTask =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// Whether `login` can log in; an unreachable server is an error, not a rejection.
pub async fn check_login(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
    login: &Credentials<'_>,
) -> Result<Login> {
    Ok(match connect(client, namespace, server, login).await? {
        Ok(_) => Login::Accepted,
        Err(why) => Login::Rejected(why),
    })
}

/// The statement that gives `role` the password `password`, as a SCRAM-SHA-256 verifier.
pub fn alter_role_statement(role: &str, password: &SecretValue) -> String {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose());
    format!("ALTER ROLE {} PASSWORD '{verifier}'", quote_ident(role))
}

/// Sets `role`'s password over `pg` (a role changing its own, or an admin's connection).
pub async fn set_password(pg: &Client, role: &str, password: &SecretValue) -> Result<()> {
    pg.batch_execute(&alter_role_statement(role, password))
        .await
        .map_err(|e| anyhow!("ALTER ROLE {role} failed: {}", server_message(&e)))
}

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn is_rejection(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    })
}

/// The server's own message when there is one (never a value: the server does not echo
/// passwords), else the client's.
fn server_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_string(),
        None => err.to_string(),
    }
}

/// Refuses a role name that could not be a PostgreSQL role (empty or with a NUL).
pub fn check_role_name(role: &str) -> Result<()> {
    if role.is_empty() || role.contains('\0') {
        bail!("{role:?} is not a PostgreSQL role name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_statement_holds_a_verifier_not_the_password() {
        let password = SecretValue::new(b"correct horse battery".to_vec());
        let statement = alter_role_statement("ai\"agents", &password);
        assert!(statement.starts_with("ALTER ROLE \"ai\"\"agents\" PASSWORD 'SCRAM-SHA-256$4096:"));
        assert!(!statement.contains("correct horse"));
        // A fresh salt each time: the same password gives another verifier.
        assert_ne!(statement, alter_role_statement("ai\"agents", &password));
    }

    #[test]
    fn a_service_resolves_to_a_ready_pod_at_the_endpoint_port() {
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
            ready_pod(&endpoints, 5432),
            Some(("postgres-0".into(), 5432))
        );
        let none: Endpoints = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(ready_pod(&none, 5432), None);
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
        };
        assert_eq!(direct.to_string(), "db.example:5432");
    }
}

//! `kubectl rotate verify NAME [KEY...] [--logs REGEX] [--health PORT/PATH]`: the runbook's
//! verify and validate steps as checks, one line each. Exit 0 when every check passes, 1 when
//! one fails, 2 when verification itself could not run (as `kubectl diff` does).

use anyhow::{Context as _, Result, anyhow};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ListParams, LogParams};
use serde::Serialize;

use crate::cluster::connect::ConnectionSettings;
use crate::cluster::{self, Scope, short_error};
use crate::plan::checks::{self, KeyKind};
use crate::plan::consumers::find_consumers;
use crate::plan::rollout::pod_belongs_to;
use crate::plan::secret_meta;
use crate::ui::printer::OutputFormat;
use crate::ui::{Printer, Style, table};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub secret: String,
    pub keys: Vec<String>,
    pub logs: Option<regex::Regex>,
    /// `(port, path)` for the health check.
    pub health: Option<(String, String)>,
    pub output: OutputFormat,
    /// Known kinds of keys (from a preset); others are guessed from the key's name.
    pub kinds: Vec<(String, KeyKind)>,
    /// Keys that are PostgreSQL passwords (from a preset): checked by logging in.
    pub databases: Vec<(String, crate::plan::presets::PostgresSettings)>,
    /// Keys a Redis preset describes: checked by logging in.
    pub redis: Vec<(String, crate::plan::presets::RedisSettings)>,
    /// Keys a data encryption key preset describes: every row must decrypt with them.
    pub encryption: Vec<(String, crate::plan::presets::EncryptionSettings)>,
    /// Fail when some consumers cannot be checked (a kind you may not list), instead of warning.
    pub strict: bool,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `secret`, `key`, `login`, `rows`, `rollout`, `logs` or `health`.
    pub check: &'static str,
    pub target: String,
    pub passed: bool,
    /// Not applicable to this target (e.g. `--health` on a workload without that port): it
    /// counts as passed, and is shown as SKIP.
    pub skipped: bool,
    pub message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub secret: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

/// Parses `--health PORT/PATH` (`8000/health`, `http/healthz`).
pub fn parse_health(text: &str) -> Result<(String, String)> {
    let (port, path) = text
        .split_once('/')
        .ok_or_else(|| anyhow!("--health {text:?}: use PORT/PATH, e.g. 8000/health"))?;
    if port.is_empty() {
        return Err(anyhow!(
            "--health {text:?}: the port is missing; use PORT/PATH, e.g. 8000/health"
        ));
    }
    Ok((
        port.to_string(),
        format!("/{}", path.trim_start_matches('/')),
    ))
}

pub async fn run(
    connection: &ConnectionSettings,
    options: VerifyOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let cluster = cluster::connect::connect(connection).await?;
    let namespace = cluster.namespace.clone();
    let object = format!("{namespace}/{}", options.secret);
    let mut checks = Checks(Vec::new());

    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &namespace);
    let secret = secrets
        .get_opt(&options.secret)
        .await
        .map_err(|e| cluster.explain(e, &format!("read Secret {object}")))?;
    let Some(secret) = secret else {
        checks.add(
            "secret",
            format!("secret/{}", options.secret),
            Err(format!("Secret {object} does not exist")),
        );
        return report(printer, &options, &namespace, checks.0);
    };
    checks.add(
        "secret",
        format!("secret/{}", options.secret),
        Ok(format!("Secret {object} exists")),
    );

    let data = secret.data.clone().unwrap_or_default();
    let keys: Vec<String> = if options.keys.is_empty() {
        data.keys().cloned().collect()
    } else {
        options.keys.clone()
    };
    for key in &keys {
        let kind = options
            .kinds
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, kind)| *kind)
            .unwrap_or_else(|| checks::kind_from_name(key));
        let result = match data.get(key) {
            None => Err(format!("key {key:?} is missing")),
            Some(value) => checks::check_value(kind, &value.0),
        };
        checks.add("key", key.clone(), result);
    }
    // The database server's own workload reads the password only at its first start.
    // The servers' own workloads: (kind, name, why their rollout is not checked).
    let mut servers: Vec<(crate::model::workload::WorkloadKind, String, String)> = Vec::new();
    for (key, settings) in options.databases.iter().filter(|(k, _)| keys.contains(k)) {
        if let Ok(server) = crate::plan::server::parse_server(&settings.server)
            && let Ok(found) =
                crate::systems::postgres::server_workloads(&cluster.client, &namespace, &server)
                    .await
        {
            servers.extend(found.into_iter().map(|(k, n)| {
                (
                    k,
                    n,
                    format!(
                        "the PostgreSQL server of {key}: the password changes live in the database; \
                         its own variables only initialise an empty data directory"
                    ),
                )
            }));
        }
        let Some(value) = data.get(key) else {
            continue;
        };
        let role = data
            .get(&settings.user_key)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_else(|| settings.user.clone());
        let password = crate::values::SecretValue::new(value.0.clone());
        // A preset whose server is not in this namespace (the runbook's preset on another
        // app's Secret of the same name): not a failed login, a check that does not apply.
        if let Ok(server) = crate::plan::server::parse_server(&settings.server)
            && let Ok(false) =
                crate::systems::postgres::server_exists(&cluster.client, &namespace, &server).await
        {
            checks.skip(
                "login",
                key.clone(),
                format!(
                    "{server} (the database of the preset for {key}) does not exist in namespace {namespace}; \
                     set postgres.server in the config file to check the login"
                ),
            );
            continue;
        }
        let result = match crate::plan::server::parse_server(&settings.server) {
            Err(err) => Err(format!("{err:#}")),
            Ok(server) => {
                let server = server.with_tls(&settings.tls);
                let login = crate::systems::postgres::Credentials {
                    user: &role,
                    database: &settings.database,
                    password: &password,
                };
                match crate::systems::postgres::check_login(
                    &cluster.client,
                    &namespace,
                    &server,
                    &login,
                )
                .await
                {
                    Ok(crate::systems::postgres::Login::Accepted) => Ok(format!(
                        "PostgreSQL at {server} accepts {role}'s login with {key}"
                    )),
                    Ok(crate::systems::postgres::Login::Rejected(why)) => Err(format!(
                        "PostgreSQL at {server} refuses {role}'s login with {key}: {why}"
                    )),
                    Err(err) => Err(format!("could not log in to check {key}: {err:#}")),
                }
            }
        };
        checks.add("login", key.clone(), result);
    }

    for (key, settings) in options.encryption.iter().filter(|(k, _)| keys.contains(k)) {
        let Ok(server) = crate::plan::server::parse_server(&settings.server) else {
            continue;
        };
        if let Ok(found) =
            crate::systems::postgres::server_workloads(&cluster.client, &namespace, &server).await
        {
            servers.extend(found.into_iter().map(|(k, n)| {
                (
                    k,
                    n,
                    format!("the PostgreSQL server holding the rows {key} encrypts"),
                )
            }));
        }
        let Some(value) = data.get(key) else {
            continue;
        };
        if let Ok(false) =
            crate::systems::reach::server_exists(&cluster.client, &namespace, &server).await
        {
            checks.skip(
                "rows",
                key.clone(),
                format!(
                    "{server} (the database of the preset for {key}) does not exist in namespace {namespace}; \
                     set encryption.server in the config file to check the rows"
                ),
            );
            continue;
        }
        let db = crate::plan::steps::Database {
            server: settings.server.clone(),
            database: settings.database.clone(),
            admin: Some(settings.admin.clone()),
            tls: settings.tls.clone(),
        };
        let value = crate::values::SecretValue::new(value.0.clone());
        let result = crate::systems::encryption::rows_readable(
            &cluster,
            &namespace,
            &db,
            &settings.columns,
            (key, &value),
        )
        .await;
        checks.add("rows", key.clone(), result);
    }

    for (key, settings) in options.redis.iter().filter(|(k, _)| keys.contains(k)) {
        let Ok(server) = crate::plan::server::parse_server(&settings.server) else {
            continue;
        };
        if let Ok(found) =
            crate::systems::redis::server_workloads(&cluster.client, &namespace, &server).await
        {
            servers.extend(found.into_iter().map(|(k, n)| {
                (
                    k,
                    n,
                    format!(
                        "the Redis server of {key}: the password changes live on the server, which \
                         is not restarted by a rotation"
                    ),
                )
            }));
        }
        let Some(value) = data.get(key) else {
            continue;
        };
        if let Ok(false) =
            crate::systems::reach::server_exists(&cluster.client, &namespace, &server).await
        {
            checks.skip(
                "login",
                key.clone(),
                format!(
                    "{server} (the Redis of the preset for {key}) does not exist in namespace {namespace}; \
                     set redis.server in the config file to check the login"
                ),
            );
            continue;
        }
        let password = crate::values::SecretValue::new(value.0.clone());
        let user = settings.user.as_str();
        let login = crate::systems::redis::Credentials {
            user: (user != "default").then_some(user),
            password: &password,
        };
        let result =
            match crate::systems::redis::check_login(&cluster.client, &namespace, &server, &login)
                .await
            {
                Ok(crate::systems::redis::Auth::Accepted) => Ok(format!(
                    "Redis at {server} accepts {user}'s login with {key}"
                )),
                Ok(crate::systems::redis::Auth::Rejected(why)) => Err(format!(
                    "Redis at {server} refuses {user}'s login with {key}: {why}"
                )),
                Err(err) => Err(format!("could not log in to check {key}: {err:#}")),
            };
        checks.add("login", key.clone(), result);
    }

    let records = secret_meta::rotation_records(&secret).unwrap_or_default();
    let crate::plan::consumers::Inventory {
        workloads,
        unlisted,
    } = crate::systems::workloads::inventory::list_workloads(
        &cluster,
        &Scope::Namespace(namespace.clone()),
    )
    .await?;
    if options.strict {
        crate::plan::consumers::refuse_unlisted(
            &unlisted,
            &format!("verify Secret {object}"),
            false,
        )?;
    }
    for kind in &unlisted {
        printer.warn(&kind.warning());
    }
    let consumers = find_consumers(&namespace, &options.secret, &workloads);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
    let all_pods = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| cluster.explain(e, &format!("list pods in namespace {namespace:?}")))?
        .items;

    for consumer in consumers
        .iter()
        .filter(|c| keys.iter().any(|k| c.uses_key(k)))
    {
        let workload = consumer.workload;
        let target = workload.reference();
        if let Some((_, _, why)) = servers
            .iter()
            .find(|(k, n, _)| *k == workload.kind && *n == workload.name)
        {
            checks.skip("rollout", target, why.clone());
            continue;
        }
        if workload.kind == crate::model::workload::WorkloadKind::CronJob {
            checks.add(
                "rollout",
                target,
                Ok("a CronJob: its next Job reads the current value".into()),
            );
            continue;
        }
        // A Job's pods, a bare pod itself: nothing replaced them, so they pass only if they
        // started after the rotation.
        let own: Vec<Pod> = all_pods
            .iter()
            .filter(|p| match workload.kind {
                crate::model::workload::WorkloadKind::Pod => {
                    p.metadata.name.as_deref() == Some(workload.name.as_str())
                }
                kind => pod_belongs_to(p, kind, &workload.name),
            })
            .cloned()
            .collect();
        let latest = keys
            .iter()
            .filter(|k| consumer.uses_key(k))
            .filter_map(|k| records.get(k).map(|r| r.at.clone()))
            .max();
        match &latest {
            Some(at) => checks.add(
                "rollout",
                target.clone(),
                checks::check_pods_since(at, &own),
            ),
            None => checks.add(
                "rollout",
                target.clone(),
                Ok("no recorded rotation of its keys to compare with".into()),
            ),
        }
        let current: Vec<&Pod> = own
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if let Some(pattern) = &options.logs {
            let mut failures = Vec::new();
            for pod in &current {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let containers: Vec<String> = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
                    .collect();
                let mut matched = false;
                for container in &containers {
                    let params = LogParams {
                        container: Some(container.clone()),
                        tail_lines: Some(5000),
                        ..LogParams::default()
                    };
                    let log = pods.logs(&name, &params).await.map_err(|e| {
                        anyhow!("cannot read the logs of pod {namespace}/{name} container {container}: {}", short_error(&e))
                    })?;
                    if pattern.is_match(&log) {
                        matched = true;
                        break;
                    }
                }
                if !matched {
                    failures.push(format!(
                        "pod {name}: no log line matches {:?}",
                        pattern.as_str()
                    ));
                }
            }
            let result = if failures.is_empty() {
                Ok(format!(
                    "{} pod(s) logged a line matching {:?}",
                    current.len(),
                    pattern.as_str()
                ))
            } else {
                Err(failures.join("; "))
            };
            checks.add("logs", target.clone(), result);
        }
        if let Some((port, path)) = &options.health {
            if !declares_port(&workload.pod_spec, port) {
                checks.skip(
                    "health",
                    target.clone(),
                    format!("no container of its pods declares port {port}"),
                );
            } else {
                let mut failures = Vec::new();
                for pod in &current {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    if let Err(problem) = health(&cluster, &namespace, &name, port, path).await {
                        failures.push(format!("pod {name}: {problem}"));
                    }
                }
                let result = if failures.is_empty() {
                    Ok(format!(
                        "{} pod(s) answered GET :{port}{path} with 2xx",
                        current.len()
                    ))
                } else {
                    Err(failures.join("; "))
                };
                checks.add("health", target.clone(), result);
            }
        }
    }
    report(printer, &options, &namespace, checks.0)
}

/// The checks so far, in the order they ran.
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, check: &'static str, target: String, result: Result<String, String>) {
        let (passed, message) = match result {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        self.0.push(Check {
            check,
            target,
            passed,
            skipped: false,
            message,
        });
    }

    /// A check that does not apply to `target`: counted as passed, shown as SKIP.
    fn skip(&mut self, check: &'static str, target: String, message: String) {
        self.0.push(Check {
            check,
            target,
            passed: true,
            skipped: true,
            message,
        });
    }
}

/// Whether a container of the pod template declares `port` (a number, or a port's name).
fn declares_port(spec: &k8s_openapi::api::core::v1::PodSpec, port: &str) -> bool {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| p.container_port.to_string() == port || p.name.as_deref() == Some(port))
}

/// GET PATH on the pod's PORT through the API server's pod proxy; Ok when it answers 2xx.
async fn health(
    cluster: &cluster::Cluster,
    namespace: &str,
    pod: &str,
    port: &str,
    path: &str,
) -> Result<(), String> {
    let uri = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}");
    let request = http::Request::get(&uri)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        cluster.client.send(request),
    )
    .await
    .map_err(|_| format!("GET :{port}{path} did not answer within 10s"))?
    .map_err(|e| format!("GET :{port}{path} failed: {}", short_error(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("GET :{port}{path} answered {status}"))
    }
}

fn report(
    printer: &mut Printer,
    options: &VerifyOptions,
    namespace: &str,
    checks: Vec<Check>,
) -> Result<u8> {
    let passed = checks.iter().all(|c| c.passed);
    match options.output {
        OutputFormat::Json => printer
            .json(&VerifyReport {
                api_version: crate::model::names::API_VERSION,
                kind: "VerifyReport",
                namespace: namespace.to_string(),
                secret: options.secret.clone(),
                passed,
                checks,
            })
            .context("cannot print the report")?,
        OutputFormat::Text => {
            let rows: Vec<Vec<String>> = checks
                .iter()
                .map(|c| {
                    vec![
                        match (c.skipped, c.passed) {
                            (true, _) => "SKIP",
                            (false, true) => "PASS",
                            (false, false) => "FAIL",
                        }
                        .to_string(),
                        c.check.to_string(),
                        c.target.clone(),
                        c.message.clone(),
                    ]
                })
                .collect();
            let lines = table::render(&["RESULT", "CHECK", "TARGET", "DETAIL"], &rows);
            for (i, line) in lines.iter().enumerate() {
                let style = match i {
                    0 => Style::Plain,
                    n if checks[n - 1].skipped => Style::Plain,
                    n if checks[n - 1].passed => Style::Good,
                    _ => Style::Bad,
                };
                printer.styled_line(line, style);
            }
            let failed = checks.iter().filter(|c| !c.passed).count();
            let skipped = checks.iter().filter(|c| c.skipped).count();
            let ran = checks.len() - skipped;
            let also = if skipped > 0 {
                format!(" ({skipped} skipped)")
            } else {
                String::new()
            };
            if failed == 0 {
                printer.line(&format!("All {ran} checks passed{also}."));
            } else {
                printer.line(&format!("{failed} of {ran} checks failed{also}."));
            }
        }
    }
    Ok(if passed {
        crate::exit::SUCCESS
    } else {
        crate::exit::ERROR
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_checked_only_where_a_container_declares_the_port() {
        use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
        let spec = PodSpec {
            containers: vec![Container {
                name: "api".into(),
                ports: Some(vec![ContainerPort {
                    container_port: 8000,
                    name: Some("http".into()),
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        assert!(declares_port(&spec, "8000"));
        assert!(declares_port(&spec, "http"));
        assert!(!declares_port(&spec, "9090"));
        assert!(!declares_port(&PodSpec::default(), "8000"));
    }

    #[test]
    fn health_is_port_slash_path() {
        assert_eq!(
            parse_health("8000/health").unwrap(),
            ("8000".into(), "/health".into())
        );
        assert_eq!(parse_health("http/").unwrap(), ("http".into(), "/".into()));
        assert!(parse_health("8000").is_err());
        assert!(parse_health("/health").is_err());
    }
}

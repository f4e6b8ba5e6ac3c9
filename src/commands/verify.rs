//! `kubectl rotate verify NAME [KEY...] [--logs REGEX] [--health PORT/PATH]`: the runbook's
//! verify and validate steps as checks, one line each. Exit 0 when every check passes, 1 when
//! one fails, 2 when verification itself could not run (as `kubectl diff` does).

use anyhow::{Context as _, Result, anyhow};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::Serialize;

use crate::cluster::connect::ConnectionSettings;
use crate::cluster::{self, Scope};
use crate::plan::checks::{self, Check, Checks, KeyKind};
use crate::plan::consumers::find_consumers;
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
    /// Where the keys live besides the Secret (from presets): each system checks its own
    /// (a PostgreSQL or Redis login, the rows a data encryption key decrypts).
    pub homes: crate::plan::presets::KeyHomes,
    /// Fail when some consumers cannot be checked (a kind you may not list), instead of warning.
    pub strict: bool,
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
    // The servers' own workloads (a database reads the password only at its first start):
    // their rollout says nothing about the key, so it is not checked.
    let cx = crate::systems::context::VerifyContext {
        cluster: &cluster,
        namespace: &namespace,
        data: &data,
    };
    let servers = crate::systems::verify::check_keys(&cx, &keys, &options.homes, &mut checks).await;

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
    let asks = crate::systems::workloads::verify::ConsumerChecks {
        logs: options.logs.as_ref(),
        health: options.health.as_ref(),
    };
    crate::systems::workloads::verify::verify_consumers(
        &cx,
        &consumers,
        &keys,
        &records,
        &servers,
        &asks,
        &mut checks,
    )
    .await?;
    report(printer, &options, &namespace, checks.0)
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

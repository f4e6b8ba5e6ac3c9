//! `kubectl rotate status [SECRET] [-n NS | -A] [-o text|json]`: read-only. Shows each key of
//! one Secret, or of every Secret in the namespace(s), with its size, last recorded rotation and
//! consuming workloads. Never a value.

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;

use crate::cluster::connect::ConnectionSettings;
use crate::cluster::{self, Cluster, Scope};
use crate::plan::consumers::Inventory;
use crate::plan::journal::Journal;
use crate::plan::report::{
    self, FailedAttempt, KeyStatus, SecretStatus, StatusReport, UnfinishedRun,
};
use crate::ui::printer::OutputFormat;
use crate::ui::{Printer, status as render};

/// What `status` was asked to show.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub secret: Option<String>,
    pub all_namespaces: bool,
    pub output: OutputFormat,
    /// Fail when some consumers cannot be checked, instead of warning.
    pub strict: bool,
}

/// Reads the Secrets, their consumers and runs, builds the report and shows it.
pub async fn run(
    connection: &ConnectionSettings,
    options: StatusOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let cluster = cluster::connect::connect(connection).await?;
    let scope = if options.all_namespaces {
        Scope::AllNamespaces
    } else {
        Scope::Namespace(cluster.namespace.clone())
    };
    let read = read(&cluster, &options, &scope, printer).await?;
    let status = build(read);
    match options.output {
        OutputFormat::Json => printer.json(&status)?,
        OutputFormat::Text => render_text(&status, &scope, options.all_namespaces, printer),
    }
    Ok(0)
}

/// What `status` read from the cluster, before any report is built.
struct Read {
    secrets: Vec<Secret>,
    inventory: Inventory,
    runs: Vec<Journal>,
}

/// Reads the Secrets asked for, then (when there are any) the workloads and the runs.
async fn read(
    cluster: &Cluster,
    options: &StatusOptions,
    scope: &Scope,
    printer: &mut Printer,
) -> Result<Read> {
    let secrets = match &options.secret {
        Some(name) => vec![cluster.get_secret(&cluster.namespace, name).await?],
        None => report::listable(cluster.list_secrets(scope).await?),
    };
    // Listing a namespace that does not exist answers an empty list: say what is wrong.
    if let (true, Scope::Namespace(ns)) = (secrets.is_empty(), scope)
        && cluster.namespace_exists(ns).await == Some(false)
    {
        anyhow::bail!(
            "namespace {ns:?} does not exist; list the namespaces with `kubectl get namespaces`, \
             or pass -n NAMESPACE"
        );
    }
    let inventory = if secrets.is_empty() {
        Inventory::default()
    } else {
        crate::systems::workloads::inventory::list_workloads(cluster, scope).await?
    };
    if options.strict {
        let what = format!("show the consumers of Secrets in {}", place(scope));
        crate::plan::consumers::refuse_unlisted(&inventory.unlisted, &what, false)?;
    }
    let runs = if secrets.is_empty() {
        Vec::new()
    } else {
        read_runs(cluster, scope, printer).await
    };
    Ok(Read {
        secrets,
        inventory,
        runs,
    })
}

/// The runs' journals; none (with a warning) when they cannot be read: they only add detail.
async fn read_runs(cluster: &Cluster, scope: &Scope, printer: &mut Printer) -> Vec<Journal> {
    match crate::engine::runs::list_runs(cluster, scope).await {
        Ok(runs) => runs,
        Err(err) => {
            printer.warn(&format!(
                "cannot tell whether runs are unfinished or failed: {err:#}"
            ));
            Vec::new()
        }
    }
}

/// The report of what was read, with the kinds of consumers that could not be checked.
fn build(read: Read) -> StatusReport {
    let mut status = report::build_status(&read.secrets, &read.inventory.workloads, &read.runs);
    status.not_checked = read
        .inventory
        .unlisted
        .iter()
        .map(report::NotChecked::of)
        .collect();
    status
}

/// Where `status` looked, in words: `namespace NS` or `any namespace`.
fn place(scope: &Scope) -> String {
    match scope {
        Scope::AllNamespaces => "any namespace".to_string(),
        Scope::Namespace(ns) => format!("namespace {ns}"),
    }
}

/// The table, then under it each failed attempt, unfinished run and warning.
fn render_text(status: &StatusReport, scope: &Scope, all_namespaces: bool, printer: &mut Printer) {
    if status.secrets.is_empty() {
        printer.note(&format!("No Secrets found in {}.", place(scope)));
        return;
    }
    for line in render::render_table(status, all_namespaces) {
        printer.line(&line);
    }
    for secret in &status.secrets {
        for key in &secret.keys {
            let Some(attempt) = &key.last_failed_attempt else {
                continue;
            };
            printer.line("");
            printer.line(&failed_attempt(secret, key, attempt));
        }
        for run in &secret.unfinished_runs {
            printer.line("");
            for line in unfinished_run(secret, run) {
                printer.line(&line);
            }
        }
        for warning in &secret.warnings {
            printer.warn(&format!(
                "Secret {}/{}: {warning}",
                secret.namespace, secret.name
            ));
        }
    }
    for unlisted in &status.not_checked {
        printer.warn(&unlisted.message);
    }
}

/// A key's last rotation that failed, and which value the key still holds.
fn failed_attempt(secret: &SecretStatus, key: &KeyStatus, attempt: &FailedAttempt) -> String {
    format!(
        "last rotation of {} in Secret {}/{} FAILED: run {} by {} at {} ({}){}; \
         the value is still {}",
        key.name,
        secret.namespace,
        secret.name,
        attempt.id,
        attempt.by,
        attempt.at,
        if attempt.state == "abandoned" {
            "nothing was changed"
        } else {
            "rolled back"
        },
        attempt
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default(),
        match &key.last_rotation {
            Some(r) => format!("the one rotated at {} (run {})", r.at, r.id),
            None => "the one it had before (no recorded rotation)".to_string(),
        }
    )
}

/// An unfinished run, where it stopped, and the commands that finish or undo it.
fn unfinished_run(secret: &SecretStatus, run: &UnfinishedRun) -> [String; 3] {
    [
        format!(
            "unfinished run {} of Secret {}/{} ({} {}, by {}, started {}): {}, at {}",
            run.id,
            secret.namespace,
            secret.name,
            run.action,
            run.keys.join(", "),
            run.by,
            run.started_at,
            run.state,
            run.step
        ),
        format!("  to finish it:  {}", run.resume),
        format!("  to undo it:    {}", run.rollback),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::secret_meta::RotationRecord;

    fn secret() -> SecretStatus {
        SecretStatus {
            namespace: "prod".into(),
            name: "app-secrets".into(),
            type_: "Opaque".into(),
            keys: Vec::new(),
            warnings: Vec::new(),
            unfinished_runs: Vec::new(),
        }
    }

    fn key(last_rotation: Option<RotationRecord>) -> KeyStatus {
        KeyStatus {
            name: "api-key".into(),
            bytes: 12,
            last_rotation,
            last_failed_attempt: None,
            consumers: Vec::new(),
        }
    }

    fn attempt(state: &str, message: Option<&str>) -> FailedAttempt {
        FailedAttempt {
            id: "r2".into(),
            at: "T2".into(),
            by: "bob".into(),
            state: state.into(),
            message: message.map(str::to_string),
        }
    }

    #[test]
    fn an_abandoned_attempt_changed_nothing_and_the_value_is_the_one_before() {
        assert_eq!(
            failed_attempt(&secret(), &key(None), &attempt("abandoned", None)),
            "last rotation of api-key in Secret prod/app-secrets FAILED: run r2 by bob at T2 (nothing was changed); \
             the value is still the one it had before (no recorded rotation)"
        );
    }

    #[test]
    fn a_rolled_back_attempt_says_why_and_names_the_last_rotation() {
        let last = RotationRecord {
            at: "T1".into(),
            id: "r1".into(),
            by: "alice".into(),
        };
        assert_eq!(
            failed_attempt(
                &secret(),
                &key(Some(last)),
                &attempt("rolledBack", Some("crash loop"))
            ),
            "last rotation of api-key in Secret prod/app-secrets FAILED: run r2 by bob at T2 (rolled back): crash loop; \
             the value is still the one rotated at T1 (run r1)"
        );
    }

    #[test]
    fn the_place_is_the_namespace_or_any_namespace() {
        assert_eq!(place(&Scope::Namespace("prod".into())), "namespace prod");
        assert_eq!(place(&Scope::AllNamespaces), "any namespace");
    }
}

//! `kubectl rotate status [SECRET] [-n NS | -A] [-o text|json]`: read-only. Shows each key of
//! one Secret, or of every Secret in the namespace(s), with its size, last recorded rotation and
//! consuming workloads. Never a value.

use anyhow::Result;

use crate::cluster::connect::ConnectionSettings;
use crate::cluster::{self, Scope};
use crate::plan::report;
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
    let secrets = match &options.secret {
        Some(name) => vec![cluster.get_secret(&cluster.namespace, name).await?],
        None => report::listable(cluster.list_secrets(&scope).await?),
    };
    // Listing a namespace that does not exist answers an empty list: say what is wrong.
    if let (true, Scope::Namespace(ns)) = (secrets.is_empty(), &scope)
        && cluster.namespace_exists(ns).await == Some(false)
    {
        anyhow::bail!(
            "namespace {ns:?} does not exist; list the namespaces with `kubectl get namespaces`, \
             or pass -n NAMESPACE"
        );
    }
    let inventory = if secrets.is_empty() {
        crate::plan::consumers::Inventory::default()
    } else {
        crate::systems::workloads::inventory::list_workloads(&cluster, &scope).await?
    };
    if options.strict {
        let what = match &scope {
            Scope::AllNamespaces => "show the consumers of Secrets in any namespace".to_string(),
            Scope::Namespace(ns) => format!("show the consumers of Secrets in namespace {ns}"),
        };
        crate::plan::consumers::refuse_unlisted(&inventory.unlisted, &what, false)?;
    }
    let runs = if secrets.is_empty() {
        Vec::new()
    } else {
        match crate::engine::runs::list_runs(&cluster, &scope).await {
            Ok(runs) => runs,
            Err(err) => {
                printer.warn(&format!(
                    "cannot tell whether runs are unfinished or failed: {err:#}"
                ));
                Vec::new()
            }
        }
    };
    let mut status = report::build_status(&secrets, &inventory.workloads, &runs);
    status.not_checked = inventory
        .unlisted
        .iter()
        .map(report::NotChecked::of)
        .collect();

    match options.output {
        OutputFormat::Json => printer.json(&status)?,
        OutputFormat::Text => {
            if status.secrets.is_empty() {
                let place = match &scope {
                    Scope::AllNamespaces => "any namespace".to_string(),
                    Scope::Namespace(ns) => format!("namespace {ns}"),
                };
                printer.note(&format!("No Secrets found in {place}."));
                return Ok(0);
            }
            for line in render::render_table(&status, options.all_namespaces) {
                printer.line(&line);
            }
            for secret in &status.secrets {
                for key in &secret.keys {
                    let Some(attempt) = &key.last_failed_attempt else {
                        continue;
                    };
                    printer.line("");
                    printer.line(&format!(
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
                    ));
                }
                for run in &secret.unfinished_runs {
                    printer.line("");
                    printer.line(&format!(
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
                    ));
                    printer.line(&format!("  to finish it:  {}", run.resume));
                    printer.line(&format!("  to undo it:    {}", run.rollback));
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
    }
    Ok(0)
}

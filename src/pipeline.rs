//! The change pipeline every writing verb shares (rotation, rollback, presets): check
//! permissions -> preview -> confirm -> back up the old values and read the backup back ->
//! apply the guarded patch -> restart the consumers and watch them -> record an Event ->
//! report. Planning happens before (pure, in `plan.rs`); this module does the I/O in order and
//! stops at the first step that fails, before anything later is written.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde::Serialize;

use crate::access;
use crate::backup::{self, BackupRequest};
use crate::cli::{DryRun, OutputFormat};
use crate::cluster::{Cluster, short_error};
use crate::plan::{DataPlan, RestartPlan, ValueSummary};
use crate::rollout::{self, FIELD_MANAGER, Outcome, Target, WorkloadResult};
use crate::secret_meta::RotationRecord;
use crate::ui::preview::{self, PreviewContext};
use crate::ui::progress::RolloutDisplay;
use crate::ui::{Printer, Style};
use crate::values::SecretValue;

/// What kind of change this is, for words in the preview, the Event and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Rotate,
    RollBack,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Rotate => "rotate",
            Action::RollBack => "roll back",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Action::Rotate => "Rotated",
            Action::RollBack => "Rolled back",
        }
    }

    fn event_reason(self, ok: bool) -> &'static str {
        match (self, ok) {
            (Action::Rotate, true) => "SecretRotated",
            (Action::Rotate, false) => "SecretRotationFailed",
            (Action::RollBack, true) => "SecretRolledBack",
            (Action::RollBack, false) => "SecretRollbackFailed",
        }
    }
}

/// A planned change, ready to run.
pub struct Change {
    pub action: Action,
    pub data: DataPlan,
    pub restarts: RestartPlan,
    pub record: RotationRecord,
    /// The current values of the keys that change (the ones that exist), to back up first.
    pub old_values: Vec<(String, SecretValue)>,
    /// Extra lines for the preview (a preset's downtime and impact).
    pub notes: Vec<String>,
}

/// How to run it.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dry_run: DryRun,
    pub yes: bool,
    pub output: OutputFormat,
    pub show_secrets: bool,
    pub timeout: Duration,
}

/// The `-o json` result of a change: a stable, documented object (README).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub action: &'static str,
    pub namespace: String,
    pub secret: String,
    pub keys: Vec<KeyReport>,
    pub rotation_id: String,
    pub dry_run: &'static str,
    /// `null` when nothing was backed up (dry run, or only new keys).
    pub backup: Option<String>,
    pub workloads: Vec<WorkloadReport>,
    pub succeeded: bool,
    pub duration_seconds: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    pub name: String,
    pub before: Option<ValueSummary>,
    pub after: ValueSummary,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadReport {
    pub kind: crate::consumers::WorkloadKind,
    pub name: String,
    /// `rolledOut`, `failed`, or `notRestarted`.
    pub outcome: &'static str,
    pub message: String,
    pub seconds: f64,
}

/// Runs `change` on the cluster. Returns the exit code; a failed rollout is an error after
/// the report has been printed.
pub async fn execute(
    cluster: &Cluster,
    change: Change,
    options: &RunOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let started = Instant::now();
    let namespace = change.data.namespace.clone();
    let secret_name = change.data.secret.clone();
    let object = format!("Secret {namespace}/{secret_name}");
    let backup_name = backup::backup_name(&secret_name, &change.record.id);
    let will_back_up = !change.old_values.is_empty();

    if options.dry_run != DryRun::Client {
        let restarts: Vec<_> = change
            .restarts
            .restart
            .iter()
            .map(|r| (r.kind, r.name.clone()))
            .collect();
        let mut needs = access::needs_for_change(&namespace, &secret_name, &backup_name, &restarts);
        if !will_back_up {
            needs.retain(|n| !(n.resource == "secrets" && n.verb != "patch"));
        }
        let lacking = access::missing(&cluster.client, &needs).await?;
        if !lacking.is_empty() {
            return Err(access::refusal(&object, &lacking));
        }
    }

    let context = PreviewContext {
        action: change.action.verb(),
        rotation_id: &change.record.id,
        backup: if will_back_up {
            &backup_name
        } else {
            "(none: only new keys)"
        },
        show_secrets: options.show_secrets,
        notes: &change.notes,
    };
    for (style, line) in preview::render(&change.data, &change.restarts, &context) {
        match options.output {
            OutputFormat::Text => printer.styled_line(&line, style),
            OutputFormat::Json => printer.styled_note(&line, style),
        }
    }

    let mut report = ChangeReport {
        api_version: crate::report::API_VERSION,
        kind: "ChangeReport",
        action: change.action.verb(),
        namespace: namespace.clone(),
        secret: secret_name.clone(),
        keys: change
            .data
            .keys
            .iter()
            .map(|k| KeyReport {
                name: k.key.clone(),
                before: k.before.clone(),
                after: k.after.clone(),
            })
            .collect(),
        rotation_id: change.record.id.clone(),
        dry_run: match options.dry_run {
            DryRun::None => "none",
            DryRun::Client => "client",
            DryRun::Server => "server",
        },
        backup: None,
        workloads: Vec::new(),
        succeeded: false,
        duration_seconds: 0.0,
    };

    if options.dry_run == DryRun::Client {
        note(
            printer,
            options,
            "\nDry run (client): nothing was sent to the API server.",
        );
        report.succeeded = true;
        return finish(printer, options, report, started);
    }

    if options.dry_run == DryRun::None && !options.yes {
        confirm(printer, &change, &object)?;
    }

    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &namespace);
    let dry_run = options.dry_run == DryRun::Server;
    let post = PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.to_string()),
    };

    if will_back_up {
        let request = BackupRequest {
            namespace: namespace.clone(),
            secret: secret_name.clone(),
            source_resource_version: change.data.resource_version.clone(),
            keys: change.old_values.clone(),
            at: change.record.at.clone(),
            by: change.record.by.clone(),
            rotation_id: change.record.id.clone(),
            reason: format!(
                "before {} {}",
                match change.action {
                    Action::Rotate => "rotating",
                    Action::RollBack => "rolling back",
                },
                change
                    .data
                    .keys
                    .iter()
                    .map(|k| k.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let object = backup::build_backup(&request);
        secrets
            .create(&post, &object)
            .await
            .map_err(|e| anyhow!("cannot create the backup Secret {namespace}/{backup_name}; nothing was changed: {}", short_error(&e)))?;
        if !dry_run {
            let stored = secrets
                .get(&backup_name)
                .await
                .map_err(|e| anyhow!("cannot read back the backup Secret {namespace}/{backup_name}; nothing was changed: {}", short_error(&e)))?;
            if !backup::holds(&stored, &request) {
                bail!(
                    "the backup Secret {namespace}/{backup_name} does not hold the old value as written; nothing was changed"
                );
            }
            report.backup = Some(backup_name.clone());
            note(
                printer,
                options,
                &format!(
                    "\nBacked up the old value to Secret {namespace}/{backup_name} (read back, verified)."
                ),
            );
        }
    }

    test_pause_before_apply().await;
    let params = PatchParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    match secrets
        .patch(
            &secret_name,
            &params,
            &Patch::<()>::Json(change.data.patch.clone()),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status))
            if status.code == 409
                || (status.code == 422 && !status.message.contains(" is invalid")) =>
        {
            bail!(
                "the {object} changed since it was read; nothing was overwritten; run again to re-plan{}",
                if will_back_up && !dry_run {
                    format!(" (the backup {backup_name} holds the value as it was read)")
                } else {
                    String::new()
                }
            );
        }
        Err(err) => bail!(
            "cannot patch {object}; nothing was changed: {}",
            short_error(&err)
        ),
    }

    if dry_run {
        note(
            printer,
            options,
            "\nDry run (server): the API server accepted the backup and the patch; nothing was stored.",
        );
        report.succeeded = true;
        return finish(printer, options, report, started);
    }
    let changed_keys = change
        .data
        .keys
        .iter()
        .map(|k| k.key.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    note(
        printer,
        options,
        &format!("Patched {object}: {changed_keys}."),
    );

    let targets: Vec<Target> = change
        .restarts
        .restart
        .iter()
        .map(|r| Target {
            kind: r.kind,
            name: r.name.clone(),
        })
        .collect();
    let results = if targets.is_empty() {
        Vec::new()
    } else {
        note(
            printer,
            options,
            &format!(
                "Restarting {} workload(s) and watching the rollouts (timeout {}):",
                targets.len(),
                crate::cluster::humanize(options.timeout)
            ),
        );
        let restarted_at = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut display = RolloutDisplay::new(printer);
        rollout::restart_and_watch(
            &cluster.client,
            &namespace,
            &targets,
            &restarted_at,
            options.timeout,
            &mut display,
        )
        .await
    };
    let failed: Vec<&WorkloadResult> = results.iter().filter(|r| !r.succeeded()).collect();
    report.succeeded = failed.is_empty();
    report.workloads = results
        .iter()
        .map(|r| WorkloadReport {
            kind: r.kind,
            name: r.name.clone(),
            outcome: if r.succeeded() { "rolledOut" } else { "failed" },
            message: match &r.outcome {
                Outcome::RolledOut { message } | Outcome::Failed { message, .. } => message.clone(),
            },
            seconds: r.elapsed.as_secs_f64(),
        })
        .chain(change.restarts.not_restarted.iter().map(|n| {
            let (kind, name) = n.reference.split_once('/').unwrap_or(("", &n.reference));
            WorkloadReport {
                kind: kind_of(kind),
                name: name.to_string(),
                outcome: "notRestarted",
                message: n.why.clone(),
                seconds: 0.0,
            }
        }))
        .collect();

    let restarted = results
        .iter()
        .map(WorkloadResult::reference)
        .collect::<Vec<_>>()
        .join(", ");
    let event_message = format!(
        "kubectl-rotate: {} {changed_keys} (run {}, by {}); backup {}; restarted: {}{}",
        change.action.verb(),
        change.record.id,
        change.record.by,
        report.backup.as_deref().unwrap_or("none"),
        if restarted.is_empty() {
            "none"
        } else {
            &restarted
        },
        if failed.is_empty() {
            String::new()
        } else {
            format!(
                "; failed: {}",
                failed
                    .iter()
                    .map(|r| r.reference())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    if let Err(err) = record_event(
        cluster,
        &namespace,
        &secret_name,
        change.action.event_reason(failed.is_empty()),
        failed.is_empty(),
        &event_message,
    )
    .await
    {
        printer.warn(&format!("could not record an Event on {object}: {err:#}"));
    }

    if failed.is_empty() {
        let summary = change
            .data
            .keys
            .iter()
            .map(|k| match &k.before {
                Some(before) => format!(
                    "{} (sha256:{} -> sha256:{})",
                    k.key, before.fingerprint, k.after.fingerprint
                ),
                None => format!("{} (new, sha256:{})", k.key, k.after.fingerprint),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let duration = started.elapsed().as_secs_f64();
        if options.output == OutputFormat::Text {
            printer.line("");
            printer.styled_line(
                &format!(
                    "{} {summary} in {object} in {duration:.1}s.",
                    change.action.past()
                ),
                Style::Good,
            );
            if targets.is_empty() {
                if !change.restarts.not_restarted.is_empty() {
                    printer.line(
                        "No workload was restarted: pods keep the old value until they restart.",
                    );
                }
            } else {
                printer.line(&format!("Rolled out: {restarted}."));
            }
        }
        return finish(printer, options, report, started);
    }

    let failures = failed.iter().map(|r| match &r.outcome {
        Outcome::Failed { message, .. } => format!("  {}: {message}", r.reference()),
        Outcome::RolledOut { .. } => String::new(),
    });
    let failures: Vec<String> = failures.collect();
    finish(printer, options, report, started)?;
    let keys: Vec<&str> = change.data.keys.iter().map(|k| k.key.as_str()).collect();
    Err(anyhow!(
        "the rollout after the change of {object} failed:\n{}\nthe Secret now holds the new value and the failing pods cannot start with it; \
         to restore the old value and restart the consumers run:\n  kubectl rotate rollback {secret_name} {} --to {backup_name} -n {namespace}",
        failures.join("\n"),
        keys.join(" ")
    ))
}

/// Test-only hook, documented in the README: with `KUBECTL_ROTATE_TEST_PAUSE_BEFORE_APPLY=DIR`,
/// the run creates `DIR/planned` after the backup and waits (at most 60 s) for `DIR/resume`
/// before it patches, so an end-to-end test can change the Secret between plan and apply
/// deterministically. It only ever delays; it changes nothing.
async fn test_pause_before_apply() {
    let Some(dir) = std::env::var_os("KUBECTL_ROTATE_TEST_PAUSE_BEFORE_APPLY") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    if std::fs::write(dir.join("planned"), b"").is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("resume").exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn kind_of(short: &str) -> crate::consumers::WorkloadKind {
    use crate::consumers::WorkloadKind;
    match short {
        "statefulset" => WorkloadKind::StatefulSet,
        "daemonset" => WorkloadKind::DaemonSet,
        "cronjob" => WorkloadKind::CronJob,
        _ => WorkloadKind::Deployment,
    }
}

fn note(printer: &mut Printer, options: &RunOptions, text: &str) {
    match options.output {
        OutputFormat::Text => printer.line(text),
        OutputFormat::Json => printer.note(text),
    }
}

fn finish(
    printer: &mut Printer,
    options: &RunOptions,
    mut report: ChangeReport,
    started: Instant,
) -> Result<u8> {
    report.duration_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    if options.output == OutputFormat::Json {
        printer.json(&report)?;
    }
    Ok(if report.succeeded {
        crate::exit::SUCCESS
    } else {
        crate::exit::ERROR
    })
}

/// Asks on the terminal; without one, fails at once with the way forward instead of hanging.
fn confirm(printer: &mut Printer, change: &Change, object: &str) -> Result<()> {
    if !(std::io::stdin().is_terminal() && printer.interactive()) {
        bail!(
            "refusing to {} {object} without confirmation: there is no terminal to ask on; review the preview above \
             (or run with --dry-run=client), then pass -y/--yes",
            change.action.verb()
        );
    }
    let restarts = change.restarts.restart.len();
    let prompt = format!(
        "{} {} in {object} and restart {restarts} workload(s)?",
        capitalize(change.action.verb()),
        change
            .data
            .keys
            .iter()
            .map(|k| k.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    printer.flush();
    let yes = dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact_on(&dialoguer::console::Term::stderr())
        .context("cannot read the answer from the terminal")?;
    if !yes {
        bail!("cancelled; nothing was changed");
    }
    Ok(())
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A Kubernetes Event on the Secret, like controllers record: reason, message, no value.
async fn record_event(
    cluster: &Cluster,
    namespace: &str,
    secret: &str,
    reason: &str,
    ok: bool,
    message: &str,
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    let current = secrets
        .get(secret)
        .await
        .map_err(|e| anyhow!(short_error(&e)))?;
    let now = Time(jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{secret}.")),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            name: Some(secret.to_string()),
            namespace: Some(namespace.to_string()),
            uid: current.metadata.uid.clone(),
            resource_version: current.metadata.resource_version.clone(),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(if ok { "Normal" } else { "Warning" }.to_string()),
        source: Some(EventSource {
            component: Some("kubectl-rotate".into()),
            host: None,
        }),
        reporting_component: Some("kubectl-rotate".into()),
        reporting_instance: Some("kubectl-rotate".into()),
        action: Some(
            if reason.contains("RolledBack") || reason.contains("Rollback") {
                "Rollback"
            } else {
                "Rotate"
            }
            .into(),
        ),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    };
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), namespace);
    events
        .create(&PostParams::default(), &event)
        .await
        .map_err(|e| anyhow!(short_error(&e)))?;
    Ok(())
}

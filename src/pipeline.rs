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
    /// The automatic rollback that followed a failed rollout, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Box<ChangeReport>>,
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

/// What a run did. A failed rollout is not an error here: the caller decides whether to roll
/// back; errors are refusals and failures before or at the patch, when nothing was changed.
pub struct Executed {
    pub report: ChangeReport,
    /// One line per workload whose rollout failed.
    pub failures: Vec<String>,
}

/// Runs `change` on the cluster, up to and including the rollouts and the Event.
pub async fn execute(
    cluster: &Cluster,
    change: Change,
    options: &RunOptions,
    printer: &mut Printer,
) -> Result<Executed> {
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
        rollback: None,
    };

    if options.dry_run == DryRun::Client {
        note(
            printer,
            options,
            "\nDry run (client): nothing was sent to the API server.",
        );
        report.succeeded = true;
        return Ok(done(report, started, Vec::new()));
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
        return Ok(done(report, started, Vec::new()));
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
        // kubectl writes whole seconds; milliseconds keep two restarts within one second (a
        // rotation and its automatic rollback) distinct, so the second one still rolls out.
        let restarted_at = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
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
        .chain(
            change
                .restarts
                .not_restarted
                .iter()
                .map(|n| WorkloadReport {
                    kind: n.kind,
                    name: n.name.clone(),
                    outcome: "notRestarted",
                    message: n.why.clone(),
                    seconds: 0.0,
                }),
        )
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
        return Ok(done(report, started, Vec::new()));
    }

    let failures: Vec<String> = failed
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Failed { message, .. } => format!("{}: {message}", r.reference()),
            Outcome::RolledOut { .. } => String::new(),
        })
        .collect();
    Ok(done(report, started, failures))
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

fn note(printer: &mut Printer, options: &RunOptions, text: &str) {
    match options.output {
        OutputFormat::Text => printer.line(text),
        OutputFormat::Json => printer.note(text),
    }
}

fn done(mut report: ChangeReport, started: Instant, failures: Vec<String>) -> Executed {
    report.duration_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    Executed { report, failures }
}

/// Prints the report as the stable JSON object when `-o json` was asked for.
pub fn emit(printer: &mut Printer, options: &RunOptions, report: &ChangeReport) -> Result<()> {
    if options.output == OutputFormat::Json {
        printer.json(report)?;
    }
    Ok(())
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
        crate::ui::preview::capitalize(change.action.verb()),
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

/// What a writing verb wants changed, before planning.
pub struct Request {
    pub action: Action,
    /// The Secret as just read.
    pub secret: Secret,
    pub changes: Vec<crate::plan::KeyChange>,
    pub create_key: bool,
    pub force: bool,
    pub restart: crate::plan::RestartMode,
    pub notes: Vec<String>,
}

/// Reads the namespace's workloads and the caller's identity, and plans `request` (pure
/// planning in `plan.rs`): the guarded patch and the restarts.
pub async fn plan_change(cluster: &Cluster, request: Request) -> Result<Change> {
    let namespace = request
        .secret
        .metadata
        .namespace
        .clone()
        .unwrap_or_default();
    let name = request.secret.metadata.name.clone().unwrap_or_default();
    let workloads = cluster
        .list_workloads(&crate::cluster::Scope::Namespace(namespace.clone()))
        .await?;
    let consumers = crate::consumers::find_consumers(&namespace, &name, &workloads);
    let record = RotationRecord {
        at: now_rfc3339(),
        id: new_rotation_id(),
        by: cluster.identity().await,
    };
    let keys: Vec<String> = request.changes.iter().map(|c| c.key.clone()).collect();
    let data = crate::plan::plan_data_change(
        &request.secret,
        &crate::plan::ChangeRequest {
            changes: request.changes,
            create_key: request.create_key,
            force: request.force,
            record: record.clone(),
        },
    )?;
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let restarts = crate::plan::plan_restarts(&consumers, &key_refs, &request.restart, &workloads)?;
    let old_values = data
        .keys
        .iter()
        .filter_map(|k| k.before_value.clone().map(|v| (k.key.clone(), v)))
        .collect();
    Ok(Change {
        action: request.action,
        data,
        restarts,
        record,
        old_values,
        notes: request.notes,
    })
}

/// Runs a rotation and, when its rollout fails, restores the old values from the backup it
/// took, restarts the consumers again and waits for them (unless `no_rollback`). The result
/// is an error whenever the rotation did not succeed, saying what failed, what was restored,
/// and how the consumers are after the restore.
pub async fn execute_with_rollback(
    cluster: &Cluster,
    change: Change,
    options: &RunOptions,
    no_rollback: bool,
    printer: &mut Printer,
) -> Result<u8> {
    let keys: Vec<String> = change.data.keys.iter().map(|k| k.key.clone()).collect();
    let namespace = change.data.namespace.clone();
    let name = change.data.secret.clone();
    let object = format!("Secret {namespace}/{name}");
    let mut executed = execute(cluster, change, options, printer).await?;
    if executed.failures.is_empty() {
        emit(printer, options, &executed.report)?;
        return Ok(crate::exit::SUCCESS);
    }
    let failures = executed
        .failures
        .iter()
        .map(|f| format!("  {f}"))
        .collect::<Vec<_>>()
        .join("\n");
    let Some(backup) = executed.report.backup.clone() else {
        emit(printer, options, &executed.report)?;
        bail!(
            "the rollout after changing {object} failed:\n{failures}\nthere is no backup to restore (the keys were new)"
        );
    };
    let manual = format!(
        "kubectl rotate rollback {name} {} --to {backup} -n {namespace}",
        keys.join(" ")
    );
    if no_rollback {
        emit(printer, options, &executed.report)?;
        bail!(
            "the rollout after changing {object} failed:\n{failures}\nthe Secret keeps the new value (--no-rollback); \
             to restore the old value and restart the consumers run:\n  {manual}"
        );
    }

    printer.warn(&format!(
        "the rollout failed; rolling back {} to the old value saved in {backup}",
        keys.join(", ")
    ));
    let restore = async {
        let current = cluster.get_secret(&namespace, &name).await?;
        let saved = cluster.get_secret(&namespace, &backup).await?;
        let saved_data = saved.data.unwrap_or_default();
        let changes = keys
            .iter()
            .map(|k| {
                saved_data
                    .get(k)
                    .map(|v| crate::plan::KeyChange {
                        key: k.clone(),
                        value: SecretValue::new(v.0.clone()),
                    })
                    .ok_or_else(|| anyhow!("the backup {backup} does not hold key {k:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let request = Request {
            action: Action::RollBack,
            secret: current,
            changes,
            create_key: false,
            force: true,
            restart: crate::plan::RestartMode::Auto,
            notes: vec![format!(
                "automatic rollback after the failed rollout (backup {backup})"
            )],
        };
        let change = plan_change(cluster, request).await?;
        let options = RunOptions {
            yes: true,
            dry_run: DryRun::None,
            ..options.clone()
        };
        execute(cluster, change, &options, printer).await
    }
    .await;
    match restore {
        Ok(rolled_back) => {
            let healthy = rolled_back.failures.is_empty();
            executed.report.rollback = Some(Box::new(rolled_back.report));
            emit(printer, options, &executed.report)?;
            if healthy {
                bail!(
                    "the rollout after changing {object} failed:\n{failures}\nrolled back: {object} holds the old value again \
                     (from {backup}) and every restarted consumer is rolled out and ready"
                );
            }
            bail!(
                "the rollout after changing {object} failed:\n{failures}\nrolled back: {object} holds the old value again (from {backup}), \
                 but consumers are still failing after the restore:\n{}\ninspect them with `kubectl get pods -n {namespace}`",
                rolled_back
                    .failures
                    .iter()
                    .map(|f| format!("  {f}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        Err(err) => {
            emit(printer, options, &executed.report)?;
            printer.styled_note("!!! THE AUTOMATIC ROLLBACK FAILED !!!", Style::Bad);
            bail!(
                "the rollout after changing {object} failed:\n{failures}\nand the automatic rollback failed too: {}\n\
                 {object} still holds the NEW value. Restore the old value by hand:\n  {manual}",
                crate::error_message(&err)
            );
        }
    }
}

/// Now, in the RFC 3339 form records use (UTC, seconds).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A run id: UTC time to the second plus 16 random bits, lower-case so it fits object names.
pub fn new_rotation_id() -> String {
    use rand::TryRngCore;
    let mut bytes = [0u8; 2];
    let _ = rand::rngs::OsRng.try_fill_bytes(&mut bytes);
    format!(
        "{}-{:02x}{:02x}",
        jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S"),
        bytes[0],
        bytes[1]
    )
}

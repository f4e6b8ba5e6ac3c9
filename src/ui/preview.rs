//! The redacted preview of a change, in `kubectl diff`'s spirit: each changed key as
//! `*** (before)` / `*** (after)` with its length and a short fingerprint, the annotation
//! changes, the backup, the workloads to restart and how each uses the key, and warnings.
//! Values appear only with `--show-secrets`. Pure: returns styled lines.

use crate::plan::patch::{AnnotationChange, DataPlan, RestartPlan, ValueSummary};
use crate::ui::Style;
use crate::values::SecretValue;

/// What the preview needs besides the plans.
pub struct PreviewContext<'a> {
    /// `rotate` or `roll back`, for the headline.
    pub action: &'a str,
    pub rotation_id: &'a str,
    /// The backup Secret's name; empty when there is nothing to back up (only new keys).
    pub backup: &'a str,
    pub show_secrets: bool,
    /// Extra lines shown under the headline (a preset's downtime and impact).
    pub notes: &'a [String],
    /// The run's steps, in order, in words.
    pub steps: &'a [String],
    /// How a data encryption key's run restarts (or stops) the consumers, with `{}` for their
    /// count; `None`: one rolling restart.
    pub restart_heading: Option<&'static str>,
}

/// One styled line of the preview.
type Line = (Style, String);

/// The preview's lines, section after section.
pub fn render(
    data: &DataPlan,
    restarts: &RestartPlan,
    context: &PreviewContext<'_>,
) -> Vec<(Style, String)> {
    let object = format!("Secret {}/{}", data.namespace, data.secret);
    let mut lines = headline(&object, context);
    lines.extend(keys(data, &object, context.show_secrets));
    lines.extend(annotations(data));
    lines.push((Style::Plain, String::new()));
    lines.push((Style::Plain, backup(data, context)));
    lines.extend(restarted(restarts, context.restart_heading));
    lines.extend(not_restarted(restarts));
    lines.extend(steps(context.steps));
    lines.extend(warnings(data, restarts));
    lines
}

/// What the run does to which Secret, and the notes under it (a preset's downtime and impact).
fn headline(object: &str, context: &PreviewContext<'_>) -> Vec<Line> {
    let mut lines = vec![(
        Style::Bold,
        format!(
            "{} {object}  (run {})",
            capitalize(context.action),
            context.rotation_id
        ),
    )];
    for note in context.notes {
        lines.push((Style::Plain, format!("  {note}")));
    }
    lines
}

/// The diff's header and each changed key: before (unless new) and after, masked by default.
fn keys(data: &DataPlan, object: &str, show_secrets: bool) -> Vec<Line> {
    let mut lines = vec![
        (Style::Plain, String::new()),
        (Style::Bold, format!("--- {object} (live)")),
        (Style::Bold, format!("+++ {object} (after)")),
        (Style::Plain, "  data:".into()),
    ];
    let width = data.keys.iter().map(|k| k.key.len()).max().unwrap_or(0);
    for key in &data.keys {
        if let Some(before) = &key.before {
            let shown = shown(show_secrets, key.before_value.as_ref(), "*** (before)");
            let shown = format!("{shown:12}");
            lines.push((
                Style::Bad,
                format!("-   {:width$}  {shown}  {}", key.key, summary(before)),
            ));
        }
        let shown = shown(show_secrets, Some(&key.after_value), "*** (after)");
        let shown = format!("{shown:12}");
        let marker = if key.before.is_some() {
            ""
        } else {
            "  (new key)"
        };
        lines.push((
            Style::Good,
            format!(
                "+   {:width$}  {shown}  {}{marker}",
                key.key,
                summary(&key.after)
            ),
        ));
    }
    lines
}

/// The annotation changes; the rotations record shows only the changed keys' new records.
fn annotations(data: &DataPlan) -> Vec<Line> {
    let mut lines = vec![(Style::Plain, "  metadata.annotations:".into())];
    for change in &data.annotations {
        match change {
            AnnotationChange::Set { name, value }
                if name == crate::plan::secret_meta::ROTATIONS_ANNOTATION =>
            {
                // The changed keys' new records only; the others are kept as they are.
                let records: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(value).unwrap_or_default();
                for key in &data.keys {
                    if let Some(record) = records.get(&key.key) {
                        lines.push((
                            Style::Good,
                            format!(
                                "+   {name}: {} rotated at {} by {} (run {})",
                                key.key,
                                record["at"].as_str().unwrap_or("?"),
                                record["by"].as_str().unwrap_or("?"),
                                record["id"].as_str().unwrap_or("?"),
                            ),
                        ));
                    }
                }
            }
            AnnotationChange::Set { name, value } => {
                lines.push((Style::Good, format!("+   {name}: {value}")))
            }
            AnnotationChange::Remove { name, why } => {
                lines.push((Style::Bad, format!("-   {name}: *** ({why})")))
            }
        }
    }
    lines
}

/// Where the old value is saved first, or why nothing is.
fn backup(data: &DataPlan, context: &PreviewContext<'_>) -> String {
    if context.backup.is_empty() {
        "Backup: no backup needed: the key is new".to_string()
    } else {
        format!(
            "Backup: the old value is saved first in Secret {}/{}",
            data.namespace, context.backup
        )
    }
}

/// The workloads to restart and how each uses the key (or `Restart: none`).
fn restarted(restarts: &RestartPlan, heading: Option<&str>) -> Vec<Line> {
    if restarts.restart.is_empty() {
        return vec![(Style::Plain, "Restart: none".into())];
    }
    let mut lines = vec![(
        Style::Plain,
        if let Some(heading) = heading {
            heading.replace("{}", &restarts.restart.len().to_string())
        } else {
            format!(
                "Restart ({}), in parallel, then watch the rollouts:",
                restarts.restart.len()
            )
        },
    )];
    let width = restarts
        .restart
        .iter()
        .map(|r| r.reference().len())
        .max()
        .unwrap_or(0);
    for restart in &restarts.restart {
        let how = if restart.usages.is_empty() {
            "(named with --restart)".to_string()
        } else {
            restart.usages.join(", ")
        };
        lines.push((
            Style::Plain,
            format!("  {:width$}   {how}", restart.reference()),
        ));
    }
    lines
}

/// The consumers left alone, and why (none: no lines).
fn not_restarted(restarts: &RestartPlan) -> Vec<Line> {
    if restarts.not_restarted.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![(Style::Plain, "Not restarted:".into())];
    for skipped in &restarts.not_restarted {
        let how = if skipped.usages.is_empty() {
            String::new()
        } else {
            format!(" ({})", skipped.usages.join(", "))
        };
        lines.push((
            Style::Dim,
            format!("  {}{how}: {}", skipped.reference(), skipped.why),
        ));
    }
    lines
}

/// The run's numbered steps (none: no lines).
fn steps(steps: &[String]) -> Vec<Line> {
    if steps.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![(
        Style::Plain,
        "Steps (each journaled; resumable and undoable):".into(),
    )];
    for (i, step) in steps.iter().enumerate() {
        lines.push((Style::Plain, format!("  {}. {step}", i + 1)));
    }
    lines
}

/// The data plan's and the restart plan's warnings, after a blank line (none: no lines).
fn warnings(data: &DataPlan, restarts: &RestartPlan) -> Vec<Line> {
    let warnings: Vec<&String> = data.warnings.iter().chain(&restarts.warnings).collect();
    if warnings.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![(Style::Plain, String::new())];
    for warning in warnings {
        lines.push((Style::Warning, format!("warning: {warning}")));
    }
    lines
}

fn summary(value: &ValueSummary) -> String {
    format!("{} bytes, sha256:{}", value.bytes, value.fingerprint)
}

fn shown(show_secrets: bool, value: Option<&SecretValue>, masked: &str) -> String {
    match (show_secrets, value) {
        (true, Some(v)) => match std::str::from_utf8(v.expose()) {
            Ok(text) => format!("{text:?}"),
            Err(_) => format!("base64:{}", v.to_base64().as_str()),
        },
        _ => masked.to_string(),
    }
}

/// `rotate` -> `Rotate`.
pub fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workload::WorkloadKind;
    use crate::plan::patch::{ChangeRequest, KeyChange, NotRestarted, Restart, plan_data_change};
    use crate::plan::secret_meta::RotationRecord;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn plans() -> (DataPlan, RestartPlan) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("app-secrets".into()),
                namespace: Some("prod".into()),
                resource_version: Some("7".into()),
                annotations: Some(
                    [(
                        crate::plan::patch::LAST_APPLIED.to_string(),
                        r#"{"kind":"Secret","data":{"openai-api-key":"c2stb2xkLWtleQ=="}}"#
                            .to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            data: Some(
                [(
                    "openai-api-key".to_string(),
                    ByteString(b"sk-old-key".to_vec()),
                )]
                .into(),
            ),
            ..Secret::default()
        };
        let request = ChangeRequest {
            changes: vec![KeyChange {
                key: "openai-api-key".into(),
                value: SecretValue::new(b"sk-new-key-0123".to_vec()),
            }],
            create_key: false,
            force: false,
            record: RotationRecord {
                at: "2026-11-26T04:00:00Z".into(),
                id: "20261126-040000-ab12".into(),
                by: "alice".into(),
            },
        };
        let data = plan_data_change(&secret, &request).unwrap();
        let restarts = RestartPlan {
            restart: vec![
                Restart {
                    kind: WorkloadKind::Deployment,
                    name: "api".into(),
                    usages: vec!["envFrom in api".into()],
                },
                Restart {
                    kind: WorkloadKind::Deployment,
                    name: "worker".into(),
                    usages: vec![
                        "env OPENAI_API_KEY in worker".into(),
                        "volume secrets".into(),
                    ],
                },
            ],
            not_restarted: vec![NotRestarted {
                kind: WorkloadKind::CronJob,
                name: "report".into(),
                usages: vec!["envFrom in job".into()],
                why: "a CronJob's next Job reads the new value".into(),
            }],
            warnings: vec![],
        };
        (data, restarts)
    }

    fn text(lines: &[(Style, String)]) -> String {
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_redacted_preview_matches_its_snapshot_and_holds_no_value() {
        let (data, restarts) = plans();
        let context = PreviewContext {
            action: "rotate",
            rotation_id: "20261126-040000-ab12",
            backup: "app-secrets-backup-20261126-040000-ab12",
            show_secrets: false,
            notes: &[],
            steps: &[
                "back up openai-api-key of Secret prod/app-secrets".to_string(),
                "patch Secret prod/app-secrets: openai-api-key".to_string(),
            ],
            restart_heading: None,
        };
        let rendered = text(&render(&data, &restarts, &context));
        assert!(
            !rendered.contains("sk-old-key") && !rendered.contains("sk-new-key"),
            "{rendered}"
        );
        assert!(!rendered.contains("c2stb2xkLWtleQ"), "{rendered}");
        insta::assert_snapshot!(rendered);
    }

    #[test]
    fn a_new_key_needs_no_backup_and_an_old_one_names_where_it_goes() {
        let (data, _) = plans();
        let mut context = PreviewContext {
            action: "rotate",
            rotation_id: "r",
            backup: "",
            show_secrets: false,
            notes: &[],
            steps: &[],
            restart_heading: None,
        };
        assert_eq!(
            backup(&data, &context),
            "Backup: no backup needed: the key is new"
        );
        context.backup = "b";
        assert_eq!(
            backup(&data, &context),
            "Backup: the old value is saved first in Secret prod/b"
        );
    }

    #[test]
    fn no_restart_says_none_and_a_heading_gets_the_count() {
        let (_, mut restarts) = plans();
        let heading = restarted(&restarts, Some("Stop the {} consumers:"));
        assert_eq!(heading[0].1, "Stop the 2 consumers:");
        let heading = restarted(&restarts, None);
        assert_eq!(
            heading[0].1,
            "Restart (2), in parallel, then watch the rollouts:"
        );
        restarts.restart.clear();
        assert_eq!(text(&restarted(&restarts, None)), "Restart: none");
    }

    #[test]
    fn empty_sections_add_no_lines() {
        let (mut data, mut restarts) = plans();
        assert_eq!(not_restarted(&restarts).len(), 2);
        restarts.not_restarted.clear();
        data.warnings.clear();
        assert!(not_restarted(&restarts).is_empty());
        assert!(steps(&[]).is_empty());
        assert!(warnings(&data, &restarts).is_empty());
    }

    #[test]
    fn show_secrets_reveals_both_values() {
        let (data, restarts) = plans();
        let context = PreviewContext {
            action: "rotate",
            rotation_id: "r",
            backup: "b",
            show_secrets: true,
            notes: &[],
            steps: &[],
            restart_heading: None,
        };
        let rendered = text(&render(&data, &restarts, &context));
        assert!(
            rendered.contains("\"sk-old-key\"") && rendered.contains("\"sk-new-key-0123\""),
            "{rendered}"
        );
    }
}

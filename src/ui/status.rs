//! Renders a status report as a table: one row per key, with its size, last rotation and
//! consumers. Pure: returns lines; the caller prints them.

use crate::plan::report::{ConsumerStatus, StatusReport};
use crate::ui::table;

/// The table for `report`; `with_namespace` adds kubectl's NAMESPACE column (for `-A`).
pub fn render_table(report: &StatusReport, with_namespace: bool) -> Vec<String> {
    let mut rows = Vec::new();
    for secret in &report.secrets {
        let lead = |row: &mut Vec<String>| {
            if with_namespace {
                row.push(secret.namespace.clone());
            }
            row.push(secret.name.clone());
        };
        if secret.keys.is_empty() {
            let mut row = Vec::new();
            lead(&mut row);
            row.extend(["<no keys>".into(), "-".into(), "-".into(), "-".into()]);
            rows.push(row);
        }
        for key in &secret.keys {
            let mut row = Vec::new();
            lead(&mut row);
            row.push(key.name.clone());
            row.push(key.bytes.to_string());
            row.push(match &key.last_rotation {
                Some(r) => format!("{} by {}", r.at, r.by),
                None => "not recorded".to_string(),
            });
            row.push(consumers_cell(&key.consumers));
            rows.push(row);
        }
    }
    let mut headers = Vec::new();
    if with_namespace {
        headers.push("NAMESPACE");
    }
    headers.extend(["SECRET", "KEY", "BYTES", "LAST ROTATED", "CONSUMERS"]);
    table::render(&headers, &rows)
}

fn consumers_cell(consumers: &[ConsumerStatus]) -> String {
    if consumers.is_empty() {
        return "<none>".to_string();
    }
    consumers
        .iter()
        .map(|c| {
            let mut how: Vec<String> = c.usages.iter().map(|u| u.describe()).collect();
            if !c.restartable {
                how.push("not restarted".to_string());
            }
            format!("{} ({})", c.reference(), how.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workload::WorkloadKind;
    use crate::plan::consumers::Usage;
    use crate::plan::report::{KeyStatus, SecretStatus};
    use crate::plan::secret_meta::RotationRecord;

    fn consumer(kind: WorkloadKind, name: &str, usages: Vec<Usage>) -> ConsumerStatus {
        ConsumerStatus {
            kind,
            name: name.into(),
            restartable: kind.restartable(),
            usages,
        }
    }

    #[test]
    fn the_status_table_matches_its_snapshot() {
        let env_from = Usage::EnvFrom {
            container: "api".into(),
            init_container: false,
            sidecar: false,
            prefix: None,
        };
        let report = StatusReport {
            api_version: crate::model::names::API_VERSION,
            kind: "StatusReport",
            secrets: vec![
                SecretStatus {
                    namespace: "prod".into(),
                    name: "app-secrets".into(),
                    type_: "Opaque".into(),
                    keys: vec![
                        KeyStatus {
                            name: "openai-api-key".into(),
                            bytes: 56,
                            last_rotation: Some(RotationRecord {
                                at: "2026-11-26T04:00:00Z".into(),
                                id: "r-1".into(),
                                by: "alice".into(),
                            }),
                            last_failed_attempt: None,
                            consumers: vec![
                                consumer(WorkloadKind::Deployment, "api", vec![env_from.clone()]),
                                consumer(
                                    WorkloadKind::Deployment,
                                    "worker",
                                    vec![
                                        Usage::Env {
                                            container: "worker".into(),
                                            init_container: false,
                                            sidecar: false,
                                            variable: "OPENAI_API_KEY".into(),
                                            key: "openai-api-key".into(),
                                        },
                                        Usage::Volume {
                                            volume: "secrets".into(),
                                            items: None,
                                        },
                                    ],
                                ),
                                consumer(WorkloadKind::CronJob, "report", vec![env_from]),
                            ],
                        },
                        KeyStatus {
                            name: "unused".into(),
                            bytes: 4,
                            last_rotation: None,
                            last_failed_attempt: None,
                            consumers: vec![],
                        },
                    ],
                    warnings: vec![],
                    unfinished_runs: Vec::new(),
                },
                SecretStatus {
                    namespace: "prod".into(),
                    name: "empty".into(),
                    type_: "Opaque".into(),
                    keys: vec![],
                    warnings: vec![],
                    unfinished_runs: Vec::new(),
                },
            ],
            not_checked: Vec::new(),
        };
        insta::assert_snapshot!(render_table(&report, false).join("\n"));
        insta::assert_snapshot!("with_namespace", render_table(&report, true).join("\n"));
    }
}

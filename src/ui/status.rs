//! Renders a status report as a table: one row per key, with its size, last rotation and
//! consumers. Pure: returns lines; the caller prints them.

use crate::report::{ConsumerStatus, StatusReport};
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

//! `kubectl rotate presets` (the table of presets) and `kubectl rotate notice PRESET` (the
//! runbook's stakeholder notice, filled in). Neither talks to a cluster.

use anyhow::{Result, bail};

use crate::plan::presets;
use crate::plan::presets::Presets;
use crate::ui::printer::OutputFormat;
use crate::ui::{Printer, table};

pub fn list(loaded: &Presets, output: OutputFormat, printer: &mut Printer) -> Result<u8> {
    let presets = loaded.ok()?;
    match output {
        OutputFormat::Json => printer.json(&serde_json::json!({
            "apiVersion": crate::model::names::API_VERSION,
            "kind": "PresetList",
            "presets": presets,
        }))?,
        OutputFormat::Text => {
            let rows = presets::table_rows(presets);
            for line in table::render(
                &["PRESET", "SECRET/KEY", "VALUE", "DOWNTIME", "FROM"],
                &rows,
            ) {
                printer.line(&line);
            }
        }
    }
    Ok(crate::exit::SUCCESS)
}

pub fn notice(
    loaded: &Presets,
    name: &str,
    date: &str,
    contact: &str,
    printer: &mut Printer,
) -> Result<u8> {
    let presets = loaded.ok()?;
    let Some(preset) = presets.iter().find(|p| p.name == name) else {
        bail!(
            "no preset named {name:?}; the presets are: {} (see `kubectl rotate presets`)",
            presets
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if date.trim().is_empty() || contact.trim().is_empty() {
        bail!(
            "--date and --contact must not be empty: the notice tells people when and whom to ask"
        );
    }
    for line in presets::notice(preset, date.trim(), contact.trim()).lines() {
        printer.line(line);
    }
    Ok(crate::exit::SUCCESS)
}

//! `kubectl rotate secret NAME KEY (--generate KIND | --from-stdin | --from-file PATH |
//! --from-env VAR | --prompt)`: rotate one key. Reads the Secret and its consumers, takes the new
//! value, plans the guarded change (pure), and hands it to the shared pipeline.

use std::path::PathBuf;

use anyhow::Result;

use crate::cluster::{self, Scope};
use crate::consumers::find_consumers;
use crate::pipeline::{self, Action, Change, RunOptions};
use crate::plan::{self, ChangeRequest, KeyChange, RestartMode};
use crate::secret_meta::RotationRecord;
use crate::settings::ConnectionSettings;
use crate::ui::Printer;
use crate::values::{self, Generator, SecretValue};

/// Where the new value comes from.
#[derive(Debug, Clone)]
pub enum ValueSource {
    Generate {
        generator: Generator,
        length: Option<usize>,
    },
    Stdin,
    File(PathBuf),
    Env(String),
    Prompt,
}

/// What `secret` was asked to do, resolved from the flags.
#[derive(Debug, Clone)]
pub struct SecretOptions {
    pub secret: String,
    pub key: String,
    pub source: ValueSource,
    pub create_key: bool,
    pub force: bool,
    pub restart: RestartMode,
    pub run: RunOptions,
}

pub async fn run(
    connection: &ConnectionSettings,
    options: SecretOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let cluster = cluster::connect(connection).await?;
    let namespace = cluster.namespace.clone();
    let secret = cluster.get_secret(&namespace, &options.secret).await?;
    // Refuse what cannot happen before asking anyone to type a value.
    plan::precheck(&secret, &[&options.key], options.create_key, options.force)?;
    let value = read_value(&options.source, &options.key)?;

    let workloads = cluster
        .list_workloads(&Scope::Namespace(namespace.clone()))
        .await?;
    let consumers = find_consumers(&namespace, &options.secret, &workloads);
    let record = RotationRecord {
        at: now_rfc3339(),
        id: new_rotation_id(),
        by: cluster.identity().await,
    };
    let data = plan::plan_data_change(
        &secret,
        &ChangeRequest {
            changes: vec![KeyChange {
                key: options.key.clone(),
                value,
            }],
            create_key: options.create_key,
            force: options.force,
            record: record.clone(),
        },
    )?;
    let restarts = plan::plan_restarts(&consumers, &[&options.key], &options.restart, &workloads)?;
    let old_values = data
        .keys
        .iter()
        .filter_map(|k| k.before_value.clone().map(|v| (k.key.clone(), v)))
        .collect();
    let change = Change {
        action: Action::Rotate,
        data,
        restarts,
        record,
        old_values,
        notes: Vec::new(),
    };
    pipeline::execute(&cluster, change, &options.run, printer).await
}

fn read_value(source: &ValueSource, key: &str) -> Result<SecretValue> {
    match source {
        ValueSource::Generate { generator, length } => values::generate(*generator, *length),
        ValueSource::Stdin => values::read_stdin(std::io::stdin().lock()),
        ValueSource::File(path) => values::read_file(path),
        ValueSource::Env(var) => values::read_env(var),
        ValueSource::Prompt => values::prompt(key),
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

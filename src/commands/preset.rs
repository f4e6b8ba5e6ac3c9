//! `kubectl rotate PRESET`: a preset's rotation. The preset says which Secret and key, where
//! the value comes from by default, what it must look like, and what the rotation costs
//! (downtime, impact); the rest is the `secret` pipeline, automatic rollback included.

use std::io::IsTerminal;

use anyhow::{Result, bail};

use crate::cluster;
use crate::cluster::connect::ConnectionSettings;
use crate::commands::secret::{ValueSource, read_value};
use crate::engine::pipeline::{self, Request, RunOptions};
use crate::plan::change::Action;
use crate::plan::checks::{self, KeyKind};
use crate::plan::database;
use crate::plan::patch::{self, KeyChange, RestartMode};
use crate::plan::presets::{DefaultSource, Preset, Strategy};
use crate::systems::openai::{self, KeyCheck};
use crate::ui::{Printer, Style};
use crate::values::SecretValue;

#[derive(Debug, Clone)]
pub struct PresetOptions {
    pub preset: Preset,
    /// The value source the user chose, if any.
    pub source: Option<ValueSource>,
    pub length: Option<usize>,
    pub create_key: bool,
    pub force: bool,
    pub restart: RestartMode,
    pub no_rollback: bool,
    pub check_key: bool,
    pub openai_base_url: String,
    /// `--strategy`, for a PostgreSQL or Redis preset.
    pub strategy: Option<Strategy>,
    /// Where a data encryption key preset's copies go.
    pub encryption: crate::systems::encryption::preflight::BackupFiles,
    /// Every data encryption key a preset describes (refused by the other presets).
    pub encryption_keys: Vec<crate::plan::presets::EncryptionKey>,
    pub run: RunOptions,
}

pub async fn run(
    connection: &ConnectionSettings,
    options: PresetOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let preset = &options.preset;
    if options.check_key && preset.kind != KeyKind::OpenAi {
        bail!(
            "--check-key asks the OpenAI API; preset {:?} does not hold an OpenAI key",
            preset.name
        );
    }
    if preset.encryption.is_some() && options.restart != RestartMode::Auto {
        // A usage error (exit 2), like clap's.
        return Err(crate::ExitWith {
            code: crate::exit::USAGE,
            message: format!(
                "--restart does not apply to preset {:?}: every consumer of a data encryption key must stop during \
                 the migration (scale-down) or roll out with the key ring (keyring), or it would read rows it \
                 cannot decrypt",
                preset.name
            ),
        }
        .into());
    }
    let cluster = cluster::connect::connect(connection).await?;
    let secret = cluster
        .get_secret(&cluster.namespace, &preset.secret)
        .await?;
    patch::precheck(&secret, &[&preset.key], options.create_key, options.force)?;
    let mut guard_notes = Vec::new();
    if preset.encryption.is_none() {
        crate::commands::secret::guard_encryption_key(
            &options.encryption_keys,
            (&cluster.namespace, &preset.secret, &preset.key),
            options.force,
            &mut guard_notes,
        )?;
    }
    // The key whose rows are re-encrypted: the current one must exist.
    let current_key = match &preset.encryption {
        Some(_) => Some(
            crate::systems::secret::value_of(&secret, &preset.key)
                .map(|v| SecretValue::new(v.to_vec()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "Secret {}/{} has no key {}: there is no current key whose rows to re-encrypt; nothing was changed",
                        cluster.namespace,
                        preset.secret,
                        preset.key
                    )
                })?,
        ),
        None => None,
    };

    let source = match (&options.source, preset.source) {
        (Some(source), _) => source.clone(),
        (None, DefaultSource::Generate(generator)) => ValueSource::Generate {
            generator,
            length: options.length.or(preset.length),
        },
        (None, DefaultSource::Supplied)
            if std::io::stdin().is_terminal() && printer.interactive() =>
        {
            ValueSource::Prompt
        }
        (None, DefaultSource::Supplied) => bail!(
            "the {} preset needs the new value: pass --from-stdin, --from-file PATH or --from-env VAR, \
             or run it on a terminal to be asked for it (hidden)",
            preset.name
        ),
    };
    // What must happen before the value exists (get the new key from the provider) is said
    // before the prompt that asks for it.
    if matches!(source, ValueSource::Prompt) {
        for step in &preset.steps {
            printer.styled_note(&format!("Before: {step}"), Style::Bold);
        }
    }
    let value = read_value(&source, &preset.key)?;
    check_shape(preset, &value)?;
    if options.check_key {
        let verdict = openai::check_key(&options.openai_base_url, &value).await;
        match verdict {
            KeyCheck::Valid => printer.note(&format!(
                "--check-key: the new key is {}",
                verdict.describe()
            )),
            // No verdict on the key: say so, not that the key is bad.
            KeyCheck::Network(why) => bail!(
                "--check-key: could not check the new key: cannot reach the OpenAI API at {} \
                 ({why}); nothing was written. Check the network or HTTPS_PROXY and run it again, \
                 or rotate without --check-key",
                options.openai_base_url
            ),
            KeyCheck::Unexpected(code) => bail!(
                "--check-key: could not check the new key: GET {}/v1/models answered {code}; \
                 nothing was written. Run it again later, or rotate without --check-key",
                options.openai_base_url.trim_end_matches('/')
            ),
            other => bail!(
                "--check-key: the new key is {}; nothing was written",
                other.describe()
            ),
        }
    }

    let mut notes = vec![
        format!("Downtime: {}", preset.downtime),
        format!("Impact: {}", preset.impact),
    ];
    notes.extend(preset.steps.iter().map(|s| format!("Before: {s}")));
    notes.extend(guard_notes);
    // A PostgreSQL password: what changes in the database, planned from the Secret as read.
    let database = match &preset.postgres {
        Some(settings) => {
            let strategy = options.strategy.unwrap_or(settings.strategy);
            let plan = database::plan_database(
                settings,
                strategy,
                &secret,
                &preset.key,
                options.create_key,
            )?;
            let current = current_password(&secret, &cluster.namespace, preset, "PostgreSQL")?;
            notes.push(format!("Strategy: {}", strategy.name()));
            if let Some((downtime, impact)) =
                strategy.downtime_and_impact(&settings.user, &settings.clone_user)
            {
                notes[0] = format!("Downtime: {downtime}");
                notes[1] = format!("Impact: {impact}");
            }
            Some((plan, current))
        }
        None => None,
    };
    // A Redis password: overlap (or requirepass) on the server, planned from the settings.
    let redis = match &preset.redis {
        Some(settings) => {
            let change = database::plan_redis(settings, options.strategy, &preset.key)?;
            let current = current_password(&secret, &cluster.namespace, preset, "Redis")?;
            let strategy = match &change {
                crate::plan::steps::DatabaseChange::RedisRequirepass { .. } => {
                    Strategy::Requirepass
                }
                _ => Strategy::Overlap,
            };
            notes.push(format!("Strategy: {}", strategy.name()));
            if let Some((downtime, impact)) = strategy.downtime_and_impact(&settings.user, "") {
                notes[0] = format!("Downtime: {downtime}");
                notes[1] = format!("Impact: {impact}");
            }
            Some((change, current))
        }
        None => None,
    };
    let mut changes = vec![KeyChange {
        key: preset.key.clone(),
        value,
    }];
    if let Some((plan, _)) = &database {
        changes.extend(plan.key_changes());
    }
    let request = Request {
        action: Action::Rotate,
        secret,
        changes,
        create_key: options.create_key,
        force: options.force,
        restart: options.restart.clone(),
        notes,
    };
    let mut change = pipeline::plan_change(&cluster, request).await?;
    // Reaching the server is checked before its preflight logs in.
    let reach = match (&preset.postgres, &preset.redis, &preset.encryption) {
        (Some(pg), _, _) => Some(crate::systems::reach::Reach {
            server: &pg.server,
            admin_secret: pg.admin.as_ref().map(|a| a.secret.as_str()),
            dump: false,
        }),
        (_, Some(redis), _) => Some(crate::systems::reach::Reach {
            server: &redis.server,
            admin_secret: None,
            dump: false,
        }),
        (_, _, Some(enc)) => Some(crate::systems::reach::Reach {
            server: &enc.server,
            admin_secret: Some(&enc.admin.secret),
            dump: !options.encryption.no_db_backup,
        }),
        _ => None,
    };
    if let Some(reach) = reach {
        crate::systems::reach::refuse_unreachable(&cluster, &change, reach).await?;
    }
    if let Some((plan, current)) = database {
        crate::systems::postgres::preflight::attach_database(
            &cluster,
            &mut change,
            plan.change,
            &current,
        )
        .await?;
        change.log_check = preset.verify_logs.clone();
    }
    if let Some((plan, current)) = redis {
        let chosen = options.strategy.is_some()
            || preset.redis.as_ref().is_some_and(|r| r.strategy.is_some());
        crate::systems::redis::preflight::attach_redis(
            &cluster,
            &mut change,
            plan,
            &current,
            chosen,
        )
        .await?;
        change.log_check = preset.verify_logs.clone();
    }
    if let (Some(settings), Some(current)) = (&preset.encryption, &current_key) {
        let strategy = options.strategy.unwrap_or(settings.strategy);
        crate::systems::encryption::preflight::attach_encryption(
            &cluster,
            &mut change,
            settings,
            (&preset.key, current),
            &options.encryption,
            strategy,
        )
        .await?;
        change.log_check = preset.verify_logs.clone();
    }
    let dry_run = options.run.dry_run != crate::engine::pipeline::DryRun::None;
    let code =
        pipeline::execute(&cluster, change, &options.run, options.no_rollback, printer).await?;
    if !dry_run {
        for reminder in &preset.after {
            printer.styled_note(&format!("Next: {reminder}"), Style::Bold);
        }
        let mut verify = format!(
            "kubectl rotate verify {} {} -n {}",
            preset.secret, preset.key, cluster.namespace
        );
        if let Some(logs) = &preset.verify_logs {
            verify.push_str(&format!(" --logs '{logs}'"));
        }
        if let Some(health) = &preset.verify_health {
            verify.push_str(&format!(" --health {health}"));
        }
        printer.note(&format!("Verify: {verify}"));
    }
    Ok(code)
}

/// The preset key's current value: the password to log in to `system` with before the change.
fn current_password(
    secret: &k8s_openapi::api::core::v1::Secret,
    namespace: &str,
    preset: &Preset,
    system: &str,
) -> Result<SecretValue> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(&preset.key))
        .map(|v| SecretValue::new(v.0.clone()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Secret {namespace}/{} has no key {}: there is no current password to log in to {system} \
                 with; nothing was changed",
                preset.secret,
                preset.key
            )
        })
}

/// Refuses a value that does not look like the preset's kind, before anything is written.
fn check_shape(preset: &Preset, value: &SecretValue) -> Result<()> {
    if let Err(problem) = checks::check_value(preset.kind, value.expose()) {
        bail!(
            "the new value for {} {problem}; nothing was written",
            preset.key
        );
    }
    if preset.kind == KeyKind::OpenAi && !(20..=512).contains(&value.len()) {
        bail!(
            "the new value for {} is {} bytes, not a plausible OpenAI key length (20 to 512); nothing was written",
            preset.key,
            value.len()
        );
    }
    Ok(())
}

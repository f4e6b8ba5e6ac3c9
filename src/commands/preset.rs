//! `kubectl rotate PRESET`: a preset's rotation. The preset says which Secret and key, where
//! the value comes from by default, what it must look like, and what the rotation costs
//! (downtime, impact); the rest is the `secret` pipeline, automatic rollback included.

use std::io::IsTerminal;

use anyhow::{Result, bail};

use k8s_openapi::api::core::v1::Secret;

use crate::cluster::connect::ConnectionSettings;
use crate::cluster::{self, Cluster};
use crate::commands::secret::{ValueSource, read_value};
use crate::engine::pipeline::{self, Request, RunOptions};
use crate::plan::change::{Action, Change};
use crate::plan::checks::{self, KeyKind};
use crate::plan::database::{self, DatabasePlan};
use crate::plan::patch::{self, KeyChange, RestartMode};
use crate::plan::presets::{DefaultSource, Preset, Strategy};
use crate::plan::steps::DatabaseChange;
use crate::systems::openai::{self, KeyCheck};
use crate::systems::reach::Reach;
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

/// A preset's rotation: reads the Secret, takes and checks the new value, plans the change
/// with the preset's server, runs it, and says what comes next.
pub async fn run(
    connection: &ConnectionSettings,
    options: PresetOptions,
    printer: &mut Printer,
) -> Result<u8> {
    let preset = &options.preset;
    refuse_flags(preset, options.check_key, &options.restart)?;
    let cluster = cluster::connect::connect(connection).await?;
    let current = read_current(&cluster, &options).await?;
    let value = new_value(&options, printer).await?;
    let mut notes = preset_notes(preset, current.notes);
    let servers = Servers {
        postgres: plan_postgres(&options, &current.secret, &cluster.namespace, &mut notes)?,
        redis: plan_redis(&options, &current.secret, &cluster.namespace, &mut notes)?,
    };
    let request = rotation_request(&options, current.secret, value, &servers, notes);
    let mut change = pipeline::plan_change(&cluster, request).await?;
    attach_servers(&cluster, &mut change, &options, servers, current.key).await?;
    let dry_run = options.run.dry_run != crate::engine::pipeline::DryRun::None;
    let code =
        pipeline::execute(&cluster, change, &options.run, options.no_rollback, printer).await?;
    if !dry_run {
        print_next(preset, &cluster.namespace, printer);
    }
    Ok(code)
}

/// Refuses flags that do not apply to the preset, before connecting: `--check-key` without an
/// OpenAI key, `--restart` for a data encryption key (a usage error, exit 2).
fn refuse_flags(preset: &Preset, check_key: bool, restart: &RestartMode) -> Result<()> {
    if check_key && preset.kind != KeyKind::OpenAi {
        bail!(
            "--check-key asks the OpenAI API; preset {:?} does not hold an OpenAI key",
            preset.name
        );
    }
    if preset.encryption.is_some() && *restart != RestartMode::Auto {
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
    Ok(())
}

/// The Secret as read, and what it says before anything changes.
struct Current {
    secret: Secret,
    /// With `--force` on another preset's data encryption key: the warning for the preview.
    notes: Vec<String>,
    /// A data encryption key preset: the key whose rows are re-encrypted.
    key: Option<SecretValue>,
}

/// Reads the Secret and refuses what cannot happen before a value is asked for.
async fn read_current(cluster: &Cluster, options: &PresetOptions) -> Result<Current> {
    let preset = &options.preset;
    let secret = cluster
        .get_secret(&cluster.namespace, &preset.secret)
        .await?;
    patch::precheck(&secret, &[&preset.key], options.create_key, options.force)?;
    let mut notes = Vec::new();
    if preset.encryption.is_none() {
        crate::commands::secret::guard_encryption_key(
            &options.encryption_keys,
            (&cluster.namespace, &preset.secret, &preset.key),
            options.force,
            &mut notes,
        )?;
    }
    // The key whose rows are re-encrypted: the current one must exist.
    let key = match &preset.encryption {
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
    Ok(Current { secret, notes, key })
}

/// Takes the new value (the steps that come first are said before a prompt), checks its
/// shape and, with `--check-key`, asks the OpenAI API about it.
async fn new_value(options: &PresetOptions, printer: &mut Printer) -> Result<SecretValue> {
    let preset = &options.preset;
    let can_prompt = std::io::stdin().is_terminal() && printer.interactive();
    let source = value_source(preset, options.source.as_ref(), options.length, can_prompt)?;
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
        check_key(&options.openai_base_url, &value, printer).await?;
    }
    Ok(value)
}

/// Where the value comes from: the source the user chose, else the preset's generator, else
/// a hidden prompt when there is a terminal to ask on.
fn value_source(
    preset: &Preset,
    chosen: Option<&ValueSource>,
    length: Option<usize>,
    can_prompt: bool,
) -> Result<ValueSource> {
    Ok(match (chosen, preset.source) {
        (Some(source), _) => source.clone(),
        (None, DefaultSource::Generate(generator)) => ValueSource::Generate {
            generator,
            length: length.or(preset.length),
        },
        (None, DefaultSource::Supplied) if can_prompt => ValueSource::Prompt,
        (None, DefaultSource::Supplied) => bail!(
            "the {} preset needs the new value: pass --from-stdin, --from-file PATH or --from-env VAR, \
             or run it on a terminal to be asked for it (hidden)",
            preset.name
        ),
    })
}

/// `--check-key`: the OpenAI API must accept the new key; no verdict is not a bad key.
async fn check_key(base_url: &str, value: &SecretValue, printer: &mut Printer) -> Result<()> {
    let verdict = openai::check_key(base_url, value).await;
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
            base_url
        ),
        KeyCheck::Unexpected(code) => bail!(
            "--check-key: could not check the new key: GET {}/v1/models answered {code}; \
             nothing was written. Run it again later, or rotate without --check-key",
            base_url.trim_end_matches('/')
        ),
        other => bail!(
            "--check-key: the new key is {}; nothing was written",
            other.describe()
        ),
    }
    Ok(())
}

/// The preview's notes: the preset's downtime and impact (first two, a strategy may replace
/// them), its steps, then the guard's warnings.
fn preset_notes(preset: &Preset, guard_notes: Vec<String>) -> Vec<String> {
    let mut notes = vec![
        format!("Downtime: {}", preset.downtime),
        format!("Impact: {}", preset.impact),
    ];
    notes.extend(preset.steps.iter().map(|s| format!("Before: {s}")));
    notes.extend(guard_notes);
    notes
}

/// Names the strategy in the notes; one with its own downtime and impact (`costs`) replaces
/// the preset's.
fn note_strategy(notes: &mut Vec<String>, strategy: Strategy, costs: Option<(String, String)>) {
    notes.push(format!("Strategy: {}", strategy.name()));
    if let Some((downtime, impact)) = costs {
        notes[0] = format!("Downtime: {downtime}");
        notes[1] = format!("Impact: {impact}");
    }
}

/// What changes on the preset's server with the Secret, and the password to log in with now.
struct Servers {
    postgres: Option<(DatabasePlan, SecretValue)>,
    redis: Option<(DatabaseChange, SecretValue)>,
}

/// A PostgreSQL password: what changes in the database, planned from the Secret as read.
fn plan_postgres(
    options: &PresetOptions,
    secret: &Secret,
    namespace: &str,
    notes: &mut Vec<String>,
) -> Result<Option<(DatabasePlan, SecretValue)>> {
    let preset = &options.preset;
    let Some(settings) = &preset.postgres else {
        return Ok(None);
    };
    let strategy = options.strategy.unwrap_or(settings.strategy);
    let plan =
        database::plan_database(settings, strategy, secret, &preset.key, options.create_key)?;
    let current = current_password(secret, namespace, preset, "PostgreSQL")?;
    let costs = strategy.downtime_and_impact(&settings.user, &settings.clone_user);
    note_strategy(notes, strategy, costs);
    Ok(Some((plan, current)))
}

/// A Redis password: overlap (or requirepass) on the server, planned from the settings.
fn plan_redis(
    options: &PresetOptions,
    secret: &Secret,
    namespace: &str,
    notes: &mut Vec<String>,
) -> Result<Option<(DatabaseChange, SecretValue)>> {
    let preset = &options.preset;
    let Some(settings) = &preset.redis else {
        return Ok(None);
    };
    let change = database::plan_redis(settings, options.strategy, &preset.key)?;
    let current = current_password(secret, namespace, preset, "Redis")?;
    let strategy = match &change {
        DatabaseChange::RedisRequirepass { .. } => Strategy::Requirepass,
        _ => Strategy::Overlap,
    };
    note_strategy(
        notes,
        strategy,
        strategy.downtime_and_impact(&settings.user, ""),
    );
    Ok(Some((change, current)))
}

/// The pipeline's request: the preset's key, and the user key an alternating-users
/// PostgreSQL rotation switches.
fn rotation_request(
    options: &PresetOptions,
    secret: Secret,
    value: SecretValue,
    servers: &Servers,
    notes: Vec<String>,
) -> Request {
    let mut changes = vec![KeyChange {
        key: options.preset.key.clone(),
        value,
    }];
    if let Some((plan, _)) = &servers.postgres {
        changes.extend(plan.key_changes());
    }
    Request {
        action: Action::Rotate,
        secret,
        changes,
        create_key: options.create_key,
        force: options.force,
        restart: options.restart.clone(),
        notes,
    }
}

/// The server a preset's preflight logs in to, checked reachable before it does.
fn reach_of(preset: &Preset, no_db_backup: bool) -> Option<Reach<'_>> {
    match (&preset.postgres, &preset.redis, &preset.encryption) {
        (Some(pg), _, _) => Some(Reach {
            server: &pg.server,
            admin_secret: pg.admin.as_ref().map(|a| a.secret.as_str()),
            dump: false,
        }),
        (_, Some(redis), _) => Some(Reach {
            server: &redis.server,
            admin_secret: None,
            dump: false,
        }),
        (_, _, Some(enc)) => Some(Reach {
            server: &enc.server,
            admin_secret: Some(&enc.admin.secret),
            dump: !no_db_backup,
        }),
        _ => None,
    }
}

/// Adds the preset's second system to the change after its preflight: the PostgreSQL or Redis
/// password, or the data encryption key's migration; each checks the app's logs afterwards.
async fn attach_servers(
    cluster: &Cluster,
    change: &mut Change,
    options: &PresetOptions,
    servers: Servers,
    current_key: Option<SecretValue>,
) -> Result<()> {
    let preset = &options.preset;
    // Reaching the server is checked before its preflight logs in.
    if let Some(reach) = reach_of(preset, options.encryption.no_db_backup) {
        crate::systems::reach::refuse_unreachable(cluster, change, reach).await?;
    }
    if let Some((plan, current)) = servers.postgres {
        crate::systems::postgres::preflight::attach_database(
            cluster,
            change,
            plan.change,
            &current,
        )
        .await?;
        change.log_check = preset.verify_logs.clone();
    }
    if let Some((plan, current)) = servers.redis {
        let chosen = options.strategy.is_some()
            || preset.redis.as_ref().is_some_and(|r| r.strategy.is_some());
        crate::systems::redis::preflight::attach_redis(cluster, change, plan, &current, chosen)
            .await?;
        change.log_check = preset.verify_logs.clone();
    }
    if let (Some(settings), Some(current)) = (&preset.encryption, &current_key) {
        let strategy = options.strategy.unwrap_or(settings.strategy);
        crate::systems::encryption::preflight::attach_encryption(
            cluster,
            change,
            settings,
            (&preset.key, current),
            &options.encryption,
            strategy,
        )
        .await?;
        change.log_check = preset.verify_logs.clone();
    }
    Ok(())
}

/// After a real run: the preset's reminders, and the `verify` command to run next.
fn print_next(preset: &Preset, namespace: &str, printer: &mut Printer) {
    for reminder in &preset.after {
        printer.styled_note(&format!("Next: {reminder}"), Style::Bold);
    }
    printer.note(&format!("Verify: {}", verify_command(preset, namespace)));
}

/// The `verify` command that checks the rotation, with the preset's logs and health checks.
fn verify_command(preset: &Preset, namespace: &str) -> String {
    let mut verify = format!(
        "kubectl rotate verify {} {} -n {namespace}",
        preset.secret, preset.key
    );
    if let Some(logs) = &preset.verify_logs {
        verify.push_str(&format!(" --logs '{logs}'"));
    }
    if let Some(health) = &preset.verify_health {
        verify.push_str(&format!(" --health {health}"));
    }
    verify
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Generator;

    fn preset(name: &str) -> Preset {
        crate::plan::presets::built_in()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap()
    }

    #[test]
    fn check_key_is_refused_for_a_preset_that_holds_no_openai_key() {
        let err = refuse_flags(&preset("postgres"), true, &RestartMode::Auto).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--check-key asks the OpenAI API"),
            "{err}"
        );
        assert!(refuse_flags(&preset("openai"), true, &RestartMode::Auto).is_ok());
    }

    #[test]
    fn restart_for_a_data_encryption_key_is_a_usage_error() {
        let err = refuse_flags(&preset("encryption-key"), false, &RestartMode::None).unwrap_err();
        assert_eq!(crate::exit_code_of(&err), crate::exit::USAGE);
        assert!(refuse_flags(&preset("encryption-key"), false, &RestartMode::Auto).is_ok());
    }

    #[test]
    fn a_chosen_source_wins_over_the_presets_own() {
        let source = value_source(&preset("postgres"), Some(&ValueSource::Stdin), None, false);
        assert!(matches!(source.unwrap(), ValueSource::Stdin));
    }

    #[test]
    fn a_generated_value_takes_the_length_flag_else_the_presets_length() {
        let postgres = preset("postgres");
        let ValueSource::Generate { generator, length } =
            value_source(&postgres, None, Some(48), false).unwrap()
        else {
            panic!("not generated");
        };
        assert_eq!((generator, length), (Generator::Token, Some(48)));
        let ValueSource::Generate { length, .. } =
            value_source(&postgres, None, None, false).unwrap()
        else {
            panic!("not generated");
        };
        assert_eq!(length, Some(32));
    }

    #[test]
    fn a_supplied_value_is_asked_for_on_a_terminal_and_refused_without_one() {
        let openai = preset("openai");
        assert!(matches!(
            value_source(&openai, None, None, true).unwrap(),
            ValueSource::Prompt
        ));
        let err = value_source(&openai, None, None, false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the openai preset needs the new value: pass --from-stdin"),
            "{err}"
        );
    }

    #[test]
    fn a_strategy_with_its_own_costs_replaces_the_presets_downtime_and_impact() {
        let mut notes = vec!["Downtime: a".to_string(), "Impact: b".to_string()];
        note_strategy(&mut notes, Strategy::SingleUser, None);
        assert_eq!(notes, ["Downtime: a", "Impact: b", "Strategy: single-user"]);
        let costs = Some(("none".to_string(), "nothing".to_string()));
        note_strategy(&mut notes, Strategy::Overlap, costs);
        assert_eq!(
            notes,
            [
                "Downtime: none",
                "Impact: nothing",
                "Strategy: single-user",
                "Strategy: overlap"
            ]
        );
    }

    #[test]
    fn each_preset_reaches_its_own_server_and_only_the_encryption_key_dumps() {
        assert!(reach_of(&preset("openai"), false).is_none());
        let postgres = preset("postgres");
        let reach = reach_of(&postgres, false).unwrap();
        assert_eq!(
            (reach.server, reach.admin_secret, reach.dump),
            ("service/postgres:5432", Some("postgres-admin"), false)
        );
        let redis = preset("redis");
        let reach = reach_of(&redis, false).unwrap();
        assert_eq!((reach.admin_secret, reach.dump), (None, false));
        let encryption = preset("encryption-key");
        assert!(reach_of(&encryption, false).unwrap().dump);
        assert!(!reach_of(&encryption, true).unwrap().dump);
    }

    #[test]
    fn the_verify_command_carries_the_presets_log_pattern() {
        assert_eq!(
            verify_command(&preset("openai"), "prod"),
            "kubectl rotate verify app-secrets openai-api-key -n prod --logs '(?i)secrets loaded'"
        );
    }
}

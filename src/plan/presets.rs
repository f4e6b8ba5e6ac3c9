//! Presets are data: the runbook's secret-specific procedures as a built-in table, extended and
//! overridden by a YAML config file. Each preset becomes a verb (`kubectl rotate openai`) that
//! runs the `secret` pipeline with its Secret, key, value source, checks and notes.
//!
//! Only presets whose whole procedure this tool can carry out are built in: `openai`,
//! `postgres` (the password changes in the database and in the Secret as one run), `redis`
//! (the same on the Redis server, with an overlap) and `encryption-key` (the data encryption
//! key, with the migration of the rows it encrypts: backups, scale down, re-encrypt, patch,
//! scale up, verify).
//!
//! Config file (`--config PATH`, else `KUBECTL_ROTATE_CONFIG`, else
//! `~/.config/kubectl-rotate/config.yaml`; schema in the README):
//! ```yaml
//! presets:
//!   stripe:
//!     secret: stripe
//!     key: api-key
//!   orders-db:
//!     secret: orders
//!     key: password
//!     postgres:
//!       server: service/orders-db:5432   # or pod/NAME:PORT, or HOST:PORT outside the cluster
//!       database: orders
//!       user: orders
//!       admin: {user: postgres, secret: orders-db-admin, key: postgres-password}
//!   sessions:
//!     secret: orders
//!     key: redis-password
//!     redis:
//!       server: service/sessions:6379
//!       user: orders                   # ACL user; default: default
//!       replicas: [pod/sessions-replica-0:6379]   # besides those found by INFO replication
//!   orders-key:
//!     secret: orders
//!     key: data-key
//!     generate: fernet
//!     encryption:                      # marks the key as a data encryption key
//!       server: service/orders-db:5432
//!       database: orders
//!       admin: {user: postgres, secret: orders-db-admin, key: postgres-password}
//!       columns: [{table: customers, key: id, column: notes}]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::plan::checks::KeyKind;
use crate::plan::steps::{AdminLogin, Tls, TlsMode};
use crate::values::Generator;

/// Where a preset's new value comes from by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DefaultSource {
    /// Generated with this generator unless the user supplies a value.
    Generate(#[serde(serialize_with = "generator_name")] Generator),
    /// The user supplies it (a hidden prompt on a terminal, or --from-stdin/--from-file/--from-env).
    Supplied,
}

fn generator_name<S: serde::Serializer>(
    g: &Generator,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(generator_str(*g))
}

pub fn generator_str(g: Generator) -> &'static str {
    match g {
        Generator::Password => "password",
        Generator::Hex => "hex",
        Generator::Token => "token",
        Generator::Fernet => "fernet",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preset {
    pub name: String,
    pub description: String,
    /// The service named in the stakeholder notice.
    pub service: String,
    /// What is rotated, in words, for the notice ("the OpenAI API key").
    pub secret_type: String,
    pub secret: String,
    pub key: String,
    pub source: DefaultSource,
    pub length: Option<usize>,
    /// What the value must look like; checked before anything is written.
    pub kind: KeyKind,
    /// `verify --logs` pattern that shows the app loaded the value.
    pub verify_logs: Option<String>,
    /// `verify --health` PORT/PATH.
    pub verify_health: Option<String>,
    pub downtime: String,
    pub impact: String,
    /// The procedure's steps outside the cluster, shown in the preview.
    pub steps: Vec<String>,
    /// Reminders printed after a successful rotation.
    pub after: Vec<String>,
    /// `built-in`, or the config file it came from.
    pub origin: String,
    /// The value is a PostgreSQL role's password: the database changes with the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSettings>,
    /// The value is a Redis user's password: the server changes with the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSettings>,
    /// The value is a data encryption key: the rows it encrypts move to the new key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSettings>,
}

/// Where a data encryption key's Fernet tokens are, and who may rewrite them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSettings {
    /// The PostgreSQL server: `service/NAME:PORT`, `pod/NAME:PORT` or `HOST:PORT`.
    pub server: String,
    pub database: String,
    /// The login that rewrites the rows (and whose `pg_dump` backs them up).
    pub admin: AdminLogin,
    pub tls: Tls,
    /// The columns holding tokens, each with its table's primary key.
    pub columns: Vec<crate::plan::steps::Column>,
    /// `scale-down` (the runbook's) or `keyring`.
    pub strategy: Strategy,
    /// The app team's own migration, run as a Job instead of the built-in re-encryption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<crate::plan::steps::JobSpec>,
    /// How the app splits a key list (key-ring mode).
    pub separator: String,
}

/// Where a preset's Redis user lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisSettings {
    /// The primary: `service/NAME:PORT`, `pod/NAME:PORT` (through the API server) or `HOST:PORT`.
    pub server: String,
    /// The ACL user (`default`: the one `requirepass` and `AUTH password` use).
    pub user: String,
    /// Replicas besides those the primary reports that are pods of the namespace.
    pub replicas: Vec<String>,
    /// `None`: overlap when the server has ACLs, else requirepass.
    pub strategy: Option<Strategy>,
}

/// How a rotation changes a PostgreSQL password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// PostgreSQL: one role; its password changes in place (old pods fail new logins until replaced).
    SingleUser,
    /// PostgreSQL: two roles with the same rights; each rotation switches the Secret to the other one.
    AlternatingUsers,
    /// Redis 6+: the user has both passwords while the pods roll over; the old one goes last.
    Overlap,
    /// Redis: CONFIG SET requirepass replaces the password at once (a server without ACLs).
    Requirepass,
    /// Data encryption key: the runbook's procedure; the consumers are stopped during the migration.
    ScaleDown,
    /// Data encryption key, no downtime: the Secret holds new,old while the rows move (the app must accept a key list).
    Keyring,
}

impl Strategy {
    /// The preview's Downtime and Impact lines for this strategy, where they differ from the
    /// preset's (single user is the runbook's procedure, whose text the preset carries).
    pub fn downtime_and_impact(self, user: &str, clone: &str) -> Option<(String, String)> {
        match self {
            Strategy::SingleUser | Strategy::ScaleDown => None,
            Strategy::Keyring => Some((
                "none expected (key ring: the app reads the old and the new key while the rows move)".into(),
                "None: the consumers roll out twice; the rows move in short transactions while they serve".into(),
            )),
            Strategy::Overlap => Some((
                "none expected (overlap: the old and the new password both work until the rollout is over)".into(),
                format!(
                    "None: Redis user {user} keeps the old password until no pod uses it; connections are never cut"
                ),
            )),
            Strategy::Requirepass => Some((
                "a short window (requirepass): from CONFIG SET requirepass until each old pod is replaced, its new \
                 connections are refused; open connections go on"
                    .into(),
                "Pods that open a new Redis connection before they are replaced fail it; CONFIG SET requirepass also \
                 drops every other password of the default user"
                    .into(),
            )),
            Strategy::AlternatingUsers => Some((
                "none expected (alternating users: the old role keeps working until its pods are replaced)".into(),
                format!(
                    "None: pods switch between roles {user} and {clone}; the old role's login is disabled only after the rollout"
                ),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
            Strategy::Overlap => "overlap",
            Strategy::Requirepass => "requirepass",
            Strategy::ScaleDown => "scale-down",
            Strategy::Keyring => "keyring",
        }
    }

    /// Whether it is a strategy for a PostgreSQL preset.
    pub fn for_postgres(self) -> bool {
        matches!(self, Strategy::SingleUser | Strategy::AlternatingUsers)
    }

    /// Whether it is a strategy for a Redis preset.
    pub fn for_redis(self) -> bool {
        matches!(self, Strategy::Overlap | Strategy::Requirepass)
    }

    /// Whether it is a strategy for a data encryption key's preset.
    pub fn for_encryption(self) -> bool {
        matches!(self, Strategy::ScaleDown | Strategy::Keyring)
    }
}

/// Where a preset's PostgreSQL role lives and who may change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSettings {
    /// `service/NAME:PORT`, `pod/NAME:PORT` (through the API server) or `HOST:PORT`.
    pub server: String,
    pub database: String,
    /// The role whose password the key holds (alternating users: the first of the two).
    pub user: String,
    /// The Secret key naming the role the pods log in as (alternating users).
    pub user_key: String,
    /// The second role of alternating users.
    pub clone_user: String,
    /// The login that changes passwords; `None`: the role itself (single user only).
    pub admin: Option<AdminLogin>,
    pub strategy: Strategy,
    /// TLS to a server reached directly.
    pub tls: Tls,
}

/// The runbook's presets this tool can carry out completely.
pub fn built_in() -> Vec<Preset> {
    vec![Preset {
        name: "openai".into(),
        description: "Rotate the OpenAI API key (the runbook's OpenAI procedure)".into(),
        service: "AI Agents".into(),
        secret_type: "the OpenAI API key".into(),
        secret: "app-secrets".into(),
        key: "openai-api-key".into(),
        source: DefaultSource::Supplied,
        length: None,
        kind: KeyKind::OpenAi,
        verify_logs: Some("(?i)secrets loaded".into()),
        verify_health: None,
        downtime: "Minimal (rolling restart, requests queued)".into(),
        impact: "None - API calls can be queued during restart".into(),
        steps: vec!["Get the new API key from https://platform.openai.com/account/api-keys first".into()],
        after: vec![
            "Revoke the old key at https://platform.openai.com/account/api-keys (optional, for security); \
             it keeps working until you do, which is what made this rotation safe"
                .into(),
        ],
        origin: "built-in".into(),
        postgres: None,
        redis: None,
        encryption: None,
    },
    Preset {
        name: "postgres".into(),
        description: "Rotate the PostgreSQL password in the database and the Secret (the runbook's PostgreSQL procedure)".into(),
        service: "AI Agents".into(),
        secret_type: "the PostgreSQL database password".into(),
        secret: "app-secrets".into(),
        key: "postgres-password".into(),
        // 32 URL-safe characters: a connection string needs no escaping.
        source: DefaultSource::Generate(Generator::Token),
        length: Some(32),
        kind: KeyKind::Opaque,
        verify_logs: Some("database.*healthy".into()),
        verify_health: None,
        downtime: "2-3 minutes (rolling restart)".into(),
        impact: "All pods will temporarily lose database connectivity".into(),
        steps: Vec::new(),
        after: Vec::new(),
        origin: "built-in".into(),
        postgres: Some(PostgresSettings {
            server: "service/postgres:5432".into(),
            database: "ai_agents".into(),
            user: "ai_agents".into(),
            user_key: "postgres-user".into(),
            clone_user: "ai_agents_clone".into(),
            admin: Some(AdminLogin {
                user: "postgres".into(),
                secret: "postgres-admin".into(),
                key: "postgres-password".into(),
            }),
            strategy: Strategy::SingleUser,
            tls: Tls::default(),
        }),
        redis: None,
        encryption: None,
    },
    Preset {
        name: "redis".into(),
        description: "Rotate the Redis password on the server and in the Secret, with an overlap (the runbook's Redis procedure)".into(),
        service: "AI Agents".into(),
        secret_type: "the Redis password".into(),
        secret: "app-secrets".into(),
        key: "redis-password".into(),
        // The runbook: a 32-character password; URL-safe, so a redis:// URL needs no escaping.
        source: DefaultSource::Generate(Generator::Token),
        length: Some(32),
        kind: KeyKind::Opaque,
        verify_logs: Some("redis.*healthy".into()),
        verify_health: None,
        // The runbook says 2-3 minutes and a cache miss for in-flight data, for its manual
        // procedure; the overlap (the default) has none.
        downtime: "None expected (overlap: old and new password both work during the rollout)".into(),
        impact: "None: connections are never cut, no data loss".into(),
        steps: Vec::new(),
        after: Vec::new(),
        origin: "built-in".into(),
        postgres: None,
        redis: Some(RedisSettings {
            server: "service/redis:6379".into(),
            user: "default".into(),
            replicas: Vec::new(),
            strategy: None,
        }),
        encryption: None,
    },
    Preset {
        name: "encryption-key".into(),
        description: "Rotate the data encryption key and re-encrypt the rows it protects (the runbook's encryption-key procedure)".into(),
        service: "AI Agents".into(),
        secret_type: "the data encryption key (tenant configs)".into(),
        secret: "app-secrets".into(),
        key: "encryption-key".into(),
        // A Fernet key, as Python's `Fernet.generate_key()` makes it.
        source: DefaultSource::Generate(Generator::Fernet),
        length: None,
        kind: KeyKind::Fernet,
        verify_logs: Some("Tenant configs decrypted".into()),
        verify_health: None,
        downtime: "Consumers scaled to 0 during the migration (the runbook plans 30+ minutes)".into(),
        impact: "Tenant configs inaccessible during the migration (the consumers are stopped)".into(),
        steps: Vec::new(),
        after: vec![
            "Keep the key file and the database dump until you are sure (then delete them securely); \
             the old key stays in the backup Secret too"
                .into(),
        ],
        origin: "built-in".into(),
        postgres: None,
        redis: None,
        encryption: Some(EncryptionSettings {
            server: "service/postgres:5432".into(),
            database: "ai_agents".into(),
            admin: AdminLogin {
                user: "postgres".into(),
                secret: "postgres-admin".into(),
                key: "postgres-password".into(),
            },
            tls: Tls::default(),
            columns: vec![crate::plan::steps::Column {
                table: "tenant_configs".into(),
                key: "tenant_id".into(),
                column: "config".into(),
            }],
            strategy: Strategy::ScaleDown,
            separator: ",".into(),
            job: None,
        }),
    }]
}

/// One preset as the config file writes it; every field but `secret` and `key` is optional
/// (and for a preset overriding a built-in, those too).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PresetConfig {
    description: Option<String>,
    service: Option<String>,
    secret_type: Option<String>,
    secret: Option<String>,
    key: Option<String>,
    /// `password`, `hex`, `token`, `fernet`; absent: the user supplies the value.
    generate: Option<GeneratorName>,
    length: Option<usize>,
    /// `openai`, `fernet`, `opaque`.
    kind: Option<KindName>,
    verify: Option<VerifyConfig>,
    downtime: Option<String>,
    impact: Option<String>,
    steps: Option<Vec<String>>,
    after: Option<Vec<String>>,
    postgres: Option<PostgresConfig>,
    redis: Option<RedisConfig>,
    encryption: Option<EncryptionConfig>,
}

/// `encryption:` of a preset; every field optional when it overrides a built-in's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EncryptionConfig {
    server: Option<String>,
    database: Option<String>,
    admin: Option<AdminConfig>,
    tls: Option<TlsMode>,
    ca_file: Option<String>,
    columns: Option<Vec<ColumnConfig>>,
    /// `scale-down` or `keyring`.
    strategy: Option<Strategy>,
    /// Between the keys of a key ring (default `,`).
    separator: Option<String>,
    /// The app's own migration: `{image, command, env}`.
    job: Option<JobConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JobConfig {
    image: String,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    /// Kubernetes `EnvVar`s, as a container spec writes them.
    #[serde(default)]
    env: Vec<serde_json::Value>,
    /// The container's `SecurityContext`, as a container spec writes it.
    security_context: Option<serde_json::Value>,
    /// The pod's `PodSecurityContext`, as a pod spec writes it.
    pod_security_context: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnConfig {
    table: String,
    key: String,
    column: String,
}

/// `redis:` of a preset; every field optional when it overrides a built-in's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RedisConfig {
    server: Option<String>,
    user: Option<String>,
    replicas: Option<Vec<String>>,
    strategy: Option<Strategy>,
}

/// `postgres:` of a preset; every field optional when it overrides a built-in's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PostgresConfig {
    server: Option<String>,
    database: Option<String>,
    user: Option<String>,
    user_key: Option<String>,
    clone_user: Option<String>,
    /// Absent: as before (none for a new preset); `null`: the role changes its own password.
    #[serde(default, deserialize_with = "present")]
    admin: Option<Option<AdminConfig>>,
    strategy: Option<Strategy>,
    /// `disable`, `prefer` (default), `require`, `verify-full`: for a server at HOST:PORT.
    tls: Option<TlsMode>,
    /// The CA (PEM) that `tls: verify-full` trusts.
    ca_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminConfig {
    user: String,
    secret: String,
    key: String,
}

impl AdminConfig {
    /// The login as the plan uses it.
    fn login(self) -> AdminLogin {
        AdminLogin {
            user: self.user,
            secret: self.secret,
            key: self.key,
        }
    }
}

impl ColumnConfig {
    /// The column as the plan uses it.
    fn column(self) -> crate::plan::steps::Column {
        crate::plan::steps::Column {
            table: self.table,
            key: self.key,
            column: self.column,
        }
    }
}

/// A field that may be given as `null` (`Some(None)`), unlike an absent one (`None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum GeneratorName {
    Password,
    Hex,
    Token,
    Fernet,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindName {
    Openai,
    Fernet,
    Opaque,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyConfig {
    logs: Option<String>,
    health: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    presets: BTreeMap<String, PresetConfig>,
}

/// Where the config file is: `--config`, else `KUBECTL_ROTATE_CONFIG`, else the user's config
/// directory. Whether it must exist: only when named explicitly.
pub fn config_path(
    flag: Option<&Path>,
    env: Option<&std::ffi::OsStr>,
    home: Option<&Path>,
) -> Option<(PathBuf, bool)> {
    if let Some(path) = flag {
        return Some((path.to_path_buf(), true));
    }
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".config")))?;
    Some((base.join("kubectl-rotate").join("config.yaml"), false))
}

/// The built-in presets, extended and overridden by the config file's `text` (read from `path`).
pub fn merge_config(mut presets: Vec<Preset>, text: &str, path: &Path) -> Result<Vec<Preset>> {
    let shown = path.display();
    let file = parse_config(text, path)?;
    for (name, config) in file.presets {
        let line = line_of(text, &name);
        let at = |field: &str| format!("{shown}:{line}: preset {name:?}: {field}");
        check_name(&name, &at)?;
        let existing = presets.iter().position(|p| p.name == name);
        let mut preset = match existing {
            Some(i) => presets.remove(i),
            None => new_preset(&name, &config, &at)?,
        };
        merge_preset(&mut preset, config, &at)?;
        check_merged(&preset, &at)?;
        preset.origin = shown.to_string();
        presets.push(preset);
    }
    presets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(presets)
}

/// The config file's `text`, parsed; an error leads with `path`, line and column.
fn parse_config(text: &str, path: &Path) -> Result<ConfigFile> {
    let shown = path.display();
    serde_saphyr::from_str(text).map_err(|e| match e.location() {
        Some(at) => anyhow!(
            "{shown}:{}:{}: {}",
            at.line(),
            at.column(),
            strip_location(&e.without_snippet().to_string())
        ),
        None => anyhow!(
            "{shown}: {}",
            strip_location(&e.without_snippet().to_string())
        ),
    })
}

/// Refuses a preset name that is not lower-case letters, digits and '-', or that is a verb's.
fn check_name(name: &str, at: &dyn Fn(&str) -> String) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(anyhow!(
            "{}: a preset name uses lower-case letters, digits and '-'",
            at("name")
        ));
    }
    if VERBS.contains(&name) {
        return Err(anyhow!(
            "{}: {name:?} is a kubectl-rotate verb; choose another name",
            at("name")
        ));
    }
    Ok(())
}

/// A preset the config file adds (no built-in has its name): it must name `secret` and
/// `key`; the rest starts from defaults that `apply` then overrides.
fn new_preset(name: &str, config: &PresetConfig, at: &dyn Fn(&str) -> String) -> Result<Preset> {
    let secret = config
        .secret
        .clone()
        .ok_or_else(|| anyhow!("{}: missing field `secret`", at("secret")))?;
    let key = config
        .key
        .clone()
        .ok_or_else(|| anyhow!("{}: missing field `key`", at("key")))?;
    Ok(Preset {
        name: name.to_string(),
        description: format!("Rotate {key} in Secret {secret}"),
        service: "the service".into(),
        secret_type: format!("{key} in {secret}"),
        secret,
        key,
        source: DefaultSource::Supplied,
        length: None,
        kind: KeyKind::Opaque,
        verify_logs: None,
        verify_health: None,
        downtime: "a rolling restart of the consumers".into(),
        impact: "not described (add `impact:` to the preset)".into(),
        steps: Vec::new(),
        after: Vec::new(),
        origin: String::new(),
        postgres: None,
        redis: None,
        encryption: None,
    })
}

/// `config` over `preset`, field by field, its `postgres:`, `redis:` and `encryption:` over
/// the preset's own settings.
fn merge_preset(
    preset: &mut Preset,
    config: PresetConfig,
    at: &dyn Fn(&str) -> String,
) -> Result<()> {
    if let Some(key) = &config.key
        && !crate::plan::patch::valid_key(key)
    {
        return Err(anyhow!("{}: {key:?} is not a valid Secret key", at("key")));
    }
    let postgres = config.postgres.clone();
    let redis = config.redis.clone();
    let encryption = config.encryption.clone();
    apply(preset, config);
    if let Some(pg) = postgres {
        preset.postgres = Some(merge_postgres(preset.postgres.take(), pg, preset, at)?);
    }
    if let Some(config) = redis {
        preset.redis = Some(merge_redis(preset.redis.take(), config, at)?);
    }
    if let Some(config) = encryption {
        preset.encryption = Some(merge_encryption(preset.encryption.take(), config, at)?);
    }
    Ok(())
}

/// Refuses a merged preset whose parts do not go together: a key of two systems, a health
/// check without a path, a log pattern that is not a regular expression.
fn check_merged(preset: &Preset, at: &dyn Fn(&str) -> String) -> Result<()> {
    if preset.encryption.is_some() && (preset.postgres.is_some() || preset.redis.is_some()) {
        return Err(anyhow!(
            "{}: a data encryption key is not also a PostgreSQL or Redis password",
            at("encryption")
        ));
    }
    if preset.postgres.is_some() && preset.redis.is_some() {
        return Err(anyhow!(
            "{}: a preset's key is either a PostgreSQL or a Redis password, not both",
            at("redis")
        ));
    }
    if let Some(health) = &preset.verify_health
        && !health.contains('/')
    {
        return Err(anyhow!(
            "{}: use PORT/PATH, e.g. 8000/health",
            at("verify.health")
        ));
    }
    if let Some(pattern) = &preset.verify_logs
        && let Err(e) = regex::Regex::new(pattern)
    {
        return Err(anyhow!(
            "{}: not a valid regular expression: {e}",
            at("verify.logs")
        ));
    }
    Ok(())
}

fn apply(preset: &mut Preset, config: PresetConfig) {
    let set = |field: &mut String, value: Option<String>| {
        if let Some(v) = value {
            *field = v;
        }
    };
    set(&mut preset.description, config.description);
    set(&mut preset.service, config.service);
    set(&mut preset.secret_type, config.secret_type);
    set(&mut preset.secret, config.secret);
    set(&mut preset.key, config.key);
    set(&mut preset.downtime, config.downtime);
    set(&mut preset.impact, config.impact);
    if let Some(generate) = config.generate {
        preset.source = DefaultSource::Generate(match generate {
            GeneratorName::Password => Generator::Password,
            GeneratorName::Hex => Generator::Hex,
            GeneratorName::Token => Generator::Token,
            GeneratorName::Fernet => Generator::Fernet,
        });
    }
    if config.length.is_some() {
        preset.length = config.length;
    }
    if let Some(kind) = config.kind {
        preset.kind = match kind {
            KindName::Openai => KeyKind::OpenAi,
            KindName::Fernet => KeyKind::Fernet,
            KindName::Opaque => KeyKind::Opaque,
        };
    }
    if let Some(verify) = config.verify {
        if verify.logs.is_some() {
            preset.verify_logs = verify.logs;
        }
        if verify.health.is_some() {
            preset.verify_health = verify.health;
        }
    }
    if let Some(steps) = config.steps {
        preset.steps = steps;
    }
    if let Some(after) = config.after {
        preset.after = after;
    }
}

/// A preset's `encryption:` over what it had (the built-in's settings, or none).
fn merge_encryption(
    before: Option<EncryptionSettings>,
    config: EncryptionConfig,
    at: &dyn Fn(&str) -> String,
) -> Result<EncryptionSettings> {
    let missing = |field: &str| {
        anyhow!(
            "{}: missing field `{field}`",
            at(&format!("encryption.{field}"))
        )
    };
    let before = before.as_ref();
    let server = config
        .server
        .or_else(|| before.map(|b| b.server.clone()))
        .ok_or_else(|| missing("server"))?;
    crate::plan::server::parse_server(&server)
        .map_err(|e| anyhow!("{}: {e}", at("encryption.server")))?;
    let database = config
        .database
        .or_else(|| before.map(|b| b.database.clone()))
        .ok_or_else(|| missing("database"))?;
    let admin = config
        .admin
        .map(AdminConfig::login)
        .or_else(|| before.map(|b| b.admin.clone()))
        .ok_or_else(|| missing("admin"))?;
    let columns = config
        .columns
        .map(|columns| columns.into_iter().map(ColumnConfig::column).collect())
        .or_else(|| before.map(|b| b.columns.clone()))
        .ok_or_else(|| missing("columns"))?;
    if columns.is_empty() {
        return Err(anyhow!(
            "{}: name at least one column holding tokens ({{table, key, column}})",
            at("encryption.columns")
        ));
    }
    let strategy = encryption_strategy(config.strategy, before, at)?;
    let separator = key_separator(config.separator, before, at)?;
    let job = migration_job(config.job, before, strategy, at)?;
    let tls = merged_tls(before.map(|b| &b.tls), config.tls, config.ca_file);
    Ok(EncryptionSettings {
        job,
        server,
        database,
        admin,
        tls,
        columns,
        strategy,
        separator,
    })
}

/// A data encryption key's strategy: the config's, else the preset's, else scale-down;
/// refused when it is another system's.
fn encryption_strategy(
    strategy: Option<Strategy>,
    before: Option<&EncryptionSettings>,
    at: &dyn Fn(&str) -> String,
) -> Result<Strategy> {
    let strategy = strategy
        .or_else(|| before.map(|b| b.strategy))
        .unwrap_or(Strategy::ScaleDown);
    if !strategy.for_encryption() {
        return Err(anyhow!(
            "{}: a data encryption key's strategy is scale-down or keyring, not {}",
            at("encryption.strategy"),
            strategy.name()
        ));
    }
    Ok(strategy)
}

/// What splits a key ring: the config's, else the preset's, else `,`; refused when it could
/// be part of a Fernet key.
fn key_separator(
    separator: Option<String>,
    before: Option<&EncryptionSettings>,
    at: &dyn Fn(&str) -> String,
) -> Result<String> {
    let separator = separator
        .or_else(|| before.map(|b| b.separator.clone()))
        .unwrap_or_else(|| ",".into());
    if separator.is_empty()
        || separator
            .chars()
            .any(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='))
    {
        return Err(anyhow!(
            "{}: {separator:?} cannot separate Fernet keys (they use letters, digits, '-', '_' and '='); use e.g. \",\"",
            at("encryption.separator")
        ));
    }
    Ok(separator)
}

/// The app's own migration Job: the config's (which must name an image), else the preset's;
/// refused with the key-ring strategy, whose migration is always the built-in one.
fn migration_job(
    job: Option<JobConfig>,
    before: Option<&EncryptionSettings>,
    strategy: Strategy,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<crate::plan::steps::JobSpec>> {
    let job = match job {
        Some(job) => {
            if job.image.is_empty() {
                return Err(anyhow!("{}: name the image", at("encryption.job.image")));
            }
            check_security_contexts(&job, at)?;
            Some(crate::plan::steps::JobSpec {
                image: job.image,
                command: job.command,
                args: job.args,
                env: job.env,
                security_context: job.security_context,
                pod_security_context: job.pod_security_context,
            })
        }
        None => before.and_then(|b| b.job.clone()),
    };
    if job.is_some() && strategy == Strategy::Keyring {
        return Err(anyhow!(
            "{}: a key-ring migration is the built-in one (online, in short transactions); a job of your own runs \
             with the scale-down strategy",
            at("encryption.job")
        ));
    }
    Ok(job)
}

/// The Job's security contexts read as Kubernetes reads them: an error names the field.
fn check_security_contexts(job: &JobConfig, at: &dyn Fn(&str) -> String) -> Result<()> {
    use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};
    if let Some(value) = &job.security_context {
        serde_json::from_value::<SecurityContext>(value.clone())
            .map_err(|e| anyhow!("{}: {e}", at("encryption.job.securityContext")))?;
    }
    if let Some(value) = &job.pod_security_context {
        serde_json::from_value::<PodSecurityContext>(value.clone())
            .map_err(|e| anyhow!("{}: {e}", at("encryption.job.podSecurityContext")))?;
    }
    Ok(())
}

/// TLS to a server reached directly: the config's mode and CA file, each else the preset's,
/// else the defaults.
fn merged_tls(before: Option<&Tls>, mode: Option<TlsMode>, ca_file: Option<String>) -> Tls {
    Tls {
        mode: mode.or(before.map(|b| b.mode)).unwrap_or_default(),
        ca_file: ca_file.or_else(|| before.and_then(|b| b.ca_file.clone())),
    }
}

/// A preset's `redis:` over what it had (a built-in's settings, or none).
fn merge_redis(
    base: Option<RedisSettings>,
    config: RedisConfig,
    at: &dyn Fn(&str) -> String,
) -> Result<RedisSettings> {
    let server = config
        .server
        .or_else(|| base.as_ref().map(|b| b.server.clone()))
        .ok_or_else(|| {
            anyhow!(
                "{}: missing field `server` (needed to reach Redis)",
                at("redis.server")
            )
        })?;
    crate::plan::server::parse_server(&server)
        .map_err(|e| anyhow!("{}: {e}", at("redis.server")))?;
    let user = config
        .user
        .or_else(|| base.as_ref().map(|b| b.user.clone()))
        .unwrap_or_else(|| "default".into());
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(anyhow!(
            "{}: {user:?} is not a Redis user name",
            at("redis.user")
        ));
    }
    let replicas = config
        .replicas
        .or_else(|| base.as_ref().map(|b| b.replicas.clone()))
        .unwrap_or_default();
    for replica in &replicas {
        crate::plan::server::parse_server(replica)
            .map_err(|e| anyhow!("{}: {e}", at("redis.replicas")))?;
    }
    let strategy = config.strategy.or(base.as_ref().and_then(|b| b.strategy));
    if let Some(strategy) = strategy
        && strategy.for_postgres()
    {
        return Err(anyhow!(
            "{}: {} is a PostgreSQL strategy; Redis takes overlap or requirepass",
            at("redis.strategy"),
            strategy.name()
        ));
    }
    Ok(RedisSettings {
        server,
        user,
        replicas,
        strategy,
    })
}

/// A preset's `postgres:` over what it had (a built-in's settings, or none).
fn merge_postgres(
    base: Option<PostgresSettings>,
    config: PostgresConfig,
    preset: &Preset,
    at: &dyn Fn(&str) -> String,
) -> Result<PostgresSettings> {
    let had = base.is_some();
    let required = |value: Option<String>, old: Option<&String>, field: &str| {
        value.or_else(|| old.cloned()).ok_or_else(|| {
            anyhow!(
                "{}: missing field `{field}` (needed to reach the database)",
                at(&format!("postgres.{field}"))
            )
        })
    };
    let server = required(config.server, base.as_ref().map(|b| &b.server), "server")?;
    crate::plan::server::parse_server(&server)
        .map_err(|e| anyhow!("{}: {e}", at("postgres.server")))?;
    let database = required(
        config.database,
        base.as_ref().map(|b| &b.database),
        "database",
    )?;
    let user = required(config.user, base.as_ref().map(|b| &b.user), "user")?;
    crate::plan::steps::check_role_name(&user)
        .map_err(|e| anyhow!("{}: {e}", at("postgres.user")))?;
    let user_key = config
        .user_key
        .or_else(|| base.as_ref().map(|b| b.user_key.clone()))
        .unwrap_or_else(|| match preset.key.strip_suffix("password") {
            Some(stem) => format!("{stem}user"),
            None => format!("{}-user", preset.key),
        });
    if !crate::plan::patch::valid_key(&user_key) {
        return Err(anyhow!(
            "{}: {user_key:?} is not a valid Secret key",
            at("postgres.userKey")
        ));
    }
    let clone_user = config
        .clone_user
        .or_else(|| {
            base.as_ref()
                .filter(|b| b.user == user)
                .map(|b| b.clone_user.clone())
        })
        .unwrap_or_else(|| format!("{user}_clone"));
    if clone_user == user {
        return Err(anyhow!(
            "{}: the clone must be another role than {user:?}",
            at("postgres.cloneUser")
        ));
    }
    let admin = match config.admin {
        Some(admin) => admin.map(AdminConfig::login),
        None if had => base.as_ref().and_then(|b| b.admin.clone()),
        None => None,
    };
    let strategy = config
        .strategy
        .or(base.as_ref().map(|b| b.strategy))
        .unwrap_or(Strategy::SingleUser);
    if strategy == Strategy::AlternatingUsers && admin.is_none() {
        return Err(anyhow!(
            "{}: alternating users need an admin login (postgres.admin) to change the second role",
            at("postgres.strategy")
        ));
    }
    let tls = merged_tls(base.as_ref().map(|b| &b.tls), config.tls, config.ca_file);
    if tls.mode == TlsMode::VerifyFull && tls.ca_file.is_none() {
        return Err(anyhow!(
            "{}: tls: verify-full needs caFile (the PEM file of the CA that signed the server's certificate)",
            at("postgres.caFile")
        ));
    }
    Ok(PostgresSettings {
        server,
        database,
        user,
        user_key,
        clone_user,
        admin,
        strategy,
        tls,
    })
}

/// The parser's message without its position (the message leads with it instead), in the
/// file's terms rather than this program's types.
fn strip_location(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    // serde names this program's own types; say what the file should hold instead.
    message
        .replace(
            "struct PresetConfig",
            "a preset (a mapping with fields such as secret, key, generate)",
        )
        .replace("struct ConfigFile", "a mapping with a `presets` field")
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .replace(
            "expected mapping start",
            "expected a mapping (`field: value` lines, such as a preset's secret, key, generate)",
        )
}

/// The line where preset `name` is declared (its `name:` key), for error messages.
fn line_of(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(&format!("{name}:"))
                || t.starts_with(&format!("\"{name}\":"))
                || t.starts_with(&format!("'{name}':"))
        })
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// The stakeholder notice of the runbook's communication template, filled in.
pub fn notice(preset: &Preset, date: &str, contact: &str) -> String {
    format!(
        "NOTICE: Scheduled Secret Rotation\n\n\
         Service: {service}\n\
         Date: {date}\n\
         Duration: {downtime}\n\
         Impact: {impact}\n\n\
         We will be rotating {secret_type} to enhance security.\n\
         No action required from users.\n\n\
         If you experience issues, please contact {contact}.\n",
        service = preset.service,
        downtime = preset.downtime,
        impact = preset.impact,
        secret_type = preset.secret_type,
    )
}

/// The `presets` table rows: name, Secret/key, source, downtime, origin.
pub fn table_rows(presets: &[Preset]) -> Vec<Vec<String>> {
    presets
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{}/{}", p.secret, p.key),
                match p.source {
                    DefaultSource::Generate(g) => format!("generated ({})", generator_str(g)),
                    DefaultSource::Supplied => "you supply it".to_string(),
                },
                p.downtime.clone(),
                p.origin.clone(),
            ]
        })
        .collect()
}

/// The verbs, which no preset may shadow.
pub const VERBS: &[&str] = &[
    "status",
    "secret",
    "rollback",
    "resume",
    "backup",
    "verify",
    "presets",
    "notice",
    "completion",
    "help",
];

/// A key that a preset describes as a data encryption key: changing it without re-encrypting
/// the rows makes them unreadable.
#[derive(Debug, Clone)]
pub struct EncryptionKey {
    pub secret: String,
    pub key: String,
    pub preset: String,
    /// `table.column` of each column holding its tokens.
    pub columns: Vec<String>,
}

/// The presets this run knows: built-in and from the config file. A broken config file does
/// not stop the fixed verbs; it is reported when a preset is used or listed.
pub struct Presets {
    pub presets: Vec<Preset>,
    pub config_error: Option<String>,
}

impl Presets {
    pub fn ok(&self) -> Result<&[Preset]> {
        match &self.config_error {
            Some(problem) => Err(anyhow::anyhow!("{problem}")),
            None => Ok(&self.presets),
        }
    }

    /// The presets that describe keys of `secret`.
    pub fn of_secret<'a>(&'a self, secret: &'a str) -> impl Iterator<Item = &'a Preset> + 'a {
        self.presets.iter().filter(move |p| p.secret == secret)
    }

    /// Where the keys of `secret` live besides the Secret, as its presets describe them.
    pub fn homes_of(&self, secret: &str) -> KeyHomes {
        KeyHomes {
            postgres: self.databases_of(secret),
            redis: self.redis_of(secret),
            encryption: self
                .of_secret(secret)
                .filter_map(|p| p.encryption.clone().map(|e| (p.key.clone(), e)))
                .collect(),
        }
    }

    /// The keys of `secret` that a PostgreSQL preset describes, with its settings (rolled back
    /// in the database too; verified by logging in).
    pub fn databases_of(&self, secret: &str) -> Vec<(String, PostgresSettings)> {
        self.presets
            .iter()
            .filter(|p| p.secret == secret)
            .filter_map(|p| p.postgres.clone().map(|pg| (p.key.clone(), pg)))
            .collect()
    }

    /// Every data encryption key a preset describes: (Secret, key, preset).
    pub fn encryption_keys(&self) -> Vec<EncryptionKey> {
        self.presets
            .iter()
            .filter(|p| p.encryption.is_some())
            .map(|p| EncryptionKey {
                secret: p.secret.clone(),
                key: p.key.clone(),
                preset: p.name.clone(),
                columns: p
                    .encryption
                    .iter()
                    .flat_map(|e| e.columns.iter().map(|c| c.to_string()))
                    .collect(),
            })
            .collect()
    }

    /// The keys of `secret` that a Redis preset describes, with its settings.
    pub fn redis_of(&self, secret: &str) -> Vec<(String, RedisSettings)> {
        self.presets
            .iter()
            .filter(|p| p.secret == secret)
            .filter_map(|p| p.redis.clone().map(|r| (p.key.clone(), r)))
            .collect()
    }
}

/// The systems besides the Secret that a Secret's keys live in, as its presets describe them:
/// (key, settings) per system.
#[derive(Debug, Clone, Default)]
pub struct KeyHomes {
    pub postgres: Vec<(String, PostgresSettings)>,
    pub redis: Vec<(String, RedisSettings)>,
    pub encryption: Vec<(String, EncryptionSettings)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_listing_spells_kinds_as_the_config_file_does() {
        let openai = built_in().into_iter().find(|p| p.name == "openai").unwrap();
        let json = serde_json::to_value(&openai).unwrap();
        assert_eq!(json["kind"], "openai");
    }

    fn merge(text: &str) -> Result<Vec<Preset>> {
        merge_config(built_in(), text, Path::new("/etc/rotate.yaml"))
    }

    #[test]
    fn the_minimal_config_adds_a_preset() {
        let presets = merge("presets:\n  stripe:\n    secret: stripe\n    key: api-key\n").unwrap();
        let stripe = presets.iter().find(|p| p.name == "stripe").unwrap();
        assert_eq!(
            (stripe.secret.as_str(), stripe.key.as_str()),
            ("stripe", "api-key")
        );
        assert_eq!(stripe.source, DefaultSource::Supplied);
        assert_eq!(stripe.origin, "/etc/rotate.yaml");
        assert!(presets.iter().any(|p| p.name == "openai"));
    }

    #[test]
    fn a_config_entry_overrides_a_built_in_field_by_field() {
        let presets =
            merge("presets:\n  openai:\n    secret: ai-secrets\n    downtime: none\n").unwrap();
        let openai = presets.iter().find(|p| p.name == "openai").unwrap();
        assert_eq!(openai.secret, "ai-secrets");
        assert_eq!(openai.key, "openai-api-key");
        assert_eq!(openai.downtime, "none");
        assert_eq!(openai.kind, KeyKind::OpenAi);
    }

    #[test]
    fn every_optional_field_is_read() {
        let text = "presets:\n  session:\n    secret: web\n    key: session-key\n    generate: fernet\n    kind: fernet\n    \
                    verify:\n      logs: started\n      health: 8080/healthz\n    downtime: 1 minute\n    impact: users log in again\n    \
                    steps: [tell support]\n    after: [check dashboards]\n    service: Web\n    secretType: the session key\n";
        let presets = merge(text).unwrap();
        let p = presets.iter().find(|p| p.name == "session").unwrap();
        assert_eq!(p.source, DefaultSource::Generate(Generator::Fernet));
        assert_eq!(p.verify_health.as_deref(), Some("8080/healthz"));
        assert_eq!(p.after, ["check dashboards"]);
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let err = merge("presets:\n  stripe:\n    secret: stripe\n    kee: api-key\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/rotate.yaml:4:"), "{err}");
        assert!(err.contains("unknown field `kee`"), "{err}");
        // A wrong type names what was expected in the file's terms, not a Rust type.
        let err = merge("presets:\n  stripe: just-a-string\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/rotate.yaml:2:"), "{err}");
        assert!(err.contains("expected a mapping"), "{err}");
        assert!(!err.contains("PresetConfig"), "{err}");
        let err = merge("presets:\n  stripe:\n    secret: stripe\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/etc/rotate.yaml:2: preset \"stripe\": key: missing field `key`"
        );
        let err = merge("presets:\n  web:\n    secret: s\n    key: k\n    generate: uuid\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/rotate.yaml:5:") && err.contains("uuid"),
            "{err}"
        );
        let err = merge("presets:\n  secret:\n    secret: s\n    key: k\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a kubectl-rotate verb"), "{err}");
        let err =
            merge("presets:\n  web:\n    secret: s\n    key: k\n    verify:\n      logs: '('\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("verify.logs"), "{err}");
    }

    #[test]
    fn the_config_path_follows_flag_then_env_then_home() {
        let home = Path::new("/home/a");
        assert_eq!(
            config_path(Some(Path::new("/x.yaml")), None, Some(home)),
            Some(("/x.yaml".into(), true))
        );
        assert_eq!(
            config_path(None, Some("/y.yaml".as_ref()), Some(home)),
            Some(("/y.yaml".into(), true))
        );
        let (path, required) = config_path(None, None, Some(home)).unwrap();
        assert!(!required);
        assert!(path.ends_with("kubectl-rotate/config.yaml"));
    }

    #[test]
    fn the_presets_table_matches_its_snapshot() {
        let rows = table_rows(&built_in());
        let lines = crate::ui::table::render(
            &["PRESET", "SECRET/KEY", "VALUE", "DOWNTIME", "FROM"],
            &rows,
        );
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn the_openai_notice_matches_its_snapshot() {
        let openai = &built_in()[0];
        insta::assert_snapshot!(notice(openai, "2026-12-01 02:00 UTC", "#platform-oncall"));
    }

    #[test]
    fn a_config_describes_any_apps_postgres_credential() {
        let presets = merge(
            "presets:\n  orders-db:\n    secret: orders\n    key: password\n    postgres:\n      \
             server: db.internal:5432\n      database: orders\n      user: orders\n      \
             admin: {user: postgres, secret: orders-admin, key: pw}\n      strategy: alternating-users\n",
        )
        .unwrap();
        let pg = presets
            .iter()
            .find(|p| p.name == "orders-db")
            .and_then(|p| p.postgres.clone())
            .unwrap();
        assert_eq!(pg.server, "db.internal:5432");
        assert_eq!(pg.user_key, "user");
        assert_eq!(pg.clone_user, "orders_clone");
        assert_eq!(pg.strategy, Strategy::AlternatingUsers);
        assert_eq!(pg.admin.unwrap().secret, "orders-admin");
    }

    #[test]
    fn a_config_may_drop_the_built_in_admin_and_must_name_a_server() {
        let presets = merge("presets:\n  postgres:\n    postgres:\n      admin: null\n").unwrap();
        let pg = presets
            .iter()
            .find(|p| p.name == "postgres")
            .and_then(|p| p.postgres.clone())
            .unwrap();
        assert_eq!(pg.admin, None);
        assert_eq!(pg.server, "service/postgres:5432");
        let err =
            merge("presets:\n  db:\n    secret: s\n    key: k\n    postgres:\n      user: u\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("postgres.server: missing field `server`"),
            "{err}"
        );
        let err = merge(
            "presets:\n  postgres:\n    postgres:\n      admin: null\n      strategy: alternating-users\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("alternating users need an admin login"),
            "{err}"
        );
        let err = merge("presets:\n  postgres:\n    postgres:\n      server: deployment/db:5432\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not pod or service"), "{err}");
    }

    fn at(field: &str) -> String {
        format!("here: {field}")
    }

    #[test]
    fn a_preset_name_is_lower_case_and_no_verb() {
        assert!(check_name("orders-db2", &at).is_ok());
        for bad in ["", "Orders", "orders_db", "orders db"] {
            let err = check_name(bad, &at).unwrap_err().to_string();
            assert_eq!(
                err, "here: name: a preset name uses lower-case letters, digits and '-'",
                "{bad:?}"
            );
        }
        let err = check_name("verify", &at).unwrap_err().to_string();
        assert_eq!(
            err,
            "here: name: \"verify\" is a kubectl-rotate verb; choose another name"
        );
    }

    #[test]
    fn a_new_preset_needs_a_secret_and_a_key_and_describes_itself_from_them() {
        let config = PresetConfig {
            secret: Some("web".into()),
            key: Some("token".into()),
            ..PresetConfig::default()
        };
        let preset = new_preset("web", &config, &at).unwrap();
        assert_eq!(preset.description, "Rotate token in Secret web");
        assert_eq!(preset.secret_type, "token in web");
        assert_eq!(preset.source, DefaultSource::Supplied);
        let no_secret = PresetConfig {
            secret: None,
            ..config.clone()
        };
        let err = new_preset("web", &no_secret, &at).unwrap_err().to_string();
        assert_eq!(err, "here: secret: missing field `secret`");
        let no_key = PresetConfig {
            key: None,
            ..config
        };
        let err = new_preset("web", &no_key, &at).unwrap_err().to_string();
        assert_eq!(err, "here: key: missing field `key`");
    }

    #[test]
    fn a_merged_preset_is_the_password_of_one_system_with_a_health_path() {
        let mut preset = built_in()
            .into_iter()
            .find(|p| p.encryption.is_some())
            .unwrap();
        assert!(check_merged(&preset, &at).is_ok());
        preset.redis = Some(RedisSettings {
            server: "service/redis:6379".into(),
            user: "default".into(),
            replicas: Vec::new(),
            strategy: None,
        });
        let err = check_merged(&preset, &at).unwrap_err().to_string();
        assert!(err.starts_with("here: encryption: "), "{err}");
        preset.encryption = None;
        assert!(check_merged(&preset, &at).is_ok());
        preset.verify_health = Some("8000".into());
        let err = check_merged(&preset, &at).unwrap_err().to_string();
        assert_eq!(err, "here: verify.health: use PORT/PATH, e.g. 8000/health");
    }

    #[test]
    fn an_encryption_key_takes_only_an_encryption_strategy_scale_down_by_default() {
        assert_eq!(
            encryption_strategy(None, None, &at).unwrap(),
            Strategy::ScaleDown
        );
        assert_eq!(
            encryption_strategy(Some(Strategy::Keyring), None, &at).unwrap(),
            Strategy::Keyring
        );
        let err = encryption_strategy(Some(Strategy::Overlap), None, &at)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "here: encryption.strategy: a data encryption key's strategy is scale-down or keyring, not overlap"
        );
    }

    #[test]
    fn a_key_ring_separator_is_a_comma_by_default_and_never_part_of_a_fernet_key() {
        assert_eq!(key_separator(None, None, &at).unwrap(), ",");
        assert_eq!(key_separator(Some(";".into()), None, &at).unwrap(), ";");
        for bad in ["", "a", "-", "_", "="] {
            let err = key_separator(Some(bad.into()), None, &at)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("here: encryption.separator: "), "{err}");
        }
    }

    #[test]
    fn a_migration_job_names_an_image_and_runs_only_with_scale_down() {
        let job = |image: &str| JobConfig {
            image: image.into(),
            command: vec!["migrate".into()],
            args: Vec::new(),
            env: Vec::new(),
            security_context: None,
            pod_security_context: None,
        };
        let spec = migration_job(Some(job("app:1")), None, Strategy::ScaleDown, &at)
            .unwrap()
            .unwrap();
        assert_eq!((spec.image.as_str(), spec.command.len()), ("app:1", 1));
        assert_eq!(
            migration_job(None, None, Strategy::Keyring, &at).unwrap(),
            None
        );
        let err = migration_job(Some(job("")), None, Strategy::ScaleDown, &at)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "here: encryption.job.image: name the image");
        let err = migration_job(Some(job("app:1")), None, Strategy::Keyring, &at)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("here: encryption.job: "), "{err}");
        let root = JobConfig {
            security_context: Some(serde_json::json!({"runAsUser": 0})),
            pod_security_context: Some(
                serde_json::json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            ),
            ..job("app:1")
        };
        let spec = migration_job(Some(root), None, Strategy::ScaleDown, &at)
            .unwrap()
            .unwrap();
        assert_eq!(
            spec.security_context,
            Some(serde_json::json!({"runAsUser": 0}))
        );
        assert!(spec.pod_security_context.is_some());
        let err = migration_job(
            Some(JobConfig {
                security_context: Some(serde_json::json!({"runAsUser": "root"})),
                ..job("app:1")
            }),
            None,
            Strategy::ScaleDown,
            &at,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("here: encryption.job.securityContext: "),
            "{err}"
        );
    }

    #[test]
    fn tls_takes_each_of_the_configs_fields_over_the_presets() {
        let before = Tls {
            mode: TlsMode::VerifyFull,
            ca_file: Some("/ca.pem".into()),
        };
        assert_eq!(merged_tls(None, None, None), Tls::default());
        assert_eq!(merged_tls(Some(&before), None, None), before);
        assert_eq!(
            merged_tls(Some(&before), Some(TlsMode::Require), None),
            Tls {
                mode: TlsMode::Require,
                ca_file: Some("/ca.pem".into())
            }
        );
        assert_eq!(
            merged_tls(Some(&before), None, Some("/other.pem".into())).ca_file,
            Some("/other.pem".into())
        );
    }

    #[test]
    fn an_encryption_key_needs_a_server_and_at_least_one_column() {
        let err = merge(
            "presets:\n  k:\n    secret: s\n    key: k\n    encryption:\n      database: d\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "/etc/rotate.yaml:2: preset \"k\": encryption.server: missing field `server`"
        );
        let err = merge(
            "presets:\n  k:\n    secret: s\n    key: k\n    encryption:\n      server: db:5432\n      \
             database: d\n      admin: {user: u, secret: a, key: p}\n      columns: []\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("encryption.columns: name at least one column"),
            "{err}"
        );
    }
}

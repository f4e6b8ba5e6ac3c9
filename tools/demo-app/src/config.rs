//! Configuration of the demo app: plain settings from environment variables, and the four
//! secrets of the Kubernetes Secret `app-secrets`, read from the environment or from files in a
//! directory (the way a Secret volume presents them) and validated the way the runbook's app
//! does at start-up. Secret values never leave this module in printable form: [`Secret`] has no
//! `Display` and its `Debug` is redacted.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine as _;
use fernet::{Fernet, MultiFernet};
use regex::Regex;

/// Where a Secret volume is mounted when `AI_AGENTS_SECRETS_DIR` is not set.
const DEFAULT_SECRETS_DIR: &str = "/etc/ai-agents/secrets";

/// A secret value. Only [`Secret::expose`] gives the text, to hand it to a client library.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One key of `app-secrets`: its name (also the file name in the secrets directory) and the
/// environment variables that may carry it, first match wins.
struct SecretSource {
    key: &'static str,
    env: &'static [&'static str],
}

const POSTGRES_PASSWORD: SecretSource = SecretSource {
    key: "postgres-password",
    env: &["AI_AGENTS_POSTGRES_PASSWORD", "DATABASE_PASSWORD"],
};
const REDIS_PASSWORD: SecretSource = SecretSource {
    key: "redis-password",
    env: &["AI_AGENTS_REDIS_PASSWORD"],
};
const OPENAI_API_KEY: SecretSource = SecretSource {
    key: "openai-api-key",
    env: &["AI_AGENTS_OPENAI_API_KEY", "OPENAI_API_KEY"],
};
const ENCRYPTION_KEY: SecretSource = SecretSource {
    key: "encryption-key",
    env: &["AI_AGENTS_ENCRYPTION_KEY"],
};

/// The validated secrets. The encryption key is kept only as the ready cipher.
pub struct Secrets {
    pub postgres_password: Secret,
    pub redis_password: Secret,
    /// Validated but unused: the demo makes no OpenAI calls, yet a bad key must stop start-up.
    #[allow(dead_code)]
    pub openai_api_key: Secret,
    pub fernet: MultiFernet,
}

/// Non-secret settings, each from an environment variable with the runbook app's default.
pub struct Settings {
    pub database_host: String,
    pub database_port: u16,
    pub database_user: String,
    pub database_name: String,
    pub redis_host: String,
    pub redis_port: u16,
    pub redis_user: String,
    pub listen_address: IpAddr,
    pub port: u16,
    pub pool_recycle: Duration,
    pub secrets_dir: PathBuf,
}

impl Settings {
    /// Reads the settings; the error names the variable that is wrong.
    pub fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            database_host: text("DATABASE_HOST", "127.0.0.1"),
            database_port: parsed("DATABASE_PORT", 5432)?,
            database_user: text("DATABASE_USER", "ai_agents"),
            database_name: text("DATABASE_NAME", "ai_agents"),
            redis_host: text("REDIS_HOST", "127.0.0.1"),
            redis_port: parsed("REDIS_PORT", 6379)?,
            redis_user: text("REDIS_USER", "default"),
            listen_address: parsed("LISTEN_ADDRESS", IpAddr::from([0, 0, 0, 0]))?,
            port: parsed("PORT", 8000)?,
            pool_recycle: Duration::from_secs(parsed("POOL_RECYCLE_SECONDS", 5)?),
            secrets_dir: PathBuf::from(text("AI_AGENTS_SECRETS_DIR", DEFAULT_SECRETS_DIR)),
        })
    }
}

fn text(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map_err(|_| format!("Configuration error: {name} is not valid: {v:?}")),
        _ => Ok(default),
    }
}

/// Reads and validates all four secrets, in the order of the Secret's keys. The error is the
/// whole log line (`Secret validation failed: ...`) and never contains a value.
pub fn load_secrets(dir: &Path) -> Result<Secrets, String> {
    let postgres_password = required(&POSTGRES_PASSWORD, dir)?;
    let redis_password = required(&REDIS_PASSWORD, dir)?;
    let openai_api_key = required(&OPENAI_API_KEY, dir)?;
    let encryption_key = required(&ENCRYPTION_KEY, dir)?;
    if !looks_like_openai_key(openai_api_key.expose()) {
        return Err(failed("openai-api-key does not look like an OpenAI key"));
    }
    let fernet = fernet_ring(encryption_key.expose())
        .ok_or_else(|| failed("encryption-key is not a Fernet key (or a list of them)"))?;
    Ok(Secrets {
        postgres_password,
        redis_password,
        openai_api_key,
        fernet,
    })
}

/// Reads only the encryption key, for the `seed`, `encrypt` and `decrypt` commands.
pub fn load_fernet(dir: &Path) -> Result<MultiFernet, String> {
    let key = required(&ENCRYPTION_KEY, dir)?;
    fernet_ring(key.expose())
        .ok_or_else(|| failed("encryption-key is not a Fernet key (or a list of them)"))
}

/// The encryption key, or a key ring: Fernet keys separated by `,` (no spaces), the first of
/// which encrypts and any of which decrypts, as Python's `MultiFernet` does. A ring is what
/// lets the key change without downtime: `new,old` while the data moves, then `new`.
pub fn fernet_ring(text: &str) -> Option<MultiFernet> {
    let keys = text
        .split(',')
        .map(fernet_from_key)
        .collect::<Option<Vec<Fernet>>>()?;
    (!keys.is_empty()).then(|| MultiFernet::new(keys))
}

fn failed(what: &str) -> String {
    format!("Secret validation failed: {what}")
}

fn required(source: &SecretSource, dir: &Path) -> Result<Secret, String> {
    match read_secret(source, dir)? {
        Some(value) if !value.is_empty() => Ok(Secret(value)),
        _ => Err(failed(&format!("{} is missing", source.key))),
    }
}

/// The environment wins over the file, as an `env` entry would over a volume in a pod spec.
fn read_secret(source: &SecretSource, dir: &Path) -> Result<Option<String>, String> {
    for name in source.env {
        if let Some(value) = std::env::var_os(name) {
            let value = value
                .into_string()
                .map_err(|_| failed(&format!("{} is not valid UTF-8", source.key)))?;
            return Ok(Some(trim_line_end(value)));
        }
    }
    let path = dir.join(source.key);
    match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(|v| Some(trim_line_end(v)))
            .map_err(|_| failed(&format!("{} is not valid UTF-8", source.key))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // The io error names the path and the cause, never the content.
        Err(e) => Err(failed(&format!(
            "{} cannot be read from {}: {e}",
            source.key,
            path.display()
        ))),
    }
}

/// A value written with `echo` (not `echo -n`) ends with a newline that is not part of it.
fn trim_line_end(mut value: String) -> String {
    while value.ends_with('\n') || value.ends_with('\r') {
        value.pop();
    }
    value
}

pub fn looks_like_openai_key(value: &str) -> bool {
    // A constant pattern: it compiles, or the unit tests below fail.
    static PATTERN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^sk-[A-Za-z0-9_-]{20,}$").expect("valid pattern"));
    PATTERN.is_match(value)
}

/// A Fernet key is 32 bytes in URL-safe base64 with padding, exactly what Python's
/// `Fernet.generate_key()` prints. The check is as strict as Python's (which rejects a key
/// without its `=`), so a key this app accepts also works in the Python original.
pub fn fernet_from_key(key: &str) -> Option<Fernet> {
    let bytes = base64::engine::general_purpose::URL_SAFE.decode(key).ok()?;
    if bytes.len() != 32 {
        return None;
    }
    Fernet::new(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_key_shape() {
        assert!(looks_like_openai_key("sk-proj-new-key-123456789"));
        assert!(looks_like_openai_key("sk-abcdefghijklmnopqrstuvwxyz"));
        assert!(!looks_like_openai_key("sk-short"));
        assert!(!looks_like_openai_key("pk-abcdefghijklmnopqrstuvwxyz"));
        assert!(!looks_like_openai_key("sk-abcdefghijklmnopqrst uvwxyz"));
    }

    #[test]
    fn a_key_ring_encrypts_with_its_first_key_and_decrypts_with_any() {
        let (new, old) = (Fernet::generate_key(), Fernet::generate_key());
        let ring = fernet_ring(&format!("{new},{old}")).expect("a ring");
        let by_old = Fernet::new(&old).unwrap().encrypt(b"x");
        assert_eq!(ring.decrypt(&by_old).unwrap(), b"x");
        let token = ring.encrypt(b"y");
        assert_eq!(Fernet::new(&new).unwrap().decrypt(&token).unwrap(), b"y");
        assert!(Fernet::new(&old).unwrap().decrypt(&token).is_err());
        assert!(fernet_ring(&format!("{new}, {old}")).is_none());
        assert!(fernet_ring(&format!("{new},")).is_none());
    }

    #[test]
    fn fernet_key_shape() {
        let key = Fernet::generate_key();
        assert!(fernet_from_key(&key).is_some());
        assert!(fernet_from_key(key.trim_end_matches('=')).is_none());
        assert!(fernet_from_key("not-a-key").is_none());
        // 31 bytes of valid base64 is not a key.
        let short = base64::engine::general_purpose::URL_SAFE.encode([7u8; 31]);
        assert!(fernet_from_key(&short).is_none());
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret("hunter2".into())),
            "Secret(<redacted>)"
        );
    }
}

//! Tenant configurations: rows of `tenant_configs(tenant_id, config)` whose `config` is a Fernet
//! token of a small JSON document, encrypted with the Secret's `encryption-key`. This is the
//! data an encryption-key rotation must re-encrypt: with another key, every read fails.
//! Reads go through the pools and a Redis cache (`tenant:<id>:config`, 30 s), as in the
//! runbook's app; `seed` creates the table and a few tenants for tests and demos.

use std::fmt;

use fernet::MultiFernet;
use tokio_postgres::NoTls;

use crate::pool::{Backends, pg_message};

/// Lifetime of a cached decrypted config, in seconds.
const CACHE_SECONDS: u64 = 30;

/// Why a tenant's config could not be served; `Display` is the log line's reason.
pub enum Failure {
    NotFound,
    Database(String),
    Redis(String),
    Decrypt(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotFound => f.write_str("unknown tenant"),
            Failure::Database(m) => write!(f, "database: {m}"),
            Failure::Redis(m) => write!(f, "redis: {m}"),
            Failure::Decrypt(m) => write!(f, "decryption failed: {m}"),
        }
    }
}

/// A tenant's decrypted config as JSON text, and whether it came from the cache.
pub async fn config_for(
    backends: &Backends,
    fernet: &MultiFernet,
    id: &str,
) -> Result<(String, bool), Failure> {
    let key = format!("tenant:{id}:config");
    let cached: Option<String> = backends
        .redis(redis::cmd("GET").arg(&key))
        .await
        .map_err(Failure::Redis)?;
    if let Some(json) = cached {
        return Ok((json, true));
    }
    let rows = backends
        .query(
            "SELECT config FROM tenant_configs WHERE tenant_id = $1",
            &[&id],
        )
        .await
        .map_err(Failure::Database)?;
    let Some(row) = rows.first() else {
        return Err(Failure::NotFound);
    };
    let token: String = row
        .try_get(0)
        .map_err(|e| Failure::Database(pg_message(&e)))?;
    let json = decrypt(fernet, &token).map_err(Failure::Decrypt)?;
    backends
        .redis::<()>(
            redis::cmd("SET")
                .arg(&key)
                .arg(&json)
                .arg("EX")
                .arg(CACHE_SECONDS),
        )
        .await
        .map_err(Failure::Redis)?;
    Ok((json, false))
}

/// Decrypts a token and checks that it holds a JSON document, which it returns.
pub fn decrypt(fernet: &MultiFernet, token: &str) -> Result<String, String> {
    // The fernet crate gives no reason (on purpose: it would help an attacker); the likely one
    // in this app is a key that does not match the data.
    let plain = fernet.decrypt(token.trim()).map_err(|_| {
        "invalid Fernet token for this encryption-key (wrong key or damaged data)".to_string()
    })?;
    let text = String::from_utf8(plain).map_err(|_| "not UTF-8 text".to_string())?;
    // Checked, but returned as stored: the document is the tenant's, not ours to reformat.
    serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| format!("not a JSON document: {e}"))?;
    Ok(text)
}

/// Start-up check: every tenant config must decrypt. Returns how many there are; the error is
/// the whole log line.
pub async fn decrypt_all(backends: &Backends, fernet: &MultiFernet) -> Result<usize, String> {
    let rows = backends
        .query(
            "SELECT tenant_id, config FROM tenant_configs ORDER BY tenant_id",
            &[],
        )
        .await
        .map_err(|e| format!("tenant configs cannot be read: {e}"))?;
    for row in &rows {
        let read = row
            .try_get::<_, String>(0)
            .and_then(|id| Ok((id, row.try_get::<_, String>(1)?)));
        let (id, token) =
            read.map_err(|e| format!("tenant configs cannot be read: {}", pg_message(&e)))?;
        decrypt(fernet, &token)
            .map_err(|e| format!("tenant config {id} cannot be decrypted: {e}"))?;
    }
    Ok(rows.len())
}

/// Creates `tenant_configs` if absent, lets `app_user` use it, and inserts tenants `tenant-1`
/// ... `tenant-<count>` that do not exist yet (existing rows are left as they are, so running
/// it twice changes nothing). Returns how many rows were new.
pub async fn seed(
    db: &tokio_postgres::Config,
    app_user: &str,
    fernet: &MultiFernet,
    count: u32,
) -> Result<u64, String> {
    let (client, connection) = db.connect(NoTls).await.map_err(|e| pg_message(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // GRANT takes no bind parameters: quote the role name as an identifier.
    let role = format!("\"{}\"", app_user.replace('"', "\"\""));
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS tenant_configs (tenant_id text PRIMARY KEY, config text NOT NULL);
             GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_configs TO {role};"
        ))
        .await
        .map_err(|e| pg_message(&e))?;
    let mut inserted = 0;
    for n in 1..=count {
        let id = format!("tenant-{n}");
        let config = serde_json::json!({"tenant": id, "model": "gpt-4o", "max_tokens": 1000});
        let token = fernet.encrypt(config.to_string().as_bytes());
        inserted += client
            .execute(
                "INSERT INTO tenant_configs (tenant_id, config) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING",
                &[&id, &token],
            )
            .await
            .map_err(|e| pg_message(&e))?;
    }
    Ok(inserted)
}

/// Every tenant config moved to `new` (from `old`, or already `new`'s), row by row in one
/// transaction; a token neither key decrypts stops it with nothing changed. Returns how many
/// rows changed.
pub async fn reencrypt(
    db: &tokio_postgres::Config,
    old: fernet::Fernet,
    new: fernet::Fernet,
) -> Result<u64, String> {
    let (mut client, connection) = db.connect(NoTls).await.map_err(|e| pg_message(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let tx = client.transaction().await.map_err(|e| pg_message(&e))?;
    let rows = tx
        .query(
            "SELECT tenant_id, config FROM tenant_configs FOR UPDATE",
            &[],
        )
        .await
        .map_err(|e| pg_message(&e))?;
    let mut moved = 0;
    for row in rows {
        let (id, token): (String, String) = (row.get(0), row.get(1));
        if new.decrypt(&token).is_ok() {
            continue;
        }
        let plain = old
            .decrypt(&token)
            .map_err(|_| format!("tenant config {id} cannot be decrypted with OLD_KEY"))?;
        tx.execute(
            "UPDATE tenant_configs SET config = $2 WHERE tenant_id = $1",
            &[&id, &new.encrypt(&plain)],
        )
        .await
        .map_err(|e| pg_message(&e))?;
        moved += 1;
    }
    tx.commit().await.map_err(|e| pg_message(&e))?;
    Ok(moved)
}

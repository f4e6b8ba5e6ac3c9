//! `verify` in the systems a Secret's keys live in besides the Secret: each system's
//! `verify.rs` checks one key (a login, the rows it decrypts) and names its server's own
//! workloads, whose rollout says nothing about the key. This is the one list of them.

use super::context::{ServerWorkload, VerifyContext};
use crate::plan::checks::Checks;
use crate::plan::presets::KeyHomes;

/// Checks each of `keys` in the system its preset says it lives in (PostgreSQL logins, then
/// the rows of data encryption keys, then Redis logins); returns the servers' own workloads.
pub async fn check_keys(
    cx: &VerifyContext<'_>,
    keys: &[String],
    homes: &KeyHomes,
    checks: &mut Checks,
) -> Vec<ServerWorkload> {
    let mut servers = Vec::new();
    for (key, settings) in homes.postgres.iter().filter(|(k, _)| keys.contains(k)) {
        servers.extend(super::postgres::verify::verify_key(cx, key, settings, checks).await);
    }
    for (key, settings) in homes.encryption.iter().filter(|(k, _)| keys.contains(k)) {
        servers.extend(super::encryption::verify::verify_key(cx, key, settings, checks).await);
    }
    for (key, settings) in homes.redis.iter().filter(|(k, _)| keys.contains(k)) {
        servers.extend(super::redis::verify::verify_key(cx, key, settings, checks).await);
    }
    servers
}

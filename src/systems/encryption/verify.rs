//! `verify` of a data encryption key: every token of the preset's columns decrypts with the
//! Secret's value; the database server's own workload is reported, not checked.

use crate::plan::checks::Checks;
use crate::plan::presets::EncryptionSettings;
use crate::systems::context::{ServerWorkload, VerifyContext};

/// Checks `key` in its server (one line in `checks`) and returns the server's own workloads.
pub async fn verify_key(
    cx: &VerifyContext<'_>,
    key: &str,
    settings: &EncryptionSettings,
    checks: &mut Checks,
) -> Vec<ServerWorkload> {
    let mut servers = Vec::new();
    let Ok(server) = crate::plan::server::parse_server(&settings.server) else {
        return servers;
    };
    if let Ok(found) =
        crate::systems::postgres::server_workloads(&cx.cluster.client, cx.namespace, &server).await
    {
        servers = ServerWorkload::all(
            found,
            &format!("the PostgreSQL server holding the rows {key} encrypts"),
        );
    }
    let Some(value) = cx.data.get(key) else {
        return servers;
    };
    if cx
        .skip_if_missing(
            &server,
            (key, "rows"),
            ("database", "encryption.server"),
            checks,
        )
        .await
    {
        return servers;
    }
    let db = crate::plan::steps::Database {
        server: settings.server.clone(),
        database: settings.database.clone(),
        admin: Some(settings.admin.clone()),
        tls: settings.tls.clone(),
    };
    let value = crate::values::SecretValue::new(value.0.clone());
    let result = crate::systems::encryption::rows_readable(
        cx.cluster,
        cx.namespace,
        &db,
        &settings.columns,
        (key, &value),
    )
    .await;
    checks.add("rows", key.to_string(), result);
    servers
}

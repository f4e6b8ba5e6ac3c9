//! `verify` of a PostgreSQL password: log in as the role the Secret names with the Secret's
//! value; the server's own workload is reported, since its rollout says nothing about the
//! password (it lives in the database).

use crate::plan::checks::Checks;
use crate::plan::presets::PostgresSettings;
use crate::systems::context::{ServerWorkload, VerifyContext};

/// Checks `key` in its server (one line in `checks`) and returns the server's own workloads.
pub async fn verify_key(
    cx: &VerifyContext<'_>,
    key: &str,
    settings: &PostgresSettings,
    checks: &mut Checks,
) -> Vec<ServerWorkload> {
    let mut servers = Vec::new();
    if let Ok(server) = crate::plan::server::parse_server(&settings.server)
        && let Ok(found) =
            crate::systems::postgres::server_workloads(&cx.cluster.client, cx.namespace, &server)
                .await
    {
        servers = ServerWorkload::all(
            found,
            &format!(
                "the PostgreSQL server of {key}: the password changes live in the database; \
                     its own variables only initialise an empty data directory"
            ),
        );
    }
    let Some(value) = cx.data.get(key) else {
        return servers;
    };
    let role = cx
        .data
        .get(&settings.user_key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_else(|| settings.user.clone());
    let password = crate::values::SecretValue::new(value.0.clone());
    // A preset whose server is not in this namespace (the runbook's preset on another
    // app's Secret of the same name): not a failed login, a check that does not apply.
    if let Ok(server) = crate::plan::server::parse_server(&settings.server)
        && cx
            .skip_if_missing(
                &server,
                (key, "login"),
                ("database", "postgres.server"),
                checks,
            )
            .await
    {
        return servers;
    }
    let result = match crate::plan::server::parse_server(&settings.server) {
        Err(err) => Err(format!("{err:#}")),
        Ok(server) => {
            let server = server.with_tls(&settings.tls);
            let login = crate::systems::postgres::Credentials {
                user: &role,
                database: &settings.database,
                password: &password,
            };
            match crate::systems::postgres::check_login(
                &cx.cluster.client,
                cx.namespace,
                &server,
                &login,
            )
            .await
            {
                Ok(crate::systems::postgres::Login::Accepted) => Ok(format!(
                    "PostgreSQL at {server} accepts {role}'s login with {key}"
                )),
                Ok(crate::systems::postgres::Login::Rejected(why)) => Err(format!(
                    "PostgreSQL at {server} refuses {role}'s login with {key}: {why}"
                )),
                Err(err) => Err(format!("could not log in to check {key}: {err:#}")),
            }
        }
    };
    checks.add("login", key.to_string(), result);
    servers
}

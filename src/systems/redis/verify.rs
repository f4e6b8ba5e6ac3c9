//! `verify` of a Redis password: log in as the user with the Secret's value; the server's own
//! workload is reported, since it is not restarted by a rotation.

use crate::plan::checks::Checks;
use crate::plan::presets::RedisSettings;
use crate::systems::context::{ServerWorkload, VerifyContext};

/// Checks `key` in its server (one line in `checks`) and returns the server's own workloads.
pub async fn verify_key(
    cx: &VerifyContext<'_>,
    key: &str,
    settings: &RedisSettings,
    checks: &mut Checks,
) -> Vec<ServerWorkload> {
    let mut servers = Vec::new();
    let Ok(server) = crate::plan::server::parse_server(&settings.server) else {
        return servers;
    };
    if let Ok(found) = crate::systems::redis::preflight::server_workloads(
        &cx.cluster.client,
        cx.namespace,
        &server,
    )
    .await
    {
        servers = ServerWorkload::all(
            found,
            &format!(
                "the Redis server of {key}: the password changes live on the server, which \
                     is not restarted by a rotation"
            ),
        );
    }
    let Some(value) = cx.data.get(key) else {
        return servers;
    };
    if cx
        .skip_if_missing(&server, (key, "login"), ("Redis", "redis.server"), checks)
        .await
    {
        return servers;
    }
    let password = crate::values::SecretValue::new(value.0.clone());
    let user = settings.user.as_str();
    let login = crate::systems::redis::Credentials {
        user: (user != "default").then_some(user),
        password: &password,
    };
    let result =
        match crate::systems::redis::check_login(&cx.cluster.client, cx.namespace, &server, &login)
            .await
        {
            Ok(crate::systems::redis::Auth::Accepted) => Ok(format!(
                "Redis at {server} accepts {user}'s login with {key}"
            )),
            Ok(crate::systems::redis::Auth::Rejected(why)) => Err(format!(
                "Redis at {server} refuses {user}'s login with {key}: {why}"
            )),
            Err(err) => Err(format!("could not log in to check {key}: {err:#}")),
        };
    checks.add("login", key.to_string(), result);
    servers
}

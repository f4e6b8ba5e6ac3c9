//! Before a Redis password rotation writes anything: the preflight (the server and its replicas
//! reachable with the current password, no Sentinel, ACLs or not), and what it adds to the
//! planned change.

use anyhow::Result;

use crate::cluster::Cluster;
use crate::plan::change::{Change, leave_server_running, set_note};
use crate::plan::steps;
use crate::values::SecretValue;

/// Adds a Redis change to `change` after its preflight (`systems::redis::preflight`: the
/// server and its replicas reachable with `current_password`, no Sentinel, ACLs or not, nothing
/// written): the replicas found, requirepass instead of an overlap on a server without ACLs
/// (refused when the overlap was asked for), the permissions, the preview's lines, and the
/// servers' own workloads moved out of the restarts.
pub async fn attach_redis(
    cluster: &Cluster,
    change: &mut Change,
    mut database: steps::DatabaseChange,
    current_password: &SecretValue,
    chosen: bool,
) -> Result<()> {
    use steps::DatabaseChange;
    let (DatabaseChange::RedisOverlap {
        redis,
        password_key,
    }
    | DatabaseChange::RedisRequirepass {
        redis,
        password_key,
    }) = &mut database
    else {
        anyhow::bail!("not a Redis change");
    };
    let found = crate::systems::redis::preflight(
        cluster,
        &change.data.namespace,
        redis,
        current_password,
        (&change.data.secret, password_key),
    )
    .await?;
    redis.replicas = found.replicas.clone();
    if !found.acl
        && let DatabaseChange::RedisOverlap {
            redis,
            password_key,
        } = &database
    {
        if chosen {
            anyhow::bail!(
                "Redis at {} has no ACLs (it is older than Redis 6, or the ACL command is disabled), so a user \
                 cannot have two passwords: --strategy overlap is not possible; use --strategy requirepass (a \
                 short window: see --help); nothing was changed",
                redis.server
            );
        }
        if redis.user != "default" {
            anyhow::bail!(
                "Redis at {} has no ACLs (it is older than Redis 6, or the ACL command is disabled), so the \
                 password of user {} cannot be changed on its own, only requirepass (the default user's); \
                 nothing was changed",
                redis.server,
                redis.user
            );
        }
        change.notes.push(
            "Redis: no ACLs (before Redis 6, or the ACL command disabled): the password is replaced \
             with CONFIG SET requirepass (strategy requirepass; see Downtime)"
                .into(),
        );
        if let Some((downtime, impact)) =
            crate::plan::presets::Strategy::Requirepass.downtime_and_impact(&redis.user, "")
        {
            set_note(&mut change.notes, "Downtime: ", downtime);
            set_note(&mut change.notes, "Impact: ", impact);
        }
        set_note(&mut change.notes, "Strategy: ", "requirepass".into());
        database = DatabaseChange::RedisRequirepass {
            redis: redis.clone(),
            password_key: password_key.clone(),
        };
    }
    let why = "it is a Redis server: the password is changed live and persisted; a restart would cut \
               every connection, and its next start reads the new value from the Secret";
    leave_server_running(change, &found.server_workloads, why);
    change.notes.extend(found.notes);
    change.extra_needs = found.needs;
    change.database = Some(database);
    Ok(())
}

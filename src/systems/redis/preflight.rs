//! Before a Redis password rotation writes anything: the preflight (the server and its replicas
//! reachable with the current password, no Sentinel, ACLs or not), and what it adds to the
//! planned change.

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use redis::aio::MultiplexedConnection;

use super::{
    Credentials, acl_supported, connect, info, login_user, password_hashes, persistence, run,
};
use crate::cluster::Cluster;
use crate::plan::change::{Change, leave_server_running, set_note};
use crate::plan::server::Server;
use crate::plan::steps::{self, Redis};
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
    let found = preflight(
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

/// What the preflight found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// The workloads whose pods are the Redis servers: never restarted by the run.
    pub server_workloads: Vec<(crate::model::workload::WorkloadKind, String)>,
    /// The permissions reaching the servers needs (checked with the Secret's).
    pub needs: Vec<crate::cluster::access::Need>,
    /// The server has ACLs (Redis 6 and later).
    pub acl: bool,
    /// Every replica, configured or found in `INFO replication`.
    pub replicas: Vec<String>,
    /// Lines for the preview.
    pub notes: Vec<String>,
}

/// Checks, before anything is written: the server (and each replica) is reachable and takes
/// the Secret's current password; it is a primary, not watched by Sentinel; whether it has
/// ACLs, and that the user may change its own passwords and persist them; every replica the
/// primary reports can be reached (else the rotation is refused: a replica left with the old
/// password stops replicating).
pub async fn preflight(
    cluster: &crate::cluster::Cluster,
    namespace: &str,
    redis: &Redis,
    current: &SecretValue,
    source: (&str, &str),
) -> Result<Preflight> {
    let client = &cluster.client;
    let server = crate::plan::server::parse_server(&redis.server)?;
    if !crate::systems::reach::server_exists(client, namespace, &server).await? {
        bail!(
            "the Redis server {server} does not exist in namespace {namespace}: deploy it there, or point redis.server \
             of the preset in the config file at your Redis (service/NAME:PORT, pod/NAME:PORT or HOST:PORT); nothing was changed"
        );
    }
    let mut found = Preflight::default();
    found.needs.extend(
        crate::systems::reach::service_need(client, &server, namespace, "the Redis pod").await?,
    );
    let user = redis.user.as_str();
    let credentials = Credentials {
        user: login_user(user),
        password: current,
    };
    let mut primary = match connect(client, namespace, &server, &credentials).await? {
        Ok(connection) => connection,
        Err(why) => bail!(
            "Redis at {server} refuses {user}'s login with the password the Secret holds now ({why}); the server and \
             the Secret disagree already. Find out why before rotating (`kubectl rotate verify` checks the login); \
             nothing was changed"
        ),
    };
    let (info_server, replication) = check_primary(&mut primary, &server).await?;
    found.acl = acl_supported(&mut primary).await?;
    let at = Place {
        server: &server,
        namespace,
        user,
    };
    found
        .notes
        .push(check_rights(&mut primary, &at, found.acl, &info_server).await?);
    found.notes.push(format!(
        "Redis: {server} persists by {}",
        persistence(&mut primary).await?.describe()
    ));

    // Replicas: configured ones, and every one the primary reports.
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), namespace);
    let all = pods
        .list(&kube::api::ListParams::default())
        .await
        .with_context(|| format!("listing the pods of namespace {namespace}"))?
        .items;
    found.replicas = find_replicas(client, &at, redis, &replication, &all).await?;
    let mut server_pods: Vec<String> = Vec::new();
    if let Some((pod, _)) = crate::systems::reach::resolve_pod(client, namespace, &server).await? {
        server_pods.push(pod);
    }
    for replica in &found.replicas {
        let (note, pod) = check_replica(client, &at, replica, &credentials).await?;
        found.notes.push(note);
        server_pods.extend(pod);
    }
    found.needs.extend(crate::systems::reach::portforward_needs(
        &server_pods,
        namespace,
        "Redis",
    ));
    // The servers' own workloads: left running; say whether a restart keeps the new password.
    server_pods.extend(
        all.iter()
            .filter(|p| looks_like_redis(p))
            .filter_map(|p| p.metadata.name.clone()),
    );
    let (workloads, warnings) =
        own_workloads(client, namespace, &server_pods, &all, source).await?;
    found.server_workloads = workloads;
    found.notes.extend(warnings);
    Ok(found)
}

/// Where the preflight is: the server, its namespace and the user it logs in as.
struct Place<'a> {
    server: &'a Server,
    namespace: &'a str,
    user: &'a str,
}

/// The server is a primary, not a Sentinel, a replica or watched by Sentinel; returns its
/// `INFO server` and `INFO replication`.
async fn check_primary(
    primary: &mut MultiplexedConnection,
    server: &Server,
) -> Result<(
    std::collections::BTreeMap<String, String>,
    std::collections::BTreeMap<String, String>,
)> {
    let info_server = info(primary, "server").await?;
    if info_server.get("redis_mode").map(String::as_str) == Some("sentinel") {
        bail!(
            "{server} is a Redis Sentinel, not a Redis server: point redis.server at the primary; nothing was changed"
        );
    }
    let replication = info(primary, "replication").await?;
    if replication.get("role").map(String::as_str) == Some("slave") {
        bail!(
            "Redis at {server} is a replica (of {}:{}): point redis.server at the primary, whose replicas the \
             rotation updates too; nothing was changed",
            replication.get("master_host").map_or("?", String::as_str),
            replication.get("master_port").map_or("?", String::as_str)
        );
    }
    let sentinels = sentinel_clients(primary).await?;
    if sentinels > 0 {
        bail!(
            "Redis at {server} is watched by Redis Sentinel ({sentinels} Sentinel connections): a Sentinel setup keeps \
             the password in each Sentinel's `sentinel auth-pass` too, and a failover during the rotation would \
             promote a replica the run does not expect. kubectl rotate does not rotate Sentinel setups; follow the \
             runbook by hand (update every Sentinel's auth-pass with the overlap in place); nothing was changed"
        );
    }
    Ok((info_server, replication))
}

/// With ACLs: the user exists and may read its own entry, rewrite the config and save ACLs
/// (what keeps the new password across a restart). Returns the preview's line.
async fn check_rights(
    primary: &mut MultiplexedConnection,
    at: &Place<'_>,
    acl: bool,
    info_server: &std::collections::BTreeMap<String, String>,
) -> Result<String> {
    let (server, namespace, user) = (at.server, at.namespace, at.user);
    if acl {
        let hashes = match password_hashes(primary, user).await {
            Ok(Some(hashes)) => hashes,
            Ok(None) => bail!("Redis at {server} has no ACL user {user}; nothing was changed"),
            Err(err) => bail!(
                "Redis at {server}: {user} may not read its own ACL entry ({err:#}); the rotation logs in as {user} \
                 and needs the ACL commands (+acl) and CONFIG REWRITE (or ACL SAVE): grant them, e.g. \
                 `ACL SETUSER {user} +acl +config|rewrite`; nothing was changed"
            ),
        };
        for command in [["CONFIG", "REWRITE"], ["ACL", "SAVE"]] {
            let mut dry = redis::cmd("ACL");
            dry.arg("DRYRUN").arg(user).arg(command[0]).arg(command[1]);
            let answer = run(primary, "ACL DRYRUN", dry).await?;
            if !matches!(&answer, redis::Value::Okay)
                && !matches!(&answer, redis::Value::SimpleString(s) if s == "OK")
            {
                bail!(
                    "Redis at {server}: {user} may not run {} {} ({answer:?}), which keeps the new password across a \
                     restart: grant it (`ACL SETUSER {user} +{}|{}`); nothing was changed",
                    command[0],
                    command[1],
                    command[0].to_lowercase(),
                    command[1].to_lowercase()
                );
            }
        }
        Ok(format!(
            "Redis: {server} (namespace {namespace}, Redis {}): {user} logs in with the Secret's current password; \
             it has {} password{} now",
            info_server.get("redis_version").map_or("?", String::as_str),
            hashes.len(),
            if hashes.len() == 1 { "" } else { "s" }
        ))
    } else {
        Ok(format!(
            "Redis: {server} (namespace {namespace}, Redis {}): no ACLs; the password logs in",
            info_server.get("redis_version").map_or("?", String::as_str),
        ))
    }
}

/// Every replica: the configured ones, and each one the primary reports (a pod of the
/// namespace; one that is not is refused, since the rotation could not reach it).
async fn find_replicas(
    client: &kube::Client,
    at: &Place<'_>,
    redis: &Redis,
    replication: &std::collections::BTreeMap<String, String>,
    all: &[Pod],
) -> Result<Vec<String>> {
    let (server, namespace) = (at.server, at.namespace);
    let mut replicas = redis.replicas.clone();
    let mut configured_ips = Vec::new();
    for replica in &redis.replicas {
        match crate::plan::server::parse_server(replica)? {
            Server::Pod { name, .. } => configured_ips.extend(pod_ip(all, &name)),
            other => {
                if let Some((pod, _)) =
                    crate::systems::reach::resolve_pod(client, namespace, &other).await?
                {
                    configured_ips.extend(pod_ip(all, &pod));
                }
                if let Server::Direct { host, .. } = other {
                    configured_ips.push(host);
                }
            }
        }
    }
    for (ip, port) in reported_replicas(replication) {
        if configured_ips.contains(&ip) {
            continue;
        }
        let Some(pod) = all
            .iter()
            .find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(ip.as_str()))
        else {
            bail!(
                "Redis at {server} has a replica at {ip}:{port} that is not a pod in namespace {namespace}: a replica \
                 left with the old password stops replicating, and the rotation cannot reach this one. List how to \
                 reach it in redis.replicas of the preset in the config file (pod/NAME:PORT, service/NAME:PORT or \
                 HOST:PORT); nothing was changed"
            );
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        replicas.push(format!("pod/{name}:{port}"));
    }
    Ok(replicas)
}

/// A replica logs in with the Secret's current password and is a replica; returns the
/// preview's line and its pod (when it is one).
async fn check_replica(
    client: &kube::Client,
    at: &Place<'_>,
    replica: &str,
    credentials: &Credentials<'_>,
) -> Result<(String, Option<String>)> {
    let (server, namespace, user) = (at.server, at.namespace, at.user);
    let at = crate::plan::server::parse_server(replica)?;
    let mut connection = match connect(client, namespace, &at, credentials).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(why)) => bail!(
            "the Redis replica {replica} refuses {user}'s login with the Secret's current password ({why}): its \
             password differs from the primary's, which the rotation would not keep in step; nothing was changed"
        ),
        Err(err) => bail!(
            "cannot reach the Redis replica {replica} ({err:#}): a replica left with the old password stops \
             replicating; make it reachable or fix redis.replicas in the config file; nothing was changed"
        ),
    };
    let role = info(&mut connection, "replication").await?;
    if role.get("role").map(String::as_str) != Some("slave") {
        bail!("{replica}, listed as a replica of {server}, is not a replica; nothing was changed");
    }
    let note = format!(
        "Redis: replica {replica} logs in with the Secret's current password; persists by {}",
        persistence(&mut connection).await?.describe()
    );
    let pod = crate::systems::reach::resolve_pod(client, namespace, &at)
        .await?
        .map(|(pod, _)| pod);
    Ok((note, pod))
}

/// The workloads that run the servers (never restarted), and a warning for each that does
/// not read its password from the Secret's key (a restart may bring the old one back).
async fn own_workloads(
    client: &kube::Client,
    namespace: &str,
    server_pods: &[String],
    all: &[Pod],
    source: (&str, &str),
) -> Result<(
    Vec<(crate::model::workload::WorkloadKind, String)>,
    Vec<String>,
)> {
    let mut workloads = Vec::new();
    let mut warnings = Vec::new();
    for pod in server_pods {
        for owner in crate::systems::reach::owners_of_pod(client, namespace, pod).await? {
            if workloads.contains(&owner) {
                continue;
            }
            let spec = all
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()));
            if !spec.is_some_and(|p| reads_key(p, source.0, source.1)) {
                warnings.push(format!(
                    "Warning: {}/{} runs Redis but does not read its password from Secret {} key {}: the change is \
                     persisted in the server's own files, but if its configuration is written from somewhere else at \
                     start (a ConfigMap, an init script), a restart brings the old password back; update that source too",
                    owner.0.short(),
                    owner.1,
                    source.0,
                    source.1
                ));
            }
            workloads.push(owner);
        }
    }
    Ok((workloads, warnings))
}

/// The workloads whose pods serve `server` or look like Redis servers (for `verify`, which
/// does not expect them to have restarted); see `reach::server_workloads`.
pub async fn server_workloads(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
) -> Result<Vec<(crate::model::workload::WorkloadKind, String)>> {
    crate::systems::reach::server_workloads(client, namespace, server, looks_like_redis).await
}

fn pod_ip(pods: &[Pod], name: &str) -> Option<String> {
    pods.iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .and_then(|p| p.status.as_ref()?.pod_ip.clone())
}

/// `slaveN:ip=...,port=...` lines of `INFO replication`, as (ip, port).
pub fn reported_replicas(
    replication: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, u16)> {
    replication
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("slave")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|(_, v)| {
            let field = |name: &str| {
                v.split(',')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_string)
            };
            Some((field("ip")?, field("port")?.parse().ok()?))
        })
        .collect()
}

/// How many clients are Sentinels (they name their connections `sentinel-<id>-cmd` / `-pubsub`).
async fn sentinel_clients(connection: &mut MultiplexedConnection) -> Result<usize> {
    let mut command = redis::cmd("CLIENT");
    command.arg("LIST");
    let text: String =
        redis::FromRedisValue::from_redis_value(run(connection, "CLIENT LIST", command).await?)
            .map_err(|e| anyhow!("CLIENT LIST: {e}"))?;
    Ok(count_sentinels(&text))
}

pub fn count_sentinels(client_list: &str) -> usize {
    client_list
        .lines()
        .filter(|line| {
            line.split(' ').any(|f| {
                f.strip_prefix("name=")
                    .is_some_and(|n| n.starts_with("sentinel-"))
            })
        })
        .count()
}

/// Whether a container of `pod` reads `key` of Secret `secret` (env, envFrom or a volume).
pub fn reads_key(pod: &Pod, secret: &str, key: &str) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| {
            v.secret.as_ref().is_some_and(|s| {
                s.secret_name.as_deref() == Some(secret)
                    && s.items
                        .as_ref()
                        .is_none_or(|items| items.iter().any(|i| i.key == key))
            })
        })
        .map(|v| v.name.as_str())
        .collect();
    spec.containers.iter().any(|c| {
        c.env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
                .is_some_and(|r| r.name == secret && r.key == key)
        }) || c
            .env_from
            .iter()
            .flatten()
            .any(|f| f.secret_ref.as_ref().is_some_and(|r| r.name == secret))
            || c.volume_mounts
                .iter()
                .flatten()
                .any(|m| volumes.contains(&m.name.as_str()))
    })
}

/// A container of an image named like Redis (`redis`, `redis-stack-server`, `valkey`, any
/// registry or tag) that declares port 6379: a server, not a client such as an exporter.
pub fn looks_like_redis(pod: &Pod) -> bool {
    pod.spec.iter().flat_map(|s| &s.containers).any(|c| {
        let name = crate::systems::reach::image_name(c.image.as_deref().unwrap_or_default());
        matches!(name, "redis" | "redis-stack-server" | "valkey")
            && c.ports.iter().flatten().any(|p| p.container_port == 6379)
    })
}

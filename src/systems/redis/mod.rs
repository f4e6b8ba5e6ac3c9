//! Redis, the second system of the runbook's Redis procedure (issue 12): reaching the server
//! (`reach`: through the API server's port-forward, or `HOST:PORT`), telling a rejected
//! password apart from a server that cannot be reached, and the ACL operations an overlap
//! rotation is made of: add a password to a user, remove one, persist the result the way the
//! server is configured.
//!
//! Passwords are added and removed by their SHA-256 (`ACL SETUSER user #<hex>` / `!<hex>`),
//! the form Redis stores, so the plaintext is never on the wire after the login itself.
//!
//! The steps (`steps::Step::AddPassword`, `RemovePassword`, `SetRequirepass`, `CheckAuth`)
//! act on the primary and every replica, since `ACL SETUSER` and `CONFIG SET` are not
//! replicated; each write is idempotent and read back (`ACL GETUSER` lists a user's password
//! hashes, so no login is needed to tell whether a password is there).

pub mod preflight;
pub mod verify;

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, RedisConnectionInfo};
use sha2::{Digest, Sha256};

use super::reach::{open_stream, resolve_pod};
use crate::plan::server::Server;
use crate::values::SecretValue;

/// How long a connection (port-forward included) or a command may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// What a login attempt showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Accepted,
    /// The server refused the password (`WRONGPASS`, or a user that is off).
    Rejected(String),
}

/// An ACL user (`None`: the `default` user, as `AUTH password` logs in) and its password.
pub struct Credentials<'a> {
    pub user: Option<&'a str>,
    pub password: &'a SecretValue,
}

fn password_text(password: &SecretValue) -> Result<&str> {
    std::str::from_utf8(password.expose())
        .map_err(|_| anyhow!("the Redis password is not UTF-8 text; this client cannot send it"))
}

/// Logs in and returns the connection, or why the password was rejected; a server that
/// cannot be reached is an error, never a rejection.
pub async fn connect(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
    login: &Credentials<'_>,
) -> Result<std::result::Result<MultiplexedConnection, String>> {
    let mut info = RedisConnectionInfo::default()
        .set_password(password_text(login.password)?)
        .set_skip_set_lib_name();
    if let Some(user) = login.user {
        info = info.set_username(user);
    }
    let attempt = async {
        let connected = match resolve_pod(client, namespace, server).await? {
            Some((pod, port)) => {
                let stream = open_stream(client, namespace, &pod, port).await?;
                MultiplexedConnection::new_with_config(
                    &info,
                    stream,
                    redis::AsyncConnectionConfig::default(),
                )
                .await
                .map(|(c, driver)| (c, Box::pin(driver) as Driver))
            }
            None => {
                let Server::Direct { host, port, .. } = server else {
                    unreachable!("only a direct server has no pod")
                };
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| anyhow!("cannot reach Redis at {server}: {e}"))?;
                MultiplexedConnection::new_with_config(
                    &info,
                    stream,
                    redis::AsyncConnectionConfig::default(),
                )
                .await
                .map(|(c, driver)| (c, Box::pin(driver) as Driver))
            }
        };
        match connected {
            Ok((connection, driver)) => {
                tokio::spawn(driver);
                Ok(Ok(connection))
            }
            Err(err) if is_rejection(&err) => Ok(Err(err.to_string())),
            Err(err) => Err(anyhow!(
                "cannot reach Redis at {server} in namespace {namespace}: {err}"
            )),
        }
    };
    tokio::time::timeout(TIMEOUT, attempt)
        .await
        .map_err(|_| anyhow!("Redis at {server} did not answer within {TIMEOUT:?}"))?
}

type Driver = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn is_rejection(err: &redis::RedisError) -> bool {
    err.kind() == ErrorKind::AuthenticationFailed
        || err
            .code()
            .is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH")
}

/// Whether `login` logs in; an unreachable server is an error, not a rejection.
pub async fn check_login(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
    login: &Credentials<'_>,
) -> Result<Auth> {
    Ok(match connect(client, namespace, server, login).await? {
        Ok(_) => Auth::Accepted,
        Err(why) => Auth::Rejected(why),
    })
}

/// The SHA-256 of `password` in hex, as `ACL SETUSER` takes it after `#` and `!`.
pub fn password_hash(password: &SecretValue) -> String {
    let digest = Sha256::digest(password.expose());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `command` (named `name` in errors: never its arguments, which may hold a hash).
async fn run(
    connection: &mut MultiplexedConnection,
    name: &str,
    command: redis::Cmd,
) -> Result<redis::Value> {
    tokio::time::timeout(TIMEOUT, command.query_async(connection))
        .await
        .map_err(|_| anyhow!("Redis did not answer {name} within {TIMEOUT:?}"))?
        .map_err(|e| anyhow!("Redis refused {name}: {e}"))
}

/// Whether the server has ACLs (Redis 6 and later): `ACL WHOAMI` answers.
pub async fn acl_supported(connection: &mut MultiplexedConnection) -> Result<bool> {
    match redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async::<String>(connection)
        .await
    {
        Ok(_) => Ok(true),
        Err(err) if err.to_string().contains("unknown command") => Ok(false),
        // ACLs exist; this user may not use them (the preflight says so).
        Err(err) if err.code() == Some("NOPERM") => Ok(true),
        Err(err) => bail!("ACL WHOAMI failed: {err}"),
    }
}

/// `ACL SETUSER user #<sha256>`: `password` is one more password of `user`; the others stay.
pub async fn add_password(
    connection: &mut MultiplexedConnection,
    user: &str,
    password: &SecretValue,
) -> Result<()> {
    let mut command = redis::cmd("ACL");
    command
        .arg("SETUSER")
        .arg(user)
        .arg(format!("#{}", password_hash(password)));
    run(connection, "ACL SETUSER", command).await.map(drop)
}

/// `ACL SETUSER user !<sha256>`: `password` no longer logs in as `user`.
pub async fn remove_password(
    connection: &mut MultiplexedConnection,
    user: &str,
    password: &SecretValue,
) -> Result<()> {
    let mut command = redis::cmd("ACL");
    command
        .arg("SETUSER")
        .arg(user)
        .arg(format!("!{}", password_hash(password)));
    match run(connection, "ACL SETUSER", command).await {
        Ok(_) => Ok(()),
        // Already gone (a previous attempt whose answer was lost): what was asked holds.
        Err(err) if format!("{err:#}").contains("does not exist") => Ok(()),
        Err(err) => Err(err),
    }
}

/// The SHA-256 hashes of `user`'s passwords (`ACL GETUSER`); `None`: no such user.
pub async fn password_hashes(
    connection: &mut MultiplexedConnection,
    user: &str,
) -> Result<Option<Vec<String>>> {
    let mut command = redis::cmd("ACL");
    command.arg("GETUSER").arg(user);
    let answer = run(connection, "ACL GETUSER", command).await?;
    if answer == redis::Value::Nil {
        return Ok(None);
    }
    let fields: Vec<redis::Value> = match answer {
        redis::Value::Array(items) => items,
        redis::Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => bail!("ACL GETUSER {user}: unexpected answer {other:?}"),
    };
    let mut iter = fields.into_iter();
    while let (Some(name), Some(value)) = (iter.next(), iter.next()) {
        let name: String = redis::FromRedisValue::from_redis_value(name).unwrap_or_default();
        if name == "passwords" {
            let hashes: Vec<String> = redis::FromRedisValue::from_redis_value(value)
                .map_err(|e| anyhow!("ACL GETUSER {user}: passwords: {e}"))?;
            return Ok(Some(hashes));
        }
    }
    bail!("ACL GETUSER {user} listed no passwords field")
}

/// `CONFIG SET name value` (a password: never in an error message).
async fn config_set(
    connection: &mut MultiplexedConnection,
    name: &str,
    value: &SecretValue,
) -> Result<()> {
    let mut command = redis::cmd("CONFIG");
    command.arg("SET").arg(name).arg(password_text(value)?);
    run(connection, &format!("CONFIG SET {name}"), command)
        .await
        .map(drop)
}

/// `CONFIG REWRITE` when the server has a config file (else nothing to write).
async fn rewrite_config(connection: &mut MultiplexedConnection) -> Result<bool> {
    let server = info(connection, "server").await?;
    if server.get("config_file").is_none_or(|f| f.is_empty()) {
        return Ok(false);
    }
    let mut rewrite = redis::cmd("CONFIG");
    rewrite.arg("REWRITE");
    run(connection, "CONFIG REWRITE", rewrite).await?;
    Ok(true)
}

/// How the server keeps its users across a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persistence {
    /// `aclfile` is set: `ACL SAVE` writes it.
    AclFile(String),
    /// Users live in the config file: `CONFIG REWRITE` writes it.
    ConfigFile,
    /// Started without a config file (`redis-server --requirepass ...`): nothing to write;
    /// the next start takes its password from its command line or environment.
    None,
}

impl Persistence {
    pub fn describe(&self) -> String {
        match self {
            Persistence::AclFile(file) => format!("ACL SAVE to {file}"),
            Persistence::ConfigFile => "CONFIG REWRITE of its config file".into(),
            Persistence::None => {
                "not persisted: it runs without a config file (its next start takes the password from its command line or environment)".into()
            }
        }
    }
}

/// A `CONFIG GET name` answer's value (empty when unset).
async fn config_get(connection: &mut MultiplexedConnection, name: &str) -> Result<String> {
    let mut get = redis::cmd("CONFIG");
    get.arg("GET").arg(name);
    let answer: Vec<String> =
        redis::FromRedisValue::from_redis_value(run(connection, "CONFIG GET", get).await?)
            .map_err(|e| anyhow!("CONFIG GET {name}: {e}"))?;
    Ok(answer.get(1).cloned().unwrap_or_default())
}

/// `INFO section` as `field -> value`.
pub async fn info(
    connection: &mut MultiplexedConnection,
    section: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut command = redis::cmd("INFO");
    command.arg(section);
    let text: String =
        redis::FromRedisValue::from_redis_value(run(connection, "INFO", command).await?)
            .map_err(|e| anyhow!("INFO {section}: {e}"))?;
    Ok(parse_info(&text))
}

pub fn parse_info(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// How the server would persist its users (without writing anything).
pub async fn persistence(connection: &mut MultiplexedConnection) -> Result<Persistence> {
    let aclfile = config_get(connection, "aclfile").await?;
    if !aclfile.is_empty() {
        return Ok(Persistence::AclFile(aclfile));
    }
    let server = info(connection, "server").await?;
    Ok(
        if server.get("config_file").is_some_and(|f| !f.is_empty()) {
            Persistence::ConfigFile
        } else {
            Persistence::None
        },
    )
}

/// Makes the server's current users survive a restart, the way it is configured; says how.
pub async fn persist(connection: &mut MultiplexedConnection) -> Result<Persistence> {
    let how = persistence(connection).await?;
    if how == Persistence::ConfigFile {
        let mut rewrite = redis::cmd("CONFIG");
        rewrite.arg("REWRITE");
        run(connection, "CONFIG REWRITE", rewrite)
            .await
            .map_err(|e| {
                anyhow!("{e:#} (the server has no config file to keep its passwords in)")
            })?;
    } else if let Persistence::AclFile(_) = how {
        let mut save = redis::cmd("ACL");
        save.arg("SAVE");
        run(connection, "ACL SAVE", save).await?;
    }
    Ok(how)
}

// ---- The steps (see `steps::Step`): apply and check, each safe to run twice. ----

use super::context::{Applied, Checked, Ctx, StepOutcome};
use super::secret::{new_value, old_value};
use crate::plan::steps::{Redis, Version};

/// One server a step changes: the primary or a replica.
struct Node {
    label: String,
    server: Server,
    replica: bool,
    /// Its place in the step's list (the primary is 0).
    index: usize,
}

fn nodes(redis: &Redis) -> Result<Vec<Node>> {
    let mut out = vec![Node {
        label: format!("primary {}", redis.server),
        server: crate::plan::server::parse_server(&redis.server)?,
        replica: false,
        index: 0,
    }];
    for (i, replica) in redis.replicas.iter().enumerate() {
        out.push(Node {
            label: format!("replica {replica}"),
            server: crate::plan::server::parse_server(replica)?,
            replica: true,
            index: i + 1,
        });
    }
    Ok(out)
}

/// The ACL user to log in as: `None` for `default`, so that `AUTH password` also works on a
/// server without ACLs.
fn login_user(user: &str) -> Option<&str> {
    (user != "default").then_some(user)
}

async fn value(ctx: &Ctx<'_>, key: &str, version: Version) -> Result<SecretValue> {
    match version {
        Version::New => new_value(ctx, key).cloned(),
        Version::Old => old_value(ctx, key).await,
    }
}

/// Logs in to `node` as `user` with the first of `passwords` it accepts.
async fn login(
    ctx: &Ctx<'_>,
    node: &Node,
    user: &str,
    passwords: [&SecretValue; 2],
) -> Result<MultiplexedConnection> {
    let mut refused = String::new();
    for password in passwords {
        let credentials = Credentials {
            user: login_user(user),
            password,
        };
        match connect(
            &ctx.cluster.client,
            ctx.namespace(),
            &node.server,
            &credentials,
        )
        .await?
        {
            Ok(connection) => return Ok(connection),
            Err(why) => refused = why,
        }
    }
    bail!(
        "Redis {} refuses {user}'s login with both the run's old and new password ({refused}): \
         someone else changed it; not touching it",
        node.label
    )
}

async fn accepts(ctx: &Ctx<'_>, node: &Node, user: &str, password: &SecretValue) -> Result<Auth> {
    check_login(
        &ctx.cluster.client,
        ctx.namespace(),
        &node.server,
        &Credentials {
            user: login_user(user),
            password,
        },
    )
    .await
}

/// Whether a replica authenticates to its primary as `user` (`masteruser`, empty: `default`).
async fn follows(connection: &mut MultiplexedConnection, user: &str) -> Result<bool> {
    let master_user = config_get(connection, "masteruser").await?;
    Ok(master_user == user || (master_user.is_empty() && user == "default"))
}

/// Persists a node's users; with `masterauth` changed on a node whose users live in an ACL
/// file, its config file is rewritten too.
async fn persist_node(
    connection: &mut MultiplexedConnection,
    masterauth_changed: bool,
) -> Result<Persistence> {
    let how = persist(connection).await?;
    if masterauth_changed && matches!(how, Persistence::AclFile(_)) {
        rewrite_config(connection).await?;
    }
    Ok(how)
}

fn failed_after(touched: bool, message: String) -> StepOutcome {
    if touched {
        StepOutcome::failed(message, Applied::Unknown)
    } else {
        StepOutcome::failed(format!("{message}; nothing was changed"), Applied::No)
    }
}

/// Runs `write` on each node in turn and collects its line ("primary ...: how it persisted"),
/// or stops at the first failure with the step's outcome: nothing was changed if it failed on
/// the first node and nothing had been `touched` before; otherwise it may have been applied.
async fn on_each_node<'a, F, Fut>(
    nodes: &'a [Node],
    mut touched: bool,
    mut write: F,
) -> std::result::Result<Vec<String>, StepOutcome>
where
    F: FnMut(&'a Node) -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    let mut lines = Vec::new();
    for node in nodes {
        // A login refused or a server not reached leaves this node as it was.
        match write(node).await {
            Ok(line) => lines.push(format!("{}: {line}", node.label)),
            Err(err) => {
                return Err(failed_after(
                    touched,
                    format!("Redis {}: {err:#}", node.label),
                ));
            }
        }
        touched = true;
    }
    Ok(lines)
}

/// Reads a write back on every node by logging in with `password`: `None` when each node
/// accepts it (`accept`) or refuses it (`!accept`), else the failure (the write happened).
async fn read_back(
    ctx: &Ctx<'_>,
    nodes: &[Node],
    user: &str,
    password: &SecretValue,
    accept: bool,
    what: &str,
) -> Option<StepOutcome> {
    for node in nodes {
        let message = match accepts(ctx, node, user, password).await {
            Ok(Auth::Accepted) if accept => continue,
            Ok(Auth::Rejected(_)) if !accept => continue,
            Ok(Auth::Accepted) => format!(
                "Redis {}: {what} still logs in as {user} (another user or requirepass holds it?)",
                node.label
            ),
            Ok(Auth::Rejected(why)) => format!(
                "Redis {}: {what} does not log in as {user}: {why}",
                node.label
            ),
            Err(err) => format!(
                "Redis {}: logging in to check {what} failed: {err:#}",
                node.label
            ),
        };
        return Some(StepOutcome::failed(message, Applied::Yes));
    }
    None
}

/// Adds the run's `version` of `key` to the user on every node (primary first), makes the
/// replicas authenticate with it, persists; then logs in with it everywhere.
pub async fn apply_add_password(
    ctx: &Ctx<'_>,
    redis: &Redis,
    key: &str,
    version: Version,
) -> StepOutcome {
    let prepared = async {
        let add = value(ctx, key, version).await?;
        let other = value(ctx, key, version.other()).await?;
        anyhow::Ok((add, other, nodes(redis)?))
    };
    let (add, other, nodes) = match prepared.await {
        Ok(p) => p,
        Err(err) => return failed_after(false, format!("{err:#}")),
    };
    let user = &redis.user;
    let (other_ref, add_ref) = (&other, &add);
    let persisted = match on_each_node(&nodes, false, |node| async move {
        let mut connection = login(ctx, node, user, [other_ref, add_ref]).await?;
        add_password(&mut connection, user, add_ref).await?;
        let masterauth = node.replica && follows(&mut connection, user).await?;
        if masterauth {
            config_set(&mut connection, "masterauth", add_ref).await?;
        }
        Ok(persist_node(&mut connection, masterauth).await?.describe())
    })
    .await
    {
        Ok(lines) => lines,
        Err(failed) => return failed,
    };
    let what = format!("the {} password, added,", version.name());
    if let Some(failed) = read_back(ctx, &nodes, user, &add, true, &what).await {
        return failed;
    }
    StepOutcome::done(format!(
        "{user} logs in with the {} password as well as the {} one ({})",
        version.name(),
        version.other().name(),
        persisted.join("; ")
    ))
}

/// Where every node stands for `version` of `key`: in every user's passwords: applied; the
/// other value there: not applied (adding again is harmless); neither: someone else's change.
pub async fn check_add_password(
    ctx: &Ctx<'_>,
    redis: &Redis,
    key: &str,
    version: Version,
) -> Result<Checked> {
    let add_value = value(ctx, key, version).await?;
    let add = password_hash(&add_value);
    let other_value = value(ctx, key, version.other()).await?;
    let other = password_hash(&other_value);
    let mut missing = false;
    for node in nodes(redis)? {
        let mut connection = login(ctx, &node, &redis.user, [&other_value, &add_value]).await?;
        let hashes = password_hashes(&mut connection, &redis.user)
            .await?
            .ok_or_else(|| anyhow!("Redis {} has no user {}", node.label, redis.user))?;
        if hashes.contains(&add) {
            continue;
        }
        if !hashes.contains(&other) {
            return Ok(Checked::Conflict(format!(
                "Redis {}: user {} has neither the run's old nor its new password: someone else changed it; not touching it",
                node.label, redis.user
            )));
        }
        missing = true;
    }
    Ok(if missing {
        Checked::NotApplied
    } else {
        Checked::Applied(format!(
            "{} has the {} password on {}",
            redis.user,
            version.name(),
            redis.nodes()
        ))
    })
}

/// Removes the run's `version` of `key` from the user on every node, once each node holds the
/// other value (the replicas authenticate with it first); persists; then checks that the
/// removed one no longer logs in.
pub async fn apply_remove_password(
    ctx: &Ctx<'_>,
    redis: &Redis,
    key: &str,
    version: Version,
) -> StepOutcome {
    let prepared = async {
        let remove = value(ctx, key, version).await?;
        let keep = value(ctx, key, version.other()).await?;
        anyhow::Ok((remove, keep, nodes(redis)?))
    };
    let (remove, keep, nodes) = match prepared.await {
        Ok(p) => p,
        Err(err) => return failed_after(false, format!("{err:#}")),
    };
    let user = &redis.user;
    let kept = password_hash(&keep);
    // First make sure every node keeps a password the Secret holds, and the replicas use it.
    let mut touched = false;
    let mut masterauth = vec![false; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let ready = async {
            let mut connection = login(ctx, node, user, [&keep, &remove]).await?;
            let hashes = password_hashes(&mut connection, user)
                .await?
                .ok_or_else(|| anyhow!("has no user {user}"))?;
            if !hashes.contains(&kept) {
                bail!(
                    "user {user} does not have the {} password: removing the {} one would lock every client out",
                    version.other().name(),
                    version.name()
                );
            }
            if node.replica && follows(&mut connection, user).await? {
                config_set(&mut connection, "masterauth", &keep).await?;
                return anyhow::Ok(true);
            }
            anyhow::Ok(false)
        };
        match ready.await {
            Ok(changed) => {
                masterauth[i] = changed;
                touched |= changed;
            }
            Err(err) => return failed_after(touched, format!("Redis {}: {err:#}", node.label)),
        }
    }
    let (keep_ref, remove_ref, masterauth) = (&keep, &remove, &masterauth);
    let persisted = match on_each_node(&nodes, touched, |node| async move {
        let mut connection = login(ctx, node, user, [keep_ref, remove_ref]).await?;
        remove_password(&mut connection, user, remove_ref).await?;
        let changed = masterauth.get(node.index).copied().unwrap_or(false);
        Ok(persist_node(&mut connection, changed).await?.describe())
    })
    .await
    {
        Ok(lines) => lines,
        Err(failed) => return failed,
    };
    let what = format!("the {} password, removed,", version.name());
    if let Some(failed) = read_back(ctx, &nodes, user, &remove, false, &what).await {
        return failed;
    }
    StepOutcome::done(format!(
        "the {} password no longer logs in as {user} ({})",
        version.name(),
        persisted.join("; ")
    ))
}

pub async fn check_remove_password(
    ctx: &Ctx<'_>,
    redis: &Redis,
    key: &str,
    version: Version,
) -> Result<Checked> {
    let remove_value = value(ctx, key, version).await?;
    let keep_value = value(ctx, key, version.other()).await?;
    let removed = password_hash(&remove_value);
    let kept = password_hash(&keep_value);
    let mut left = false;
    for node in nodes(redis)? {
        let mut connection = login(ctx, &node, &redis.user, [&keep_value, &remove_value]).await?;
        let hashes = password_hashes(&mut connection, &redis.user)
            .await?
            .ok_or_else(|| anyhow!("Redis {} has no user {}", node.label, redis.user))?;
        if !hashes.contains(&kept) {
            return Ok(Checked::Conflict(format!(
                "Redis {}: user {} does not have the {} password the run keeps: someone else changed it; not touching it",
                node.label,
                redis.user,
                version.other().name()
            )));
        }
        left |= hashes.contains(&removed);
    }
    Ok(if left {
        Checked::NotApplied
    } else {
        Checked::Applied(format!(
            "the {} password is gone from {}",
            version.name(),
            redis.nodes()
        ))
    })
}

/// A server without ACLs: `requirepass` (and each replica's `masterauth`) becomes the run's
/// `version` of `key`, replicas first; persisted with `CONFIG REWRITE`; then a login with it.
pub async fn apply_set_requirepass(
    ctx: &Ctx<'_>,
    redis: &Redis,
    key: &str,
    version: Version,
) -> StepOutcome {
    let prepared = async {
        let to = value(ctx, key, version).await?;
        let from = value(ctx, key, version.other()).await?;
        anyhow::Ok((to, from, nodes(redis)?))
    };
    let (to, from, mut nodes) = match prepared.await {
        Ok(p) => p,
        Err(err) => return failed_after(false, format!("{err:#}")),
    };
    // Replicas first: the primary's change is the one that cuts old clients off.
    nodes.rotate_left(1);
    let user = &redis.user;
    let (from_ref, to_ref) = (&from, &to);
    let notes = match on_each_node(&nodes, false, |node| async move {
        let mut connection = login(ctx, node, user, [from_ref, to_ref]).await?;
        if node.replica && follows(&mut connection, user).await? {
            config_set(&mut connection, "masterauth", to_ref).await?;
        }
        config_set(&mut connection, "requirepass", to_ref).await?;
        Ok(if rewrite_config(&mut connection).await? {
            "CONFIG REWRITE".to_string()
        } else {
            "no config file, not persisted".to_string()
        })
    })
    .await
    {
        Ok(lines) => lines,
        Err(failed) => return failed,
    };
    let what = format!("requirepass, set to the {} password,", version.name());
    if let Some(failed) = read_back(ctx, &nodes, user, &to, true, &what).await {
        return failed;
    }
    StepOutcome::done(format!(
        "requirepass is the {} password ({})",
        version.name(),
        notes.join("; ")
    ))
}

pub async fn check_set_requirepass(
    ctx: &Ctx<'_>,
    redis: &Redis,
    key: &str,
    version: Version,
) -> Result<Checked> {
    let to = value(ctx, key, version).await?;
    let from = value(ctx, key, version.other()).await?;
    let mut pending = false;
    for node in nodes(redis)? {
        if accepts(ctx, &node, &redis.user, &to).await? == Auth::Accepted {
            continue;
        }
        if accepts(ctx, &node, &redis.user, &from).await? == Auth::Accepted {
            pending = true;
            continue;
        }
        return Ok(Checked::Conflict(format!(
            "Redis {} accepts neither the run's old nor its new password: someone else changed it; not touching it",
            node.label
        )));
    }
    Ok(if pending {
        Checked::NotApplied
    } else {
        Checked::Applied(format!(
            "requirepass is the {} password on {}",
            version.name(),
            redis.nodes()
        ))
    })
}

/// Logs in as the user on every node with the Secret's current value of `key`.
pub async fn apply_check_auth(ctx: &Ctx<'_>, redis: &Redis, key: &str) -> StepOutcome {
    let checked = async {
        let live = super::secret::read_live(ctx).await?;
        let value = super::secret::value_of(&live, key)
            .map(|v| SecretValue::new(v.to_vec()))
            .ok_or_else(|| anyhow!("{} has no key {key}", ctx.object()))?;
        for node in nodes(redis)? {
            if let Auth::Rejected(why) = accepts(ctx, &node, &redis.user, &value).await? {
                return anyhow::Ok(Some(format!(
                    "Redis {} refuses {}'s login with the Secret's {key}: {why}",
                    node.label, redis.user
                )));
            }
        }
        anyhow::Ok(None)
    };
    match checked.await {
        Ok(None) => StepOutcome::done(format!(
            "{} logs in on {} with the Secret's {key}",
            redis.user,
            redis.nodes()
        )),
        Ok(Some(refused)) => StepOutcome::failed(refused, Applied::No),
        Err(err) => StepOutcome::failed(
            format!("cannot log in to Redis to check the new password: {err:#}"),
            Applied::No,
        ),
    }
}

/// Applies one of this system's steps (the runner calls it through `systems::apply`).
pub async fn apply(step: &crate::plan::steps::RedisStep, ctx: &Ctx<'_>) -> StepOutcome {
    match step {
        crate::plan::steps::RedisStep::AddPassword { redis, key, value } => {
            apply_add_password(ctx, redis, key, *value).await
        }
        crate::plan::steps::RedisStep::RemovePassword { redis, key, value } => {
            apply_remove_password(ctx, redis, key, *value).await
        }
        crate::plan::steps::RedisStep::SetRequirepass { redis, key, value } => {
            apply_set_requirepass(ctx, redis, key, *value).await
        }
        crate::plan::steps::RedisStep::CheckAuth { redis, key } => {
            apply_check_auth(ctx, redis, key).await
        }
    }
}

/// Reads back whether one of this system's steps, recorded as started by a run that stopped,
/// took effect.
pub async fn check(step: &crate::plan::steps::RedisStep, ctx: &Ctx<'_>) -> anyhow::Result<Checked> {
    match step {
        // A login check only reads: checking again is the check.
        crate::plan::steps::RedisStep::CheckAuth { .. } => Ok(Checked::NotApplied),
        crate::plan::steps::RedisStep::AddPassword { redis, key, value } => {
            check_add_password(ctx, redis, key, *value).await
        }
        crate::plan::steps::RedisStep::RemovePassword { redis, key, value } => {
            check_remove_password(ctx, redis, key, *value).await
        }
        crate::plan::steps::RedisStep::SetRequirepass { redis, key, value } => {
            check_set_requirepass(ctx, redis, key, *value).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::preflight::*;
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn a_password_is_sent_as_the_sha256_redis_stores() {
        // `echo -n foobar | sha256sum`
        assert_eq!(
            password_hash(&SecretValue::new(b"foobar".to_vec())),
            "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"
        );
    }

    #[test]
    fn replicas_are_read_from_info_replication() {
        let info = parse_info(
            "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
             slave0:ip=10.1.0.7,port=6379,state=online,offset=42,lag=0\r\n\
             slave1:ip=10.1.0.9,port=6380,state=online,offset=42,lag=1\r\n\
             master_failover_state:no-failover\r\nslave_read_repl_offset:0\r\n",
        );
        assert_eq!(
            reported_replicas(&info),
            [
                ("10.1.0.7".to_string(), 6379),
                ("10.1.0.9".to_string(), 6380)
            ]
        );
    }

    #[test]
    fn sentinels_are_told_apart_by_their_connection_names() {
        let list = "id=3 addr=10.0.0.5:5000 name=sentinel-2f6c1e5a-cmd age=9 cmd=ping user=default\n\
                    id=4 addr=10.0.0.5:5001 name=sentinel-2f6c1e5a-pubsub age=9 cmd=subscribe\n\
                    id=5 addr=10.0.0.6:5002 name= age=1 cmd=client|list\n\
                    id=6 addr=10.0.0.6:5003 name=api-sentinel-ish age=1 cmd=get\n";
        assert_eq!(count_sentinels(list), 2);
        assert_eq!(count_sentinels("id=5 addr=x name= age=1\n"), 0);
    }

    #[test]
    fn a_redis_image_that_serves_6379_is_a_server_and_an_exporter_is_not() {
        let pod = |image: &str, port: i32| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": image, "ports": [{"containerPort": port}]}]},
            }))
            .unwrap()
        };
        assert!(looks_like_redis(&pod("redis:7", 6379)));
        assert!(looks_like_redis(&pod("docker.io/bitnami/redis:7.2", 6379)));
        assert!(looks_like_redis(&pod("kubectl-rotate.io/redis:7", 6379)));
        assert!(!looks_like_redis(&pod(
            "oliver006/redis_exporter:v1.58",
            9121
        )));
        assert!(!looks_like_redis(&pod("redis:7", 26379)));
    }

    #[test]
    fn a_pod_reads_a_key_by_env_env_from_or_volume() {
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
                .unwrap()
        };
        let env = pod(serde_json::json!({"containers": [{"name": "c", "env": [
            {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "redis-password"}}}
        ]}]}));
        assert!(reads_key(&env, "app-secrets", "redis-password"));
        assert!(!reads_key(&env, "app-secrets", "other"));
        let volume = pod(serde_json::json!({
            "containers": [{"name": "c", "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "secret": {"secretName": "app-secrets"}}]
        }));
        assert!(reads_key(&volume, "app-secrets", "redis-password"));
        let config_map = pod(serde_json::json!({
            "containers": [{"name": "c", "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "configMap": {"name": "redis-conf"}}]
        }));
        assert!(!reads_key(&config_map, "app-secrets", "redis-password"));
    }
}

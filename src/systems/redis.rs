//! Redis, the second system of the runbook's Redis procedure (issue 12): reaching the server
//! (`reach`: through the API server's port-forward, or `HOST:PORT`), telling a rejected
//! password apart from a server that cannot be reached, and the ACL operations an overlap
//! rotation is made of: add a password to a user, remove one, persist the result the way the
//! server is configured.
//!
//! Passwords are added and removed by their SHA-256 (`ACL SETUSER user #<hex>` / `!<hex>`),
//! the form Redis stores, so the plaintext is never on the wire after the login itself.
//!
//! Not wired into a preset yet: the steps, the preset and its proof come with issue 12.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, RedisConnectionInfo};
use sha2::{Digest, Sha256};

use super::reach::{Server, open_stream, resolve_pod};
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
    run(connection, "ACL SETUSER", command).await.map(drop)
}

/// How the server keeps its users across a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persistence {
    /// `aclfile` is set: `ACL SAVE` writes it.
    AclFile(String),
    /// Users live in the config file: `CONFIG REWRITE` writes it.
    ConfigFile,
}

/// Makes the server's current users survive a restart, the way it is configured; says how.
pub async fn persist(connection: &mut MultiplexedConnection) -> Result<Persistence> {
    let mut get = redis::cmd("CONFIG");
    get.arg("GET").arg("aclfile");
    let answer: Vec<String> =
        redis::FromRedisValue::from_redis_value(run(connection, "CONFIG GET", get).await?)
            .map_err(|e| anyhow!("CONFIG GET aclfile: {e}"))?;
    let aclfile = answer.get(1).cloned().unwrap_or_default();
    if aclfile.is_empty() {
        let mut rewrite = redis::cmd("CONFIG");
        rewrite.arg("REWRITE");
        run(connection, "CONFIG REWRITE", rewrite)
            .await
            .map_err(|e| {
                anyhow!("{e:#} (the server has no config file to keep its passwords in)")
            })?;
        Ok(Persistence::ConfigFile)
    } else {
        let mut save = redis::cmd("ACL");
        save.arg("SAVE");
        run(connection, "ACL SAVE", save).await?;
        Ok(Persistence::AclFile(aclfile))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_sent_as_the_sha256_redis_stores() {
        // `echo -n foobar | sha256sum`
        assert_eq!(
            password_hash(&SecretValue::new(b"foobar".to_vec())),
            "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"
        );
    }
}

//! Connections to PostgreSQL and Redis that are recycled like SQLAlchemy's `pool_recycle`: a
//! connection older than `POOL_RECYCLE_SECONDS` is dropped and replaced by a fresh login the
//! next time it is needed, and one that failed is dropped at once. That is what makes a running
//! pod notice a password change a few seconds later instead of never (an open session survives
//! a password change on both servers), so the demo fails the way a real app does.
//!
//! Each pool holds one shared connection: `tokio_postgres::Client` and Redis's multiplexed
//! connection both pipeline concurrent requests, which is plenty for a demo and keeps many
//! instances on a small machine cheap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, IntoConnectionInfo};
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::config::{Secret, Secrets, Settings};

/// How long a login or a single command may take before it counts as a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longer than the worker's `BLPOP jobs 1`, which holds its answer for a second.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens one new, logged-in connection. Errors are messages fit for a log line.
pub trait Connector: Send + Sync + 'static {
    type Conn: Clone + Send + Sync + 'static;
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, String>> + Send;
}

pub struct Pool<K: Connector> {
    connector: K,
    max_age: Duration,
    slot: Mutex<Option<(K::Conn, Instant)>>,
}

impl<K: Connector> Pool<K> {
    pub fn new(connector: K, max_age: Duration) -> Self {
        Pool {
            connector,
            max_age,
            slot: Mutex::new(None),
        }
    }

    /// The current connection, or a new login when there is none or it is too old. The lock is
    /// held while logging in so that concurrent requests wait for one login, not start many.
    pub async fn get(&self) -> Result<K::Conn, String> {
        let mut slot = self.slot.lock().await;
        if let Some((conn, born)) = slot.as_ref()
            && born.elapsed() < self.max_age
        {
            return Ok(conn.clone());
        }
        // Dropping our handle closes the socket once in-flight users of it are done.
        *slot = None;
        let conn = self.connector.connect().await?;
        *slot = Some((conn.clone(), Instant::now()));
        Ok(conn)
    }

    /// Forgets the connection after a failure, so the next use logs in again.
    pub async fn discard(&self) {
        *self.slot.lock().await = None;
    }
}

pub struct Postgres(tokio_postgres::Config);

impl Connector for Postgres {
    type Conn = Arc<tokio_postgres::Client>;

    async fn connect(&self) -> Result<Self::Conn, String> {
        let (client, connection) = self.0.connect(NoTls).await.map_err(|e| pg_message(&e))?;
        // The connection task ends when the last client handle is dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Arc::new(client))
    }
}

pub struct Redis {
    client: redis::Client,
    config: AsyncConnectionConfig,
    user: String,
    password: Secret,
}

impl Connector for Redis {
    type Conn = MultiplexedConnection;

    async fn connect(&self) -> Result<Self::Conn, String> {
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| redis_message(&e))?;
        // `AUTH user password`, as the crate sends it when given both; sent here because the
        // crate replaces the server's reply (`WRONGPASS invalid username-password pair ...`)
        // with a generic message, and that reply is what an operator needs in the log. The
        // connection is not shared before this, and a multiplexed connection never reconnects
        // by itself, so every command on it runs authenticated.
        redis::cmd("AUTH")
            .arg(&self.user)
            .arg(self.password.expose())
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| redis_message(&e))?;
        Ok(conn)
    }
}

/// Both pools, as the api and the worker use them.
pub struct Backends {
    pub pg: Pool<Postgres>,
    pub redis: Pool<Redis>,
}

impl Backends {
    pub fn new(settings: &Settings, secrets: &Secrets) -> Result<Backends, String> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&settings.database_host)
            .port(settings.database_port)
            .user(&settings.database_user)
            .password(secrets.postgres_password.expose())
            .dbname(&settings.database_name)
            .application_name("ai-agents")
            .connect_timeout(CONNECT_TIMEOUT);

        let info = redis::ConnectionAddr::Tcp(settings.redis_host.clone(), settings.redis_port)
            .into_connection_info()
            .map_err(|e| e.to_string())?
            // No credentials here: `Redis::connect` authenticates (see there).
            .set_redis_settings(redis::RedisConnectionInfo::default().set_skip_set_lib_name());
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));

        Ok(Backends {
            pg: Pool::new(Postgres(pg), settings.pool_recycle),
            redis: Pool::new(
                Redis {
                    client,
                    config,
                    user: settings.redis_user.clone(),
                    password: secrets.redis_password.clone(),
                },
                settings.pool_recycle,
            ),
        })
    }

    /// Runs one query on the pooled connection; on failure the connection is dropped.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, String> {
        let client = self.pg.get().await?;
        let result = tokio::time::timeout(COMMAND_TIMEOUT, client.query(sql, params)).await;
        match result {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                self.pg.discard().await;
                Err(pg_message(&e))
            }
            Err(_) => {
                self.pg.discard().await;
                Err("query timed out".to_string())
            }
        }
    }

    /// Runs one Redis command on the pooled connection; on failure the connection is dropped.
    pub async fn redis<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut conn = self.redis.get().await?;
        match cmd.query_async(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                self.redis.discard().await;
                Err(redis_message(&e))
            }
        }
    }
}

/// The server's own message when there is one (`password authentication failed for user
/// "ai_agents"`), else the client's error with its causes (`error connecting to server:
/// Connection refused ...`).
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A server error as Redis words it (`WRONGPASS invalid username-password pair or user is
/// disabled.`), else the client's error.
pub fn redis_message(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

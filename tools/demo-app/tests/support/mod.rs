//! Test support: real PostgreSQL 15 and Redis 7 servers started as child processes on loopback
//! (each test gets its own, so tests run in parallel without seeing each other), the demo app
//! as a child process whose log is collected line by line, and a minimal HTTP/1.1 client.
//! Everything started here is stopped on drop, also when a test panics.
//!
//! Needs Debian's `postgresql` (15) and `redis-server` packages; runs as root, and starts
//! PostgreSQL as the `postgres` user since the server refuses to run as root.
//! Secret values go to the children through environment variables, files or stdin, never argv.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How many times a server start is tried with another free port (another test may take the
/// port between our probe and the server's bind).
const START_ATTEMPTS: usize = 5;

pub const APP: &str = env!("CARGO_BIN_EXE_demo-app");

/// A random alphanumeric string of `len` (at most 43) characters, for throwaway passwords.
pub fn random_text(len: usize) -> String {
    let key: String = fernet::Fernet::generate_key()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    key[..len].to_string()
}

/// A free TCP port on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Waits for `child` to exit, up to `timeout`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asks a child to stop with `signal` (TERM, INT), and kills it if it has not after 10 s.
fn stop(child: &mut Child, signal: &str) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    if wait_timeout(child, Duration::from_secs(10)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The user to run PostgreSQL as: `postgres` when we are root (the server refuses to run as
/// root), else ourselves.
fn server_ids() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .expect("Uid line");
    if euid != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("no postgres user: apt-get install postgresql");
    let fields: Vec<&str> = line.split(':').collect();
    Some((
        fields[2].parse().expect("uid"),
        fields[3].parse().expect("gid"),
    ))
}

/// Makes `path` the server user's, when we run it as another user.
fn give(path: &Path, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
}

/// Runs `cmd` as the server user. Setting the ids on the child rather than going through
/// `runuser`: the server is then our direct child, so the pid we signal on drop is its own.
fn as_server_user(cmd: &mut Command, ids: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// A PostgreSQL 15 server on 127.0.0.1 (scram-sha-256 over TCP), its Unix socket in its own
/// temporary directory (trust for the superuser `postgres`), with role `ai_agents` (password
/// given) owning database `ai_agents`.
pub struct Postgres {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

impl Postgres {
    pub fn start(app_password: &str) -> Postgres {
        let ids = server_ids();
        let mut dir = tempfile::Builder::new()
            .prefix("demo-pg-")
            .tempdir()
            .expect("temp dir");
        give(dir.path(), ids);
        let data = dir.path().join("data");
        let status = as_server_user(&mut Command::new(format!("{PG_BIN}/initdb")), ids)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["--no-sync", "--no-locale", "-E", "UTF8", "-D"])
            .arg(&data)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed: {status}");

        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
            give(&dir.path().join("server.log"), ids);
            let child = as_server_user(&mut Command::new(format!("{PG_BIN}/postgres")), ids)
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", dir.path().display()))
                // Small and fast: many servers run side by side and the data is throwaway.
                .args([
                    "-c",
                    "shared_buffers=8MB",
                    "-c",
                    "max_connections=40",
                    "-c",
                    "fsync=off",
                ])
                .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start postgres");
            let mut server = Postgres { child, port, dir };
            if server.wait_ready() {
                let password = app_password.replace('\'', "''");
                server.psql(
                    "postgres",
                    &format!(
                        "CREATE ROLE ai_agents LOGIN PASSWORD '{password}';\n\
                         CREATE DATABASE ai_agents OWNER ai_agents;\n"
                    ),
                );
                return server;
            }
            stop(&mut server.child, "INT");
            let log = server.log();
            assert!(
                log.contains("Address already in use"),
                "postgres did not start:\n{log}"
            );
            dir = server.take_dir();
        }
        panic!("postgres: no free port after {START_ATTEMPTS} attempts");
    }

    /// Moves the temporary directory out of a failed attempt (the server is stopped).
    fn take_dir(mut self) -> TempDir {
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ok = self
                .psql_command("postgres")
                .stdin(Stdio::null())
                .arg("-c")
                .arg("SELECT 1")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn psql_command(&self, database: &str) -> Command {
        let mut cmd = Command::new(format!("{PG_BIN}/psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
        ])
        .arg("-h")
        .arg(self.dir.path())
        .args(["-p", &self.port.to_string(), "-d", database]);
        cmd
    }

    /// Runs SQL as the superuser over the Unix socket, the SQL on stdin (so passwords in it
    /// stay out of argv); returns the output and panics on an error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut child = self
            .psql_command(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run psql");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .expect("write SQL");
        let output = child.wait_with_output().expect("psql output");
        assert!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// libpq connection string for the superuser over the Unix socket (no password).
    pub fn admin_url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=ai_agents",
            self.dir.path().display(),
            self.port
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's "fast shutdown": sessions are ended, no checkpoint wait.
        stop(&mut self.child, "INT");
    }
}

/// A Redis 7 server on 127.0.0.1 with `requirepass`, no persistence, in a temporary directory.
pub struct Redis {
    child: Child,
    pub port: u16,
    password: String,
    dir: TempDir,
}

impl Redis {
    pub fn start(password: &str) -> Redis {
        let mut dir = tempfile::Builder::new()
            .prefix("demo-redis-")
            .tempdir()
            .expect("temp dir");
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let conf = dir.path().join("redis.conf");
            // The password is in the config file, not on the command line.
            std::fs::write(
                &conf,
                format!(
                    "bind 127.0.0.1\nport {port}\nrequirepass \"{password}\"\ndir \"{}\"\n\
                     save \"\"\nappendonly no\ndaemonize no\nloglevel warning\n\
                     logfile \"{}\"\n",
                    dir.path().display(),
                    dir.path().join("server.log").display()
                ),
            )
            .expect("write redis.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server (apt-get install redis-server)");
            let mut server = Redis {
                child,
                port,
                password: password.to_string(),
                dir,
            };
            if server.wait_ready() {
                return server;
            }
            stop(&mut server.child, "TERM");
            let log =
                std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
            assert!(
                log.contains("Address already in use"),
                "redis did not start:\n{log}"
            );
            let placeholder = tempfile::tempdir().expect("temp dir");
            dir = std::mem::replace(&mut server.dir, placeholder);
        }
        panic!("redis: no free port after {START_ATTEMPTS} attempts");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut conn) = self.try_connect()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn try_connect(&self) -> redis::RedisResult<redis::Connection> {
        use redis::IntoConnectionInfo;
        let info = redis::ConnectionAddr::Tcp("127.0.0.1".into(), self.port)
            .into_connection_info()?
            .set_redis_settings(redis::RedisConnectionInfo::default().set_password(&self.password));
        redis::Client::open(info)?.get_connection_with_timeout(Duration::from_secs(5))
    }

    /// A synchronous, authenticated connection for the test's own checks.
    pub fn connect(&self) -> redis::Connection {
        self.try_connect().expect("connect to redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        stop(&mut self.child, "TERM");
    }
}

/// The four secrets, as the Secret `app-secrets` would hold them.
#[derive(Clone)]
pub struct Secrets {
    pub postgres_password: String,
    pub redis_password: String,
    pub openai_api_key: String,
    pub encryption_key: String,
}

impl Secrets {
    pub fn random() -> Secrets {
        Secrets {
            postgres_password: random_text(24),
            redis_password: random_text(24),
            openai_api_key: format!("sk-test-{}", random_text(32)),
            encryption_key: fernet::Fernet::generate_key(),
        }
    }

    /// As environment variables of the app.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AI_AGENTS_POSTGRES_PASSWORD", &self.postgres_password),
            ("AI_AGENTS_REDIS_PASSWORD", &self.redis_password),
            ("AI_AGENTS_OPENAI_API_KEY", &self.openai_api_key),
            ("AI_AGENTS_ENCRYPTION_KEY", &self.encryption_key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }

    /// As files named after the keys, the way a Secret volume presents them.
    pub fn write_files(&self, dir: &Path) {
        for (key, value) in [
            ("postgres-password", &self.postgres_password),
            ("redis-password", &self.redis_password),
            ("openai-api-key", &self.openai_api_key),
            ("encryption-key", &self.encryption_key),
        ] {
            std::fs::write(dir.join(key), value).expect("write secret file");
        }
    }
}

/// PostgreSQL and Redis for one test, seeded with tenants `tenant-1`..`tenant-3`.
pub struct Stack {
    pub secrets: Secrets,
    pub postgres: Postgres,
    pub redis: Redis,
    /// An empty directory, so the app never reads /etc/ai-agents/secrets by accident.
    pub no_secrets_dir: TempDir,
}

impl Stack {
    pub fn start() -> Stack {
        let secrets = Secrets::random();
        let (postgres, redis) = thread::scope(|s| {
            let pg = s.spawn(|| Postgres::start(&secrets.postgres_password));
            let redis = Redis::start(&secrets.redis_password);
            (pg.join().expect("postgres start-up panicked"), redis)
        });
        let stack = Stack {
            secrets,
            postgres,
            redis,
            no_secrets_dir: tempfile::tempdir().expect("temp dir"),
        };
        stack.seed();
        stack
    }

    /// Runs `demo-app seed` as the superuser over the Unix socket; returns its output.
    pub fn seed(&self) -> String {
        let output = Command::new(APP)
            .arg("seed")
            .env_clear()
            .env("DATABASE_URL", self.postgres.admin_url())
            .env("AI_AGENTS_ENCRYPTION_KEY", &self.secrets.encryption_key)
            .env("AI_AGENTS_SECRETS_DIR", self.no_secrets_dir.path())
            .output()
            .expect("run demo-app seed");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "seed failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// The app's environment for these servers, secrets included, and fast pool recycling.
    pub fn env(&self, secrets: &Secrets) -> Vec<(String, String)> {
        let mut env = secrets.env();
        env.extend(self.env_without_secrets());
        env
    }

    pub fn env_without_secrets(&self) -> Vec<(String, String)> {
        [
            ("DATABASE_HOST", "127.0.0.1".to_string()),
            ("DATABASE_PORT", self.postgres.port.to_string()),
            ("REDIS_HOST", "127.0.0.1".to_string()),
            ("REDIS_PORT", self.redis.port.to_string()),
            ("LISTEN_ADDRESS", "127.0.0.1".to_string()),
            ("PORT", "0".to_string()),
            ("POOL_RECYCLE_SECONDS", "1".to_string()),
            (
                "AI_AGENTS_SECRETS_DIR",
                self.no_secrets_dir.path().display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The demo app as a child process; stdout and stderr are collected as lines.
pub struct AppProcess {
    child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl AppProcess {
    /// Starts `demo-app <role>` with exactly `env` (plus PATH).
    pub fn start(role: &str, env: &[(String, String)]) -> AppProcess {
        let mut child = Command::new(APP)
            .arg(role)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start demo-app");
        let lines: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        let readers = [stdout, stderr]
            .into_iter()
            .map(|stream| {
                let lines = lines.clone();
                thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let (store, changed) = &*lines;
                        store.lock().expect("lines lock").push(line);
                        changed.notify_all();
                    }
                })
            })
            .collect();
        AppProcess {
            child,
            lines,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().expect("lines lock").clone()
    }

    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// The first line containing `needle`, waiting up to `timeout` for it.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (store, changed) = &*self.lines;
        let mut lines = store.lock().expect("lines lock");
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = changed.wait_timeout(lines, left).expect("lines lock").0;
        }
    }

    /// Panics unless a line containing `needle` shows up within 5 s.
    pub fn expect_line(&self, needle: &str) -> String {
        self.wait_for_line(needle, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no line with {needle:?} in the log:\n{}", self.output()))
    }

    /// The port of the api, from its `Listening on 127.0.0.1:PORT` line.
    pub fn wait_listening(&self) -> u16 {
        let line = self
            .wait_for_line("Listening on ", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("api did not start listening; log:\n{}", self.output()));
        line.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in Listening line")
    }

    /// Waits for the process to exit and for its output to be read completely.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = wait_timeout(&mut self.child, timeout).unwrap_or_else(|| {
            panic!(
                "demo-app did not exit within {timeout:?}; log:\n{}",
                self.output()
            )
        });
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// Sends a signal (`TERM`, `INT`) to the app.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Resident memory of the process in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET to 127.0.0.1:`port`; returns status, headers (lower-case names) and body.
pub fn http_get(port: u16, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to api");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let mut head_lines = head.lines();
    let status = head_lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = head_lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

//! Real PostgreSQL 15 and Redis 7 servers on 127.0.0.1 as child processes, one pair per test
//! (copied, trimmed, from tools/demo-app/tests/support/mod.rs). Stopped on drop. As root,
//! PostgreSQL runs as the `postgres` user. Passwords go to the servers through stdin or a
//! private config file, never argv.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const START_ATTEMPTS: usize = 5;

/// A free TCP port on 127.0.0.1 at the time of the call.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

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

/// Asks a child to stop with `signal`, and kills it if it has not after 10 s.
fn stop(child: &mut Child, signal: i32) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill(2) on our own, not yet reaped, child.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    if wait_timeout(child, Duration::from_secs(10)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The `postgres` user's ids when we are root (the server refuses to run as root).
fn server_ids() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .context("no postgres user: apt-get install postgresql")?;
    let fields: Vec<&str> = line.split(':').collect();
    Ok(Some((fields[2].parse()?, fields[3].parse()?)))
}

fn give(path: &Path, ids: Option<(u32, u32)>) -> Result<()> {
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

fn as_server_user(cmd: &mut Command, ids: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// PostgreSQL 15 on 127.0.0.1 (scram-sha-256 over TCP, trust for `postgres` on its Unix socket
/// in its own directory), with role `ai_agents` owning database `ai_agents`.
pub struct Postgres {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

impl Postgres {
    pub fn start(app_password: &str) -> Result<Postgres> {
        let ids = server_ids()?;
        let dir = tempfile::Builder::new().prefix("e2e-pg-").tempdir()?;
        give(dir.path(), ids)?;
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
            .context("running initdb (apt-get install postgresql)")?;
        ensure!(status.success(), "initdb failed: {status}");
        let mut dir = Some(dir);
        for _ in 0..START_ATTEMPTS {
            let d = dir.take().expect("kept between attempts");
            let port = free_port()?;
            let log_path = d.path().join("server.log");
            let log = std::fs::File::create(&log_path)?;
            give(&log_path, ids)?;
            let child = as_server_user(&mut Command::new(format!("{PG_BIN}/postgres")), ids)
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", d.path().display()))
                .args(["-c", "shared_buffers=8MB", "-c", "max_connections=60"])
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"])
                .current_dir(d.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting postgres")?;
            let mut server = Postgres {
                child,
                port,
                dir: d,
            };
            if server.wait_ready() {
                let password = app_password.replace('\'', "''");
                server.psql(
                    "postgres",
                    &format!(
                        "CREATE ROLE ai_agents LOGIN PASSWORD '{password}';\n\
                         CREATE DATABASE ai_agents OWNER ai_agents;\n"
                    ),
                )?;
                return Ok(server);
            }
            stop(&mut server.child, libc::SIGINT);
            let log =
                std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
            ensure!(
                log.contains("Address already in use"),
                "postgres did not start:\n{log}"
            );
            let placeholder = tempfile::tempdir()?;
            dir = Some(std::mem::replace(&mut server.dir, placeholder));
        }
        bail!("postgres: no free port after {START_ATTEMPTS} attempts")
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
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .args(["-c", "SELECT 1"])
                .status()
                .is_ok_and(|s| s.success());
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

    /// Runs SQL (on stdin) as the superuser over the Unix socket.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let mut child = self
            .psql_command(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running psql")?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(sql.as_bytes())?;
        let output = child.wait_with_output()?;
        ensure!(
            output.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// libpq connection string for the superuser over the Unix socket (no password).
    pub fn admin_url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=ai_agents",
            self.dir.path().display(),
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&mut self.child, libc::SIGINT); // fast shutdown
    }
}

/// Redis 7 on 127.0.0.1 with `requirepass` (in its private config file), no persistence.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Redis {
    pub fn start(password: &str) -> Result<Redis> {
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new().prefix("e2e-redis-").tempdir()?;
            let port = free_port()?;
            let conf = dir.path().join("redis.conf");
            std::fs::write(
                &conf,
                format!(
                    "bind 127.0.0.1\nport {port}\nrequirepass \"{password}\"\ndir \"{}\"\n\
                     save \"\"\nappendonly no\ndaemonize no\nloglevel warning\n\
                     logfile \"{}\"\n",
                    dir.path().display(),
                    dir.path().join("server.log").display()
                ),
            )?;
            let child = Command::new("redis-server")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server (apt-get install redis-server)")?;
            let mut server = Redis {
                child,
                port,
                _dir: dir,
            };
            if server.wait_ready(password) {
                return Ok(server);
            }
            stop(&mut server.child, libc::SIGTERM);
        }
        bail!("redis: did not start after {START_ATTEMPTS} attempts")
    }

    fn wait_ready(&mut self, password: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.ping(password).unwrap_or(false) {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// AUTH + PING in RESP over a plain TCP connection.
    fn ping(&self, password: &str) -> Result<bool> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let auth = format!(
            "*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n*1\r\n$4\r\nPING\r\n",
            password.len()
        );
        stream.write_all(auth.as_bytes())?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(5).any(|w| w == b"+PONG") || answer.starts_with(b"-") {
                break;
            }
        }
        Ok(answer.windows(5).any(|w| w == b"+PONG"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        stop(&mut self.child, libc::SIGTERM);
    }
}

//! Benchmark of the encryption-key migration (issue 13): re-encrypting N tenant rows from the
//! old Fernet key to the new one, the plugin against the obvious manual migration, on the same
//! database. A program that prints figures, not a timed test: `cargo bench --bench reencrypt`.
//!
//! - **The database**: a throwaway PostgreSQL 15 (Debian's `postgresql`, as the tests use it)
//!   started by this program in a temporary directory on 127.0.0.1 (trust authentication, fsync
//!   off: the data is thrown away), stopped at the end. Table `tenant_configs(tenant_id text
//!   primary key, config text)`, as the demo app's, seeded with N Fernet tokens of small JSON
//!   documents under the old key before each run.
//! - **The plugin**: the code the `reencrypt` step runs (`systems::reencrypt::migrate_all`: one
//!   transaction, rows read through a cursor in batches of 1000, written back with one `UPDATE
//!   ... FROM unnest(...)` per batch), in a child process of its own (this program, run again),
//!   so that its peak resident set (`wait4`'s `ru_maxrss`) is the migration's alone.
//! - **The script**: Python's `cryptography` and `psycopg` (PyPI, in the provisioned venv), the
//!   migration one writes by hand: `SELECT` every row, `MultiFernet([new, old]).rotate(token)`
//!   and one `UPDATE ... WHERE tenant_id = %s` per row, one commit at the end.
//!
//! Both get the keys through their environment (never argv), and both results are checked: every
//! row decrypts with the new key. N = 10 000, 50 000, 100 000 (one run each, plugin first):
//! wall time, rows per second, peak RSS. Targets: the plugin at least 5x faster than the script
//! at 100 000 rows; its peak RSS under 50 MB and flat as N grows.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fernet::Fernet;
use kubectl_rotate::systems::encryption::reencrypt::{self, Column, Keys};
use kubectl_rotate::values::SecretValue;

const SIZES: [usize; 3] = [10_000, 50_000, 100_000];
const CHILD: &str = "KUBECTL_ROTATE_BENCH_REENCRYPT_CHILD";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

const SCRIPT: &str = r#"
import os, psycopg
from cryptography.fernet import Fernet, MultiFernet
ring = MultiFernet([Fernet(os.environ["NEW_KEY"]), Fernet(os.environ["OLD_KEY"])])
with psycopg.connect(os.environ["DSN"]) as conn:
    rows = conn.execute("SELECT tenant_id, config FROM tenant_configs").fetchall()
    for tenant_id, token in rows:
        conn.execute(
            "UPDATE tenant_configs SET config = %s WHERE tenant_id = %s",
            (ring.rotate(token.encode()).decode(), tenant_id),
        )
    conn.commit()
print(len(rows))
"#;

fn column() -> Column {
    Column {
        table: "tenant_configs".into(),
        key: "tenant_id".into(),
        column: "config".into(),
    }
}

fn main() -> Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let python = python()?;
    let server = Server::start()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("Re-encrypting tenant rows, old Fernet key -> new (PostgreSQL 15 on 127.0.0.1)\n");
    println!(
        "{:>8}  {:>22}  {:>22}  {:>8}",
        "ROWS", "PLUGIN s (rows/s, RSS)", "SCRIPT s (rows/s, RSS)", "SPEED-UP"
    );
    let mut figures = Vec::new();
    for rows in SIZES {
        let old = Fernet::generate_key();
        let new = Fernet::generate_key();
        runtime.block_on(seed(server.port, rows, &old))?;
        let plugin = measure(
            Command::new(std::env::current_exe()?)
                .env(CHILD, "1")
                .env("OLD_KEY", &old)
                .env("NEW_KEY", &new)
                .env("PGPORT", server.port.to_string()),
        )?;
        runtime.block_on(check(server.port, rows, &new))?;
        runtime.block_on(seed(server.port, rows, &old))?;
        let script = measure(
            Command::new(&python)
                .args(["-c", SCRIPT])
                .env("OLD_KEY", &old)
                .env("NEW_KEY", &new)
                .env(
                    "DSN",
                    format!(
                        "host=127.0.0.1 port={} user=postgres dbname=bench",
                        server.port
                    ),
                ),
        )?;
        runtime.block_on(check(server.port, rows, &new))?;
        let speedup = script.0.as_secs_f64() / plugin.0.as_secs_f64();
        println!(
            "{rows:>8}  {:>22}  {:>22}  {:>7.1}x",
            cell(rows, plugin),
            cell(rows, script),
            speedup
        );
        figures.push((rows, plugin, script, speedup));
    }
    let (_, _, _, speedup) = figures[figures.len() - 1];
    let rss: Vec<i64> = figures.iter().map(|(_, p, _, _)| p.1).collect();
    let (low, high) = (
        *rss.iter().min().unwrap_or(&0),
        *rss.iter().max().unwrap_or(&0),
    );
    println!(
        "\nAt {} rows the plugin is {speedup:.1}x faster than the script (target: at least 5x): {}.",
        SIZES[SIZES.len() - 1],
        if speedup >= 5.0 { "met" } else { "NOT met" }
    );
    println!(
        "The plugin's peak RSS: {:.1} to {:.1} MB from {} to {} rows (target: under 50 MB, flat): {}.",
        low as f64 / 1024.0,
        high as f64 / 1024.0,
        SIZES[0],
        SIZES[SIZES.len() - 1],
        if high < 50 * 1024 && (high - low) < 5 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

fn cell(rows: usize, (elapsed, rss): (Duration, i64)) -> String {
    format!(
        "{:.2} ({:.0}, {:.0} MB)",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        rss as f64 / 1024.0
    )
}

/// The plugin's migration, in this child process.
fn child() -> Result<()> {
    let old = SecretValue::new(std::env::var("OLD_KEY")?.into_bytes());
    let new = SecretValue::new(std::env::var("NEW_KEY")?.into_bytes());
    let port: u16 = std::env::var("PGPORT")?.parse()?;
    let keys = Keys::new(&old, &new)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut pg = connect(port).await?;
        let counts = reencrypt::migrate_all(&mut pg, &[column()], &keys).await?;
        println!("{}", counts[0].old);
        anyhow::Ok(())
    })
}

/// Runs `command` to its end: wall time and peak RSS (KiB).
fn measure(command: &mut Command) -> Result<(Duration, i64)> {
    let started = Instant::now();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a migration")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain system call on our own child; `usage` is a zeroed out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    ensure!(waited == pid, "wait4 failed");
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "a migration failed (status {status})"
    );
    Ok((elapsed, usage.ru_maxrss))
}

async fn connect(port: u16) -> Result<tokio_postgres::Client> {
    let (pg, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("bench")
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(pg)
}

/// `rows` tenants, each config a token of the old key.
async fn seed(port: u16, rows: usize, old: &str) -> Result<()> {
    let pg = connect(port).await?;
    pg.batch_execute(
        "DROP TABLE IF EXISTS tenant_configs; \
         CREATE TABLE tenant_configs (tenant_id text PRIMARY KEY, config text NOT NULL)",
    )
    .await?;
    let fernet = Fernet::new(old).context("a Fernet key")?;
    for start in (0..rows).step_by(10_000) {
        let end = (start + 10_000).min(rows);
        let ids: Vec<String> = (start..end).map(|i| format!("tenant-{i:07}")).collect();
        let tokens: Vec<String> = (start..end)
            .map(|i| {
                fernet.encrypt(
                    format!("{{\"model\": \"gpt-4\", \"temperature\": 0.2, \"tenant\": {i}}}")
                        .as_bytes(),
                )
            })
            .collect();
        pg.execute(
            "INSERT INTO tenant_configs SELECT * FROM unnest($1::text[], $2::text[])",
            &[&ids, &tokens],
        )
        .await?;
    }
    pg.batch_execute("VACUUM ANALYZE tenant_configs").await?;
    Ok(())
}

/// Every one of the `rows` rows decrypts with the new key.
async fn check(port: u16, rows: usize, new: &str) -> Result<()> {
    let mut pg = connect(port).await?;
    let keys = Keys::only(&SecretValue::new(new.as_bytes().to_vec()))?;
    let counts = reencrypt::count(&mut pg, &column(), &keys).await?;
    ensure!(
        counts.rows == rows as u64 && counts.new == rows as u64,
        "after the migration: {counts:?}"
    );
    Ok(())
}

/// The provisioned venv's Python, with `cryptography` and `psycopg`.
fn python() -> Result<String> {
    let cache = std::env::var("KUBECTL_ROTATE_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/kubectl-rotate",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let python = format!("{cache}/venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import cryptography, psycopg"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("{python} cannot import cryptography and psycopg: run scripts/provision.sh");
    }
    Ok(python)
}

/// A throwaway PostgreSQL 15 on 127.0.0.1, run as user `postgres` when we are root (the
/// server refuses to run as root), stopped on drop.
struct Server {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Result<Server> {
        use std::os::unix::process::CommandExt;
        let ids = server_ids()?;
        let dir = tempfile::Builder::new().prefix("reencrypt-pg-").tempdir()?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let as_server = |command: &mut Command| {
            if let Some((uid, gid)) = ids {
                command.uid(uid).gid(gid);
            }
        };
        let data = dir.path().join("data");
        let mut initdb = Command::new(format!("{PG_BIN}/initdb"));
        as_server(&mut initdb);
        let status = initdb
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "--no-locale"])
            .args(["-E", "UTF8", "-D"])
            .arg(&data)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("initdb (apt-get install postgresql)")?;
        ensure!(status.success(), "initdb failed");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.local_addr()?.port()
        };
        let mut postgres = Command::new(format!("{PG_BIN}/postgres"));
        as_server(&mut postgres);
        let child = postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "shared_buffers=64MB"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting postgres")?;
        let server = Server {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(format!("{PG_BIN}/psql"))
                .args(["-X", "-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-U", "postgres", "-d", "postgres", "-c", "SELECT 1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                break;
            }
            ensure!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut psql = Command::new(format!("{PG_BIN}/psql"))
            .args(["-X", "-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", "postgres", "-d", "postgres"])
            .stdin(Stdio::piped())
            .spawn()?;
        psql.stdin
            .take()
            .context("stdin")?
            .write_all(b"CREATE DATABASE bench;\n")?;
        ensure!(psql.wait()?.success(), "CREATE DATABASE failed");
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The `postgres` user's ids when we are root, else `None` (run as ourselves).
fn server_ids() -> Result<Option<(u32, u32)>> {
    // SAFETY: a plain query of our own effective uid.
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

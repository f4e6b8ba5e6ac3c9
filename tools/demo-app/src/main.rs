//! demo-app: a small, real imitation of the runbook's "AI Agents" application, for trying
//! kubectl-rotate against something that breaks the way a real app does when a secret changes.
//!
//! One binary, several roles:
//! - `demo-app api`: HTTP API (`/health`, `/api/v1/health`, `/api/v1/tenants/<id>/config`);
//! - `demo-app worker`: consumes jobs from the Redis list `jobs`;
//! - `demo-app seed [--database-url URL] [--tenants N]`: creates `tenant_configs` and N tenants;
//! - `demo-app encrypt` / `demo-app decrypt`: Fernet token of stdin / plaintext of a token;
//! - `demo-app postgres` / `demo-app redis`: the entrypoints of the demo's server images, which
//!   start a real PostgreSQL or Redis for a pod (see `images`).
//!
//! Both server roles log the runbook's start-up lines on stdout (the container log), validate
//! the four secrets of `app-secrets`, check PostgreSQL, Redis and every tenant config, and exit
//! 1 with the reason on the first failure. SIGTERM/SIGINT end the process with status 0.
//! Configuration is described in `config`; secret values are never printed.

mod api;
mod config;
mod images;
mod pool;
mod tenants;
mod worker;

use std::fmt::Display;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use fernet::MultiFernet;

use crate::config::{Settings, load_fernet, load_secrets};
use crate::pool::Backends;

/// What both server roles share once start-up succeeded.
pub struct App {
    pub backends: Backends,
    pub fernet: MultiFernet,
}

/// Writes one line of the container log. Flushed at once: the log is read while we run, and
/// a process stopped by a signal must not lose its last lines.
pub fn log(line: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

const USAGE: &str = "usage: demo-app api | worker | seed [--database-url URL] [--tenants N] | \
     reencrypt | encrypt | decrypt | postgres | redis";

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Api,
    Worker,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The server images' entrypoints block (they own the process until their server stops).
    let outcome = match (args.first().map(String::as_str), args.len()) {
        (Some("postgres"), 1) => images::postgres(),
        (Some("redis"), 1) => images::redis(),
        // One thread: many instances run side by side on a small machine; the load is tiny.
        _ => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(command(&args)),
            Err(e) => Err(format!("cannot start the runtime: {e}")),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            log(line);
            ExitCode::FAILURE
        }
    }
}

async fn command(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("api") if args.len() == 1 => run_until_signal(Role::Api).await,
        Some("worker") if args.len() == 1 => run_until_signal(Role::Worker).await,
        Some("seed") => seed(&args[1..]).await,
        Some("reencrypt") if args.len() == 1 => reencrypt().await,
        Some("encrypt") if args.len() == 1 => transform(|f, input| Ok(f.encrypt(input.as_bytes()))),
        Some("decrypt") if args.len() == 1 => transform(tenants::decrypt),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    }
}

/// Runs a server role; a termination signal at any point (even during start-up) is a clean exit.
async fn run_until_signal(role: Role) -> Result<(), String> {
    tokio::select! {
        result = run(role) => result,
        signal = termination() => {
            log(format_args!("Received {signal}, shutting down"));
            Ok(())
        }
    }
}

async fn termination() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default action (terminate) still applies; just never return.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// The start-up sequence of the runbook's app, then the role's main loop.
async fn run(role: Role) -> Result<(), String> {
    log(match role {
        Role::Api => "Starting AI Agents API",
        Role::Worker => "Starting AI Agents worker",
    });
    let settings = Settings::from_env()?;
    let secrets = load_secrets(&settings.secrets_dir)?;
    log("Secrets loaded successfully");

    let backends =
        Backends::new(&settings, &secrets).map_err(|e| format!("redis connection failed: {e}"))?;
    backends
        .query("SELECT 1", &[])
        .await
        .map_err(|e| format!("database connection failed: {e}"))?;
    log("database connection healthy");
    backends
        .redis::<String>(&redis::cmd("PING"))
        .await
        .map_err(|e| format!("redis connection failed: {e}"))?;
    log("redis connection healthy");
    let count = tenants::decrypt_all(&backends, &secrets.fernet).await?;
    log(format_args!("Tenant configs decrypted: {count}"));

    let app = Arc::new(App {
        backends,
        fernet: secrets.fernet,
    });
    match role {
        Role::Api => api::serve(app, SocketAddr::new(settings.listen_address, settings.port)).await,
        Role::Worker => worker::run(app).await,
    }
}

/// `seed`: admin connection from `--database-url` or `DATABASE_URL` (a URL or `key=value`
/// string; `host=/dir` is a Unix socket), else the app's own settings and password.
async fn seed(args: &[String]) -> Result<(), String> {
    let mut url = std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty());
    let mut count: u32 = 3;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match (arg.as_str(), rest.next()) {
            ("--database-url", Some(v)) => url = Some(v.clone()),
            ("--tenants", Some(v)) => {
                count = v
                    .parse()
                    .map_err(|_| format!("--tenants: not a number: {v}"))?
            }
            _ => return Err(USAGE.to_string()),
        }
    }
    let settings = Settings::from_env()?;
    let fernet = load_fernet(&settings.secrets_dir)?;
    let db = match url {
        Some(url) => url
            .parse()
            .map_err(|e| format!("invalid database URL: {e}"))?,
        None => {
            let secrets = load_secrets(&settings.secrets_dir)?;
            let mut db = tokio_postgres::Config::new();
            db.host(&settings.database_host)
                .port(settings.database_port)
                .user(&settings.database_user)
                .password(secrets.postgres_password.expose())
                .dbname(&settings.database_name);
            db
        }
    };
    let inserted = tenants::seed(&db, &settings.database_user, &fernet, count)
        .await
        .map_err(|e| format!("seed failed: {e}"))?;
    log(format_args!("Seeded tenants: {count} ({inserted} new)"));
    Ok(())
}

/// `reencrypt`: a migration as an app team writes one (run as a Job by `kubectl rotate
/// encryption-key` when the preset names it): every tenant config from `OLD_KEY` to `NEW_KEY`
/// (environment), row by row, in one transaction. The database login is the app's own:
/// `DATABASE_HOST`/`PORT`/`USER`/`NAME`, the password in `DATABASE_PASSWORD`.
async fn reencrypt() -> Result<(), String> {
    let key = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|k| config::fernet_from_key(&k))
            .ok_or_else(|| format!("{name} is missing or not a Fernet key"))
    };
    let (old, new) = (key("OLD_KEY")?, key("NEW_KEY")?);
    let settings = Settings::from_env()?;
    let password =
        std::env::var("DATABASE_PASSWORD").map_err(|_| "DATABASE_PASSWORD is missing")?;
    let mut db = tokio_postgres::Config::new();
    db.host(&settings.database_host)
        .port(settings.database_port)
        .user(&settings.database_user)
        .password(password)
        .dbname(&settings.database_name);
    let moved = tenants::reencrypt(&db, old, new).await?;
    log(format_args!("Re-encrypted tenant configs: {moved}"));
    Ok(())
}

/// `encrypt`/`decrypt`: reads stdin, writes the result on stdout, with the app's key handling.
fn transform(op: impl Fn(&MultiFernet, &str) -> Result<String, String>) -> Result<(), String> {
    let settings = Settings::from_env()?;
    let fernet = load_fernet(&settings.secrets_dir)?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    let output = op(&fernet, input.trim_end_matches(['\n', '\r']))?;
    log(output);
    Ok(())
}

//! The demo's server "images": the entrypoints the fake kubelet runs for pods of images
//! `kubectl-rotate.io/postgres` (`demo-app postgres`) and `kubectl-rotate.io/redis`
//! (`demo-app redis`). They start Debian's real PostgreSQL 15 and Redis 7 for that pod, the way
//! the official and Bitnami images start theirs, configured from the container's environment:
//!
//! - **postgres**: `POSTGRES_PASSWORD` (required: the superuser `postgres`'s password),
//!   `POSTGRES_DB` (created at the first start, default `postgres`), `POSTGRES_APP_USER` and
//!   `POSTGRES_APP_PASSWORD` (optional: a login role that owns `POSTGRES_DB`, as the Bitnami
//!   chart's `auth.username`), `PGPORT` (default 5432). The data directory is `pgdata` in the
//!   working directory (the pod's directory: it lives as long as the pod, like an `emptyDir`);
//!   it is initialised at the first start only, so a container restart keeps the data and the
//!   passwords as they are in the database. Connections: Unix socket in `run/` with `trust` for
//!   local users (the official image's `kubectl exec ... psql -U postgres`), TCP on
//!   `LISTEN_ADDRESS` (the pod IP) with `scram-sha-256`. Runs as the `postgres` user when
//!   started as root. SIGTERM/SIGINT stop it with a fast shutdown.
//! - **redis**: `REDIS_PASSWORD` (required unless `ALLOW_EMPTY_PASSWORD=yes`), `REDIS_PORT`
//!   (default 6379). Writes `redis.conf` (0600) in the working directory at the first start and
//!   runs `redis-server redis.conf`, so `CONFIG REWRITE` persists to that file; at each later
//!   start the `requirepass` line is set again from `REDIS_PASSWORD`, as the Bitnami image does,
//!   so a restarted server takes its password from the Secret (a `user default ...` line that
//!   `CONFIG REWRITE` wrote, e.g. after an overlap rotation, wins over it, as in Redis itself).
//!   `REDIS_ACLFILE=yes` keeps the users in `users.acl` (written at the first start with the
//!   password's SHA-256; `ACL SAVE` persists to it) instead of `requirepass`.
//!   `REDIS_DISABLE_COMMANDS` (comma-separated, as in the Bitnami image) disables commands with
//!   `rename-command NAME ""`, e.g. `ACL` for a server that behaves as one without ACLs.
//!   A replica: `REDIS_REPLICA_OF` (`HOST PORT` of the primary) and `REDIS_MASTER_PASSWORD`
//!   (`masterauth`, set again at each start like `requirepass`); it announces its pod IP
//!   (`replica-announce-ip`), because the primary sees its connections come from the node's
//!   Service proxy here, where a real cluster would show the pod IP. A Sentinel:
//!   `REDIS_SENTINEL_MONITOR` (`HOST PORT` of the primary; its `auth-pass` is `REDIS_PASSWORD`)
//!   runs `redis-server sentinel.conf --sentinel` on `REDIS_PORT` (default 26379) instead.
//!
//! Passwords reach the servers through a 0600 file (initdb, redis.conf) or as a SCRAM verifier
//! (the app's role), never argv or the log.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::log;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn cwd() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))
}

/// `user`'s uid and gid from /etc/passwd.
fn user_ids(user: &str) -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    passwd_ids(&passwd, user).ok_or_else(|| format!("no user {user} on this machine"))
}

fn passwd_ids(passwd: &str, user: &str) -> Option<(u32, u32)> {
    let line = passwd.lines().find(|l| l.split(':').next() == Some(user))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A SQL string literal.
pub fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A SQL identifier.
pub fn sql_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A value for redis.conf, quoted so that spaces, quotes and backslashes survive.
pub fn redis_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The config file with `requirepass` set to `password` (replacing any such line, else added).
pub fn with_requirepass(conf: &str, password: Option<&str>) -> String {
    with_setting(conf, "requirepass", password.map(redis_quoted))
}

/// The config file with `name` set to `value` (replacing any such line, else added; `None`:
/// removed).
pub fn with_setting(conf: &str, name: &str, value: Option<String>) -> String {
    let prefix = format!("{name} ");
    let mut lines: Vec<String> = conf
        .lines()
        .filter(|l| !l.trim_start().to_ascii_lowercase().starts_with(&prefix))
        .map(str::to_string)
        .collect();
    if let Some(value) = value {
        lines.push(format!("{name} {value}"));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn write_private(path: &Path, text: &str, owner: Option<(u32, u32)>) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    }
    Ok(())
}

fn private_dir(path: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot secure {}: {e}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Ends this process when its parent (the fake kubelet) dies, like a container whose runtime
/// went away; children get the same from `as_child`.
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

fn as_user(cmd: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    die_with_parent(cmd)
}

// --- PostgreSQL ---------------------------------------------------------------------------

/// `demo-app postgres`: see the module doc. Returns when the server has stopped.
pub fn postgres() -> Result<(), String> {
    let superuser_password = env("POSTGRES_PASSWORD").ok_or(
        "Error: POSTGRES_PASSWORD is not set: the superuser postgres needs a password \
         (set it from a Secret with secretKeyRef)",
    )?;
    let database = env("POSTGRES_DB").unwrap_or_else(|| "postgres".into());
    let app = match (env("POSTGRES_APP_USER"), env("POSTGRES_APP_PASSWORD")) {
        (Some(user), Some(password)) => Some((user, password)),
        (None, None) => None,
        _ => {
            return Err(
                "Error: set both POSTGRES_APP_USER and POSTGRES_APP_PASSWORD, or neither".into(),
            );
        }
    };
    let listen = env("LISTEN_ADDRESS").unwrap_or_else(|| "127.0.0.1".into());
    let port = env("PGPORT").unwrap_or_else(|| "5432".into());
    let bin = PathBuf::from(env("POSTGRES_BIN").unwrap_or_else(|| PG_BIN.into()));
    let owner = if is_root() {
        Some(user_ids("postgres")?)
    } else {
        None
    };
    let dir = cwd()?;
    let data = dir.join("pgdata");
    let run = dir.join("run");
    private_dir(&run, owner)?;
    let sockets = socket_dir(&dir, &run, owner)?;

    if !data.join("PG_VERSION").exists() {
        log("PostgreSQL init process: initialising the data directory");
        initialise(&bin, &data, &run, owner, &superuser_password)?;
        let mut server = start_postgres(&bin, &data, &sockets, owner, "", &port, &[])?;
        let setup = bootstrap(&sockets, &port, &database, app.as_ref());
        stop_postgres(&mut server);
        setup?;
        log("PostgreSQL init process complete; ready for start up.");
    } else {
        log("PostgreSQL Database directory appears to contain a database; Skipping initialization");
    }
    let mut extra = Vec::new();
    if env("POSTGRES_SSL").as_deref() == Some("on") {
        extra = server_certificate(&run, owner, &listen)?;
    }
    let mut server = start_postgres(&bin, &data, &sockets, owner, &listen, &port, &extra)?;
    let code = wait_forwarding_signals(&mut server);
    // Empty once the server removed its socket and lock file.
    let _ = std::fs::remove_dir(&sockets);
    let code = code?;
    if code == 0 {
        Ok(())
    } else {
        Err(format!("postgres exited with status {code}"))
    }
}

fn initialise(
    bin: &Path,
    data: &Path,
    run: &Path,
    owner: Option<(u32, u32)>,
    password: &str,
) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(data);
    private_dir(data, owner)?;
    let pwfile = run.join("initdb-password");
    write_private(&pwfile, password, owner)?;
    let output = as_user(&mut Command::new(bin.join("initdb")), owner)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .args(["--no-sync", "--no-locale", "-E", "UTF8"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .arg("-D")
        .arg(data)
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_file(&pwfile);
    let output = output.map_err(|e| format!("cannot run initdb: {e}"))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let hint = if text.contains("Permission denied") {
            " (user postgres must be able to reach the pod's directory: every parent directory \
             needs the x permission for others)"
        } else {
            ""
        };
        return Err(format!("initdb failed: {}{hint}", text.trim()));
    }
    // Connections from outside the pod: any address, SCRAM only.
    let hba = data.join("pg_hba.conf");
    let mut conf = std::fs::read_to_string(&hba).map_err(|e| format!("reading pg_hba: {e}"))?;
    conf.push_str("host all all 0.0.0.0/0 scram-sha-256\n");
    std::fs::write(&hba, conf).map_err(|e| format!("writing pg_hba: {e}"))?;
    Ok(())
}

/// The server's Unix socket directory: short, because a socket's path may not exceed 107
/// bytes and a pod's working directory can be deep (`/tmp/kubectl-rotate-pg-<hash of the
/// working directory>`, private to postgres). Its path is written to `run/socket-dir`, where
/// the fake kubelet reads it to set `PGHOST` for `kubectl exec`.
fn socket_dir(dir: &Path, run: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, String> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    let sockets = std::env::temp_dir().join(format!("kubectl-rotate-pg-{:016x}", hasher.finish()));
    private_dir(&sockets, owner)?;
    std::fs::write(run.join("socket-dir"), sockets.display().to_string())
        .map_err(|e| format!("writing {}: {e}", run.join("socket-dir").display()))?;
    Ok(sockets)
}

/// `POSTGRES_SSL=on`: a fresh CA and a server certificate it signs for `listen` (the pod's
/// address), written to `run/` (the key 0600, owned by postgres); the CA certificate (public)
/// is logged between BEGIN/END lines so a client can trust it (`kubectl logs`). Returns the
/// server's `-c` settings.
fn server_certificate(
    run: &Path,
    owner: Option<(u32, u32)>,
    listen: &str,
) -> Result<Vec<String>, String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let fail = |e: rcgen::Error| format!("cannot make the TLS certificate: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "demo PostgreSQL CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(fail)?)
        .map_err(fail)?;
    let key = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::new(vec![listen.to_string()]).map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, listen);
    let cert = params.signed_by(&key, &ca).map_err(fail)?;
    let cert_file = run.join("server.crt");
    let key_file = run.join("server.key");
    write_private(&cert_file, &cert.pem(), owner)?;
    write_private(&key_file, &key.serialize_pem(), owner)?;
    log(format_args!(
        "PostgreSQL TLS: server certificate for {listen}, signed by this CA:\n{}",
        ca.pem().trim_end()
    ));
    Ok(vec![
        "-c".into(),
        "ssl=on".into(),
        "-c".into(),
        format!("ssl_cert_file={}", cert_file.display()),
        "-c".into(),
        format!("ssl_key_file={}", key_file.display()),
    ])
}

fn start_postgres(
    bin: &Path,
    data: &Path,
    run: &Path,
    owner: Option<(u32, u32)>,
    listen: &str,
    port: &str,
    extra: &[String],
) -> Result<std::process::Child, String> {
    as_user(&mut Command::new(bin.join("postgres")), owner)
        .args(extra)
        .arg("-D")
        .arg(data)
        .args(["-p", port])
        .arg("-c")
        .arg(format!("listen_addresses={listen}"))
        .arg("-c")
        .arg(format!("unix_socket_directories={}", run.display()))
        // Small and fast: many run side by side in tests; the data is disposable.
        .args(["-c", "shared_buffers=8MB", "-c", "max_connections=100"])
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))
}

/// Creates the database and the app's role over the Unix socket of the socket-only server.
fn bootstrap(
    run: &Path,
    port: &str,
    database: &str,
    app: Option<&(String, String)>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(run)
            .port(
                port.parse()
                    .map_err(|_| format!("PGPORT is not valid: {port:?}"))?,
            )
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match config.connect(tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    break client;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("postgres did not start: {e}")),
            }
        };
        let fail = |e: tokio_postgres::Error| {
            format!(
                "init failed: {}",
                e.as_db_error()
                    .map_or(e.to_string(), |d| d.message().into())
            )
        };
        if let Some((user, password)) = app {
            // A SCRAM-SHA-256 verifier, not the password: the plaintext never reaches the
            // server (utility statements take no parameters, so it is a literal).
            let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
            client
                .batch_execute(&format!(
                    "CREATE ROLE {} LOGIN PASSWORD {}",
                    sql_ident(user),
                    sql_literal(&verifier)
                ))
                .await
                .map_err(fail)?;
            log(format_args!("PostgreSQL init: created role {user}"));
        }
        if database != "postgres" {
            let owner = app.map_or("postgres", |(user, _)| user.as_str());
            client
                .batch_execute(&format!(
                    "CREATE DATABASE {} OWNER {}",
                    sql_ident(database),
                    sql_ident(owner)
                ))
                .await
                .map_err(fail)?;
            log(format_args!(
                "PostgreSQL init: created database {database} owned by {owner}"
            ));
        }
        Ok(())
    })
}

fn stop_postgres(server: &mut std::process::Child) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGINT);
    }
    let _ = server.wait();
}

static STOP: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    STOP.store(signal, std::sync::atomic::Ordering::SeqCst);
}

/// Waits for the server; a SIGTERM or SIGINT to us becomes a fast shutdown (SIGINT) of it.
fn wait_forwarding_signals(server: &mut std::process::Child) -> Result<i32, String> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let mut forwarded = false;
    loop {
        match server.try_wait() {
            Ok(Some(status)) => return Ok(status.code().unwrap_or(128 + 9)),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for postgres: {e}")),
        }
        if !forwarded && STOP.load(std::sync::atomic::Ordering::SeqCst) != 0 {
            log("Received a termination signal: fast shutdown of PostgreSQL");
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(server.id() as i32, libc::SIGINT);
            }
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --- Redis --------------------------------------------------------------------------------

/// `demo-app redis`: see the module doc. Replaces this process with `redis-server`.
pub fn redis() -> Result<(), String> {
    let password = env("REDIS_PASSWORD");
    if password.is_none() && env("ALLOW_EMPTY_PASSWORD").as_deref() != Some("yes") {
        return Err(
            "Error: REDIS_PASSWORD is not set (set it from a Secret with secretKeyRef, or set \
             ALLOW_EMPTY_PASSWORD=yes)"
                .into(),
        );
    }
    let listen = env("LISTEN_ADDRESS").unwrap_or_else(|| "127.0.0.1".into());
    if let Some(primary) = env("REDIS_SENTINEL_MONITOR") {
        return sentinel(&listen, &primary, password.as_deref());
    }
    let port = env("REDIS_PORT").unwrap_or_else(|| "6379".into());
    let dir = cwd()?;
    let data = dir.join("redis-data");
    private_dir(&data, None)?;
    let conf_path = dir.join("redis.conf");
    let conf = match std::fs::read_to_string(&conf_path) {
        Ok(existing) => {
            log("redis.conf exists: setting requirepass from REDIS_PASSWORD");
            existing
        }
        Err(_) => format!(
            "# Written by the kubectl-rotate.io/redis image at the first start.\n\
             bind {listen}\nport {port}\ndir {}\nsave \"\"\nappendonly no\n\
             daemonize no\nlogfile \"\"\n",
            data.display()
        ),
    };
    let mut conf = with_requirepass(&conf, password.as_deref());
    // As the Bitnami image's REDIS_DISABLE_COMMANDS: `rename-command NAME ""` for each (the
    // lines written at an earlier start replaced).
    conf = with_setting(&conf, "rename-command", None);
    for command in env("REDIS_DISABLE_COMMANDS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        conf.push_str(&format!("rename-command {command} \"\"\n"));
    }
    if env("REDIS_ACLFILE").as_deref() == Some("yes") {
        // Users live in an ACL file (`ACL SAVE` writes it), written at the first start only.
        let acl_path = dir.join("users.acl");
        if std::fs::metadata(&acl_path).is_err() {
            let hash = password.as_deref().map(|p| {
                use sha2::Digest;
                sha2::Sha256::digest(p.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            });
            let line = match hash {
                Some(hash) => format!("user default on #{hash} ~* &* +@all\n"),
                None => "user default on nopass ~* &* +@all\n".to_string(),
            };
            write_private(&acl_path, &line, None)?;
        }
        conf = with_requirepass(&conf, None);
        conf = with_setting(
            &conf,
            "aclfile",
            Some(redis_quoted(&acl_path.display().to_string())),
        );
    }
    if let Some(primary) = env("REDIS_REPLICA_OF") {
        conf = with_setting(&conf, "replicaof", Some(primary));
        conf = with_setting(
            &conf,
            "masterauth",
            env("REDIS_MASTER_PASSWORD").map(|p| redis_quoted(&p)),
        );
        conf = with_setting(&conf, "replica-announce-ip", Some(listen.clone()));
    }
    write_private(&conf_path, &conf, None)?;
    let server = env("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
    let err = Command::new(&server).arg(&conf_path).exec();
    Err(format!("cannot start {server}: {err}"))
}

/// A Redis Sentinel watching `primary` (`HOST PORT`) as `mymaster`, with `password` as its
/// `auth-pass`. Sentinel rewrites its own config file, so it is written once per pod.
fn sentinel(listen: &str, primary: &str, password: Option<&str>) -> Result<(), String> {
    let port = env("REDIS_PORT").unwrap_or_else(|| "26379".into());
    let dir = cwd()?;
    let conf_path = dir.join("sentinel.conf");
    if std::fs::metadata(&conf_path).is_err() {
        let mut conf = format!(
            "# Written by the kubectl-rotate.io/redis image (Sentinel) at the first start.\n\
             bind {listen}\nport {port}\ndir {}\ndaemonize no\nlogfile \"\"\n\
             sentinel monitor mymaster {primary} 1\n\
             sentinel down-after-milliseconds mymaster 5000\n",
            dir.display()
        );
        if let Some(password) = password {
            conf.push_str(&format!(
                "sentinel auth-pass mymaster {}\n",
                redis_quoted(password)
            ));
        }
        write_private(&conf_path, &conf, None)?;
    }
    let server = env("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
    let err = Command::new(&server)
        .arg(&conf_path)
        .arg("--sentinel")
        .exec();
    Err(format!("cannot start {server} --sentinel: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_give_ids() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\npostgres:x:105:110::/var/lib/postgresql:/bin/bash\n";
        assert_eq!(passwd_ids(passwd, "postgres"), Some((105, 110)));
        assert_eq!(passwd_ids(passwd, "postgre"), None);
    }

    #[test]
    fn sql_quoting_doubles_quotes() {
        assert_eq!(sql_literal("it's"), "'it''s'");
        assert_eq!(sql_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn requirepass_is_replaced_not_duplicated() {
        let conf = "bind 1.2.3.4\nrequirepass \"old\"\nport 6379\n";
        let out = with_requirepass(conf, Some("n\"e\\w"));
        assert_eq!(
            out,
            "bind 1.2.3.4\nport 6379\nrequirepass \"n\\\"e\\\\w\"\n"
        );
        assert_eq!(with_requirepass(&out, None), "bind 1.2.3.4\nport 6379\n");
    }
}

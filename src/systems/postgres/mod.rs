//! PostgreSQL, the second system of the runbook's database procedure (issue 11): reaching the
//! server, checking a login, and changing a role's password without the plaintext ever
//! reaching the server.
//!
//! - **Reaching it**: through the API server, as `kubectl port-forward` does (kube-rs's
//!   WebSocket port-forward to a pod; a Service is resolved to a Ready pod of its EndpointSlices), or
//!   directly at `host:port` for a database outside the cluster. The PostgreSQL protocol then
//!   runs over that stream (tokio-postgres, no TLS inside the API server's tunnel).
//! - **Checking a login** tells "the password is wrong" (SQLSTATE 28P01, 28000) apart from "the
//!   server cannot be reached or refused for another reason", because a rotation must never
//!   conclude that a password is stale when the database was merely down.
//! - **Changing a password**: `ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$4096:...'`, a verifier
//!   computed here (postgres-protocol's `scram_sha_256`, random salt, 4096 iterations, what the
//!   server itself stores), so neither the statement nor the server's log (even with
//!   `log_statement = all`) holds the password.
//!
//! Password values are `SecretValue`s and reach only the connection's authentication.

pub mod preflight;
pub mod verify;

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::plan::steps::{Tls, TlsMode};

use crate::values::SecretValue;

use super::reach::open_stream;
pub use super::reach::{resolve_pod, server_exists};
pub use crate::plan::server::{Server, parse_server};

/// What a login attempt showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The server accepted the password.
    Accepted,
    /// The server rejected the password (or the role cannot log in).
    Rejected(String),
}

/// A role, database and password to log in with.
pub struct Credentials<'a> {
    pub user: &'a str,
    pub database: &'a str,
    pub password: &'a SecretValue,
}

/// How long a connection may take, port-forward included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Logs in and returns the connection, or why the password was rejected.
pub async fn connect(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
    login: &Credentials<'_>,
) -> Result<std::result::Result<Client, String>> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(login.user)
        .dbname(login.database)
        .password(login.password.expose())
        .application_name("kubectl-rotate")
        .connect_timeout(CONNECT_TIMEOUT);
    let attempt = async {
        let connected = match resolve_pod(client, namespace, server).await? {
            Some((pod, port)) => {
                let stream = open_stream(client, namespace, &pod, port).await?;
                config
                    .connect_raw(stream, NoTls)
                    .await
                    .map(|(c, conn)| (c, Box::pin(conn) as ConnectionTask))
            }
            None => {
                let Server::Direct { host, port, tls } = server else {
                    unreachable!("only a direct server has no pod")
                };
                config.host(host).port(*port);
                match tls.mode {
                    TlsMode::Disable => config
                        .ssl_mode(SslMode::Disable)
                        .connect(NoTls)
                        .await
                        .map(|(c, conn)| (c, Box::pin(conn) as ConnectionTask)),
                    mode => {
                        config.ssl_mode(if mode == TlsMode::Prefer {
                            SslMode::Prefer
                        } else {
                            SslMode::Require
                        });
                        let connector = MakeRustlsConnect::new(tls_config(tls)?);
                        config
                            .connect(connector)
                            .await
                            .map(|(c, conn)| (c, Box::pin(conn) as ConnectionTask))
                    }
                }
            }
        };
        match connected {
            Ok((pg, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(Ok(pg))
            }
            Err(err) if is_rejection(&err) => Ok(Err(server_message(&err))),
            Err(err) => {
                let why = server_message(&err);
                let hint = if why.contains("certificate") {
                    " (tls: verify-full checks the server's certificate against caFile and its name against the host)"
                } else {
                    ""
                };
                Err(anyhow!(
                    "cannot reach PostgreSQL at {server} in namespace {namespace}: {why}{hint}"
                ))
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| anyhow!("PostgreSQL at {server} did not answer within {CONNECT_TIMEOUT:?}"))?
}

type ConnectionTask =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// Whether `login` can log in; an unreachable server is an error, not a rejection.
pub async fn check_login(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
    login: &Credentials<'_>,
) -> Result<Login> {
    Ok(match connect(client, namespace, server, login).await? {
        Ok(_) => Login::Accepted,
        Err(why) => Login::Rejected(why),
    })
}

/// The statement that gives `role` the password `password`, as a SCRAM-SHA-256 verifier.
pub fn alter_role_statement(role: &str, password: &SecretValue) -> String {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose());
    format!("ALTER ROLE {} PASSWORD '{verifier}'", quote_ident(role))
}

/// Sets `role`'s password over `pg` (a role changing its own, or an admin's connection).
pub async fn set_password(pg: &Client, role: &str, password: &SecretValue) -> Result<()> {
    pg.batch_execute(&alter_role_statement(role, password))
        .await
        .map_err(|e| anyhow!("ALTER ROLE {role} failed: {}", server_message(&e)))
}

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn is_rejection(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    })
}

/// The server's own message when there is one (never a value: the server does not echo
/// passwords), else the client's.
fn server_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            // The cause is in the source chain ("error performing TLS handshake: invalid peer
            // certificate: UnknownIssuer").
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            text
        }
    }
}

/// The rustls configuration for `tls`: `verify-full` trusts only `ca_file`'s certificates
/// (webpki's checks, host name included); `prefer` and `require` encrypt without checking
/// who the server is, as libpq's modes of those names do.
fn tls_config(tls: &Tls) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS setup: {e}"))?;
    let config = match tls.mode {
        TlsMode::VerifyFull => {
            let path = tls.ca_file.as_deref().ok_or_else(|| {
                anyhow!(
                    "tls: verify-full needs caFile (the CA that signed the server's certificate)"
                )
            })?;
            let mut roots = rustls::RootCertStore::empty();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| anyhow!("cannot read caFile {path}: {e}"))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| anyhow!("caFile {path} is not PEM certificates: {e}"))?;
            if certs.is_empty() {
                bail!("caFile {path} holds no certificate");
            }
            for cert in certs {
                roots.add(cert).map_err(|e| anyhow!("caFile {path}: {e}"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Unverified(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// `prefer`/`require`: any certificate is accepted (the handshake's signatures are still
/// checked); what libpq does in those modes.
#[derive(Debug)]
struct Unverified(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---- The steps (see `steps::Step`): apply and check, each safe to run twice. ----

use super::context::{Applied, Checked, Ctx, StepOutcome};
use super::secret::{new_value, old_value};
use crate::plan::steps::{AdminLogin, Database};

/// A database step's connection settings, resolved.
struct Target<'a> {
    ctx: &'a Ctx<'a>,
    db: &'a Database,
    server: Server,
}

impl<'a> Target<'a> {
    fn new(ctx: &'a Ctx<'a>, db: &'a Database) -> Result<Self> {
        Ok(Target {
            ctx,
            db,
            server: parse_server(&db.server)?.with_tls(&db.tls),
        })
    }

    async fn login(
        &self,
        user: &str,
        password: &SecretValue,
    ) -> Result<std::result::Result<Client, String>> {
        connect(
            &self.ctx.cluster.client,
            self.ctx.namespace(),
            &self.server,
            &Credentials {
                user,
                database: &self.db.database,
                password,
            },
        )
        .await
    }

    async fn accepts(&self, user: &str, password: &SecretValue) -> Result<Login> {
        Ok(match self.login(user, password).await? {
            Ok(_) => Login::Accepted,
            Err(why) => Login::Rejected(why),
        })
    }

    /// The admin's connection; an error when the preset names no admin.
    async fn admin(&self) -> Result<Client> {
        let Some(admin) = &self.db.admin else {
            bail!(
                "this step needs an admin login and the preset names none (postgres.admin in the config file)"
            );
        };
        let password = admin_password(self.ctx, admin).await?;
        self.login(&admin.user, &password).await?.map_err(|why| {
            anyhow!(
                "PostgreSQL at {} refused the admin login {} (password from Secret {}/{} key {}): {why}",
                self.server,
                admin.user,
                self.ctx.namespace(),
                admin.secret,
                admin.key
            )
        })
    }

    /// The connection that changes `role`'s password: the admin's, or `role` itself logged in
    /// with `current`. `Ok(Err(why))` when `role` rejected `current`.
    async fn changer(
        &self,
        role: &str,
        current: &SecretValue,
    ) -> Result<std::result::Result<Client, String>> {
        match &self.db.admin {
            Some(_) => self.admin().await.map(Ok),
            None => self.login(role, current).await,
        }
    }
}

/// The admin's connection to `db`, for a step that changes data (the encryption-key preset's
/// migration) or reads it.
pub async fn admin_client(ctx: &Ctx<'_>, db: &Database) -> Result<Client> {
    Target::new(ctx, db)?.admin().await
}

/// The admin's password, read from its Secret when the step runs (never stored elsewhere).
async fn admin_password(ctx: &Ctx<'_>, admin: &AdminLogin) -> Result<SecretValue> {
    let secret = ctx
        .cluster
        .get_secret(ctx.namespace(), &admin.secret)
        .await?;
    super::secret::value_of(&secret, &admin.key)
        .map(|v| SecretValue::new(v.to_vec()))
        .ok_or_else(|| {
            anyhow!(
                "Secret {}/{} has no key {} (the PostgreSQL admin's password)",
                ctx.namespace(),
                admin.secret,
                admin.key
            )
        })
}

/// Whether an error came from the server (a statement it refused: nothing was changed) rather
/// than from a lost connection (the statement may or may not have run).
fn refused_by_server(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some()
}

/// Gives `role` the password `to` (and its login), where it had `from`; then logs in with
/// `to`. Used forward (`from` old, `to` new) and by the undo (`from` new, `to` old).
async fn change_password(
    target: &Target<'_>,
    role: &str,
    from: &SecretValue,
    to: &SecretValue,
    login: bool,
) -> StepOutcome {
    let server = &target.server;
    let pg = match target.changer(role, from).await {
        Ok(Ok(pg)) => pg,
        Ok(Err(why)) => {
            // Self-service login refused: maybe a previous attempt already changed it.
            return match target.accepts(role, to).await {
                Ok(Login::Accepted) => {
                    StepOutcome::done(format!("{role} already accepted that password"))
                }
                _ => StepOutcome::failed(
                    format!(
                        "PostgreSQL at {server} refused {role}'s login with its current password ({why}); \
                         nothing was changed. The role's password is not the one the Secret holds: \
                         check it with `kubectl rotate verify`"
                    ),
                    Applied::No,
                ),
            };
        }
        Err(err) => {
            return StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No);
        }
    };
    let statement = if login {
        alter_role_statement(role, to).replacen(" PASSWORD ", " LOGIN PASSWORD ", 1)
    } else {
        alter_role_statement(role, to)
    };
    if let Err(err) = pg.batch_execute(&statement).await {
        let why = server_message(&err);
        if refused_by_server(&err) {
            return StepOutcome::failed(
                format!(
                    "PostgreSQL at {server} refused ALTER ROLE {role}: {why}; nothing was changed"
                ),
                Applied::No,
            );
        }
        // The connection broke: read back by logging in.
        return match target.accepts(role, to).await {
            Ok(Login::Accepted) => StepOutcome::done(format!(
                "ALTER ROLE {role}: the answer was lost ({why}), but {role} logs in with the password"
            )),
            Ok(Login::Rejected(_)) => StepOutcome::failed(
                format!("ALTER ROLE {role} failed ({why}); read back: the password did not change"),
                Applied::No,
            ),
            Err(read) => StepOutcome::failed(
                format!(
                    "cannot tell whether ALTER ROLE {role} took effect: {why}; logging in to check failed: {read:#}"
                ),
                Applied::Unknown,
            ),
        };
    }
    drop(pg);
    match target.accepts(role, to).await {
        Ok(Login::Accepted) => StepOutcome::done(format!(
            "ALTER ROLE {role}{}: logged in with the password",
            if login { " LOGIN" } else { "" }
        )),
        Ok(Login::Rejected(why)) => StepOutcome::failed(
            format!(
                "PostgreSQL at {server} took ALTER ROLE {role} but refuses a login with the password: {why} \
                 (pg_hba.conf or the role's VALID UNTIL may forbid it)"
            ),
            Applied::Yes,
        ),
        Err(err) => StepOutcome::failed(
            format!("ALTER ROLE {role} succeeded, but logging in to check it failed: {err:#}"),
            Applied::Yes,
        ),
    }
}

/// Where `role` stands between `from` and `to`, the way AWS's rotation recovers: `to`
/// accepted: applied; `from` accepted: not applied; neither: someone else changed it.
async fn where_is(
    target: &Target<'_>,
    role: &str,
    from: &SecretValue,
    to: &SecretValue,
) -> Result<Checked> {
    if target.accepts(role, to).await? == Login::Accepted {
        return Ok(Checked::Applied(format!("{role} logs in with it")));
    }
    if target.accepts(role, from).await? == Login::Accepted {
        return Ok(Checked::NotApplied);
    }
    Ok(Checked::Conflict(format!(
        "PostgreSQL role {role} at {} accepts neither the run's new password nor the old one: \
         someone else changed it; not touching it",
        target.server
    )))
}

pub async fn apply_set_password(
    ctx: &Ctx<'_>,
    db: &Database,
    role: &str,
    key: &str,
    login: bool,
) -> StepOutcome {
    let prepared = async {
        let target = Target::new(ctx, db)?;
        let new = new_value(ctx, key)?.clone();
        // The role's current password: the old value (single user); a role being switched
        // to is changed by the admin, whatever its password was.
        let old = if db.admin.is_none() {
            old_value(ctx, key).await?
        } else {
            SecretValue::new(Vec::new())
        };
        anyhow::Ok((target, new, old))
    };
    match prepared.await {
        Ok((target, new, old)) => change_password(&target, role, &old, &new, login).await,
        Err(err) => StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No),
    }
}

pub async fn check_set_password(
    ctx: &Ctx<'_>,
    db: &Database,
    role: &str,
    key: &str,
    login: bool,
) -> Result<Checked> {
    let target = Target::new(ctx, db)?;
    let new = new_value(ctx, key)?;
    if login {
        // A role the Secret does not name yet: setting it again is harmless.
        return Ok(match target.accepts(role, new).await? {
            Login::Accepted => Checked::Applied(format!("{role} logs in with the new password")),
            Login::Rejected(_) => Checked::NotApplied,
        });
    }
    let old = old_value(ctx, key).await?;
    where_is(&target, role, &old, new).await
}

pub async fn apply_revert_password(
    ctx: &Ctx<'_>,
    db: &Database,
    role: &str,
    key: &str,
) -> StepOutcome {
    let prepared = async {
        let target = Target::new(ctx, db)?;
        let new = new_value(ctx, key)?.clone();
        let old = old_value(ctx, key).await?;
        anyhow::Ok((target, new, old))
    };
    match prepared.await {
        Ok((target, new, old)) => change_password(&target, role, &new, &old, false).await,
        Err(err) => StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No),
    }
}

pub async fn check_revert_password(
    ctx: &Ctx<'_>,
    db: &Database,
    role: &str,
    key: &str,
) -> Result<Checked> {
    let target = Target::new(ctx, db)?;
    let new = new_value(ctx, key)?.clone();
    let old = old_value(ctx, key).await?;
    where_is(&target, role, &new, &old).await
}

/// Logs in as `role` with the Secret's current value of `key`.
pub async fn apply_check_login(ctx: &Ctx<'_>, db: &Database, role: &str, key: &str) -> StepOutcome {
    let checked = async {
        let target = Target::new(ctx, db)?;
        let live = super::secret::read_live(ctx).await?;
        let value = super::secret::value_of(&live, key)
            .map(|v| SecretValue::new(v.to_vec()))
            .ok_or_else(|| anyhow!("{} has no key {key}", ctx.object()))?;
        target.accepts(role, &value).await
    };
    match checked.await {
        Ok(Login::Accepted) => StepOutcome::done(format!(
            "{role} logs in with the Secret's {key} (fingerprint {})",
            crate::values::fingerprint(new_value(ctx, key).map(|v| v.expose()).unwrap_or_default())
        )),
        Ok(Login::Rejected(why)) => StepOutcome::failed(
            format!("PostgreSQL refuses {role}'s login with the Secret's {key}: {why}"),
            Applied::No,
        ),
        Err(err) => StepOutcome::failed(
            format!("cannot log in to check the new password: {err:#}"),
            Applied::No,
        ),
    }
}

/// Whether `role` may log in, as `pg_roles` says (`None`: no such role).
async fn can_login(pg: &Client, role: &str) -> Result<Option<bool>> {
    let row = pg
        .query_opt(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await
        .map_err(|e| anyhow!("cannot read role {role}: {}", server_message(&e)))?;
    Ok(row.map(|r| r.get(0)))
}

/// How many sessions `role` has open.
async fn sessions_of(pg: &Client, role: &str) -> Result<i64> {
    let row = pg
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
            &[&role],
        )
        .await
        .map_err(|e| anyhow!("cannot count {role}'s sessions: {}", server_message(&e)))?;
    Ok(row.get(0))
}

/// `ALTER ROLE role LOGIN` or `NOLOGIN`.
pub async fn apply_set_login(
    ctx: &Ctx<'_>,
    db: &Database,
    role: &str,
    enabled: bool,
) -> StepOutcome {
    let word = if enabled { "LOGIN" } else { "NOLOGIN" };
    let result = async {
        let target = Target::new(ctx, db)?;
        let pg = target.admin().await?;
        let statement = format!("ALTER ROLE {} {word}", quote_ident(role));
        match pg.batch_execute(&statement).await {
            Ok(()) => {}
            Err(err) if refused_by_server(&err) => {
                return anyhow::Ok(StepOutcome::failed(
                    format!(
                        "PostgreSQL refused ALTER ROLE {role} {word}: {}",
                        server_message(&err)
                    ),
                    Applied::No,
                ));
            }
            Err(err) => {
                let why = server_message(&err);
                let pg = target.admin().await?;
                return Ok(match can_login(&pg, role).await? {
                    Some(now) if now == enabled => StepOutcome::done(format!(
                        "ALTER ROLE {role} {word}: the answer was lost ({why}), but the role reads so"
                    )),
                    _ => StepOutcome::failed(
                        format!("ALTER ROLE {role} {word} failed: {why}"),
                        Applied::No,
                    ),
                });
            }
        }
        let open = sessions_of(&pg, role).await.unwrap_or(0);
        Ok(StepOutcome::done(if enabled || open == 0 {
            format!("ALTER ROLE {role} {word}")
        } else {
            format!(
                "ALTER ROLE {role} {word}; {open} session(s) of {role} are still open and go on until they close"
            )
        }))
    };
    match result.await {
        Ok(outcome) => outcome,
        Err(err) => StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No),
    }
}

pub async fn check_set_login(
    ctx: &Ctx<'_>,
    db: &Database,
    role: &str,
    enabled: bool,
) -> Result<Checked> {
    let target = Target::new(ctx, db)?;
    let pg = target.admin().await?;
    Ok(match can_login(&pg, role).await? {
        Some(now) if now == enabled => Checked::Applied(format!(
            "{role} {}",
            if enabled {
                "can log in"
            } else {
                "cannot log in"
            }
        )),
        Some(_) => Checked::NotApplied,
        None => Checked::Conflict(format!("PostgreSQL role {role} no longer exists")),
    })
}

/// The statements that create `role` as a clone of `member_of`: no login yet (the next step
/// gives it its password and login), a member of `member_of` (its rights), acting as
/// `member_of` in its sessions (so what it creates has the same owner).
pub fn create_role_statement(role: &str, member_of: &str) -> String {
    let (role, member_of) = (quote_ident(role), quote_ident(member_of));
    format!(
        "BEGIN; CREATE ROLE {role} NOLOGIN IN ROLE {member_of}; ALTER ROLE {role} SET role = {member_of}; COMMIT"
    )
}

pub async fn apply_create_role(
    ctx: &Ctx<'_>,
    db: &Database,
    role: &str,
    member_of: &str,
) -> StepOutcome {
    let result = async {
        let target = Target::new(ctx, db)?;
        let pg = target.admin().await?;
        if can_login(&pg, role).await?.is_some() {
            return anyhow::Ok(StepOutcome::done(format!("role {role} already exists")));
        }
        Ok(
            match pg
                .batch_execute(&create_role_statement(role, member_of))
                .await
            {
                Ok(()) => StepOutcome::done(format!(
                    "created role {role}, a member of {member_of} acting as {member_of}"
                )),
                Err(err) => {
                    let why = server_message(&err);
                    let pg = target.admin().await?;
                    if can_login(&pg, role).await?.is_some() {
                        StepOutcome::done(format!(
                            "created role {role} (the answer was lost: {why})"
                        ))
                    } else {
                        StepOutcome::failed(
                            format!("cannot create role {role}: {why}"),
                            Applied::No,
                        )
                    }
                }
            },
        )
    };
    match result.await {
        Ok(outcome) => outcome,
        Err(err) => StepOutcome::failed(format!("{err:#}; nothing was changed"), Applied::No),
    }
}

pub async fn check_create_role(ctx: &Ctx<'_>, db: &Database, role: &str) -> Result<Checked> {
    let target = Target::new(ctx, db)?;
    let pg = target.admin().await?;
    Ok(match can_login(&pg, role).await? {
        Some(_) => Checked::Applied(format!("role {role} exists")),
        None => Checked::NotApplied,
    })
}

/// The workloads whose pods serve `server`: the owner of the pod it resolves to, or of the
/// pod whose address a direct `HOST:PORT` names; and any workload whose pods look like a
/// PostgreSQL server (an image named postgres* that declares port 5432), since restarting a
/// database cuts every connection and never applies a password.
pub async fn server_workloads(
    client: &kube::Client,
    namespace: &str,
    server: &Server,
) -> Result<Vec<(crate::model::workload::WorkloadKind, String)>> {
    super::reach::server_workloads(client, namespace, server, looks_like_postgres).await
}

/// A container of an image named like PostgreSQL (`postgres`, `postgresql`, any registry or
/// tag) that declares port 5432: a server, not a client such as an exporter.
pub fn looks_like_postgres(pod: &Pod) -> bool {
    pod.spec.iter().flat_map(|s| &s.containers).any(|c| {
        let name = crate::systems::reach::image_name(c.image.as_deref().unwrap_or_default());
        (name == "postgres" || name == "postgresql")
            && c.ports.iter().flatten().any(|p| p.container_port == 5432)
    })
}

/// Applies one of this system's steps (the runner calls it through `systems::apply`).
pub async fn apply(step: &crate::plan::steps::PostgresStep, ctx: &Ctx<'_>) -> StepOutcome {
    match step {
        crate::plan::steps::PostgresStep::CreateRole {
            db,
            role,
            member_of,
        } => apply_create_role(ctx, db, role, member_of).await,
        crate::plan::steps::PostgresStep::SetPassword {
            db,
            role,
            key,
            login,
        } => apply_set_password(ctx, db, role, key, *login).await,
        crate::plan::steps::PostgresStep::RevertPassword { db, role, key } => {
            apply_revert_password(ctx, db, role, key).await
        }
        crate::plan::steps::PostgresStep::CheckLogin { db, role, key } => {
            apply_check_login(ctx, db, role, key).await
        }
        crate::plan::steps::PostgresStep::DisableLogin { db, role } => {
            apply_set_login(ctx, db, role, false).await
        }
        crate::plan::steps::PostgresStep::EnableLogin { db, role } => {
            apply_set_login(ctx, db, role, true).await
        }
    }
}

/// Reads back whether one of this system's steps, recorded as started by a run that stopped,
/// took effect.
pub async fn check(
    step: &crate::plan::steps::PostgresStep,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Checked> {
    match step {
        // A login check only reads: checking again is the check.
        crate::plan::steps::PostgresStep::CheckLogin { .. } => Ok(Checked::NotApplied),
        crate::plan::steps::PostgresStep::CreateRole { db, role, .. } => {
            check_create_role(ctx, db, role).await
        }
        crate::plan::steps::PostgresStep::SetPassword {
            db,
            role,
            key,
            login,
        } => check_set_password(ctx, db, role, key, *login).await,
        crate::plan::steps::PostgresStep::RevertPassword { db, role, key } => {
            check_revert_password(ctx, db, role, key).await
        }
        crate::plan::steps::PostgresStep::DisableLogin { db, role } => {
            check_set_login(ctx, db, role, false).await
        }
        crate::plan::steps::PostgresStep::EnableLogin { db, role } => {
            check_set_login(ctx, db, role, true).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_statement_holds_a_verifier_not_the_password() {
        let password = SecretValue::new(b"correct horse battery".to_vec());
        let statement = alter_role_statement("ai\"agents", &password);
        assert!(statement.starts_with("ALTER ROLE \"ai\"\"agents\" PASSWORD 'SCRAM-SHA-256$4096:"));
        assert!(!statement.contains("correct horse"));
        // A fresh salt each time: the same password gives another verifier.
        assert_ne!(statement, alter_role_statement("ai\"agents", &password));
    }

    #[test]
    fn a_postgres_image_that_serves_5432_is_a_server_and_an_exporter_is_not() {
        let pod = |image: &str, port: i32| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": image, "ports": [{"containerPort": port}]}]},
            }))
            .unwrap()
        };
        assert!(looks_like_postgres(&pod("postgres:15", 5432)));
        assert!(looks_like_postgres(&pod(
            "docker.io/bitnami/postgresql:16.2.0",
            5432
        )));
        assert!(looks_like_postgres(&pod(
            "kubectl-rotate.io/postgres:15",
            5432
        )));
        assert!(!looks_like_postgres(&pod(
            "quay.io/prometheuscommunity/postgres-exporter:v0.15",
            9187
        )));
        assert!(!looks_like_postgres(&pod("postgres:15", 6432)));
    }
}

//! PostgreSQL's steps: a role's password set and reverted (as a SCRAM verifier), a second
//! role for alternating users, logins disabled and enabled, and the login check. Applied by
//! `systems::postgres`.

use serde::{Deserialize, Serialize};

use super::{DatabaseChange, Step, Undo, UndoContext};

/// A PostgreSQL server and the login that changes roles, as the journal records it (no value:
/// passwords are read from Secrets when a step runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// `pod/NAME:PORT` or `service/NAME:PORT` (through the API server), or `HOST:PORT`.
    pub server: String,
    /// The database to log in to.
    pub database: String,
    /// The login that changes passwords; `None`: the role itself, with its current password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminLogin>,
    /// TLS to a server reached directly (`HOST:PORT`); a tunnel through the API server is
    /// inside the API server's TLS.
    #[serde(default)]
    pub tls: Tls,
}

/// How a connection to a directly reached server is secured (libpq's `sslmode` names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM file of the CA (or the server's own certificate) that `verify-full` trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, not verified; plain otherwise (libpq's default).
    #[default]
    Prefer,
    /// TLS, not verified (encrypts; does not prove who the server is).
    Require,
    /// TLS, the certificate chain checked against `ca_file` and the host name against it.
    VerifyFull,
}

impl TlsMode {
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// Admin credentials: a user, and the Secret key in the run's namespace holding its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminLogin {
    pub user: String,
    pub secret: String,
    pub key: String,
}

impl Database {
    /// Who changes passwords, in words.
    pub fn changer(&self, role: &str) -> String {
        match &self.admin {
            Some(admin) => format!(
                "as {}, password from Secret {} key {}",
                admin.user, admin.secret, admin.key
            ),
            None => format!("as {role} itself, with its current password"),
        }
    }
}

/// Refuses a role name that could not be a PostgreSQL role (empty or with a NUL).
pub fn check_role_name(role: &str) -> anyhow::Result<()> {
    if role.is_empty() || role.contains('\0') {
        anyhow::bail!("{role:?} is not a PostgreSQL role name");
    }
    Ok(())
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PostgresStep {
    /// `CREATE ROLE role NOLOGIN IN ROLE member_of` and `ALTER ROLE role SET role = member_of`:
    /// a second role with `member_of`'s rights whose sessions act as `member_of` (so objects
    /// it creates belong to the same owner). Kept by an undo (it has no login).
    #[serde(rename_all = "camelCase")]
    CreateRole {
        db: Database,
        role: String,
        member_of: String,
    },
    /// `ALTER ROLE role [LOGIN] PASSWORD '<SCRAM verifier>'` with the run's new value of `key`;
    /// checked by logging in with it.
    #[serde(rename_all = "camelCase")]
    SetPassword {
        db: Database,
        role: String,
        key: String,
        /// Also allow the role to log in (alternating users).
        login: bool,
    },
    /// The undo of a single-user `SetPassword`: the role's password back to the backed-up
    /// value of `key`.
    #[serde(rename_all = "camelCase")]
    RevertPassword {
        db: Database,
        role: String,
        key: String,
    },
    /// Log in as `role` with the Secret's value of `key` (reads only).
    #[serde(rename_all = "camelCase")]
    CheckLogin {
        db: Database,
        role: String,
        key: String,
    },
    /// `ALTER ROLE role NOLOGIN`: sessions already open go on; new logins are refused.
    #[serde(rename_all = "camelCase")]
    DisableLogin { db: Database, role: String },
    /// `ALTER ROLE role LOGIN`.
    #[serde(rename_all = "camelCase")]
    EnableLogin { db: Database, role: String },
}

impl PostgresStep {
    /// A short name, for the journal, test hooks and messages.
    pub fn name(&self) -> &'static str {
        match self {
            PostgresStep::CreateRole { .. } => "create-role",
            PostgresStep::SetPassword { .. } => "set-password",
            PostgresStep::RevertPassword { .. } => "revert-password",
            PostgresStep::CheckLogin { .. } => "check-login",
            PostgresStep::DisableLogin { .. } => "disable-login",
            PostgresStep::EnableLogin { .. } => "enable-login",
        }
    }

    /// What the step does, in words, for the preview and the reports.
    pub fn describe(&self) -> String {
        match self {
            PostgresStep::CreateRole {
                db,
                role,
                member_of,
            } => format!(
                "PostgreSQL {}: CREATE ROLE {role} NOLOGIN IN ROLE {member_of}; ALTER ROLE {role} SET role = {member_of} ({})",
                db.server,
                db.changer(member_of)
            ),
            PostgresStep::SetPassword {
                db,
                role,
                key,
                login,
            } => format!(
                "PostgreSQL {}: ALTER ROLE {role}{} PASSWORD <SCRAM-SHA-256 verifier of the new {key}> ({}); then log in with it",
                db.server,
                if *login { " LOGIN" } else { "" },
                db.changer(role)
            ),
            PostgresStep::RevertPassword { db, role, key } => format!(
                "PostgreSQL {}: ALTER ROLE {role} PASSWORD <verifier of the backed-up {key}>, then log in with it",
                db.server
            ),
            PostgresStep::CheckLogin { db, role, key } => format!(
                "PostgreSQL {}: log in as {role} with the Secret's {key}",
                db.server
            ),
            PostgresStep::DisableLogin { db, role } => {
                format!("PostgreSQL {}: ALTER ROLE {role} NOLOGIN", db.server)
            }
            PostgresStep::EnableLogin { db, role } => {
                format!("PostgreSQL {}: ALTER ROLE {role} LOGIN", db.server)
            }
        }
    }

    /// Whether applying it writes anything (a check only reads).
    pub fn writes(&self) -> bool {
        !matches!(self, PostgresStep::CheckLogin { .. })
    }
}

/// The steps a database change puts around the Secret's patch: `before` it (the new password
/// works before the Secret names it), `after` the consumers rolled out (checks, then what only
/// the old pods used is taken away).
pub fn around_patch(change: &DatabaseChange) -> (Vec<Step>, Vec<Step>) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    match change {
        DatabaseChange::SingleUser {
            db,
            role,
            password_key,
        } => {
            before.push(Step::Postgres(PostgresStep::SetPassword {
                db: db.clone(),
                role: role.clone(),
                key: password_key.clone(),
                login: false,
            }));
            after.push(Step::Postgres(PostgresStep::CheckLogin {
                db: db.clone(),
                role: role.clone(),
                key: password_key.clone(),
            }));
        }
        DatabaseChange::AlternatingUsers {
            db,
            from,
            to,
            create,
            password_key,
            ..
        } => {
            before.push(Step::Postgres(PostgresStep::SetPassword {
                db: db.clone(),
                role: to.clone(),
                key: password_key.clone(),
                login: true,
            }));
            after.push(Step::Postgres(PostgresStep::CheckLogin {
                db: db.clone(),
                role: to.clone(),
                key: password_key.clone(),
            }));
            after.push(Step::Postgres(PostgresStep::DisableLogin {
                db: db.clone(),
                role: from.clone(),
            }));
            if *create {
                before.insert(
                    0,
                    Step::Postgres(PostgresStep::CreateRole {
                        db: db.clone(),
                        role: to.clone(),
                        member_of: from.clone(),
                    }),
                );
            }
        }
        _ => {}
    }
    (before, after)
}

impl PostgresStep {
    /// A role's password goes back to the backed-up value before the restart; the login given
    /// to the second role (alternating users) is taken away after it, once the new pods that
    /// use it are gone. A created role is kept, without login.
    pub fn undo(&self, _cx: &UndoContext) -> Undo {
        match self {
            PostgresStep::SetPassword {
                db,
                role,
                key,
                login: false,
            } => Undo::first([PostgresStep::RevertPassword {
                db: db.clone(),
                role: role.clone(),
                key: key.clone(),
            }
            .into()]),
            PostgresStep::SetPassword {
                db,
                role,
                login: true,
                ..
            } => Undo::last(PostgresStep::DisableLogin {
                db: db.clone(),
                role: role.clone(),
            }),
            PostgresStep::DisableLogin { db, role } => Undo::first([PostgresStep::EnableLogin {
                db: db.clone(),
                role: role.clone(),
            }
            .into()]),
            PostgresStep::CreateRole { .. }
            | PostgresStep::RevertPassword { .. }
            | PostgresStep::CheckLogin { .. }
            | PostgresStep::EnableLogin { .. } => Undo::none(),
        }
    }
}

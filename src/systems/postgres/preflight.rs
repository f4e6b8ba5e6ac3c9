//! Before a PostgreSQL password rotation writes anything: the preflight (the server reachable,
//! the current password and the admin login accepted), and what it adds to the planned change.

use anyhow::{Result, anyhow, bail};

use super::{
    Credentials, Server, can_login, connect, parse_server, resolve_pod, server_exists,
    server_message, server_workloads,
};
use crate::cluster::Cluster;
use crate::plan::change::{Change, leave_server_running};
use crate::plan::steps::{self, TlsMode};
use crate::values::SecretValue;

/// Adds a database change to `change` after its preflight (`systems::postgres::preflight`:
/// the server reachable, `current_password` and the admin login accepted, nothing written):
/// the second role's creation when it does not exist, the permissions reaching the server
/// needs, the preflight's lines for the preview, and the server's own workload moved out of
/// the restarts.
pub async fn attach_database(
    cluster: &Cluster,
    change: &mut Change,
    mut database: steps::DatabaseChange,
    current_password: &SecretValue,
) -> Result<()> {
    let found = preflight(cluster, &change.data.namespace, &database, current_password).await?;
    if let steps::DatabaseChange::AlternatingUsers { create, .. } = &mut database {
        *create = found.create_role;
    }
    leave_server_running(
        change,
        &found.server_workloads,
        "it is the PostgreSQL server: the password changes live in the database; its own \
         variables only initialise an empty data directory, and a restart would cut every connection",
    );
    change.notes.extend(found.notes);
    change.extra_needs = found.needs;
    change.database = Some(database);
    Ok(())
}

/// What the preflight found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// The workloads whose pods are the database server: never restarted by the run.
    pub server_workloads: Vec<(crate::model::workload::WorkloadKind, String)>,
    /// The permissions reaching the server needs (checked with the Secret's).
    pub needs: Vec<crate::cluster::access::Need>,
    /// Alternating users: the role to switch to does not exist yet.
    pub create_role: bool,
    /// Lines for the preview.
    pub notes: Vec<String>,
}

/// Checks, before anything is written, that the server is reachable through the API server,
/// that the Secret's current password logs in as the role in use, and that the login that
/// changes passwords works (and, for alternating users, whether the second role exists).
pub async fn preflight(
    cluster: &crate::cluster::Cluster,
    namespace: &str,
    change: &crate::plan::steps::DatabaseChange,
    current_password: &SecretValue,
) -> Result<Preflight> {
    use crate::plan::steps::DatabaseChange;
    let client = &cluster.client;
    let (db, role) = match change {
        DatabaseChange::SingleUser { db, role, .. } => (db, role),
        DatabaseChange::AlternatingUsers { db, from, .. } => (db, from),
        DatabaseChange::RedisOverlap { .. } | DatabaseChange::RedisRequirepass { .. } => {
            bail!("not a PostgreSQL change")
        }
    };
    let server = parse_server(&db.server)?.with_tls(&db.tls);
    if !server_exists(client, namespace, &server).await? {
        bail!(
            "the PostgreSQL server {server} does not exist in namespace {namespace}: deploy it there, or point \
             postgres.server of the preset in the config file at your database (service/NAME:PORT, pod/NAME:PORT \
             or HOST:PORT); nothing was changed"
        );
    }
    let mut found = Preflight::default();
    if let Server::Direct { tls, .. } = &server {
        found.notes.push(format!(
            "PostgreSQL: TLS {}{}",
            tls.mode.name(),
            match (tls.mode, &tls.ca_file) {
                (TlsMode::VerifyFull, Some(ca)) => format!(" (certificate and host name checked against {ca})"),
                (TlsMode::Disable, _) => " (no encryption)".to_string(),
                _ => " (encrypted when the server offers it; the server's certificate is not checked: use verify-full)".to_string(),
            }
        ));
    }
    let pod = resolve_pod(client, namespace, &server).await?;
    found.needs.extend(
        crate::systems::reach::service_need(client, &server, namespace, "the database's pod")
            .await?,
    );
    let pods: Vec<String> = pod.iter().map(|(pod, _)| pod.clone()).collect();
    found.needs.extend(crate::systems::reach::portforward_needs(
        &pods,
        namespace,
        "PostgreSQL",
    ));
    found.server_workloads = server_workloads(client, namespace, &server).await?;
    if let Some(admin) = &db.admin {
        found.needs.push(crate::systems::reach::admin_secret_need(
            &admin.secret,
            namespace,
        ));
    }
    let login = Credentials {
        user: role,
        database: &db.database,
        password: current_password,
    };
    match connect(client, namespace, &server, &login).await? {
        Ok(_) => {}
        Err(why) => bail!(
            "PostgreSQL at {server} refuses {role}'s login with the password the Secret holds now ({why}); \
             the database and the Secret disagree already. Find out why before rotating (`kubectl rotate verify` \
             checks the login); nothing was changed"
        ),
    }
    found.notes.push(format!(
        "PostgreSQL: {server} (namespace {namespace}), database {}: {role} logs in with the Secret's current password",
        db.database
    ));
    if let Some(admin) = &db.admin {
        let at = (&server, namespace);
        let (create_role, note) = check_admin(cluster, at, db, admin, change).await?;
        found.create_role = create_role;
        found.notes.push(note);
    }
    Ok(found)
}

/// The admin login that changes passwords: its password from the admin Secret logs in, and it
/// may change other roles (SUPERUSER or CREATEROLE). Returns whether the second role of
/// alternating users must be created, and the preview's line.
async fn check_admin(
    cluster: &Cluster,
    (server, namespace): (&Server, &str),
    db: &crate::plan::steps::Database,
    admin: &crate::plan::steps::AdminLogin,
    change: &crate::plan::steps::DatabaseChange,
) -> Result<(bool, String)> {
    use crate::plan::steps::DatabaseChange;
    let client = &cluster.client;
    let secret = cluster.get_secret(namespace, &admin.secret).await.map_err(|e| {
        anyhow!(
            "{e:#}\nthe preset names Secret {}/{} key {} as the PostgreSQL admin's password (postgres.admin in the config file)",
            namespace, admin.secret, admin.key
        )
    })?;
    let password = crate::systems::secret::value_of(&secret, &admin.key)
        .map(|v| SecretValue::new(v.to_vec()))
        .ok_or_else(|| {
            anyhow!(
                "Secret {namespace}/{} has no key {} (the PostgreSQL admin's password, postgres.admin in the config file); nothing was changed",
                admin.secret,
                admin.key
            )
        })?;
    let admin_login = Credentials {
        user: &admin.user,
        database: &db.database,
        password: &password,
    };
    let pg = match connect(client, namespace, server, &admin_login).await? {
        Ok(pg) => pg,
        Err(why) => bail!(
            "PostgreSQL at {server} refuses the admin login {} with the password in Secret {namespace}/{} key {} ({why}); \
             fix the admin Secret or postgres.admin in the config file; nothing was changed",
            admin.user,
            admin.secret,
            admin.key
        ),
    };
    let row = pg
        .query_one(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| anyhow!("cannot read the admin's rights: {}", server_message(&e)))?;
    let may: bool = row.get(0);
    if !may {
        bail!(
            "the admin login {} may not change other roles (it has neither SUPERUSER nor CREATEROLE); nothing was changed",
            admin.user
        );
    }
    let create_role = match change {
        DatabaseChange::AlternatingUsers { to, .. } => can_login(&pg, to).await?.is_none(),
        _ => false,
    };
    let note = format!(
        "PostgreSQL: passwords are changed as {} (Secret {}/{} key {})",
        admin.user, namespace, admin.secret, admin.key
    );
    Ok((create_role, note))
}

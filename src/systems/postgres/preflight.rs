//! Before a PostgreSQL password rotation writes anything: the preflight (the server reachable,
//! the current password and the admin login accepted), and what it adds to the planned change.

use anyhow::Result;

use crate::cluster::Cluster;
use crate::plan::change::{Change, leave_server_running};
use crate::plan::steps;
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
    let found = crate::systems::postgres::preflight(
        cluster,
        &change.data.namespace,
        &database,
        current_password,
    )
    .await?;
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

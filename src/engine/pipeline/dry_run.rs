//! The end of a `--dry-run`: for `server`, the backup and the patch sent with `dryRun=All`
//! (nothing is stored); then the line saying what the dry run did and did not touch, and the
//! planned report.
//!
//! Not here: the refusals and the preview a dry run shares with a real run (`guards`,
//! `preview`), the planned report's fields (`report`).

use std::time::Instant;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::prompt::note;
use super::{DryRun, Planned, RunOptions, report};
use crate::cluster::{Cluster, short_error};
use crate::model::names::FIELD_MANAGER;
use crate::plan::backup::{self, BackupRequest};
use crate::plan::change::Change;
use crate::plan::steps::DatabaseChange;
use crate::ui::Printer;

/// Ends a dry run (`options.dry_run` is `client` or `server`): the server's check, the closing
/// line, and the planned report; the exit code of a success.
pub(super) async fn finish(
    cluster: &Cluster,
    change: &Change,
    planned: &Planned,
    options: &RunOptions,
    started: Instant,
    printer: &mut Printer,
) -> Result<u8> {
    let mut report = report::planned(change, planned, options.dry_run);
    if options.dry_run == DryRun::Server {
        dry_run_server(cluster, change).await?;
    }
    if let Some(line) = closing_line(options.dry_run, change) {
        note(printer, options, line);
    }
    report.succeeded = true;
    report::finish(printer, options, report, started)
}

/// What a dry run of `change` touched: a client dry run sends nothing to the API server, but
/// a preflight may have logged in to the second system (read-only) to plan it.
fn closing_line(mode: DryRun, change: &Change) -> Option<&'static str> {
    match mode {
        DryRun::None => None,
        DryRun::Server => Some(
            "\nDry run (server): the API server accepted the backup and the patch; nothing was stored.",
        ),
        DryRun::Client => Some(
            if matches!(
                change.database,
                Some(DatabaseChange::RedisOverlap { .. } | DatabaseChange::RedisRequirepass { .. })
            ) {
                "\nDry run (client): nothing was written (the preflight only logged in to Redis and read its settings)."
            } else if change.reencryption.is_some() {
                "\nDry run (client): nothing was written (the preflight counted the rows read-only, through the API server)."
            } else if change.database.is_some() {
                "\nDry run (client): nothing was written (the preflight only logged in to the database, through the API server)."
            } else {
                "\nDry run (client): nothing was sent to the API server."
            },
        ),
    }
}

/// `--dry-run=server`: the backup and the patch, sent with `dryRun=All`; nothing is stored.
async fn dry_run_server(cluster: &Cluster, change: &Change) -> Result<()> {
    let namespace = &change.data.namespace;
    let object = format!("Secret {namespace}/{}", change.data.secret);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    if let Some(name) = change.backup_name() {
        let request = BackupRequest {
            namespace: namespace.clone(),
            secret: change.data.secret.clone(),
            source_resource_version: change.data.resource_version.clone(),
            keys: change.old_values.clone(),
            at: change.record.at.clone(),
            by: change.record.by.clone(),
            rotation_id: change.record.id.clone(),
            reason: "dry run".to_string(),
        };
        secrets
            .create(
                &PostParams {
                    dry_run: true,
                    field_manager: Some(FIELD_MANAGER.to_string()),
                },
                &backup::build_backup(&request),
            )
            .await
            .map_err(|e| {
                anyhow!(
                    "the API server refused the backup Secret {namespace}/{name}: {}",
                    short_error(&e)
                )
            })?;
    }
    let params = PatchParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    secrets
        .patch(&change.data.secret, &params, &Patch::<()>::Json(change.data.patch.clone()))
        .await
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 409 || (s.code == 422 && !s.message.contains(" is invalid")) => anyhow!(
                "the {object} changed since it was read; nothing was overwritten; run again to re-plan"
            ),
            _ => anyhow!("the API server refused the patch of {object}: {}", short_error(&e)),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pipeline::fixtures;

    #[test]
    fn a_client_dry_run_says_nothing_was_sent() {
        assert_eq!(
            closing_line(DryRun::Client, &fixtures::change()),
            Some("\nDry run (client): nothing was sent to the API server.")
        );
    }

    #[test]
    fn a_client_dry_run_of_a_redis_change_says_the_preflight_logged_in_to_redis() {
        let mut change = fixtures::change();
        change.database = Some(fixtures::redis_change());
        assert_eq!(
            closing_line(DryRun::Client, &change),
            Some(
                "\nDry run (client): nothing was written (the preflight only logged in to Redis and read its settings)."
            )
        );
    }

    #[test]
    fn a_client_dry_run_of_a_database_change_says_the_preflight_logged_in() {
        let mut change = fixtures::change();
        change.database = Some(fixtures::postgres_change());
        assert_eq!(
            closing_line(DryRun::Client, &change),
            Some(
                "\nDry run (client): nothing was written (the preflight only logged in to the database, through the API server)."
            )
        );
    }

    #[test]
    fn a_client_dry_run_of_a_reencryption_says_the_rows_were_only_counted() {
        let mut change = fixtures::change();
        change.reencryption = Some(fixtures::reencryption(None));
        assert_eq!(
            closing_line(DryRun::Client, &change),
            Some(
                "\nDry run (client): nothing was written (the preflight counted the rows read-only, through the API server)."
            )
        );
    }

    #[test]
    fn a_server_dry_run_says_the_api_server_accepted_the_backup_and_the_patch() {
        let mut change = fixtures::change();
        change.database = Some(fixtures::redis_change());
        assert_eq!(
            closing_line(DryRun::Server, &change),
            Some(
                "\nDry run (server): the API server accepted the backup and the patch; nothing was stored."
            )
        );
    }

    #[test]
    fn a_real_run_has_no_dry_run_line() {
        assert_eq!(closing_line(DryRun::None, &fixtures::change()), None);
    }
}

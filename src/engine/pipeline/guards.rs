//! The refusals of a change before anything is written or asked: an unfinished run of the
//! Secret, consumers that are not healthy (unless `--force`), consumers that could not be
//! listed (with `--strict`) and permissions the run would lack. Each says what to do and that
//! nothing was changed.
//!
//! Not here: the check for an unfinished run made again under the Secret's lock (`run`), the
//! confirmation (`prompt`) and anything a run decides once it started (`conclude`).

use anyhow::{Result, bail};

use super::{Planned, RunOptions};
use crate::cluster::Cluster;
use crate::cluster::access::{self, Need};
use crate::engine::lock;
use crate::plan::change::Change;
use crate::plan::journal;
use crate::ui::Printer;

/// Refuses `change` if it must not run, in the order the user would fix things: an unfinished
/// run first (until it is finished or undone, its journal is the truth about this Secret),
/// then unhealthy consumers, unlisted kinds (`--strict`) and missing permissions. A client dry
/// run asks the cluster nothing, so it skips the first and the last.
pub(super) async fn refuse_before_writing(
    cluster: &Cluster,
    change: &Change,
    planned: &Planned,
    options: &RunOptions,
    printer: &mut Printer,
) -> Result<()> {
    if options.dry_run.reads_cluster() {
        crate::engine::runs::refuse_unfinished(cluster, &planned.namespace, &planned.secret)
            .await?;
    }
    refuse_unhealthy(change, &planned.object, options.force, printer)?;
    refuse_unlisted(change, &planned.object, options.strict)?;
    if options.dry_run.reads_cluster() {
        let lacking = crate::cluster::review::missing(
            &cluster.client,
            &planned.namespace,
            &needs(change, planned),
        )
        .await?;
        if !lacking.is_empty() {
            return Err(access::refusal(&planned.object, &lacking));
        }
    }
    Ok(())
}

/// Refuses consumers that are failing or mid-rollout before the change: a rotation would be
/// blamed for their failure, and its automatic rollback could not make them healthy. With
/// `--force`, a warning instead.
fn refuse_unhealthy(
    change: &Change,
    object: &str,
    force: bool,
    printer: &mut Printer,
) -> Result<()> {
    if change.unhealthy.is_empty() {
        return Ok(());
    }
    let list = change
        .unhealthy
        .iter()
        .map(|(w, why)| format!("  {w}: {why}"))
        .collect::<Vec<_>>()
        .join("\n");
    if force {
        printer.warn(&format!(
            "consumers of {object} are not healthy before the change (--force):\n{list}"
        ));
        return Ok(());
    }
    bail!(
        "refusing to {} {object}: consumers are not healthy before the change, so their rollout could not \
         tell whether the new value works:\n{list}\nfix them first (`kubectl rollout status` and `kubectl get pods -n {}` \
         show why), or pass --force to change the Secret anyway; nothing was changed",
        change.action.verb(),
        change.data.namespace
    )
}

/// With `--strict`, refuses a change some of whose consumers could not be checked (a kind the
/// user may not list); without, the preview's warning is enough.
fn refuse_unlisted(change: &Change, object: &str, strict: bool) -> Result<()> {
    if !strict {
        return Ok(());
    }
    crate::plan::consumers::refuse_unlisted(
        &change.unlisted,
        &format!("{} {object}", change.action.verb()),
        true,
    )
}

/// Every permission the run needs: the Secret, its backup, journal and lock, the restarts,
/// what the second system's steps need and, with a log check, the new pods' logs.
fn needs(change: &Change, planned: &Planned) -> Vec<Need> {
    let restarts: Vec<_> = change
        .restarts
        .restart
        .iter()
        .map(|r| (r.kind, r.name.clone()))
        .collect();
    let mut needs = access::needs_for_change(
        &planned.namespace,
        &planned.secret,
        planned.backup.as_deref(),
        &journal::journal_name(&planned.secret, &change.record.id),
        &lock::lease_name(&planned.secret),
        &restarts,
    );
    needs.extend(change.extra_needs.iter().cloned());
    if change.log_check.is_some() {
        needs.push(Need::new(
            "get",
            "",
            "pods/log",
            None,
            &planned.namespace,
            "to check that every new pod logged the preset's line",
        ));
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workload::WorkloadKind;
    use crate::plan::consumers::Unlisted;
    use crate::ui::printer::ColorChoice;

    use crate::engine::pipeline::fixtures;

    fn unhealthy() -> Change {
        let mut change = fixtures::change();
        change.unhealthy = vec![(
            "deploy/api".to_string(),
            "1 pod is crash-looping".to_string(),
        )];
        change
    }

    #[test]
    fn an_unhealthy_consumer_is_refused_without_force() {
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        let err = refuse_unhealthy(&unhealthy(), "Secret prod/app-secrets", false, &mut printer)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "refusing to rotate Secret prod/app-secrets: consumers are not healthy before the change"
            ),
            "{err}"
        );
        assert!(
            err.contains("\n  deploy/api: 1 pod is crash-looping\n"),
            "{err}"
        );
        assert!(err.contains("`kubectl get pods -n prod`"), "{err}");
        assert!(err.ends_with("pass --force to change the Secret anyway; nothing was changed"));
        assert_eq!(captured.stderr(), "");
    }

    #[test]
    fn an_unhealthy_consumer_is_only_a_warning_with_force() {
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        refuse_unhealthy(&unhealthy(), "Secret prod/app-secrets", true, &mut printer).unwrap();
        assert_eq!(
            captured.stderr(),
            "warning: consumers of Secret prod/app-secrets are not healthy before the change \
             (--force):\n  deploy/api: 1 pod is crash-looping\n"
        );
    }

    #[test]
    fn healthy_consumers_are_neither_refused_nor_warned_about() {
        let (mut printer, captured) = Printer::capture(ColorChoice::default());
        refuse_unhealthy(
            &fixtures::change(),
            "Secret prod/app-secrets",
            false,
            &mut printer,
        )
        .unwrap();
        assert_eq!(captured.stderr(), "");
    }

    #[test]
    fn a_rollback_refusal_says_roll_back() {
        let mut change = unhealthy();
        change.action = crate::plan::change::Action::RollBack;
        let (mut printer, _) = Printer::capture(ColorChoice::default());
        let err = refuse_unhealthy(&change, "Secret prod/app-secrets", false, &mut printer)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("refusing to roll back Secret prod/app-secrets:"),
            "{err}"
        );
    }

    #[test]
    fn unlisted_consumers_are_refused_only_with_strict() {
        let mut change = fixtures::change();
        change.unlisted = vec![Unlisted {
            kind: WorkloadKind::CronJob,
            namespace: Some("prod".to_string()),
        }];
        refuse_unlisted(&change, "Secret prod/app-secrets", false).unwrap();
        let err = refuse_unlisted(&change, "Secret prod/app-secrets", true)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("refusing to rotate Secret prod/app-secrets (--strict):"),
            "{err}"
        );
        assert!(err.contains("; nothing was changed"), "{err}");
    }

    #[test]
    fn strict_refuses_nothing_when_every_kind_was_listed() {
        refuse_unlisted(&fixtures::change(), "Secret prod/app-secrets", true).unwrap();
    }

    #[test]
    fn the_run_needs_the_pods_logs_only_with_a_log_check() {
        let mut change = fixtures::change();
        let planned = fixtures::planned(&change);
        let logs = |needs: &[Need]| needs.iter().any(|n| n.resource == "pods/log");
        assert!(!logs(&needs(&change, &planned)));
        change.log_check = Some("started with the new key".to_string());
        let with_check = needs(&change, &planned);
        assert!(logs(&with_check));
        assert_eq!(
            with_check.last().map(|n| (n.verb, n.namespace.as_str())),
            Some(("get", "prod"))
        );
    }

    #[test]
    fn the_second_systems_needs_come_after_the_secrets() {
        let mut change = fixtures::change();
        let planned = fixtures::planned(&change);
        let own = needs(&change, &planned);
        let extra = Need::new(
            "create",
            "",
            "pods/portforward",
            Some("db-0"),
            "prod",
            "to reach the database",
        );
        change.extra_needs = vec![extra.clone()];
        let all = needs(&change, &planned);
        assert_eq!(all.len(), own.len() + 1);
        assert_eq!(all[..own.len()], own[..]);
        assert_eq!(all.last(), Some(&extra));
        assert!(
            own.iter()
                .any(|n| n.resource == "secrets" && n.name.as_deref() == Some("app-secrets")),
            "{own:?}"
        );
    }
}

//! Permission checks before any write. A rotation that can patch the Secret but not restart
//! its consumers would leave pods on the old value; so every permission the run needs is
//! checked first with SelfSubjectAccessReview, and all missing ones are listed at once.

use anyhow::{Result, anyhow};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::consumers::WorkloadKind;

/// One permission the run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub name: Option<String>,
    pub namespace: String,
    /// Why the run needs it, for the error message.
    pub why: String,
}

impl Need {
    fn new(
        verb: &'static str,
        group: &'static str,
        resource: &'static str,
        name: Option<&str>,
        namespace: &str,
        why: &str,
    ) -> Self {
        Need {
            verb,
            group,
            resource,
            name: name.map(str::to_string),
            namespace: namespace.to_string(),
            why: why.to_string(),
        }
    }

    pub fn describe(&self) -> String {
        let what = match &self.name {
            Some(name) => format!("{}/{name}", self.resource),
            None => self.resource.to_string(),
        };
        format!(
            "{} {what} in namespace {} ({})",
            self.verb, self.namespace, self.why
        )
    }
}

fn resource_of(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployments",
        WorkloadKind::StatefulSet => "statefulsets",
        WorkloadKind::DaemonSet => "daemonsets",
        WorkloadKind::CronJob => "cronjobs",
    }
}

/// Everything a change of Secret `secret` that backs up to `backup` and restarts `restarts`
/// needs, in the order a person would read it.
pub fn needs_for_change(
    namespace: &str,
    secret: &str,
    backup: &str,
    restarts: &[(WorkloadKind, String)],
) -> Vec<Need> {
    let mut needs = vec![
        Need::new(
            "patch",
            "",
            "secrets",
            Some(secret),
            namespace,
            "to write the new value",
        ),
        Need::new(
            "create",
            "",
            "secrets",
            None,
            namespace,
            "to save the old value in a backup Secret",
        ),
        Need::new(
            "get",
            "",
            "secrets",
            Some(backup),
            namespace,
            "to read the backup back",
        ),
    ];
    let mut kinds: Vec<WorkloadKind> = Vec::new();
    for (kind, name) in restarts {
        let group = if *kind == WorkloadKind::CronJob {
            "batch"
        } else {
            "apps"
        };
        needs.push(Need::new(
            "patch",
            group,
            resource_of(*kind),
            Some(name),
            namespace,
            "to restart it",
        ));
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    for kind in kinds {
        for verb in ["list", "watch"] {
            needs.push(Need::new(
                verb,
                "apps",
                resource_of(kind),
                None,
                namespace,
                "to watch the rollout",
            ));
        }
    }
    if !restarts.is_empty() {
        for verb in ["list", "watch"] {
            needs.push(Need::new(
                verb,
                "",
                "pods",
                None,
                namespace,
                "to notice new pods that crash-loop",
            ));
        }
    }
    needs
}

/// The needs the current user lacks, asked in parallel.
pub async fn missing(client: &Client, needs: &[Need]) -> Result<Vec<Need>> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let reviews = needs.iter().map(|need| {
        let api = api.clone();
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(need.namespace.clone()),
                    verb: Some(need.verb.to_string()),
                    group: Some(need.group.to_string()),
                    resource: Some(need.resource.to_string()),
                    name: need.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        async move { api.create(&PostParams::default(), &review).await }
    });
    let answers = futures::future::join_all(reviews).await;
    let mut lacking = Vec::new();
    for (need, answer) in needs.iter().zip(answers) {
        let review = answer.map_err(|e| {
            anyhow!(
                "cannot check permissions (SelfSubjectAccessReview): {}",
                crate::cluster::short_error(&e)
            )
        })?;
        if !review.status.is_some_and(|s| s.allowed) {
            lacking.push(need.clone());
        }
    }
    Ok(lacking)
}

/// The refusal listing every missing permission.
pub fn refusal(object: &str, lacking: &[Need]) -> anyhow::Error {
    let list: Vec<String> = lacking
        .iter()
        .map(|n| format!("  - {}", n.describe()))
        .collect();
    anyhow!(
        "not allowed to rotate {object}; nothing was changed. Missing permissions:\n{}\n\
         ask a cluster administrator for them (check with `kubectl auth can-i VERB RESOURCE -n NAMESPACE`), \
         or use --restart to restart fewer workloads",
        list.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_needs_the_secret_the_backup_each_restart_and_the_watches() {
        let needs = needs_for_change(
            "prod",
            "app-secrets",
            "app-secrets-backup-x",
            &[
                (WorkloadKind::Deployment, "api".into()),
                (WorkloadKind::Deployment, "worker".into()),
            ],
        );
        let described: Vec<String> = needs
            .iter()
            .map(|n| format!("{} {} {:?}", n.verb, n.resource, n.name))
            .collect();
        assert_eq!(
            described,
            [
                "patch secrets Some(\"app-secrets\")",
                "create secrets None",
                "get secrets Some(\"app-secrets-backup-x\")",
                "patch deployments Some(\"api\")",
                "patch deployments Some(\"worker\")",
                "list deployments None",
                "watch deployments None",
                "list pods None",
                "watch pods None",
            ]
        );
    }

    #[test]
    fn the_refusal_lists_every_missing_permission() {
        let needs = needs_for_change(
            "prod",
            "s",
            "b",
            &[(WorkloadKind::Deployment, "api".into())],
        );
        let text = refusal("Secret prod/s", &needs[3..4]).to_string();
        assert!(
            text.contains("patch deployments/api in namespace prod (to restart it)"),
            "{text}"
        );
        assert!(text.contains("nothing was changed"), "{text}");
    }
}

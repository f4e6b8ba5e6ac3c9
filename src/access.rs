//! Permission checks before any write. A rotation that can patch the Secret but not restart
//! its consumers would leave pods on the old value; so every permission the run needs is
//! checked first, and all missing ones are listed at once.
//!
//! One SelfSubjectRulesReview answers them all for the namespace (its rules are matched here,
//! purely); only when the server says its list is incomplete (an authorizer that cannot list
//! rules, such as a webhook) are the needs the rules do not grant asked one by one with
//! SelfSubjectAccessReview. So the cost does not grow with the number of consumers.

use anyhow::{Result, anyhow};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
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
    pub fn new(
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
        WorkloadKind::Job => "jobs",
        WorkloadKind::Pod => "pods",
    }
}

/// Everything a change of Secret `secret` needs: write it, back it up to `backup` (when any
/// key had a value), keep the run's journal `journal` and lock `lease`, restart `restarts` and
/// watch them; in the order a person would read it.
pub fn needs_for_change(
    namespace: &str,
    secret: &str,
    backup: Option<&str>,
    journal: &str,
    lease: &str,
    restarts: &[(WorkloadKind, String)],
) -> Vec<Need> {
    let mut needs = vec![Need::new(
        "patch",
        "",
        "secrets",
        Some(secret),
        namespace,
        "to write the new value",
    )];
    if let Some(backup) = backup {
        needs.push(Need::new(
            "create",
            "",
            "secrets",
            None,
            namespace,
            "to save the old value in a backup Secret",
        ));
        needs.push(Need::new(
            "get",
            "",
            "secrets",
            Some(backup),
            namespace,
            "to read the backup back",
        ));
    }
    needs.push(Need::new(
        "create",
        "",
        "secrets",
        None,
        namespace,
        "to save the run's journal",
    ));
    needs.push(Need::new(
        "update",
        "",
        "secrets",
        Some(journal),
        namespace,
        "to record each step in the run's journal",
    ));
    needs.push(Need::new(
        "list",
        "",
        "secrets",
        None,
        namespace,
        "to find unfinished runs and backups of the Secret",
    ));
    for verb in ["get", "update", "delete"] {
        needs.push(Need::new(
            verb,
            "coordination.k8s.io",
            "leases",
            Some(lease),
            namespace,
            "to hold the Secret's lock",
        ));
    }
    needs.push(Need::new(
        "create",
        "coordination.k8s.io",
        "leases",
        None,
        namespace,
        "to hold the Secret's lock",
    ));
    let mut kinds: Vec<WorkloadKind> = Vec::new();
    for (kind, name) in restarts {
        let group = if matches!(kind, WorkloadKind::CronJob | WorkloadKind::Job) {
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
    let mut unique: Vec<Need> = Vec::new();
    for need in needs {
        let seen = unique.iter().any(|u| {
            u.verb == need.verb
                && u.group == need.group
                && u.resource == need.resource
                && u.name == need.name
        });
        if !seen {
            unique.push(need);
        }
    }
    unique
}

/// Whether `rule` (from a SelfSubjectRulesReview) grants `need`.
pub fn rule_allows(rule: &ResourceRule, need: &Need) -> bool {
    let any = |list: &[String], wanted: &str| list.iter().any(|x| x == "*" || x == wanted);
    let groups = rule.api_groups.clone().unwrap_or_default();
    let resources = rule.resources.clone().unwrap_or_default();
    let names = rule.resource_names.clone().unwrap_or_default();
    any(&rule.verbs, need.verb)
        && any(&groups, need.group)
        && any(&resources, need.resource)
        && (names.is_empty()
            || need
                .name
                .as_deref()
                .is_some_and(|n| names.iter().any(|x| x == n)))
}

/// The needs the current user lacks in `namespace`: one SelfSubjectRulesReview, then a
/// SelfSubjectAccessReview only for what its rules do not grant when they are incomplete.
pub async fn missing(client: &Client, namespace: &str, needs: &[Need]) -> Result<Vec<Need>> {
    let rules_api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.to_string()),
        },
        ..SelfSubjectRulesReview::default()
    };
    let (rules, incomplete) = match rules_api.create(&PostParams::default(), &review).await {
        Ok(answer) => {
            let status = answer.status.unwrap_or_default();
            (status.resource_rules, status.incomplete)
        }
        // A server that cannot answer it: ask for each need.
        Err(_) => (Vec::new(), true),
    };
    let ungranted: Vec<Need> = needs
        .iter()
        .filter(|need| !rules.iter().any(|rule| rule_allows(rule, need)))
        .cloned()
        .collect();
    if !incomplete || ungranted.is_empty() {
        return Ok(ungranted);
    }
    ask_each(client, &ungranted).await
}

/// SelfSubjectAccessReview for each need, in parallel.
async fn ask_each(client: &Client, needs: &[Need]) -> Result<Vec<Need>> {
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

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> ResourceRule {
        let owned = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        ResourceRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: owned(groups),
            resources: owned(resources),
            resource_names: if names.is_empty() { None } else { owned(names) },
        }
    }

    #[test]
    fn rules_grant_needs_by_verb_group_resource_and_name() {
        let patch_api = Need::new("patch", "apps", "deployments", Some("api"), "prod", "x");
        let create = Need::new("create", "", "secrets", None, "prod", "x");
        assert!(rule_allows(
            &rule(&["patch"], &["apps"], &["deployments"], &[]),
            &patch_api
        ));
        assert!(rule_allows(&rule(&["*"], &["*"], &["*"], &[]), &patch_api));
        assert!(rule_allows(
            &rule(&["patch"], &["apps"], &["deployments"], &["api"]),
            &patch_api
        ));
        assert!(!rule_allows(
            &rule(&["patch"], &["apps"], &["deployments"], &["worker"]),
            &patch_api
        ));
        assert!(!rule_allows(
            &rule(&["get"], &["apps"], &["deployments"], &[]),
            &patch_api
        ));
        assert!(!rule_allows(
            &rule(&["patch"], &[""], &["deployments"], &[]),
            &patch_api
        ));
        // A rule limited to names never grants an unnamed create.
        assert!(!rule_allows(
            &rule(&["create"], &[""], &["secrets"], &["x"]),
            &create
        ));
        assert!(rule_allows(
            &rule(&["create"], &[""], &["secrets"], &[]),
            &create
        ));
    }

    #[test]
    fn a_change_needs_the_secret_the_backup_each_restart_and_the_watches() {
        let needs = needs_for_change(
            "prod",
            "app-secrets",
            Some("app-secrets-backup-x"),
            "app-secrets-run-x",
            "kubectl-rotate.app-secrets",
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
                "update secrets Some(\"app-secrets-run-x\")",
                "list secrets None",
                "get leases Some(\"kubectl-rotate.app-secrets\")",
                "update leases Some(\"kubectl-rotate.app-secrets\")",
                "delete leases Some(\"kubectl-rotate.app-secrets\")",
                "create leases None",
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
            Some("b"),
            "s-run-x",
            "kubectl-rotate.s",
            &[(WorkloadKind::Deployment, "api".into())],
        );
        let api = needs
            .iter()
            .find(|n| n.resource == "deployments")
            .unwrap()
            .clone();
        let text = refusal("Secret prod/s", &[api]).to_string();
        assert!(
            text.contains("patch deployments/api in namespace prod (to restart it)"),
            "{text}"
        );
        assert!(text.contains("nothing was changed"), "{text}");
    }
}

//! The permissions a run needs, as RBAC sees them. A rotation that can patch the Secret but not
//! restart its consumers would leave pods on the old value; so every permission the run needs is
//! listed first (`needs_for_change`), asked of the API server at once (`review`), and all
//! missing ones are refused together (`refusal`). Pure.
//!
//! Whatever is missing is named with the RBAC rule that grants it, ready to paste into a Role
//! (`deploy/rbac/` ships one per use); a Forbidden answer from anywhere else is read back into
//! such a rule too (`forbidden_rule`).

use anyhow::anyhow;
use k8s_openapi::api::authorization::v1::ResourceRule;
use serde::Serialize;

use crate::model::workload::WorkloadKind;

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

/// An RBAC rule as it goes under `rules:` of a Role: what to add for a missing permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

impl Rule {
    pub fn new(group: &str, resource: &str, verbs: &[&str]) -> Self {
        let mut verbs: Vec<String> = verbs.iter().map(|v| v.to_string()).collect();
        verbs.sort();
        verbs.dedup();
        Rule {
            api_groups: vec![group.to_string()],
            resources: vec![resource.to_string()],
            verbs,
        }
    }

    /// One line, YAML flow style: `{apiGroups: ["batch"], resources: ["cronjobs"], verbs: ["list"]}`.
    pub fn inline(&self) -> String {
        format!(
            "{{apiGroups: [{}], resources: [{}], verbs: [{}]}}",
            quoted(&self.api_groups),
            quoted(&self.resources),
            quoted(&self.verbs)
        )
    }

    /// The rule as YAML lines, an item of a Role's `rules:` list, ready to paste.
    pub fn yaml_lines(&self) -> [String; 3] {
        [
            format!("- apiGroups: [{}]", quoted(&self.api_groups)),
            format!("  resources: [{}]", quoted(&self.resources)),
            format!("  verbs: [{}]", quoted(&self.verbs)),
        ]
    }
}

fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|x| format!("{x:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a rule must go: a Role in the namespace, or a ClusterRole for every namespace.
pub fn where_to_add(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("a Role in namespace {ns} that is bound to you"),
        None => "a ClusterRole that is bound to you (ClusterRoleBinding)".to_string(),
    }
}

/// The rules that grant `needs`: one per API group and resource, its verbs merged, in the
/// order the needs come (names are left out: a run's journal and backup get new names).
pub fn rules_for(needs: &[Need]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    for need in needs {
        match rules
            .iter_mut()
            .find(|r| r.api_groups[0] == need.group && r.resources[0] == need.resource)
        {
            Some(rule) => {
                if !rule.verbs.iter().any(|v| v == need.verb) {
                    rule.verbs.push(need.verb.to_string());
                    rule.verbs.sort();
                }
            }
            None => rules.push(Rule::new(need.group, need.resource, &[need.verb])),
        }
    }
    rules
}

/// What the API server's Forbidden answer says is missing, read from its message
/// (`User "bob" cannot list resource "cronjobs" in API group "batch" in the namespace "prod"`;
/// a subresource reads `resource "pods/exec"`): the rule, and the namespace (`None`: at the
/// cluster scope). `None` when the message is not of that form.
pub fn forbidden_rule(message: &str) -> Option<(Rule, Option<String>)> {
    let after_cannot = &message[message.find(" cannot ")? + " cannot ".len()..];
    let (verb, rest) = after_cannot.split_once(" resource \"")?;
    let verb = verb.trim();
    if verb.is_empty() || verb.contains(' ') {
        return None;
    }
    let (resource, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(" in API group \"")?;
    let (group, rest) = rest.split_once('"')?;
    let namespace = rest
        .strip_prefix(" in the namespace \"")
        .and_then(|r| r.split_once('"'))
        .map(|(ns, _)| ns.to_string());
    Some((Rule::new(group, resource, &[verb]), namespace))
}

/// The lines that tell a user which rule to add for a Forbidden answer, when its message
/// names one: who to ask, where it goes, the rule, and how to check it.
pub fn forbidden_advice(message: &str) -> Option<String> {
    let (rule, namespace) = forbidden_rule(message)?;
    let resource = match rule.api_groups[0].as_str() {
        "" => rule.resources[0].clone(),
        group => format!("{}.{group}", rule.resources[0]),
    };
    let check = match &namespace {
        Some(ns) => format!("kubectl auth can-i {} {resource} -n {ns}", rule.verbs[0]),
        None => format!("kubectl auth can-i {} {resource} -A", rule.verbs[0]),
    };
    Some(format!(
        "ask a cluster administrator to add this rule to {} (the README's Permissions section has a Role \
         for each verb), or use another --context/--as:\n{}\ncheck with `{check}`",
        where_to_add(namespace.as_deref()),
        indent(&rule.yaml_lines())
    ))
}

/// Whether `err` is the API server refusing a WebSocket upgrade (exec, port-forward) with 403:
/// kube reports only the status, so the rule comes from what was asked.
pub fn upgrade_forbidden(err: &kube::Error) -> bool {
    matches!(
        err,
        kube::Error::UpgradeConnection(kube::client::UpgradeConnectionError::ProtocolSwitch(code))
            if code.as_u16() == 403
    )
}

/// The message for a refused exec or port-forward (`subresource`: `pods/exec`,
/// `pods/portforward`) to `pod`: the rule to add, get and create (a WebSocket upgrade is
/// authorized as get, and from Kubernetes 1.35 also as create).
pub fn upgrade_refusal(subresource: &str, namespace: &str, pod: &str) -> String {
    let rule = Rule::new("", subresource, &["get", "create"]);
    format!(
        "the API server refused {subresource} of pod {namespace}/{pod} (403 Forbidden); ask a cluster \
         administrator to add this rule to {}:\n{}",
        where_to_add(Some(namespace)),
        indent(&rule.yaml_lines())
    )
}

fn indent(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

const WHY_RESTART: &str = "to restart it";

/// The object a need of every change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    /// The changed Secret.
    Secret,
    /// A new backup Secret: any name, and only when the run makes a backup.
    NewBackup,
    /// The backup Secret, once made (only when the run makes a backup).
    Backup,
    /// The run's journal.
    Journal,
    /// The Secret's lock.
    Lease,
    /// Any object of the resource (a create or a list).
    Any,
}

/// The names of the objects a change touches besides its workloads.
struct Names<'a> {
    secret: &'a str,
    backup: Option<&'a str>,
    journal: &'a str,
    lease: &'a str,
}

impl Object {
    /// The name a need on this object is checked for (`Some(None)`: any name), or `None`
    /// when the run has no such object.
    fn name<'a>(self, names: &Names<'a>) -> Option<Option<&'a str>> {
        match self {
            Object::Secret => Some(Some(names.secret)),
            Object::NewBackup => names.backup.map(|_| None),
            Object::Backup => names.backup.map(Some),
            Object::Journal => Some(Some(names.journal)),
            Object::Lease => Some(Some(names.lease)),
            Object::Any => Some(None),
        }
    }
}

/// What every change needs besides its restarts, in the order a person would read it:
/// (verb, API group, resource, object, why).
#[rustfmt::skip]
const CHANGE_NEEDS: &[(&str, &str, &str, Object, &str)] = &[
    ("patch",  "", "secrets", Object::Secret,    "to write the new value"),
    ("create", "", "secrets", Object::NewBackup, "to save the old value in a backup Secret"),
    ("get",    "", "secrets", Object::Backup,    "to read the backup back"),
    ("create", "", "secrets", Object::Any,       "to save the run's journal"),
    ("update", "", "secrets", Object::Journal,   "to record each step in the run's journal"),
    ("list",   "", "secrets", Object::Any,       "to find unfinished runs and backups of the Secret"),
    ("get",    "coordination.k8s.io", "leases", Object::Lease, "to hold the Secret's lock"),
    ("update", "coordination.k8s.io", "leases", Object::Lease, "to hold the Secret's lock"),
    ("delete", "coordination.k8s.io", "leases", Object::Lease, "to hold the Secret's lock"),
    ("create", "coordination.k8s.io", "leases", Object::Any,   "to hold the Secret's lock"),
];

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
    let names = Names {
        secret,
        backup,
        journal,
        lease,
    };
    let fixed = CHANGE_NEEDS
        .iter()
        .filter_map(|&(verb, group, resource, object, why)| {
            let name = object.name(&names)?;
            Some(Need::new(verb, group, resource, name, namespace, why))
        });
    let needs = fixed.chain(restart_needs(namespace, restarts)).collect();
    without_repeats(needs)
}

/// What restarting `restarts` needs: patch each, watch the rollouts of their kinds, and
/// watch the pods for crash loops.
fn restart_needs(namespace: &str, restarts: &[(WorkloadKind, String)]) -> Vec<Need> {
    let mut needs = Vec::new();
    let mut kinds: Vec<WorkloadKind> = Vec::new();
    for (kind, name) in restarts {
        needs.push(Need::new(
            "patch",
            restart_group(*kind),
            kind.resource(),
            Some(name),
            namespace,
            WHY_RESTART,
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
                kind.resource(),
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

/// The API group a restart of `kind` is patched in.
fn restart_group(kind: WorkloadKind) -> &'static str {
    if matches!(kind, WorkloadKind::CronJob | WorkloadKind::Job) {
        "batch"
    } else {
        "apps"
    }
}

/// `needs` without a repeat of the same verb on the same object: the first one's why stays.
fn without_repeats(needs: Vec<Need>) -> Vec<Need> {
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

/// The refusal listing every missing permission, and the rules that would grant them.
pub fn refusal(object: &str, lacking: &[Need]) -> anyhow::Error {
    let list: Vec<String> = lacking
        .iter()
        .map(|n| format!("  - {}", n.describe()))
        .collect();
    let rules: Vec<String> = rules_for(lacking)
        .iter()
        .map(|r| indent(&r.yaml_lines()))
        .collect();
    let namespace = lacking.first().map(|n| n.namespace.as_str());
    let check = lacking
        .first()
        .map(|n| {
            let resource = match n.group {
                "" => n.resource.to_string(),
                group => format!("{}.{group}", n.resource),
            };
            let named = n
                .name
                .as_deref()
                .map(|x| format!("/{x}"))
                .unwrap_or_default();
            format!(
                "kubectl auth can-i {} {resource}{named} -n {}",
                n.verb, n.namespace
            )
        })
        .unwrap_or_default();
    let restarts = lacking.iter().any(|n| n.why == WHY_RESTART);
    anyhow!(
        "not allowed to rotate {object}; nothing was changed. Missing permissions:\n{}\n\
         ask a cluster administrator to add these rules to {} (the README's Permissions section has a Role \
         for each verb):\n{}\n\
         check with `{check}`{}",
        list.join("\n"),
        where_to_add(namespace),
        rules.join("\n"),
        if restarts {
            ", or use --restart to restart fewer workloads"
        } else {
            ""
        }
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

    #[test]
    fn the_refusal_gives_the_rules_to_paste_into_a_role() {
        let lacking = [
            Need::new("patch", "", "secrets", Some("s"), "prod", "x"),
            Need::new("create", "", "secrets", None, "prod", "x"),
            Need::new(
                "get",
                "coordination.k8s.io",
                "leases",
                Some("l"),
                "prod",
                "x",
            ),
            Need::new("create", "coordination.k8s.io", "leases", None, "prod", "x"),
        ];
        let text = refusal("Secret prod/s", &lacking).to_string();
        let expected = "add these rules to a Role in namespace prod that is bound to you";
        assert!(text.contains(expected), "{text}");
        assert!(
            text.contains(
                "  - apiGroups: [\"\"]\n    resources: [\"secrets\"]\n    verbs: [\"create\", \"patch\"]\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  - apiGroups: [\"coordination.k8s.io\"]\n    resources: [\"leases\"]\n    verbs: [\"create\", \"get\"]"
            ),
            "{text}"
        );
        assert!(
            text.contains("kubectl auth can-i patch secrets/s -n prod"),
            "{text}"
        );
        // Nothing about restarts is missing: no advice about --restart.
        assert!(!text.contains("--restart"), "{text}");
    }

    #[test]
    fn a_forbidden_message_names_the_rule_and_the_namespace() {
        let (rule, namespace) = forbidden_rule(
            r#"cronjobs.batch is forbidden: User "bob" cannot list resource "cronjobs" in API group "batch" in the namespace "prod""#,
        )
        .expect("a rule");
        assert_eq!(
            rule.inline(),
            r#"{apiGroups: ["batch"], resources: ["cronjobs"], verbs: ["list"]}"#
        );
        assert_eq!(namespace.as_deref(), Some("prod"));

        let (rule, namespace) = forbidden_rule(
            r#"pods "db-0" is forbidden: User "bob" cannot create resource "pods/exec" in API group "" in the namespace "prod""#,
        )
        .expect("a rule");
        assert_eq!(rule, Rule::new("", "pods/exec", &["create"]));
        assert_eq!(namespace.as_deref(), Some("prod"));

        let (rule, namespace) = forbidden_rule(
            r#"secrets is forbidden: User "bob" cannot list resource "secrets" in API group "" at the cluster scope"#,
        )
        .expect("a rule");
        assert_eq!(rule, Rule::new("", "secrets", &["list"]));
        assert_eq!(namespace, None);
        assert!(
            forbidden_advice(
                r#"User "bob" cannot list resource "secrets" in API group "" at the cluster scope"#
            )
            .expect("advice")
            .contains("a ClusterRole")
        );

        assert_eq!(
            forbidden_rule("forbidden: User \"bob\" cannot get path \"/x\""),
            None
        );
        assert_eq!(forbidden_rule("something else"), None);
    }

    #[test]
    fn the_advice_for_a_forbidden_answer_is_a_rule_to_paste() {
        let advice = forbidden_advice(
            r#"deployments.apps is forbidden: User "bob" cannot list resource "deployments" in API group "apps" in the namespace "prod""#,
        )
        .expect("advice");
        assert_eq!(
            advice,
            "ask a cluster administrator to add this rule to a Role in namespace prod that is bound to you \
             (the README's Permissions section has a Role for each verb), or use another --context/--as:\n  \
             - apiGroups: [\"apps\"]\n    resources: [\"deployments\"]\n    verbs: [\"list\"]\n\
             check with `kubectl auth can-i list deployments.apps -n prod`"
        );
    }

    #[test]
    fn rules_merge_the_verbs_of_one_resource() {
        let needs = needs_for_change(
            "prod",
            "s",
            Some("b"),
            "s-run-x",
            "kubectl-rotate.s",
            &[(WorkloadKind::Deployment, "api".into())],
        );
        let rules: Vec<String> = rules_for(&needs).iter().map(Rule::inline).collect();
        assert_eq!(
            rules,
            [
                r#"{apiGroups: [""], resources: ["secrets"], verbs: ["create", "get", "list", "patch", "update"]}"#,
                r#"{apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create", "delete", "get", "update"]}"#,
                r#"{apiGroups: ["apps"], resources: ["deployments"], verbs: ["list", "patch", "watch"]}"#,
                r#"{apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"]}"#,
            ]
        );
    }

    #[test]
    fn backup_needs_are_there_only_when_the_run_makes_a_backup() {
        let mut names = Names {
            secret: "s",
            backup: None,
            journal: "j",
            lease: "l",
        };
        assert_eq!(Object::NewBackup.name(&names), None);
        assert_eq!(Object::Backup.name(&names), None);
        assert_eq!(Object::Any.name(&names), Some(None));
        assert_eq!(Object::Lease.name(&names), Some(Some("l")));
        names.backup = Some("b");
        assert_eq!(Object::NewBackup.name(&names), Some(None));
        assert_eq!(Object::Backup.name(&names), Some(Some("b")));
        // Without a backup, creating Secrets is asked for the journal.
        let needs = needs_for_change("prod", "s", None, "j", "l", &[]);
        let create = needs.iter().find(|n| n.verb == "create").unwrap();
        assert_eq!(create.why, "to save the run's journal");
        assert!(needs.iter().all(|n| n.resource != "pods"));
    }

    #[test]
    fn jobs_and_cronjobs_are_restarted_in_the_batch_group_the_others_in_apps() {
        assert_eq!(restart_group(WorkloadKind::CronJob), "batch");
        assert_eq!(restart_group(WorkloadKind::Job), "batch");
        assert_eq!(restart_group(WorkloadKind::Deployment), "apps");
        assert_eq!(restart_group(WorkloadKind::StatefulSet), "apps");
        assert_eq!(restart_group(WorkloadKind::DaemonSet), "apps");
    }

    #[test]
    fn a_repeated_need_keeps_its_first_place_and_why() {
        let needs = without_repeats(vec![
            Need::new("create", "", "secrets", None, "prod", "first"),
            Need::new("get", "", "secrets", Some("a"), "prod", "x"),
            Need::new("create", "", "secrets", None, "prod", "second"),
            Need::new("get", "", "secrets", Some("b"), "prod", "x"),
            Need::new("get", "apps", "secrets", Some("a"), "prod", "x"),
        ]);
        let described: Vec<String> = needs
            .iter()
            .map(|n| {
                format!(
                    "{} {}/{} {:?} {}",
                    n.verb, n.group, n.resource, n.name, n.why
                )
            })
            .collect();
        assert_eq!(
            described,
            [
                "create /secrets None first",
                "get /secrets Some(\"a\") x",
                "get /secrets Some(\"b\") x",
                "get apps/secrets Some(\"a\") x",
            ]
        );
    }
}

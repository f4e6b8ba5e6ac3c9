//! Pure: the status report of Secrets (per key: size, last rotation, consumers) built from
//! objects already read. `commands/status.rs` reads; `ui/status.rs` renders.
//!
//! The serialized form is the stable `-o json` interface documented in the README: field names
//! are camelCase like Kubernetes', and fields are only ever added.

use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;

use crate::model::names::API_VERSION;
use crate::model::workload::WorkloadKind;
use crate::plan::consumers::{Usage, Workload, find_consumers};
use crate::plan::secret_meta::{self, RotationRecord};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub secrets: Vec<SecretStatus>,
    /// Kinds of consumers that could not be checked (you may not list them): the consumers
    /// above may be incomplete by those.
    pub not_checked: Vec<NotChecked>,
}

/// A kind of consumer the API server refused to list, with the rule that would allow it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotChecked {
    pub kind: WorkloadKind,
    /// `null`: every namespace.
    pub namespace: Option<String>,
    pub rule: crate::cluster::access::Rule,
    pub message: String,
}

impl NotChecked {
    pub fn of(unlisted: &crate::plan::consumers::Unlisted) -> Self {
        NotChecked {
            kind: unlisted.kind,
            namespace: unlisted.namespace.clone(),
            rule: unlisted.rule(),
            message: unlisted.warning(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStatus {
    pub namespace: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub keys: Vec<KeyStatus>,
    pub warnings: Vec<String>,
    /// Runs of this Secret that stopped before their end (a crash, Ctrl-C, an API fault, a
    /// failure with `--no-rollback`), with the commands that end them.
    pub unfinished_runs: Vec<UnfinishedRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnfinishedRun {
    pub id: String,
    /// `rotate` or `roll back`.
    pub action: String,
    pub keys: Vec<String>,
    pub by: String,
    pub started_at: String,
    /// `running` (or its process died), `interrupted` or `failed`.
    pub state: String,
    /// Where it stopped, in words.
    pub step: String,
    /// Finishes it.
    pub resume: String,
    /// Undoes every applied step, in reverse.
    pub rollback: String,
}

impl UnfinishedRun {
    pub fn of(journal: &crate::plan::journal::Journal) -> Self {
        UnfinishedRun {
            id: journal.id.clone(),
            action: journal.action.clone(),
            keys: journal.key_names(),
            by: journal.by.clone(),
            started_at: journal.started_at.clone(),
            state: serde_json::to_value(journal.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            step: journal.where_stopped(),
            resume: crate::plan::journal::resume_command(&journal.namespace, &journal.secret),
            rollback: crate::plan::journal::rollback_command(
                &journal.namespace,
                &journal.secret,
                &journal.id,
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    pub name: String,
    /// Size of the decoded value in bytes; never the value.
    pub bytes: usize,
    /// `null` when kubectl-rotate has no record of rotating this key.
    pub last_rotation: Option<RotationRecord>,
    /// The newest rotation of this key that failed and was undone (or changed nothing), when
    /// it came after `lastRotation`: the value is still the one `lastRotation` describes.
    pub last_failed_attempt: Option<FailedAttempt>,
    pub consumers: Vec<ConsumerStatus>,
}

/// A rotation run that did not succeed, from its journal.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedAttempt {
    pub id: String,
    pub at: String,
    pub by: String,
    /// `rolledBack` (failed, then undone) or `abandoned` (failed before it changed anything).
    pub state: String,
    /// Why it failed, as the run recorded it.
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    pub kind: WorkloadKind,
    pub name: String,
    /// False for CronJobs: reported, never restarted.
    pub restartable: bool,
    pub usages: Vec<Usage>,
}

impl ConsumerStatus {
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}

/// Builds the report for `secrets`, in the order given, using `workloads` for consumers and
/// `runs` (run journals: the unfinished ones for what is left to finish, the finished ones for
/// failed attempts).
pub fn build_status(
    secrets: &[Secret],
    workloads: &[Workload],
    runs: &[crate::plan::journal::Journal],
) -> StatusReport {
    StatusReport {
        api_version: API_VERSION,
        kind: "StatusReport",
        secrets: secrets
            .iter()
            .map(|s| {
                let mut status = secret_status(s, workloads);
                for key in &mut status.keys {
                    key.last_failed_attempt =
                        last_failed_attempt(runs, &status.namespace, &status.name, key);
                }
                status.unfinished_runs = runs
                    .iter()
                    .filter(|r| r.namespace == status.namespace && r.secret == status.name)
                    .filter(|r| !r.state.finished())
                    .map(UnfinishedRun::of)
                    .collect();
                status
            })
            .collect(),
        not_checked: Vec::new(),
    }
}

/// The newest finished rotation of `key` that did not succeed, if it is newer than the key's
/// last recorded rotation.
fn last_failed_attempt(
    runs: &[crate::plan::journal::Journal],
    namespace: &str,
    secret: &str,
    key: &KeyStatus,
) -> Option<FailedAttempt> {
    use crate::plan::journal::RunState;
    let newest = runs
        .iter()
        .filter(|r| r.namespace == namespace && r.secret == secret && r.action == "rotate")
        .filter(|r| r.keys.iter().any(|k| k.name == key.name))
        .max_by(|a, b| a.started_at.cmp(&b.started_at))?;
    if !matches!(newest.state, RunState::RolledBack | RunState::Abandoned) {
        return None;
    }
    let after_record = key.last_rotation.as_ref().is_none_or(|r| {
        let (Ok(record), Ok(attempt)) = (
            r.at.parse::<jiff::Timestamp>(),
            newest.started_at.parse::<jiff::Timestamp>(),
        ) else {
            return true;
        };
        attempt > record
    });
    after_record.then(|| FailedAttempt {
        id: newest.id.clone(),
        at: newest.started_at.clone(),
        by: newest.by.clone(),
        state: serde_json::to_value(newest.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        message: newest
            .message
            .as_deref()
            .and_then(|m| m.lines().next())
            .map(str::to_string),
    })
}

/// The Secrets an all-secrets view shows: without tokens, Helm records and backups, sorted by
/// namespace and name.
pub fn listable(mut secrets: Vec<Secret>) -> Vec<Secret> {
    secrets.retain(|s| secret_meta::skip_reason(s).is_none());
    secrets.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    secrets
}

fn secret_status(secret: &Secret, workloads: &[Workload]) -> SecretStatus {
    let namespace = secret.metadata.namespace.clone().unwrap_or_default();
    let name = secret.metadata.name.clone().unwrap_or_default();
    let consumers = find_consumers(&namespace, &name, workloads);
    let records = secret_meta::rotation_records(secret).unwrap_or_default();
    let keys = secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| KeyStatus {
            name: key.clone(),
            bytes: value.0.len(),
            last_rotation: records.get(key).cloned(),
            last_failed_attempt: None,
            consumers: consumers
                .iter()
                .filter(|c| c.uses_key(key))
                .map(|c| ConsumerStatus {
                    kind: c.workload.kind,
                    name: c.workload.name.clone(),
                    restartable: c.workload.kind.restartable(),
                    usages: c.usages_of(key).into_iter().cloned().collect(),
                })
                .collect(),
        })
        .collect();
    SecretStatus {
        namespace,
        name,
        type_: secret.type_.clone().unwrap_or_else(|| "Opaque".to_string()),
        keys,
        warnings: secret_meta::warnings(secret),
        unfinished_runs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{Container, EnvFromSource, PodSpec, SecretEnvSource};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("prod".into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            type_: Some("Opaque".into()),
            ..Secret::default()
        }
    }

    fn env_from_workload(name: &str, secret: &str) -> Workload {
        Workload {
            kind: WorkloadKind::Deployment,
            namespace: "prod".into(),
            name: name.into(),
            annotations: BTreeMap::new(),
            pod_spec: PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    env_from: Some(vec![EnvFromSource {
                        secret_ref: Some(SecretEnvSource {
                            name: secret.into(),
                            optional: None,
                        }),
                        ..EnvFromSource::default()
                    }]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            },
            paused: false,
            rollout: crate::plan::consumers::RolloutFacts::default(),
            created_by: None,
        }
    }

    #[test]
    fn each_key_has_its_size_record_and_consumers_but_no_value() {
        let mut s = secret(
            "app-secrets",
            &[
                ("openai-api-key", "sk-secret-value"),
                ("redis-password", "hunter2"),
            ],
        );
        s.metadata.annotations = Some(
            [(
                secret_meta::ROTATIONS_ANNOTATION.to_string(),
                r#"{"redis-password":{"at":"2026-11-26T04:00:00Z","id":"r-1","by":"alice"}}"#
                    .to_string(),
            )]
            .into(),
        );
        let workloads = vec![
            env_from_workload("api", "app-secrets"),
            env_from_workload("frontend", "other"),
        ];
        let report = build_status(&[s], &workloads, &[]);
        let keys = &report.secrets[0].keys;
        assert_eq!(keys[0].name, "openai-api-key");
        assert_eq!(keys[0].bytes, 15);
        assert!(keys[0].last_rotation.is_none());
        assert_eq!(
            keys[1].last_rotation.as_ref().map(|r| r.by.as_str()),
            Some("alice")
        );
        assert_eq!(keys[0].consumers.len(), 1);
        assert_eq!(keys[0].consumers[0].reference(), "deployment/api");
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !json.contains("sk-secret-value") && !json.contains("hunter2"),
            "{json}"
        );
    }

    #[test]
    fn listings_drop_tokens_and_sort_by_name() {
        let mut token = secret("default-token-abc", &[("token", "t")]);
        token.type_ = Some("kubernetes.io/service-account-token".into());
        let kept = listable(vec![secret("b", &[]), token, secret("a", &[])]);
        let names: Vec<_> = kept
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}

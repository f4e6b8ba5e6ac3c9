//! The app's own migration run as a Job (the preset's `encryption.job`): the keys in a
//! temporary Secret (`OLD_KEY`, `NEW_KEY`, given to the container with `envFrom`), the Job
//! created once (no retries: a migration is not blindly run twice) and waited for, and the
//! temporary Secret deleted afterwards. It does not tell what the Job did to the rows: the
//! `run-job` step (`run_job` in `mod.rs`) counts them.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use crate::cluster::short_error;
use crate::plan::steps::{JobSpec, Version};
use crate::systems::Ctx;

/// The temporary Secret holding both keys for the Job `job`.
pub(super) fn keys_secret_name(job: &str) -> String {
    format!("{job}-keys")
}

/// Creates the temporary Secret and the Job (or finds them from an earlier attempt) and
/// waits until the Job completed or failed, at most the run's timeout.
pub(super) async fn job_until_done(
    ctx: &Ctx<'_>,
    name: &str,
    job: &JobSpec,
    keys_secret: &str,
    (key, to): (&str, Version),
) -> Result<(), String> {
    let labels = run_labels(&ctx.journal.secret);
    let jobs: Api<Job> = Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
    let existing = jobs
        .get_opt(name)
        .await
        .map_err(|e| cannot_read(name, &e))?;
    if existing.is_none() {
        write_keys_secret(ctx, keys_secret, &labels, (key, to)).await?;
        let manifest = job_manifest(name, job, keys_secret, &labels)?;
        jobs.create(&post_params(), &manifest)
            .await
            .map_err(|e| format!("cannot create Job {name}: {}", short_error(&e)))?;
    }
    wait_for(ctx, &jobs, name).await
}

/// Writes as this tool's field manager.
fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(crate::model::names::FIELD_MANAGER.to_string()),
    }
}

/// The labels of the Secret, the Job and its pods: this tool's, and the run's (its journal).
pub(super) fn run_labels(journal: &str) -> serde_json::Value {
    serde_json::json!({
        "app.kubernetes.io/managed-by": "kubectl-rotate",
        crate::plan::journal::RUN_OF_LABEL: journal,
    })
}

/// Why the Job could not be read.
fn cannot_read(name: &str, err: &kube::Error) -> String {
    format!("cannot read Job {name}: {}", short_error(err))
}

/// Writes the key the rows move from (`OLD_KEY`) and the one they move to (`NEW_KEY`) into the
/// temporary Secret, replacing one an earlier attempt left.
async fn write_keys_secret(
    ctx: &Ctx<'_>,
    keys_secret: &str,
    labels: &serde_json::Value,
    (key, to): (&str, Version),
) -> Result<(), String> {
    let new = crate::systems::secret::new_value(ctx, key)
        .map_err(|e| format!("{e:#}"))?
        .clone();
    let old = crate::systems::secret::old_value(ctx, key)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let (from, into) = match to {
        Version::New => (old, new),
        Version::Old => (new, old),
    };
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": keys_secret, "labels": labels},
        "type": "Opaque",
        "data": {"OLD_KEY": from.to_base64().as_str(), "NEW_KEY": into.to_base64().as_str()},
    }))
    .map_err(|e| e.to_string())?;
    let secrets: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
    let params = post_params();
    match secrets.create(&params, &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => secrets
            .replace(keys_secret, &params, &secret)
            .await
            .map(drop)
            .map_err(|e| {
                format!(
                    "cannot write the temporary Secret {keys_secret}: {}",
                    short_error(&e)
                )
            }),
        Err(err) => Err(format!(
            "cannot create the temporary Secret {keys_secret}: {}",
            short_error(&err)
        )),
    }
}

/// The Job running the preset's container once (`backoffLimit: 0`, `restartPolicy: Never`),
/// with the keys from `keys_secret`, no service account token, and the security context
/// Pod Security's `restricted` level asks for wherever the preset set none
/// (`plan::pod_security`).
pub(super) fn job_manifest(
    name: &str,
    job: &JobSpec,
    keys_secret: &str,
    labels: &serde_json::Value,
) -> Result<Job, String> {
    let invalid =
        |e: serde_json::Error| format!("the preset's encryption.job is not a valid container: {e}");
    let (pod_context, context) = crate::plan::pod_security::restricted(
        read(&job.pod_security_context).map_err(invalid)?,
        read(&job.security_context).map_err(invalid)?,
    );
    let mut container = serde_json::json!({
        "name": "migrate",
        "image": job.image,
        "envFrom": [{"secretRef": {"name": keys_secret}}],
        "securityContext": context,
    });
    if !job.command.is_empty() {
        container["command"] = serde_json::json!(job.command);
    }
    if !job.args.is_empty() {
        container["args"] = serde_json::json!(job.args);
    }
    if !job.env.is_empty() {
        container["env"] = serde_json::json!(job.env);
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "securityContext": pod_context,
                    "containers": [container],
                },
            },
        },
    }))
    .map_err(invalid)
}

/// A security context as the preset wrote it, read as its Kubernetes type.
fn read<T: serde::de::DeserializeOwned>(
    value: &Option<serde_json::Value>,
) -> Result<Option<T>, serde_json::Error> {
    value.clone().map(serde_json::from_value).transpose()
}

/// Where a Job stands, from its conditions.
#[derive(Debug, PartialEq, Eq)]
enum JobState {
    Running,
    Complete,
    /// The `Failed` condition's message.
    Failed(String),
}

/// Where `job` stands: `Complete` wins over `Failed` (a condition holds when its status is
/// `True`).
fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
            .map(|c| c.message.clone().unwrap_or_default())
    };
    if holds("Complete").is_some() {
        JobState::Complete
    } else if let Some(message) = holds("Failed") {
        JobState::Failed(message)
    } else {
        JobState::Running
    }
}

/// Reads the Job every second until it completed or failed, at most the run's timeout (the
/// Job goes on after it).
async fn wait_for(ctx: &Ctx<'_>, jobs: &Api<Job>, name: &str) -> Result<(), String> {
    let namespace = ctx.namespace();
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    loop {
        let found = jobs.get(name).await.map_err(|e| cannot_read(name, &e))?;
        match job_state(&found) {
            JobState::Complete => return Ok(()),
            JobState::Failed(message) => {
                return Err(format!(
                    "Job {name} failed ({message}); `kubectl logs job/{name} -n {namespace}` says why"
                ));
            }
            JobState::Running => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "Job {name} did not finish within {:?} (it goes on; `kubectl get job {name} -n {namespace}`)",
                ctx.timeout
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The temporary Secrets deleted after the Job `name`: its own, and for an undo's Job also the
/// one a killed forward Job left behind.
fn leftover_secrets(name: &str) -> Vec<String> {
    let mut leftovers = vec![keys_secret_name(name)];
    if let Some(forward) = name.strip_suffix("-undo") {
        leftovers.push(keys_secret_name(forward));
    }
    leftovers
}

/// Deletes the Job's temporary Secrets (one already gone is fine); the error says why one
/// could not be deleted.
pub(super) async fn delete_keys_secrets(ctx: &Ctx<'_>, name: &str) -> Result<(), String> {
    let secrets: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), ctx.namespace());
    let mut deleted = Ok(());
    for secret in &leftover_secrets(name) {
        match secrets.delete(secret, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => deleted = Err(short_error(&err)),
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            image: "app:1.2".into(),
            command: Vec::new(),
            args: vec!["migrate-keys".into()],
            ..JobSpec::default()
        }
    }

    #[test]
    fn the_job_runs_once_with_both_keys_and_only_the_container_fields_the_preset_gives() {
        let labels = run_labels("rotate-journal-x");
        let job = job_manifest("app-migrate-1", &spec(), "app-migrate-1-keys", &labels).unwrap();
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let container = &pod.containers[0];
        assert_eq!(container.name, "migrate");
        assert_eq!(container.image.as_deref(), Some("app:1.2"));
        assert_eq!(
            container.env_from.as_ref().unwrap()[0]
                .secret_ref
                .as_ref()
                .unwrap()
                .name,
            "app-migrate-1-keys"
        );
        assert_eq!(container.args, Some(vec!["migrate-keys".to_string()]));
        assert_eq!(container.command, None);
        assert_eq!(container.env, None);
        assert_eq!(
            job.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "kubectl-rotate"
        );
    }

    #[test]
    fn the_jobs_pod_passes_restricted_unless_the_preset_set_a_field_against_it() {
        let labels = run_labels("rotate-journal-x");
        let pod = |spec: &JobSpec| {
            job_manifest("j", spec, "j-keys", &labels)
                .unwrap()
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
        };
        let plain = pod(&spec());
        let context = plain.security_context.unwrap();
        assert_eq!(
            (context.run_as_non_root, context.run_as_user),
            (Some(true), Some(crate::plan::pod_security::NON_ROOT_UID))
        );
        assert_eq!(context.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let container = plain.containers[0].security_context.clone().unwrap();
        assert_eq!(container.allow_privilege_escalation, Some(false));
        assert_eq!(container.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        let root = pod(&JobSpec {
            security_context: Some(serde_json::json!({"runAsUser": 0, "privileged": true})),
            ..spec()
        });
        let container = root.containers[0].security_context.clone().unwrap();
        assert_eq!(
            (container.run_as_user, container.privileged),
            (Some(0), Some(true))
        );
        assert_eq!(root.security_context.unwrap().run_as_user, None);
        let broken = JobSpec {
            pod_security_context: Some(serde_json::json!({"runAsUser": "root"})),
            ..spec()
        };
        assert!(job_manifest("j", &broken, "j-keys", &labels).is_err());
    }

    #[test]
    fn a_job_is_complete_failed_or_still_running_by_its_true_conditions() {
        let with = |conditions: &[(&str, &str, &str)]| -> Job {
            serde_json::from_value(serde_json::json!({
                "status": {"conditions": conditions.iter().map(|(kind, status, message)| {
                    serde_json::json!({"type": kind, "status": status, "message": message})
                }).collect::<Vec<_>>()},
            }))
            .unwrap()
        };
        assert_eq!(job_state(&Job::default()), JobState::Running);
        assert_eq!(
            job_state(&with(&[("Failed", "False", "no")])),
            JobState::Running
        );
        assert_eq!(
            job_state(&with(&[("Failed", "True", "BackoffLimitExceeded")])),
            JobState::Failed("BackoffLimitExceeded".into())
        );
        assert_eq!(
            job_state(&with(&[("Failed", "True", "x"), ("Complete", "True", "")])),
            JobState::Complete
        );
    }

    #[test]
    fn an_undo_job_also_deletes_the_keys_its_forward_job_left() {
        assert_eq!(leftover_secrets("app-migrate-1"), ["app-migrate-1-keys"]);
        assert_eq!(
            leftover_secrets("app-migrate-1-undo"),
            ["app-migrate-1-undo-keys", "app-migrate-1-keys"]
        );
    }
}

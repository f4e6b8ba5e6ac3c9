//! Before anything is written: the migration Job (`encryption.job`) created as a dry run
//! (`dryRun=All`: every admission check runs, nothing is stored), so that a Job the namespace
//! would not run stops the rotation here, with the API server's own words, rather than after
//! the consumers were stopped. Pod Security admission `enforce`s on pods, not on the Job; for
//! the Job it answers with a warning (`would violate PodSecurity "restricted:latest": ...`), at
//! the namespace's `warn` level, which is its `enforce` level unless set apart
//! (pod-security-admission `api.PolicyToEvaluate`). Such a warning is a refusal here: the Job's
//! pods would be refused (or the namespace asks that they not be), and the run would wait for a
//! pod that never comes. It does not create the Job: `job` does.

use anyhow::{Result, bail};
use http_body_util::BodyExt;

use crate::cluster::Cluster;
use crate::plan::steps::JobSpec;
use crate::systems::encryption::job;

/// What the dry run said besides "yes": the API server's other warnings (e.g. a deprecated
/// field), for the preview.
pub type Warnings = Vec<String>;

/// Creates the Job `name` of the run journaled in `journal` as a dry run; an error quotes what
/// the API server refused or warned about its pods, names the namespace and what to change.
/// A refusal for lack of permission is left to the run's permission review, which names every
/// rule to add at once.
pub async fn refuse_inadmissible(
    cluster: &Cluster,
    namespace: &str,
    (name, journal): (&str, &str),
    spec: &JobSpec,
) -> Result<Warnings> {
    let manifest = job::job_manifest(
        name,
        spec,
        &job::keys_secret_name(name),
        &job::run_labels(journal),
    )
    .map_err(anyhow::Error::msg)?;
    let (status, message, warnings) = dry_run_create(cluster, namespace, &manifest).await?;
    if !status.is_success() {
        if status == http::StatusCode::FORBIDDEN
            && crate::cluster::access::forbidden_rule(&message).is_some()
        {
            return Ok(warnings);
        }
        bail!(
            "the migration Job {name} cannot be created in namespace {namespace}: the API server's dry-run \
             create of it (dryRun=All, nothing stored) answered {status}: {message}; change encryption.job of the \
             preset in the config file (or what the namespace enforces) and run again; nothing was changed"
        );
    }
    let (pod_security, others): (Vec<_>, Vec<_>) = warnings
        .into_iter()
        .partition(|w| w.contains("PodSecurity"));
    if let Some(warning) = pod_security.first() {
        bail!(
            "the migration Job {name} would not run in namespace {namespace}: its pods fail the namespace's Pod \
             Security level; the API server's dry-run create of the Job (dryRun=All, nothing stored) warns: \
             {warning}. This tool sets runAsNonRoot, runAsUser {uid}, allowPrivilegeEscalation false, \
             capabilities drop [ALL] and seccompProfile RuntimeDefault wherever the preset leaves them unset: \
             remove or change what encryption.job.securityContext / podSecurityContext of the preset in the \
             config file sets against them, then run again; nothing was changed",
            uid = crate::plan::pod_security::NON_ROOT_UID
        );
    }
    Ok(others)
}

/// POSTs `manifest` to the namespace's Jobs with `dryRun=All`: the status, the message of a
/// refusal (else empty) and the texts of the `Warning` headers (kube's `Api::create` drops them).
async fn dry_run_create(
    cluster: &Cluster,
    namespace: &str,
    manifest: &k8s_openapi::api::batch::v1::Job,
) -> Result<(http::StatusCode, String, Vec<String>)> {
    let params = kube::api::PostParams {
        dry_run: true,
        field_manager: Some(crate::model::names::FIELD_MANAGER.to_string()),
    };
    let body = serde_json::to_vec(manifest)?;
    let request = kube::core::Request::new(format!("/apis/batch/v1/namespaces/{namespace}/jobs"))
        .create(&params, body)?
        .map(kube::client::Body::from);
    let response = cluster.client.send(request).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot check the migration Job in namespace {namespace} (a dry-run create): {}; nothing was changed",
            crate::cluster::short_error(&e)
        )
    })?;
    let status = response.status();
    let warnings = response
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(warning_text)
        .collect();
    let bytes = response.into_body().collect().await?.to_bytes();
    let message = if status.is_success() {
        String::new()
    } else {
        serde_json::from_slice::<kube::core::Status>(&bytes)
            .map(|s| s.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok((status, message, warnings))
}

/// The text of a `Warning` header (RFC 7234: `299 - "text"`, quotes and backslashes escaped).
fn warning_text(header: &str) -> Option<String> {
    let (_code, rest) = header.split_once(' ')?;
    let (_agent, quoted) = rest.split_once(' ')?;
    let mut chars = quoted.strip_prefix('"')?.chars();
    let mut text = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?),
            '"' => return Some(text),
            c => text.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_header_gives_its_text_unescaped() {
        assert_eq!(
            warning_text(
                r#"299 - "would violate PodSecurity \"restricted:latest\": runAsUser=0 (pod must not set runAsUser=0)""#
            )
            .as_deref(),
            Some(
                r#"would violate PodSecurity "restricted:latest": runAsUser=0 (pod must not set runAsUser=0)"#
            )
        );
        assert_eq!(
            warning_text(r#"299 kube-apiserver "a \\ b" "Tue, 15 Nov 1994 08:12:31 GMT""#)
                .as_deref(),
            Some(r"a \ b")
        );
        assert_eq!(warning_text("299 - unquoted"), None);
        assert_eq!(warning_text(r#"299 - "never closed"#), None);
    }
}

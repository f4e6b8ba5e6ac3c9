//! Pure facts about a Secret object that every verb needs: the rotation records kubectl-rotate
//! keeps in its annotations, whether the Secret is one of our backups, whether a controller
//! owns it, and which Secrets the all-secrets views leave out.
//!
//! The annotation format is an interface (documented in the README): one annotation,
//! `kubectl-rotate.io/rotations`, holding a JSON object from key name to the last rotation of
//! that key: `{"openai-api-key":{"at":"2026-11-26T04:00:00Z","id":"r-…","by":"alice"}}`. One JSON
//! annotation rather than one annotation per key because Secret key names (`.env`, `_x`) are not
//! all valid annotation names. It never holds a value or anything derived from one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Serialize};

/// Every annotation and label this project writes starts with this prefix.
pub const PREFIX: &str = "kubectl-rotate.io/";
/// The per-key rotation records.
pub const ROTATIONS_ANNOTATION: &str = "kubectl-rotate.io/rotations";
/// Set on backup Secrets to the name of the Secret they back up.
pub const BACKUP_OF_LABEL: &str = "kubectl-rotate.io/backup-of";

/// The last rotation of one key: when, which run, by whom. Never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRecord {
    /// RFC 3339, UTC.
    pub at: String,
    /// The rotation run's id, shared by everything that run wrote (backup, Event).
    pub id: String,
    /// The user the API server saw, as far as the plugin could tell.
    pub by: String,
}

/// The rotation records of a Secret, by key. A malformed annotation is reported, not fatal:
/// someone may have edited it by hand, and it must not stop a status or a rotation.
pub fn rotation_records(secret: &Secret) -> Result<BTreeMap<String, RotationRecord>, String> {
    let Some(raw) = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATIONS_ANNOTATION))
    else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_str(raw).map_err(|e| {
        format!("annotation {ROTATIONS_ANNOTATION} is not the JSON kubectl-rotate writes ({e}); rotation history is ignored")
    })
}

/// Why the all-secrets views leave a Secret out, if they do.
pub fn skip_reason(secret: &Secret) -> Option<&'static str> {
    match secret.type_.as_deref() {
        Some("kubernetes.io/service-account-token") => return Some("service-account token"),
        Some(t) if t.starts_with("helm.sh/release") => return Some("Helm release record"),
        _ => {}
    }
    if is_backup(secret) {
        return Some("kubectl-rotate backup");
    }
    if crate::plan::secret_meta::is_journal(secret) {
        return Some("kubectl-rotate run journal");
    }
    None
}

pub fn is_backup(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(BACKUP_OF_LABEL))
}

/// What writes a Secret back: a controller or a GitOps tool that would revert an in-place
/// edit, and where the value must change instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    /// Who, e.g. "Argo CD (application web, tracking-id annotation)".
    pub name: String,
    /// Where the value must change instead, e.g. "the Git repository Argo CD syncs from".
    pub source: String,
}

/// The manager that would revert an in-place edit of this Secret, if any: an owning
/// ExternalSecret or SealedSecret, External Secrets Operator's label, Helm, Argo CD (its
/// tracking-id annotation, or its label tracking `app.kubernetes.io/instance` when no other
/// manager claims the Secret), Flux (a Kustomization's or HelmRelease's labels) or the Vault
/// Secrets Operator.
pub fn manager(secret: &Secret) -> Option<Manager> {
    let meta = &secret.metadata;
    let found = |name: String, source: &str| {
        Some(Manager {
            name,
            source: source.to_string(),
        })
    };
    for owner in meta.owner_references.iter().flatten() {
        match owner.kind.as_str() {
            "ExternalSecret" => {
                return found(
                    format!("ExternalSecret {}", owner.name),
                    "the external secret store it syncs from",
                );
            }
            "SealedSecret" => {
                return found(
                    format!("SealedSecret {}", owner.name),
                    "a new SealedSecret (kubeseal) in the repository it is applied from",
                );
            }
            _ => {}
        }
    }
    let empty = Default::default();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let label = |key: &str| labels.get(key).map(String::as_str);
    if label("reconcile.external-secrets.io/managed") == Some("true") {
        return found(
            "External Secrets Operator".into(),
            "the external secret store it syncs from",
        );
    }
    if label("app.kubernetes.io/managed-by") == Some("hashicorp-vso") {
        return found("the Vault Secrets Operator".into(), "Vault");
    }
    if let Some(name) = label("kustomize.toolkit.fluxcd.io/name") {
        let namespace = label("kustomize.toolkit.fluxcd.io/namespace").unwrap_or("?");
        return found(
            format!("Flux (Kustomization {namespace}/{name})"),
            "the Git repository Flux applies it from",
        );
    }
    if let Some(name) = label("helm.toolkit.fluxcd.io/name") {
        let namespace = label("helm.toolkit.fluxcd.io/namespace").unwrap_or("?");
        return found(
            format!("Flux (HelmRelease {namespace}/{name})"),
            "the HelmRelease's values in the Git repository Flux applies",
        );
    }
    if let Some(id) = annotations.get("argocd.argoproj.io/tracking-id") {
        let app = id.split(':').next().unwrap_or(id);
        return found(
            format!("Argo CD (application {app})"),
            "the Git repository Argo CD syncs it from",
        );
    }
    if label("app.kubernetes.io/managed-by") == Some("Helm") {
        return found("Helm".into(), "the release's values (helm upgrade)");
    }
    if let Some(app) = label("app.kubernetes.io/instance") {
        return found(
            format!("Argo CD (application {app}, label app.kubernetes.io/instance)"),
            "the Git repository Argo CD syncs it from",
        );
    }
    None
}

/// Whether `kubectl.kubernetes.io/last-applied-configuration` carries Secret data in plain JSON
/// (a Secret created with client-side `kubectl apply`).
pub fn last_applied_holds_values(secret: &Secret) -> bool {
    let Some(raw) = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
    else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(raw).is_ok_and(|v| {
        ["data", "stringData"].iter().any(|field| {
            v.get(field)
                .and_then(|d| d.as_object())
                .is_some_and(|d| !d.is_empty())
        })
    })
}

/// Warnings a person should see next to this Secret in any view.
pub fn warnings(secret: &Secret) -> Vec<String> {
    let mut warnings = Vec::new();
    // A backup is immutable on purpose: say what it is, not how to rotate it.
    if is_backup(secret) {
        let of = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(BACKUP_OF_LABEL))
            .cloned()
            .unwrap_or_default();
        warnings.push(format!(
            "a kubectl-rotate backup of Secret {of} (immutable on purpose; it is not rotated): \
             `kubectl rotate backup {of} --list` lists the backups, `kubectl rotate rollback {of} --to NAME` restores one"
        ));
        return warnings;
    }
    if crate::plan::secret_meta::is_journal(secret) {
        warnings.push(
            "a kubectl-rotate run journal (the record of one run; it is not rotated)".to_string(),
        );
        return warnings;
    }
    if secret.immutable == Some(true) {
        warnings
            .push("immutable: it cannot be patched; rotating it means replacing it".to_string());
    }
    if let Some(manager) = manager(secret) {
        warnings.push(format!(
            "managed by {}: an in-place rotation would be reverted; change the value in {}",
            manager.name, manager.source
        ));
    }
    if last_applied_holds_values(secret) {
        warnings.push(
            "kubectl.kubernetes.io/last-applied-configuration holds its values in plain JSON (created with `kubectl apply`)"
                .to_string(),
        );
    }
    if let Err(problem) = rotation_records(secret) {
        warnings.push(problem);
    }
    warnings
}

pub const JOURNAL_TYPE: &str = "kubectl-rotate.io/run";

pub fn is_journal(secret: &Secret) -> bool {
    secret.type_.as_deref() == Some(JOURNAL_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn secret(type_: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                ..ObjectMeta::default()
            },
            type_: Some(type_.into()),
            ..Secret::default()
        }
    }

    fn annotated(key: &str, value: &str) -> Secret {
        let mut s = secret("Opaque");
        s.metadata.annotations = Some([(key.to_string(), value.to_string())].into());
        s
    }

    #[test]
    fn rotation_records_are_read_per_key() {
        let s = annotated(
            ROTATIONS_ANNOTATION,
            r#"{"openai-api-key":{"at":"2026-11-26T04:00:00Z","id":"r-1","by":"alice"}}"#,
        );
        let records = rotation_records(&s).unwrap();
        assert_eq!(records["openai-api-key"].by, "alice");
        assert!(rotation_records(&secret("Opaque")).unwrap().is_empty());
    }

    #[test]
    fn a_malformed_rotation_annotation_is_a_warning_not_an_error() {
        let s = annotated(ROTATIONS_ANNOTATION, "not json");
        assert!(rotation_records(&s).is_err());
        assert!(
            warnings(&s)
                .iter()
                .any(|w| w.contains(ROTATIONS_ANNOTATION))
        );
    }

    #[test]
    fn tokens_helm_releases_and_backups_are_skipped_in_listings() {
        assert!(skip_reason(&secret("kubernetes.io/service-account-token")).is_some());
        assert!(skip_reason(&secret("helm.sh/release.v1")).is_some());
        assert!(skip_reason(&secret("Opaque")).is_none());
        let mut backup = secret("Opaque");
        backup.metadata.labels =
            Some([(BACKUP_OF_LABEL.to_string(), "app-secrets".to_string())].into());
        assert_eq!(skip_reason(&backup), Some("kubectl-rotate backup"));
    }

    #[test]
    fn controllers_that_revert_edits_are_recognised() {
        let mut owned = secret("Opaque");
        owned.metadata.owner_references = Some(vec![OwnerReference {
            kind: "SealedSecret".into(),
            name: "db".into(),
            api_version: "bitnami.com/v1alpha1".into(),
            uid: "u".into(),
            ..OwnerReference::default()
        }]);
        assert_eq!(manager(&owned).unwrap().name, "SealedSecret db");
        let mut helm = secret("Opaque");
        helm.metadata.labels = Some(
            [(
                "app.kubernetes.io/managed-by".to_string(),
                "Helm".to_string(),
            )]
            .into(),
        );
        assert_eq!(manager(&helm).unwrap().name, "Helm");
        let mut eso = secret("Opaque");
        eso.metadata.labels = Some(
            [(
                "reconcile.external-secrets.io/managed".to_string(),
                "true".to_string(),
            )]
            .into(),
        );
        assert!(manager(&eso).is_some());
        assert!(manager(&secret("Opaque")).is_none());
    }

    #[test]
    fn gitops_tools_and_vault_are_recognised_with_where_to_change_the_value() {
        let labelled = |pairs: &[(&str, &str)]| {
            let mut s = secret("Opaque");
            s.metadata.labels = Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            s
        };
        let argo = annotated(
            "argocd.argoproj.io/tracking-id",
            "web:/Secret:prod/app-secrets",
        );
        let m = manager(&argo).unwrap();
        assert_eq!(m.name, "Argo CD (application web)");
        assert!(m.source.contains("Git repository"));
        let argo_label = labelled(&[("app.kubernetes.io/instance", "web")]);
        assert!(
            manager(&argo_label)
                .unwrap()
                .name
                .starts_with("Argo CD (application web")
        );
        // A Helm chart's instance label is Helm's, not Argo CD's.
        let helm = labelled(&[
            ("app.kubernetes.io/instance", "web"),
            ("app.kubernetes.io/managed-by", "Helm"),
        ]);
        assert_eq!(manager(&helm).unwrap().name, "Helm");
        let flux = labelled(&[
            ("kustomize.toolkit.fluxcd.io/name", "apps"),
            ("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
        ]);
        assert_eq!(
            manager(&flux).unwrap().name,
            "Flux (Kustomization flux-system/apps)"
        );
        let flux_helm = labelled(&[("helm.toolkit.fluxcd.io/name", "web")]);
        assert!(
            manager(&flux_helm)
                .unwrap()
                .name
                .starts_with("Flux (HelmRelease")
        );
        let vso = labelled(&[("app.kubernetes.io/managed-by", "hashicorp-vso")]);
        let m = manager(&vso).unwrap();
        assert_eq!(
            (m.name.as_str(), m.source.as_str()),
            ("the Vault Secrets Operator", "Vault")
        );
    }

    #[test]
    fn last_applied_configuration_with_data_is_detected() {
        let s = annotated(
            "kubectl.kubernetes.io/last-applied-configuration",
            r#"{"apiVersion":"v1","kind":"Secret","data":{"k":"dg=="}}"#,
        );
        assert!(last_applied_holds_values(&s));
        let no_data = annotated(
            "kubectl.kubernetes.io/last-applied-configuration",
            r#"{"kind":"Secret"}"#,
        );
        assert!(!last_applied_holds_values(&no_data));
    }

    #[test]
    fn a_backup_is_said_to_be_a_backup_not_an_immutable_secret_to_rotate() {
        let mut backup = secret("Opaque");
        backup.immutable = Some(true);
        backup.metadata.labels =
            Some([(BACKUP_OF_LABEL.to_string(), "app-secrets".to_string())].into());
        let warnings = warnings(&backup);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("a kubectl-rotate backup of Secret app-secrets"));
        assert!(!warnings[0].contains("replacing it"));
    }
}

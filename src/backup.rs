//! Pure: the in-cluster backup format. Before a key changes, its old value is saved in a
//! backup Secret, so the old value is always recoverable (`kubectl rotate rollback`).
//!
//! Format (an interface, documented in the README):
//! - name `<secret>-backup-<rotation id>`, in the Secret's namespace;
//! - `type: kubectl-rotate.io/backup` and `immutable: true`: a backup never changes, and no
//!   workload consumes it (nothing references its name, and the type says what it is);
//! - label `kubectl-rotate.io/backup-of: <secret>` (to list a Secret's backups) and
//!   `app.kubernetes.io/managed-by: kubectl-rotate`;
//! - annotations `kubectl-rotate.io/backup-source-resource-version`, `-created-at` (RFC 3339),
//!   `-created-by`, `kubectl-rotate.io/rotation-id`, `-reason`, and `-fingerprints` (JSON: key to
//!   the first 8 hex digits of the SHA-256 of the saved value), so backups can be listed without
//!   reading values;
//! - `data`: the saved keys with their values as they were.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::secret_meta::BACKUP_OF_LABEL;
use crate::values::SecretValue;

pub const BACKUP_TYPE: &str = "kubectl-rotate.io/backup";
pub const SOURCE_RESOURCE_VERSION: &str = "kubectl-rotate.io/backup-source-resource-version";
pub const CREATED_AT: &str = "kubectl-rotate.io/backup-created-at";
pub const CREATED_BY: &str = "kubectl-rotate.io/backup-created-by";
pub const ROTATION_ID: &str = "kubectl-rotate.io/rotation-id";
pub const REASON: &str = "kubectl-rotate.io/backup-reason";
pub const FINGERPRINTS: &str = "kubectl-rotate.io/backup-fingerprints";

/// What a backup saves and the context it was taken in.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub namespace: String,
    pub secret: String,
    pub source_resource_version: String,
    pub keys: Vec<(String, SecretValue)>,
    pub at: String,
    pub by: String,
    pub rotation_id: String,
    pub reason: String,
}

/// The backup's name: `<secret>-backup-<rotation id>`, shortened to fit the 253-character limit.
pub fn backup_name(secret: &str, rotation_id: &str) -> String {
    let suffix = format!("-backup-{rotation_id}");
    let room = 253usize.saturating_sub(suffix.len());
    let base: String = secret.chars().take(room).collect();
    format!("{}{suffix}", base.trim_end_matches(['-', '.']))
}

/// The label value naming the backed-up Secret (label values are at most 63 characters).
pub fn backup_label_value(secret: &str) -> String {
    if secret.len() <= 63 {
        secret.to_string()
    } else {
        let fingerprint = crate::values::fingerprint(secret.as_bytes());
        format!(
            "{}-{fingerprint}",
            secret[..54].trim_end_matches(['-', '.'])
        )
    }
}

/// The backup Secret object for `request`.
pub fn build_backup(request: &BackupRequest) -> Secret {
    let fingerprints: BTreeMap<&str, String> = request
        .keys
        .iter()
        .map(|(k, v)| (k.as_str(), v.fingerprint()))
        .collect();
    let annotations = BTreeMap::from([
        (
            SOURCE_RESOURCE_VERSION.to_string(),
            request.source_resource_version.clone(),
        ),
        (CREATED_AT.to_string(), request.at.clone()),
        (CREATED_BY.to_string(), request.by.clone()),
        (ROTATION_ID.to_string(), request.rotation_id.clone()),
        (REASON.to_string(), request.reason.clone()),
        (
            FINGERPRINTS.to_string(),
            serde_json::to_string(&fingerprints).unwrap_or_default(),
        ),
    ]);
    let labels = BTreeMap::from([
        (
            BACKUP_OF_LABEL.to_string(),
            backup_label_value(&request.secret),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "kubectl-rotate".to_string(),
        ),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(backup_name(&request.secret, &request.rotation_id)),
            namespace: Some(request.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some(BACKUP_TYPE.to_string()),
        immutable: Some(true),
        data: Some(
            request
                .keys
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Whether `stored` (read back from the server) holds exactly the values of `request`.
pub fn holds(stored: &Secret, request: &BackupRequest) -> bool {
    let data = stored.data.clone().unwrap_or_default();
    request.keys.iter().all(|(k, v)| {
        data.get(k)
            .is_some_and(|stored| stored.0.as_slice() == v.expose())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> BackupRequest {
        BackupRequest {
            namespace: "prod".into(),
            secret: "app-secrets".into(),
            source_resource_version: "42".into(),
            keys: vec![(
                "openai-api-key".into(),
                SecretValue::new(b"sk-old-value".to_vec()),
            )],
            at: "2026-11-26T04:00:00Z".into(),
            by: "alice".into(),
            rotation_id: "20261126-040000-ab12".into(),
            reason: "before rotating openai-api-key".into(),
        }
    }

    #[test]
    fn a_backup_is_an_immutable_labelled_secret_holding_the_old_value() {
        let backup = build_backup(&request());
        assert_eq!(
            backup.metadata.name.as_deref(),
            Some("app-secrets-backup-20261126-040000-ab12")
        );
        assert_eq!(backup.type_.as_deref(), Some(BACKUP_TYPE));
        assert_eq!(backup.immutable, Some(true));
        assert_eq!(
            backup.metadata.labels.as_ref().unwrap()[BACKUP_OF_LABEL],
            "app-secrets"
        );
        assert_eq!(
            backup.data.as_ref().unwrap()["openai-api-key"].0,
            b"sk-old-value"
        );
        let annotations = backup.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[SOURCE_RESOURCE_VERSION], "42");
        assert!(
            !annotations.values().any(|v| v.contains("sk-old-value")),
            "no value in annotations"
        );
        assert!(annotations[FINGERPRINTS].contains(&crate::values::fingerprint(b"sk-old-value")));
        assert!(crate::secret_meta::is_backup(&backup));
    }

    #[test]
    fn reading_back_a_different_value_does_not_count_as_held() {
        let req = request();
        let mut stored = build_backup(&req);
        assert!(holds(&stored, &req));
        stored
            .data
            .as_mut()
            .unwrap()
            .insert("openai-api-key".into(), ByteString(b"other".to_vec()));
        assert!(!holds(&stored, &req));
    }

    #[test]
    fn long_names_are_shortened_to_valid_ones() {
        let long = "a".repeat(300);
        assert!(backup_name(&long, "20261126-040000-ab12").len() <= 253);
        let label = backup_label_value(&long);
        assert!(label.len() <= 63, "{label}");
    }
}

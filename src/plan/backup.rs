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

use crate::plan::secret_meta::BACKUP_OF_LABEL;
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

/// What `backup --list` shows of a backup: never a value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    pub name: String,
    pub created_at: String,
    pub created_by: String,
    pub rotation_id: String,
    pub reason: String,
    /// Key to the first 8 hex digits of the SHA-256 of the saved value.
    pub keys: BTreeMap<String, String>,
}

/// Reads the listing facts of a backup Secret from its annotations (fingerprints are computed
/// from the data when the annotation is missing, as for backups written by hand).
pub fn info(backup: &Secret) -> BackupInfo {
    let annotations = backup.metadata.annotations.clone().unwrap_or_default();
    let get = |k: &str| annotations.get(k).cloned().unwrap_or_default();
    let keys = annotations
        .get(FINGERPRINTS)
        .and_then(|f| serde_json::from_str::<BTreeMap<String, String>>(f).ok())
        .unwrap_or_else(|| {
            backup
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), crate::values::fingerprint(&v.0)))
                .collect()
        });
    BackupInfo {
        name: backup.metadata.name.clone().unwrap_or_default(),
        created_at: get(CREATED_AT),
        created_by: get(CREATED_BY),
        rotation_id: get(ROTATION_ID),
        reason: get(REASON),
        keys,
    }
}

/// Backups newest first: by creation time recorded in the annotation (to the millisecond for
/// backups written since runs are journaled), then by the API server's creation time, then by
/// name, so the order does not depend on the server's listing order.
pub fn newest_first(mut backups: Vec<Secret>) -> Vec<Secret> {
    let key = |s: &Secret| {
        let at = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CREATED_AT))
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        (
            at,
            s.metadata.creation_timestamp.as_ref().map(|t| t.0),
            s.metadata.name.clone().unwrap_or_default(),
        )
    };
    backups.sort_by_key(|s| std::cmp::Reverse(key(s)));
    backups
}

/// The backup file (`backup --to-file`, `rollback --from-file`): a JSON object
/// `{"apiVersion": "kubectl-rotate.io/v1alpha1", "kind": "SecretBackup", "namespace", "secret",
/// "sourceResourceVersion", "createdAt", "createdBy", "data": {KEY: base64 value}}`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupFile {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub secret: String,
    pub source_resource_version: String,
    pub created_at: String,
    pub created_by: String,
    pub data: BTreeMap<String, String>,
}

/// Never the values: a `{:?}` in a log or panic must not leak them.
impl std::fmt::Debug for BackupFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupFile")
            .field("namespace", &self.namespace)
            .field("secret", &self.secret)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for BackupFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for value in self.data.values_mut() {
            value.zeroize();
        }
    }
}

pub const FILE_KIND: &str = "SecretBackup";

/// The backup file's text for `request` (zeroized when dropped).
pub fn to_file(request: &BackupRequest) -> zeroize::Zeroizing<String> {
    let file = BackupFile {
        api_version: crate::model::names::API_VERSION.to_string(),
        kind: FILE_KIND.to_string(),
        namespace: request.namespace.clone(),
        secret: request.secret.clone(),
        source_resource_version: request.source_resource_version.clone(),
        created_at: request.at.clone(),
        created_by: request.by.clone(),
        data: request
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.to_base64().to_string()))
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
    text.push('\n');
    zeroize::Zeroizing::new(text)
}

/// Parses a backup file; the values come back as `SecretValue`s.
pub fn from_file(
    text: &[u8],
    path: &str,
) -> anyhow::Result<(BackupFile, Vec<(String, SecretValue)>)> {
    use base64::Engine;
    let file: BackupFile = serde_json::from_slice(text)
        .map_err(|e| anyhow::anyhow!("{path} is not a kubectl-rotate backup file: {e}"))?;
    if file.kind != FILE_KIND || file.api_version != crate::model::names::API_VERSION {
        anyhow::bail!(
            "{path} is a {} {}, not a {} {}",
            file.api_version,
            file.kind,
            crate::model::names::API_VERSION,
            FILE_KIND
        );
    }
    let mut values = Vec::new();
    for (key, encoded) in &file.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| anyhow::anyhow!("{path}: the value of key {key:?} is not valid base64"))?;
        values.push((key.clone(), SecretValue::new(bytes)));
    }
    Ok((file, values))
}

/// The top of the git work tree `path` would be written into, if any: backups belong in a
/// password manager, not in git.
pub fn git_work_tree_of(path: &std::path::Path) -> Option<std::path::PathBuf> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let start = std::fs::canonicalize(parent).ok()?;
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(|d| d.to_path_buf())
}

/// The keys a backup Secret holds, sorted.
pub fn keys_of(backup: &k8s_openapi::api::core::v1::Secret) -> Vec<String> {
    backup
        .data
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect()
}

/// The first of `backups` (newest first) that holds every key of `keys` (any backup when
/// `keys` is empty).
pub fn newest_holding<'a>(
    backups: &'a [k8s_openapi::api::core::v1::Secret],
    keys: &[String],
) -> Option<&'a k8s_openapi::api::core::v1::Secret> {
    backups.iter().find(|b| {
        let data = b.data.as_ref();
        keys.iter().all(|k| data.is_some_and(|d| d.contains_key(k)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_backup_holding_every_key_asked_for_is_chosen() {
        let backup = |name: &str, keys: &[&str]| k8s_openapi::api::core::v1::Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), k8s_openapi::ByteString(b"v".to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        // Newest first, as list_backups returns them.
        let backups = [
            backup("b3", &["openai-api-key"]),
            backup("b2", &["redis-password"]),
            backup("b1", &["openai-api-key", "redis-password"]),
        ];
        let name = |keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            newest_holding(&backups, &keys).and_then(|b| b.metadata.name.clone())
        };
        assert_eq!(name(&[]).as_deref(), Some("b3"));
        assert_eq!(name(&["redis-password"]).as_deref(), Some("b2"));
        assert_eq!(
            name(&["redis-password", "openai-api-key"]).as_deref(),
            Some("b1")
        );
        assert_eq!(name(&["encryption-key"]), None);
        assert_eq!(keys_of(&backups[2]), ["openai-api-key", "redis-password"]);
    }

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
        assert!(crate::plan::secret_meta::is_backup(&backup));
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
    fn the_backup_file_round_trips_and_rejects_other_documents() {
        let text = to_file(&request());
        assert!(
            text.contains("\"kind\": \"SecretBackup\""),
            "{}",
            text.as_str()
        );
        let (file, values) = from_file(text.as_bytes(), "f").unwrap();
        assert_eq!(file.secret, "app-secrets");
        assert_eq!(values[0].1.expose(), b"sk-old-value");
        assert!(from_file(b"{\"kind\":\"Secret\"}", "f").is_err());
    }

    #[test]
    fn listing_facts_come_from_annotations_and_never_hold_values() {
        let backup = build_backup(&request());
        let info = info(&backup);
        assert_eq!(info.created_by, "alice");
        assert_eq!(
            info.keys["openai-api-key"],
            crate::values::fingerprint(b"sk-old-value")
        );
        assert!(
            !serde_json::to_string(&info)
                .unwrap()
                .contains("sk-old-value")
        );
    }

    #[test]
    fn a_path_inside_a_git_work_tree_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(git_work_tree_of(&dir.path().join("backup.json")).is_none());
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(git_work_tree_of(&dir.path().join("sub/backup.json")).is_some());
    }

    #[test]
    fn long_names_are_shortened_to_valid_ones() {
        let long = "a".repeat(300);
        assert!(backup_name(&long, "20261126-040000-ab12").len() <= 253);
        let label = backup_label_value(&long);
        assert!(label.len() <= 63, "{label}");
    }
}

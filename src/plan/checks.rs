//! Pure checks behind `kubectl rotate verify`: is a value well-formed for its kind, and have a
//! consumer's pods restarted since the key's last recorded rotation, are they ready, is any of
//! them crash-looping. The command reads the cluster; everything decided is here.

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::plan::rollout::pod_failure;

/// What a key holds, where that is known (from its name, or a preset).
/// Serialized as the config file spells it (`fernet`, `openai`, `opaque`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// 32 bytes in URL-safe base64.
    Fernet,
    /// `sk-...`, no whitespace.
    OpenAi,
    /// Nothing known beyond "present and non-empty".
    Opaque,
}

/// The kind a key's name implies: `encryption-key` or any name with `fernet` is a Fernet key;
/// any name with `openai` an OpenAI key.
pub fn kind_from_name(key: &str) -> KeyKind {
    let lower = key.to_ascii_lowercase();
    if lower == "encryption-key" || lower.contains("fernet") {
        KeyKind::Fernet
    } else if lower.contains("openai") {
        KeyKind::OpenAi
    } else {
        KeyKind::Opaque
    }
}

/// Whether `value` is a well-formed value of `kind`; the error never quotes the value.
pub fn check_value(kind: KeyKind, value: &[u8]) -> Result<String, String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.ends_with(b"\n") {
        return Err(
            "ends with a newline (the runbook's `echo` pitfall: use `echo -n` or printf)".into(),
        );
    }
    match kind {
        KeyKind::Fernet => {
            let decoded = base64::engine::general_purpose::URL_SAFE.decode(value);
            match decoded {
                Ok(bytes) if bytes.len() == 32 => Ok(format!("a Fernet key ({} bytes, URL-safe base64 of 32 bytes)", value.len())),
                Ok(bytes) => Err(format!("is not a Fernet key: it decodes to {} bytes, not 32", bytes.len())),
                Err(_) => Err("is not a Fernet key: not URL-safe base64 (Fernet keys use - and _, not + and /)".into()),
            }
        }
        KeyKind::OpenAi => {
            if !value.starts_with(b"sk-") {
                Err("is not an OpenAI key: it does not start with sk-".into())
            } else if value.iter().any(u8::is_ascii_whitespace) {
                Err("is not an OpenAI key: it contains whitespace".into())
            } else {
                Ok(format!("an OpenAI key ({} bytes)", value.len()))
            }
        }
        KeyKind::Opaque => Ok(format!("present, {} bytes", value.len())),
    }
}

/// Whether a consumer's current pods all started at or after `since` (RFC 3339; the key's last
/// recorded rotation), are ready, and none crash-loops. `pods` are the workload's pods.
pub fn check_pods_since(since: &str, pods: &[Pod]) -> Result<String, String> {
    let Ok(since_at) = since.parse::<jiff::Timestamp>() else {
        return Err(format!(
            "the recorded rotation time {since:?} is not RFC 3339"
        ));
    };
    let current: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    if current.is_empty() {
        return Ok("no pods (scaled to zero)".into());
    }
    let mut problems = Vec::new();
    for pod in &current {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(failure) = pod_failure(pod) {
            problems.push(format!(
                "pod {name} is failing: container {} is in {}",
                failure.container, failure.reason
            ));
            continue;
        }
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0);
        match started {
            None => problems.push(format!("pod {name} has not started")),
            // Records have one-second resolution: a pod started within that second counts.
            Some(at) if at < since_at => problems.push(format!(
                "pod {name} started at {} before the rotation at {since}: it still holds the old value (restart it)",
                at.strftime("%Y-%m-%dT%H:%M:%SZ")
            )),
            Some(_) => {}
        }
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready {
            problems.push(format!("pod {name} is not ready"));
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{} pod(s) started after the rotation and ready",
            current.len()
        ))
    } else {
        Err(problems.join("; "))
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `secret`, `key`, `login`, `rows`, `rollout`, `logs` or `health`.
    pub check: &'static str,
    pub target: String,
    pub passed: bool,
    /// Not applicable to this target (e.g. `--health` on a workload without that port): it
    /// counts as passed, and is shown as SKIP.
    pub skipped: bool,
    pub message: String,
}

/// The checks so far, in the order they ran.
pub struct Checks(pub Vec<Check>);

impl Checks {
    pub fn add(&mut self, check: &'static str, target: String, result: Result<String, String>) {
        let (passed, message) = match result {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        self.0.push(Check {
            check,
            target,
            passed,
            skipped: false,
            message,
        });
    }

    /// A check that does not apply to `target`: counted as passed, shown as SKIP.
    pub fn skip(&mut self, check: &'static str, target: String, message: String) {
        self.0.push(Check {
            check,
            target,
            passed: true,
            skipped: true,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    #[test]
    fn kinds_follow_the_key_names_of_the_runbook() {
        assert_eq!(kind_from_name("encryption-key"), KeyKind::Fernet);
        assert_eq!(kind_from_name("AIRFLOW_FERNET_KEY"), KeyKind::Fernet);
        assert_eq!(kind_from_name("openai-api-key"), KeyKind::OpenAi);
        assert_eq!(kind_from_name("redis-password"), KeyKind::Opaque);
    }

    #[test]
    fn fernet_keys_must_decode_to_32_bytes_of_url_safe_base64() {
        let good = base64::engine::general_purpose::URL_SAFE.encode([7u8; 32]);
        assert!(check_value(KeyKind::Fernet, good.as_bytes()).is_ok());
        let short = base64::engine::general_purpose::URL_SAFE.encode([7u8; 16]);
        assert!(
            check_value(KeyKind::Fernet, short.as_bytes())
                .unwrap_err()
                .contains("16 bytes")
        );
        let standard = base64::engine::general_purpose::STANDARD.encode([0xfbu8; 32]);
        assert!(check_value(KeyKind::Fernet, standard.as_bytes()).is_err());
    }

    #[test]
    fn openai_keys_start_with_sk_and_have_no_whitespace() {
        assert!(check_value(KeyKind::OpenAi, b"sk-proj-abc").is_ok());
        assert!(check_value(KeyKind::OpenAi, b"pk-abc").is_err());
        assert!(check_value(KeyKind::OpenAi, b"sk-abc def").is_err());
    }

    #[test]
    fn empty_values_and_trailing_newlines_fail_and_never_quote_the_value() {
        assert!(check_value(KeyKind::Opaque, b"").is_err());
        let err = check_value(KeyKind::Opaque, b"hunter2\n").unwrap_err();
        assert!(err.contains("newline") && !err.contains("hunter2"), "{err}");
    }

    fn pod(name: &str, started: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                start_time: Some(Time(started.parse().unwrap())),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn pods_must_have_started_after_the_rotation_and_be_ready() {
        let at = "2026-11-26T04:00:00Z";
        assert!(
            check_pods_since(
                at,
                &[
                    pod("a", "2026-11-26T04:00:05Z", true),
                    pod("b", "2026-11-26T04:00:00Z", true)
                ]
            )
            .is_ok()
        );
        let err = check_pods_since(at, &[pod("a", "2026-11-26T03:59:00Z", true)]).unwrap_err();
        assert!(
            err.contains("pod a started at 2026-11-26T03:59:00Z before the rotation"),
            "{err}"
        );
        assert!(
            check_pods_since(at, &[pod("a", "2026-11-26T04:01:00Z", false)])
                .unwrap_err()
                .contains("not ready")
        );
        assert!(check_pods_since(at, &[]).is_ok());
    }
}

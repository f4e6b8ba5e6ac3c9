//! The start-up check a pod declares through the `fake-kubelet.kubectl-rotate.io/require`
//! annotation: which Secret keys it needs and what their values must look like. This module
//! parses the annotation and evaluates it against a Secret; it does no I/O, so the fake kubelet's
//! "would this app start?" decision is unit-tested here without a cluster.
//!
//! Failure reasons are plain strings rather than errors because they are data: they end up in
//! the pod's `state.waiting.message` and its log. They name the Secret and key, never the value.

use k8s_openapi::api::core::v1::Secret;
use regex::Regex;
use serde::Deserialize;

/// Pod annotation (copied from the workload's pod template) that declares the check.
pub const ANNOTATION: &str = "fake-kubelet.kubectl-rotate.io/require";

/// One required key: `{"secret": "...", "key": "...", "pattern": "..."}`.
#[derive(Debug)]
pub struct Requirement {
    pub secret: String,
    pub key: String,
    pattern: Regex,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    secret: String,
    key: String,
    pattern: String,
}

/// Parses the annotation value: one requirement object or an array of them. A bad regex is
/// reported here, so an invalid annotation fails the pod like any other failed check.
pub fn parse_requirements(annotation: &str) -> Result<Vec<Requirement>, String> {
    let invalid = |why: String| format!("invalid annotation {ANNOTATION}: {why}");
    let value: serde_json::Value =
        serde_json::from_str(annotation).map_err(|e| invalid(format!("not JSON ({e})")))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => return Err(invalid("expected an object or an array of objects".into())),
    };
    items
        .into_iter()
        .map(|item| {
            let raw: RawRequirement =
                serde_json::from_value(item).map_err(|e| invalid(e.to_string()))?;
            let pattern = Regex::new(&raw.pattern).map_err(|e| {
                // regex's syntax errors draw a caret diagram over several lines; the pod's
                // message and our log want one line, and the last one says what is wrong.
                let text = e.to_string();
                let why = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default();
                let why = why.trim().trim_start_matches("error: ");
                invalid(format!(
                    "pattern for key {:?} is not a valid regex: {why}",
                    raw.key
                ))
            })?;
            Ok(Requirement {
                secret: raw.secret,
                key: raw.key,
                pattern,
            })
        })
        .collect()
}

impl Requirement {
    /// Checks the Secret as the pod would see it at start-up; `None` means it does not exist.
    pub fn check(&self, secret: Option<&Secret>) -> Result<(), String> {
        let (name, key) = (&self.secret, &self.key);
        let secret = secret.ok_or_else(|| format!("Secret {name:?} not found"))?;
        let value = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .ok_or_else(|| format!("Secret {name:?} has no key {key:?}"))?;
        let text = std::str::from_utf8(&value.0)
            .map_err(|_| format!("key {key:?} of Secret {name:?} is not valid UTF-8"))?;
        if self.pattern.is_match(text) {
            Ok(())
        } else {
            Err(format!(
                "key {key:?} of Secret {name:?} does not match the required pattern"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    const OPENAI: &str = r#"{"secret": "app-secrets", "key": "openai-api-key", "pattern": "^sk-[A-Za-z0-9_-]{20,}$"}"#;

    fn secret_with(key: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some([(key.to_string(), ByteString(value.to_vec()))].into()),
            ..Secret::default()
        }
    }

    fn only(annotation: &str) -> Requirement {
        let mut parsed = parse_requirements(annotation).expect("annotation should parse");
        assert_eq!(parsed.len(), 1);
        parsed.remove(0)
    }

    #[test]
    fn a_single_object_is_one_requirement() {
        let req = only(OPENAI);
        assert_eq!(
            (req.secret.as_str(), req.key.as_str()),
            ("app-secrets", "openai-api-key")
        );
    }

    #[test]
    fn an_array_gives_one_requirement_per_object() {
        let two = format!(r#"[{OPENAI}, {{"secret": "db", "key": "password", "pattern": "."}}]"#);
        let parsed = parse_requirements(&two).expect("array should parse");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].key, "password");
    }

    #[test]
    fn bad_json_a_bad_regex_and_unknown_fields_are_invalid_annotations() {
        for bad in [
            "not json",
            "42",
            r#"{"secret": "s", "key": "k", "pattern": "("}"#,
            r#"{"secret": "s", "key": "k"}"#,
            r#"{"secret": "s", "key": "k", "pattern": ".", "extra": 1}"#,
        ] {
            let err = parse_requirements(bad).expect_err(bad);
            assert!(!err.contains('\n'), "one line: {err}");
            assert!(
                err.starts_with("invalid annotation fake-kubelet.kubectl-rotate.io/require"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_bad_regex_is_reported_in_one_line() {
        let err = parse_requirements(r#"{"secret": "s", "key": "k", "pattern": "("}"#)
            .expect_err("bad regex");
        assert!(
            err.ends_with(r#"pattern for key "k" is not a valid regex: unclosed group"#),
            "{err}"
        );
    }

    #[test]
    fn a_matching_value_passes() {
        let secret = secret_with("openai-api-key", b"sk-abcdefghijklmnopqrstuvwxyz");
        assert_eq!(only(OPENAI).check(Some(&secret)), Ok(()));
    }

    #[test]
    fn a_non_matching_value_fails_without_revealing_it() {
        let secret = secret_with("openai-api-key", b"hunter2-not-a-key");
        let err = only(OPENAI).check(Some(&secret)).expect_err("should fail");
        assert_eq!(
            err,
            r#"key "openai-api-key" of Secret "app-secrets" does not match the required pattern"#
        );
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn a_missing_secret_key_or_non_utf8_value_fails() {
        let req = only(OPENAI);
        assert_eq!(
            req.check(None),
            Err(r#"Secret "app-secrets" not found"#.into())
        );
        assert_eq!(
            req.check(Some(&Secret::default())),
            Err(r#"Secret "app-secrets" has no key "openai-api-key""#.into())
        );
        assert_eq!(
            req.check(Some(&secret_with(
                "other",
                b"sk-abcdefghijklmnopqrstuvwxyz"
            ))),
            Err(r#"Secret "app-secrets" has no key "openai-api-key""#.into())
        );
        assert_eq!(
            req.check(Some(&secret_with("openai-api-key", &[0xff, 0xfe]))),
            Err(r#"key "openai-api-key" of Secret "app-secrets" is not valid UTF-8"#.into())
        );
    }
}
